"""Properties of the grammar pieces against simple models: sequence sets against plain Python
sets, SEARCH evaluation against De Morgan and OR/AND identities, quoted strings against the
wire renderer (what `wire` writes, `grammar` reads back)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.imap import wire
from appliance.imap.grammar import Cursor, ParseError, astring, nstring
from appliance.imap.literals import LiteralData
from appliance.imap.search_eval import SearchContext, search
from appliance.imap.search_keys import And, FlagKey, Not, Or, SearchKey, SizeKey
from appliance.imap.sequence_set import (
    STAR,
    SequenceSet,
    _sequence_set_by_steps,
    parse_sequence_set,
    sequence_set,
)

NUMBER = st.integers(min_value=1, max_value=300)
SEQ_NUMBER = NUMBER | st.just(STAR)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(SEQ_NUMBER, SEQ_NUMBER), min_size=1, max_size=8),
       st.integers(min_value=0, max_value=300))
def test_sequence_set_matches_model(ranges: list[tuple[int, int]], highest: int) -> None:
    parsed = parse_sequence_set(str(SequenceSet(tuple(ranges))))
    assert parsed.ranges == tuple(ranges)
    model: set[int] = set()
    for low, high in ranges:
        if highest == 0 and STAR in (low, high):
            continue
        low, high = low or highest, high or highest
        model |= set(range(min(low, high), max(low, high) + 1))
    resolved = parsed.resolve(highest)
    assert set(resolved) == model
    assert len(resolved) == len(model)
    assert all((n in resolved) == (n in model) for n in range(0, 320))
    assert resolved.select(list(range(1, 320))) == sorted(model)
    assert resolved.to_list() == sorted(model)
    assert resolved.clip(150).to_list() == sorted(n for n in model if n <= 150)
    if resolved:       # the compact wire form reads back as the same set
        assert parse_sequence_set(str(resolved)).resolve(highest) == resolved


SET_TEXT = st.text(alphabet="0123456789*:,$ )", max_size=40) | st.lists(
    st.integers(min_value=0, max_value=2**32 + 5).map(str), max_size=30).map(",".join)


@settings(max_examples=1000, deadline=None)
@given(SET_TEXT)
def test_sequence_set_fast_path_parses_as_the_steps_do(text: str) -> None:
    """The one-regex parse of well-formed sets (`sequence_set`) against the step-by-step
    parser it falls back to: the same set and the same place to go on, or the same error."""
    data = text.encode()

    def outcome(parse: Callable[[Cursor], SequenceSet]) -> object:
        c = Cursor(data)
        try:
            return parse(c), c.pos
        except ParseError as err:
            return str(err)

    def by_steps(c: Cursor) -> SequenceSet:
        if data.startswith(b"$"):
            return sequence_set(c)          # "$" is read before either path
        return _sequence_set_by_steps(c)

    assert outcome(sequence_set) == outcome(by_steps)


@dataclass(frozen=True)
class Msg:
    uid: int
    seq: int
    flags: frozenset[str]
    internal_date: float = 0.0
    size: int = 0
    modseq: int = 1

    def header(self, name: str) -> Sequence[str]:
        return []

    def headers_text(self) -> str:
        return ""

    def body_text(self) -> str:
        return ""


FLAGS = ["\\Seen", "\\Flagged", "\\Deleted", "$Junk"]
LEAVES = st.one_of(st.builds(FlagKey, st.sampled_from(FLAGS), st.booleans()),
                   st.builds(SizeKey, st.integers(0, 20), st.booleans()))
KEYS: st.SearchStrategy[SearchKey] = st.recursive(LEAVES, lambda inner: st.one_of(
    st.builds(Not, inner), st.builds(Or, inner, inner),
    st.lists(inner, min_size=1, max_size=3).map(lambda ks: And(tuple(ks)))), max_leaves=10)
MAILBOXES = st.lists(st.tuples(st.sets(st.sampled_from(FLAGS)), st.integers(0, 20)),
                     max_size=12).map(lambda specs: [
                         Msg(uid=10 + i, seq=i + 1, flags=frozenset(flags), size=size)
                         for i, (flags, size) in enumerate(specs)])


def uids(key: SearchKey, mailbox: list[Msg]) -> list[int]:
    ctx = SearchContext(len(mailbox), 10 + len(mailbox))
    return [m.uid for m in search(key, mailbox, ctx)]


@settings(max_examples=300, deadline=None)
@given(KEYS, KEYS, MAILBOXES)
def test_search_boolean_identities(a: SearchKey, b: SearchKey, mailbox: list[Msg]) -> None:
    every = [m.uid for m in mailbox]
    in_a, in_b = set(uids(a, mailbox)), set(uids(b, mailbox))
    assert set(uids(Not(a), mailbox)) == set(every) - in_a
    assert set(uids(Or(a, b), mailbox)) == in_a | in_b
    assert set(uids(And((a, b)), mailbox)) == in_a & in_b
    assert uids(Not(Or(a, b)), mailbox) == uids(And((Not(a), Not(b))), mailbox)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=60), st.booleans())
def test_rendered_strings_parse_back(data: bytes, as_nstring: bool) -> None:
    rendered = wire.string_bytes(data)
    literals: list[LiteralData] = []
    if rendered.startswith(b"{"):
        header, _, body = rendered.partition(b"\r\n")
        rendered = header
        literals = [LiteralData(len(body), data=body)]
    c = Cursor(rendered, literals)
    try:
        value = nstring(c) if as_nstring else astring(c)
    except ParseError:
        assert b"\x00" in data      # CHAR8 excludes NUL: such strings need literal8
        return
    c.end()
    assert value == data
