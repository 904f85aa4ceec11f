"""The FETCH parser's table of item lists parsed before (`commands.messages._ITEMS`): the same
text gives the same command whether parsed fresh or from the table, the per-form rules still
hold (VANISHED only with UID FETCH), errors are never kept, texts with literals are never
kept, and the table stays bounded."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.imap.commands import CommandError, ParseContext, parse_command
from appliance.imap.commands import messages as s
from appliance.imap.receiver import NEED_DATA, Command, Receiver, ReceiverLimits
from appliance.imap.state import State


def _parse(wire: bytes) -> s.Fetch:
    receiver = Receiver(ReceiverLimits(max_non_sync_literal=None))
    receiver.feed(wire + b"\r\n")
    event = receiver.next_event()
    assert isinstance(event, Command), event
    assert receiver.next_event() is NEED_DATA
    command = parse_command(event, State.SELECTED, ParseContext())
    assert isinstance(command, s.Fetch)
    return command


@pytest.fixture(autouse=True)
def empty_table() -> Iterator[None]:
    s._ITEMS.clear()
    yield
    s._ITEMS.clear()


@pytest.mark.parametrize("wire", [
    b"t UID FETCH 5000 (BODY.PEEK[])", b"t FETCH 1:* (FLAGS UID RFC822.SIZE)",
    b"t FETCH 2,4:7 FAST", b"t UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12 VANISHED)",
    b"t FETCH 3 (BODY.PEEK[1.2.HEADER.FIELDS (Subject From)]<0.100> BINARY[2])"])
def test_a_text_parsed_again_gives_the_same_command(wire: bytes) -> None:
    first = _parse(wire)
    assert len(s._ITEMS) == 1
    again = _parse(wire.replace(b"t ", b"u ", 1))
    assert again == s.Fetch("u", first.sequence_set, first.attributes, first.modifiers,
                            first.uid)
    assert again.attributes is first.attributes         # shared, not parsed again


def test_the_uid_form_rule_holds_after_the_uid_form_was_kept() -> None:
    assert _parse(b"t UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)").modifiers.vanished
    with pytest.raises(CommandError, match="VANISHED"):
        _parse(b"t FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)")


def test_errors_are_not_kept() -> None:
    for _ in range(2):
        with pytest.raises(CommandError):
            _parse(b"t FETCH 1 (BODY.PEEK)")
    assert s._ITEMS == {}


def test_texts_with_literals_are_not_kept() -> None:
    command = _parse(b"t FETCH 1 (BODY.PEEK[HEADER.FIELDS ({7+}\r\nSubject)])")
    assert command.attributes[0].section is not None
    assert command.attributes[0].section.fields == ("Subject",)
    assert s._ITEMS == {}


def test_the_table_stays_bounded() -> None:
    for n in range(s._ITEMS_MAX * 2 + 3):
        _parse(b"t FETCH 1 (BODY.PEEK[]<%d.10>)" % n)
        assert len(s._ITEMS) <= s._ITEMS_MAX


ITEMS = st.lists(st.sampled_from(
    ["FLAGS", "UID", "RFC822.SIZE", "INTERNALDATE", "ENVELOPE", "BODY.PEEK[]", "BODY[TEXT]",
     "BODY.PEEK[HEADER]", "BINARY[1]", "BODYSTRUCTURE", "MODSEQ", "BODY.PEEK[]<0.5>"]),
    min_size=1, max_size=5)


@settings(max_examples=200, deadline=None)
@given(ITEMS, st.booleans())
def test_fresh_and_kept_parses_agree(items: list[str], uid: bool) -> None:
    wire = ("t " + ("UID " if uid else "") + "FETCH 1:3 (" + " ".join(items) + ")").encode()
    s._ITEMS.clear()
    fresh = _parse(wire)
    kept = _parse(wire)
    assert kept == fresh
