"""The pure parts of deferred flag renames, fuzzed with hypothesis: the dirty mark's parser
(a damaged index must never yield a path out of the folder) and the letter merge that
decides a tool's rename of a dirty file (`dirty.merge_letters`)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from appliance.storage.maildir.dirty import merge_letters
from appliance.storage.maildir.flags import mark_of, parse_mark

LETTERS = st.frozensets(st.sampled_from("DFPRSTabcz"))
NAMES = st.text(st.characters(codec="utf-8"), max_size=40)     # utf-8: no lone surrogates


@given(NAMES)
def test_a_parsed_mark_names_a_file_in_cur_or_new(text: str) -> None:
    parsed = parse_mark(text)
    if parsed is not None:
        subdir, name = parsed
        assert subdir in ("cur", "new")
        assert name
        assert "/" not in name
        assert not name.startswith(".")
        assert mark_of(subdir, name) == text


@given(st.sampled_from(["cur", "new"]), NAMES.filter(lambda n: "/" not in n))
def test_mark_round_trip(subdir: str, name: str) -> None:
    expected = (subdir, name) if name and not name.startswith(".") else None
    assert parse_mark(mark_of(subdir, name)) == expected


def test_marks_that_are_not_plain_names() -> None:
    for text in (None, "", "cur", "cur/", "tmp/x", "cur/../x", "cur/a/b", "cur/.x", "/x", 7):
        assert parse_mark(text) is None


@given(LETTERS, LETTERS, LETTERS)
def test_merge_keeps_each_sides_change(old: frozenset[str], ours: frozenset[str],
                                       theirs: frozenset[str]) -> None:
    merged = set(merge_letters("".join(old), "".join(ours), "".join(theirs)))
    for letter in "DFPRSTabcz":
        if (letter in ours) != (letter in old):
            assert (letter in merged) == (letter in ours)       # our change is kept
        elif (letter in theirs) != (letter in old):
            assert (letter in merged) == (letter in theirs)     # so is the tool's
        else:
            assert (letter in merged) == (letter in old)        # nobody changed it


@given(LETTERS, LETTERS)
def test_merge_without_a_tool_change_is_ours(old: frozenset[str], ours: frozenset[str]) -> None:
    merged = merge_letters("".join(old), "".join(ours), "".join(sorted(old)))
    assert merged == "".join(sorted(ours))
    assert merge_letters("".join(old), "".join(sorted(old)), "".join(ours)) == "".join(
        sorted(ours))
