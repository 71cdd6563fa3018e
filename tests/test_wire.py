"""The pub/sub wire format and personal (one per user) event templates, without a server."""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest

from server.domain.events import (
    PendingEvent,
    encode_frame,
    frame_around_seq,
    personal_frame,
    personal_template,
)
from server.realtime import wire

HOSTILE_TEXTS = ["plain", 'quo"te\\', "nul\0byte", "new\nline", "ünïcødé ✓ 𝄞", "", "\0"]


@pytest.mark.parametrize("text", HOSTILE_TEXTS)
def test_a_personal_frame_is_exactly_the_json_of_the_whole_item(text: str) -> None:
    item = {"kind": "message_unassigned", "title": text, "body": text, "read_at": None}
    template = personal_template("notification.created", "notification", item)
    rendered = personal_frame(template, 42)
    expected = {"id": 42, **item}
    assert orjson.loads(rendered) == {
        "type": "notification.created",
        "seq": None,
        "data": {"notification": expected},
    }
    assert rendered == encode_frame("notification.created", None, {"notification": expected})


def test_a_personal_template_of_an_empty_item_is_valid_json() -> None:
    template = personal_template("x.y", "thing", {})
    frame = personal_frame(template, 5)
    assert orjson.loads(frame) == {"type": "x.y", "seq": None, "data": {"thing": {"id": 5}}}


def test_a_transaction_travels_as_one_message_and_comes_back_the_same() -> None:
    events = [
        PendingEvent(
            3, "conversation.created", 10, encode_frame("conversation.created", 10, {}), 4
        ),
        PendingEvent(
            3, "message.created", 11, encode_frame("message.created", 11, {"a": "b\nc"}), 4
        ),
        PendingEvent(3, "notification.read", None, encode_frame("n", None, {}), user_id=9),
        PendingEvent(
            3,
            "notification.created",
            None,
            personal_template("notification.created", "notification", {"k": 1}),
            recipients=((1, 100), (2, 101)),
        ),
    ]
    message = wire.encode(events, "node-a", 1234.5)
    assert wire.origin_of(message) == "node-a"
    decoded = wire.decode(3, message)
    assert decoded == [
        replace(
            wire.from_pending(e, 1234.5),
            origin="node-a",
            recipients=[list(pair) for pair in e.recipients] if e.recipients else (),
        )
        for e in events
    ]
    personal = [orjson.loads(personal_frame(decoded[3].frame, i)) for i in (100, 101)]
    assert [frame["data"]["notification"] for frame in personal] == [
        {"id": 100, "k": 1},
        {"id": 101, "k": 1},
    ]


@pytest.mark.parametrize(
    "message",
    [
        "",
        "hello",
        "sb2|node",
        "sb2|node|1.0\nonly-a-header",
        "sb2|n|1.0\n1|2|3|t\n{}",
        "sb1|n|1\n|||t|\n{}",
        "sb2|n|x\n|||t|\n{}",
        "sb2|n|1\n|||t|1:x\n{}",
        "sb3|n|1\n|||t|1:2\n{}",
        "sb3|n|1\n|||t|[1,2]\n{}",
        "sb3|n|1\n|||t|{}\n{}",
        'sb3|n|1\n|||t|[[1,"2"]]\n{}',
        "sb3|n|1\n|||t|[[1,2,3]]\n{}",
        "sb3|n|1\n|||t|[[true,2]]\n{}",
        "sb3|n|1\n|||t|[[1,2.5]]\n{}",
    ],
)
def test_anything_else_on_the_channel_is_refused(message: str) -> None:
    with pytest.raises(ValueError):
        wire.decode(1, message)


def test_a_message_of_a_node_still_on_the_previous_version_is_read() -> None:
    template = personal_template("notification.created", "notification", {"k": 1})
    message = f"sb2|old-node|1.5\n7|4||message.created|\n{{}}\n|||n|1:100,2:101\n{template}"
    assert wire.origin_of(message) == "old-node"
    created, personal = wire.decode(3, message)
    assert (created.seq, created.integration_id, created.frame) == (7, 4, "{}")
    assert list(personal.recipients) == [(1, 100), (2, 101)]
    assert personal.frame == template


@pytest.mark.parametrize("message", ["", "hello", "sb2|node", "sb1|node|1\n|||t|\n{}", "a|b|c|d"])
def test_a_message_not_of_ours_has_no_origin(message: str) -> None:
    assert wire.origin_of(message) == ""


def test_a_frame_on_two_lines_cannot_be_sent() -> None:
    with pytest.raises(ValueError):
        wire.encode([PendingEvent(1, "x", None, '{"a":\n1}')], "n", 0.0)


@pytest.mark.parametrize("seq", [1, 9, 10, 12345678901])
@pytest.mark.parametrize("text", HOSTILE_TEXTS)
def test_a_frame_built_around_its_seq_is_the_frame_encoded_with_it(seq: int, text: str) -> None:
    data = {"message": {"text": text, "seq": "not this one"}, "n": [1, None]}
    head, tail = frame_around_seq("message.created", data)
    assert f"{head}{seq}{tail}" == encode_frame("message.created", seq, data)
