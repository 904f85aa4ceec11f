"""`fetch_response.whole_message_names` kept per parsed item tuple (issue 4, fifth pass): the
kept answer is the fresh one, found by identity only, never for a mutable list."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from appliance.imap import fetch_response
from appliance.imap.commands.base import ParseContext
from appliance.imap.commands.messages import fetch
from appliance.imap.fetch_items import FetchAttribute, FetchKind, Partial, Section
from appliance.imap.fetch_response import whole_message_names
from appliance.imap.grammar import Cursor

ATTRIBUTES = st.sampled_from([
    FetchAttribute(FetchKind.UID), FetchAttribute(FetchKind.FLAGS),
    FetchAttribute(FetchKind.RFC822_SIZE), FetchAttribute(FetchKind.RFC822),
    FetchAttribute(FetchKind.BODY_SECTION, peek=True),
    FetchAttribute(FetchKind.BODY_SECTION, Section()),
    FetchAttribute(FetchKind.BODY_SECTION, Section(part=(1,))),
    FetchAttribute(FetchKind.BODY_SECTION, partial=Partial(0, 10)),
    FetchAttribute(FetchKind.ENVELOPE),
])


@given(st.lists(ATTRIBUTES, max_size=6))
def test_kept_answer_is_the_fresh_one(items: list[FetchAttribute]) -> None:
    attributes = tuple(items)
    fresh = fetch_response._whole_message_names(attributes)
    assert whole_message_names(attributes) == fresh
    assert whole_message_names(attributes) == fresh          # now from the table
    assert whole_message_names(tuple(items)) == fresh        # an equal tuple: same answer


def test_same_item_text_is_answered_from_the_table() -> None:
    first = fetch("a1", Cursor(b"5 (BODY.PEEK[])"), ParseContext(), uid=True)
    second = fetch("a2", Cursor(b"6 (BODY.PEEK[])"), ParseContext(), uid=True)
    assert first.attributes is second.attributes             # the parse is shared
    names = whole_message_names(first.attributes)
    assert names == (b"BODY[] {",)
    assert whole_message_names(second.attributes) is names
    assert fetch_response._NAMES[id(first.attributes)][0] is first.attributes


def test_a_list_is_not_kept() -> None:
    items = [FetchAttribute(FetchKind.RFC822)]
    assert whole_message_names(items) == (b"RFC822 {",)
    assert id(items) not in fetch_response._NAMES
    items[0] = FetchAttribute(FetchKind.ENVELOPE)            # mutated: answered afresh
    assert whole_message_names(items) is None


def test_the_table_is_bounded() -> None:
    for n in range(fetch_response._NAMES_MAX + 10):
        whole_message_names(tuple([FetchAttribute(FetchKind.UID)] * (n % 7 + 1))
                            + (FetchAttribute(FetchKind.RFC822),) * (n // 7 + 1))
    assert len(fetch_response._NAMES) <= fetch_response._NAMES_MAX
