"""The CRM: persons, leads and deals, conversations' links to them, and the notes on them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import Response

from server.domain import links, notes, records
from server.domain.records import NewDeal, NewLead, NewPerson, NewRecord
from server.domain.views import link_view, note_view
from server.errors import ValidationFailed
from server.handlers.auth import authenticate
from server.handlers.http import (
    MAX_ID,
    JSONResponse,
    decode_cursor,
    page,
    path_id,
    query_limit,
    read_json,
    runtime,
)
from server.handlers.schemas import DealIn, LeadIn, LinkIn, NoteIn, PersonIn
from server.parsing import validate

BODIES: dict[str, type[PersonIn] | type[LeadIn] | type[DealIn]] = {
    "person": PersonIn,
    "lead": LeadIn,
    "deal": DealIn,
}


def _new(target: str, body: BaseModel, prefix: str = "") -> NewRecord:
    """The domain's description of a new record; `prefix` places field errors in the request."""
    if isinstance(body, PersonIn):
        phones = [(f"{prefix}phone", body.phone)] if body.phone else []
        phones += [(f"{prefix}phones.{i}", p) for i, p in enumerate(body.phones)]
        emails = [body.email] if body.email else []
        return NewPerson(body.name, tuple(emails + body.emails), tuple(phones))
    if isinstance(body, LeadIn):
        return NewLead(body.title, body.person_id, f"{prefix}person_id")
    assert isinstance(body, DealIn)
    return NewDeal(body.title, body.value, body.currency, body.person_id, f"{prefix}person_id")


def _after_id(request: Request) -> int | None:
    """The id in a cursor this server handed out for an id-ordered list."""
    cursor = decode_cursor(request)
    if cursor is None:
        return None
    if len(cursor) != 1 or type(cursor[0]) is not int:
        raise ValidationFailed(fields={"cursor": "is not a cursor this server handed out"})
    value: int = cursor[0]
    return value


def _id_param(request: Request, name: str, *, required: bool = False) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        if required:
            raise ValidationFailed(fields={name: "is required"})
        return None
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_ID:
        raise ValidationFailed(fields={name: "must be a positive integer"})
    return int(raw)


# Persons, leads, deals -----------------------------------------------------------------------


async def _create(request: Request, target: str) -> Response:
    actor = await authenticate(request, method=request.method)
    new = _new(target, await read_json(request, BODIES[target]))
    rt = runtime(request)
    view = await rt.write(
        lambda s: records.view(records.create(s, rt.services, actor, new)),
    )
    return JSONResponse(view, status_code=201)


async def _get(request: Request, target: str) -> Response:
    actor = await authenticate(request)
    record_id = path_id(request)
    view = await runtime(request).read(
        lambda s: records.view(records.get_record(s, actor, target=target, record_id=record_id))
    )
    return JSONResponse(view)


async def _list(request: Request, target: str) -> Response:
    actor = await authenticate(request)
    limit, after = query_limit(request), _after_id(request) or 0
    person_id = _id_param(request, "person_id")
    items, next_after = await runtime(request).read(
        lambda s: records.list_records(
            s, actor, target=target, after_id=after, limit=limit, person_id=person_id
        )
    )
    return page(items, next_after)


async def create_person(request: Request) -> Response:
    return await _create(request, "person")


async def list_persons(request: Request) -> Response:
    actor = await authenticate(request)
    term = request.query_params.get("term", "")
    if len(term) > 200:
        raise ValidationFailed(fields={"term": "must be at most 200 characters"})
    limit, after = query_limit(request), _after_id(request) or 0
    rt = runtime(request)
    items, next_after = await rt.read(
        lambda s: records.list_persons(
            s, rt.services, actor, term=term, after_id=after, limit=limit
        )
    )
    return page(items, next_after)


async def get_person(request: Request) -> Response:
    return await _get(request, "person")


async def create_lead(request: Request) -> Response:
    return await _create(request, "lead")


async def list_leads(request: Request) -> Response:
    return await _list(request, "lead")


async def get_lead(request: Request) -> Response:
    return await _get(request, "lead")


async def create_deal(request: Request) -> Response:
    return await _create(request, "deal")


async def list_deals(request: Request) -> Response:
    return await _list(request, "deal")


async def get_deal(request: Request) -> Response:
    return await _get(request, "deal")


# Links ---------------------------------------------------------------------------------------


def _link_body(body: LinkIn) -> NewRecord | None:
    """`target_id` or `create`, exactly one; `create` as the target's POST body."""
    if (body.target_id is None) == (body.create is None):
        raise ValidationFailed(fields={"target_id": "give either target_id or create"})
    if body.create is None:
        return None
    try:
        fields = validate(BODIES[body.target], body.create)
    except ValidationFailed as exc:
        raise ValidationFailed(
            fields={f"create.{k}": v for k, v in (exc.fields or {}).items()}
        ) from exc
    return _new(body.target, fields, prefix="create.")


async def create_link(request: Request) -> Response:
    actor = await authenticate(request, method=request.method)
    body = await read_json(request, LinkIn)
    create = _link_body(body)
    rt = runtime(request)

    def work(s: Session) -> dict[str, Any]:
        link, note = links.link(
            s,
            rt.services,
            actor,
            conversation_id=path_id(request),
            target=body.target,
            target_id=body.target_id,
            create=create,
        )
        return {"link": link_view(link), "note": note_view(note)}

    return JSONResponse(await rt.write(work), status_code=201)


async def delete_link(request: Request) -> Response:
    actor = await authenticate(request, method=request.method)
    rt = runtime(request)
    conversation_id, link_id = path_id(request), path_id(request, "link_id")
    await rt.write(
        lambda s: links.unlink(
            s, rt.services, actor, conversation_id=conversation_id, link_id=link_id
        )
    )
    return Response(status_code=204)


# Notes ---------------------------------------------------------------------------------------


async def list_notes(request: Request) -> Response:
    actor = await authenticate(request)
    target = request.query_params.get("target")
    if target not in records.TARGETS:
        raise ValidationFailed(fields={"target": "must be one of person, lead, deal"})
    target_id = _id_param(request, "target_id", required=True)
    assert target_id is not None
    limit, before = query_limit(request), _after_id(request)
    items, next_after = await runtime(request).read(
        lambda s: notes.list_notes(
            s, actor, target=target, target_id=target_id, before_id=before, limit=limit
        )
    )
    return page(items, next_after)


async def edit_note(request: Request) -> Response:
    actor = await authenticate(request, method=request.method)
    body = await read_json(request, NoteIn)
    rt = runtime(request)
    note_id = path_id(request)
    view = await rt.write(
        lambda s: note_view(
            notes.edit_note(s, rt.services, actor, note_id=note_id, content=body.content)
        )
    )
    return JSONResponse(view)


async def delete_note(request: Request) -> Response:
    actor = await authenticate(request, method=request.method)
    rt = runtime(request)
    note_id = path_id(request)
    await rt.write(lambda s: notes.delete_note(s, rt.services, actor, note_id=note_id))
    return Response(status_code=204)
