"""Fuzz the administration pages' parsers: the mail log search (webui/blueprints/
admin_logsearch.py) and the alias form's source and target lists (admin_aliases.py).

Whatever the text, they either answer or raise their own error type; found log lines are
always ones that were in the input, and tail reads stay within their budget.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.core.addresses import AddressError
from webui.blueprints.admin_aliases import MAX_TARGETS, parse_source, parse_targets
from webui.blueprints.admin_common import FormError
from webui.blueprints.admin_logsearch import QueryError, parse_query, search, tail_lines

HEADER = ("ts", "level", "event")
VALUE = st.one_of(st.text(max_size=30), st.sampled_from(["Straße@x", "SS@Y", "\u212a@k", "Q1"]))
fields = st.dictionaries(st.sampled_from(["queue_id", "sender", "recipients", "x", "ts"]),
                         st.one_of(VALUE, st.lists(VALUE, max_size=3), st.integers(),
                                   st.none()), max_size=5)
raw_lines = st.one_of(st.binary(max_size=80),
                      fields.map(lambda d: json.dumps(d, ensure_ascii=False).encode()))


@given(st.text(max_size=300))
def test_parse_query_answers_or_refuses(text: str) -> None:
    try:
        query = parse_query(text)
    except QueryError:
        return
    assert query.text
    assert len(query.text) <= 300
    assert query.is_address == ("@" in text)


@given(st.lists(raw_lines, max_size=20),
       st.one_of(st.text(min_size=1, max_size=20), st.sampled_from(["ss@", "@", "K@", "Q1"])))
def test_search_finds_exactly_the_matching_lines(lines: list[bytes], text: str) -> None:
    """The cheap byte test before parsing never loses a line that matches."""
    try:
        query = parse_query(text)
    except QueryError:
        return
    expected = 0
    for line in lines:
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if isinstance(document, dict) and any(
                query.matches(v) for k, v in document.items() if k not in HEADER):
            expected += 1
    assert len(search(lines, query, limit=100)) == expected


@settings(max_examples=50)
@given(st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=30),
       st.integers(min_value=0, max_value=600))
def test_tail_stays_within_budget(tmp_path_factory: pytest.TempPathFactory,
                                  lines: list[bytes], budget: int) -> None:
    directory = tmp_path_factory.mktemp("tail")
    path = directory / "engine.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    found = tail_lines([path], budget)
    assert sum(len(line) + 1 for line in found) <= budget + 1
    kept = [line for line in lines if line.strip()]
    assert found == list(reversed(kept))[:len(found)]


@given(st.text(max_size=400))
def test_alias_source_parses_or_refuses(text: str) -> None:
    try:
        source = parse_source(text)
    except AddressError:
        return
    assert "@" in source
    assert parse_source(source) == source


ADDRESSISH = st.lists(st.sampled_from(["a@x.example", "B@Y.example", "a@x.example", "bad",
                                        '"q r"@z.example', "@x", "", " ", "ü@bücher.example"]),
                      max_size=60)


@given(st.one_of(st.text(max_size=400),
                 ADDRESSISH.map(", ".join), ADDRESSISH.map("\n".join)))
def test_alias_targets_parse_or_refuse(text: str) -> None:
    try:
        targets = parse_targets(text)
    except (AddressError, FormError):
        return
    assert 1 <= len(targets) <= MAX_TARGETS
    assert len(set(targets)) == len(targets)
