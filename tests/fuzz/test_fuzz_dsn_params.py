"""Fuzz the DSN parameter parsers: only DsnError ever escapes, and xtext round-trips."""

from __future__ import annotations

import contextlib

from hypothesis import given
from hypothesis import strategies as st

from appliance.smtp.dsn_params import (
    MAIL_KEYWORDS,
    RCPT_KEYWORDS,
    DsnError,
    parse_mail,
    parse_rcpt,
    split_params,
    xtext_decode,
    xtext_encode,
)

WORDS = st.sampled_from(["RET", "ENVID", "NOTIFY", "ORCPT", "SIZE", "BODY", "ret", "x"])
VALUES = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=30)
PARAM = st.builds(lambda k, eq, v: f"{k}{eq}{v}", WORDS, st.sampled_from(["=", ""]), VALUES)
ARGS = st.builds(lambda head, params: " ".join([head, *params]),
                 st.sampled_from(["FROM:<a@b.test>", "TO:<x@y>", 'FROM:<"q >"@b>', "FROM:<>",
                                  "TO:x@y", "FROM:<"]),
                 st.lists(PARAM, max_size=6))


@given(st.text(max_size=60))
def test_xtext_round_trips_printable_ascii(text: str) -> None:
    printable = "".join(c for c in text if " " <= c <= "~")
    assert xtext_decode(xtext_encode(printable)) == printable


@given(st.text(max_size=80))
def test_xtext_decode_raises_only_value_error(text: str) -> None:
    with contextlib.suppress(ValueError):
        xtext_decode(text)


@given(ARGS | st.text(max_size=200))
def test_split_and_parse_raise_only_dsn_error(arg: str) -> None:
    for keywords, parse in ((MAIL_KEYWORDS, parse_mail), (RCPT_KEYWORDS, parse_rcpt)):
        try:
            rest, found = split_params(arg, keywords)
            parse(found)
        except DsnError:
            continue
        assert _is_subsequence("".join(rest.split()), "".join(arg.split())), (rest, arg)


def _is_subsequence(part: str, whole: str) -> bool:
    """split_params only ever removes parameters (and may re-space the path's end)."""
    remaining = iter(whole)
    return all(char in remaining for char in part)
