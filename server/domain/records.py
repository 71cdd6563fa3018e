"""CRM records of an account: persons, leads and deals. Every user of the account sees them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from server.domain import phones
from server.domain.services import Actor, Services
from server.domain.views import deal_view, lead_view, person_view
from server.errors import NotFound, ValidationFailed
from server.state import crm_queries
from server.state.models import Deal, Lead, Person

CrmRecord = Person | Lead | Deal
MODELS: dict[str, type[Person] | type[Lead] | type[Deal]] = {
    "person": Person,
    "lead": Lead,
    "deal": Deal,
}
TARGETS = tuple(MODELS)


@dataclass(frozen=True)
class NewPerson:
    name: str
    emails: tuple[str, ...] = ()
    # (the request field it came from, for errors; the number as given)
    phones: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class NewLead:
    title: str
    person_id: int | None = None
    person_field: str = "person_id"


@dataclass(frozen=True)
class NewDeal:
    title: str
    value: float | None = None
    currency: str | None = None
    person_id: int | None = None
    person_field: str = "person_id"


NewRecord = NewPerson | NewLead | NewDeal


def target_of(new: NewRecord) -> str:
    return {NewPerson: "person", NewLead: "lead", NewDeal: "deal"}[type(new)]


def view(record: CrmRecord) -> dict[str, Any]:
    if isinstance(record, Person):
        return person_view(record)
    if isinstance(record, Lead):
        return lead_view(record)
    return deal_view(record)


def get_record(session: Session, actor: Actor, *, target: str, record_id: int) -> CrmRecord:
    """A person, lead or deal of the actor's account; 404 for anyone else's."""
    record = crm_queries.record_by_id(
        session, MODELS[target], account_id=actor.account_id, record_id=record_id
    )
    if record is None:
        raise NotFound(f"No such {target}.")
    return record


def _search_line(value: str) -> str:
    return " ".join(value.split()).lower()


def _phones(new: NewPerson, region: str | None) -> list[dict[str, str]]:
    """Each number with its E.164 form, once per E.164; 422 naming the field that is no number."""
    found: dict[str, dict[str, str]] = {}
    for field, value in new.phones:
        e164 = phones.to_e164(value, region=region)
        if e164 is None:
            hint = "" if region else " with its country code (like +14155550100)"
            raise ValidationFailed(fields={field: f"is not a phone number{hint}"})
        found.setdefault(e164, {"value": value.strip(), "e164": e164})
    return list(found.values())


def _check_person(session: Session, actor: Actor, person_id: int | None, field: str) -> None:
    if person_id is not None and (
        crm_queries.record_by_id(session, Person, account_id=actor.account_id, record_id=person_id)
        is None
    ):
        raise ValidationFailed(fields={field: "no such person"})


def create(session: Session, services: Services, actor: Actor, new: NewRecord) -> CrmRecord:
    """Store a new person, lead or deal in the actor's account."""
    now = services.now()
    record: CrmRecord
    if isinstance(new, NewPerson):
        numbers = _phones(new, services.settings.phone_region)
        emails = list(dict.fromkeys(new.emails))
        searchable = [new.name, *emails, *(phones.digits(p["e164"]) for p in numbers)]
        record = Person(
            account_id=actor.account_id,
            name=new.name,
            emails=emails,
            phones=numbers,
            search_text="\n".join(_search_line(s) for s in searchable),
            created_at=now,
            updated_at=now,
        )
    elif isinstance(new, NewLead):
        _check_person(session, actor, new.person_id, new.person_field)
        record = Lead(
            account_id=actor.account_id,
            title=new.title,
            person_id=new.person_id,
            created_at=now,
            updated_at=now,
        )
    else:
        _check_person(session, actor, new.person_id, new.person_field)
        record = Deal(
            account_id=actor.account_id,
            title=new.title,
            value=new.value,
            currency=new.currency,
            person_id=new.person_id,
            created_at=now,
            updated_at=now,
        )
    session.add(record)
    session.flush()
    return record


def list_persons(
    session: Session, services: Services, actor: Actor, *, term: str, after_id: int, limit: int
) -> tuple[list[dict[str, Any]], tuple[int] | None]:
    """Persons by id; a term matches inside the name, an email or (by its digits) a phone."""
    contains: list[str] = []
    if term.strip():
        contains = [
            _search_line(term),
            *phones.search_digits(term.strip(), region=services.settings.phone_region),
        ]
    rows = crm_queries.persons_page(
        session, account_id=actor.account_id, after_id=after_id, limit=limit + 1, contains=contains
    )
    items = [person_view(p) for p in rows[:limit]]
    return items, ((rows[limit - 1].id or 0,) if len(rows) > limit else None)


def list_records(
    session: Session,
    actor: Actor,
    *,
    target: str,
    after_id: int,
    limit: int,
    person_id: int | None = None,
) -> tuple[list[dict[str, Any]], tuple[int] | None]:
    """Leads or deals by id, optionally only those of one person."""
    model = Lead if target == "lead" else Deal
    rows = crm_queries.records_page(
        session,
        model,
        account_id=actor.account_id,
        after_id=after_id,
        limit=limit + 1,
        person_id=person_id,
    )
    items = [view(r) for r in rows[:limit]]
    return items, ((rows[limit - 1].id or 0,) if len(rows) > limit else None)
