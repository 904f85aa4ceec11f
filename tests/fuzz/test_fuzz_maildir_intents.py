"""Fuzz the intent rows of the Maildir store (`intents.from_row`): whatever a damaged index
holds, reading it never fails and yields only plain file names (an undo unlinks what they
name); what `record` wrote reads back as it was."""

from __future__ import annotations

import json
import sqlite3

from hypothesis import example, given, settings
from hypothesis import strategies as st

from appliance.storage.maildir import intents
from appliance.storage.maildir.index import _TABLES

NAMES = st.text(st.sampled_from("abc.:,/=\x00S2é"), max_size=12)
JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | NAMES,
                       lambda inner: st.lists(inner, max_size=4), max_leaves=12)
PLAIN = st.text(st.sampled_from("abc.:,=S2é"), min_size=1, max_size=12).filter(
    lambda name: not name.startswith("."))
MANY = settings(max_examples=500, deadline=None)


def plain(name: str) -> bool:
    return bool(name) and "/" not in name and "\0" not in name and not name.startswith(".")


@MANY
@given(st.one_of(JSONISH.map(json.dumps), st.text(max_size=60)))
@example('[["cur", "../../x", "y"]]')
@example('[["cur", "a", "b"], ["new", "c", "d", "e"], {"cur": 1}]')
def test_any_row_reads_as_plain_names(text: str) -> None:
    intent = intents.from_row((7, "move", "INBOX", "Other", text))
    assert intent.id == 7
    for subdir, source, target in intent.files:
        assert subdir in ("cur", "new")
        assert plain(source)
        assert plain(target)


@MANY
@given(st.lists(st.tuples(st.sampled_from(["cur", "new"]), PLAIN, PLAIN), max_size=8))
def test_recorded_names_read_back(entries: list[tuple[str, str, str]]) -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute(f"CREATE TABLE intents ({_TABLES['intents']})")
    intent_id = intents.record(conn, intents.COPY, "INBOX", "A/B", entries)
    [found] = intents.pending(conn)
    assert found == intents.Intent(intent_id, intents.COPY, "INBOX", "A/B", tuple(entries))
    assert intents.pending(conn, ignore=[intent_id]) == []
    assert intents.in_flight([found]) == {intents.base(n) for _, s, t in entries
                                          for n in (s, t)}
