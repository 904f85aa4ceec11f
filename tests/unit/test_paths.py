"""The fast path parser agrees with aiosmtpd's own (the stdlib header parser) wherever it
answers, and answers for the usual `<local@domain> PARAMS` form."""

from __future__ import annotations

import pytest
from aiosmtpd.smtp import SMTP
from hypothesis import example, given
from hypothesis import strategies as st

from appliance.smtp.paths import simple_path

ATEXT = "abcXYZ019!#$%&'*+/=?^_`{|}~-"
WORDS = st.text(ATEXT, min_size=1, max_size=8)
LOCAL = st.lists(WORDS, min_size=1, max_size=3).map(".".join)
DOMAIN = st.lists(st.text("abcXYZ09-", min_size=1, max_size=8), min_size=1,
                  max_size=4).map(".".join)
TAIL = st.sampled_from(["", " ", "  ", "\t", " SIZE=10", "  SIZE=10 BODY=8BITMIME", "X",
                        " (comment) SIZE=1", "(c)", " NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b"])
NOISE = st.text(ATEXT + "<>@.\"\\ ()[]:,;é\t", max_size=30)


def aiosmtpd_getaddr(arg: str) -> tuple[str | None, str | None]:
    return SMTP._getaddr(SMTP.__new__(SMTP), arg)


@given(local=LOCAL, domain=DOMAIN, tail=TAIL)
@example(local="a", domain="b", tail="")
def test_simple_paths_are_parsed_like_aiosmtpd(local: str, domain: str, tail: str) -> None:
    arg = f"<{local}@{domain}>{tail}"
    fast = simple_path(arg)
    if fast is not None:
        assert fast == aiosmtpd_getaddr(arg)


@given(arg=NOISE | st.builds(lambda a, b: f"<{a}@{b}>", NOISE, NOISE))
def test_anything_it_answers_matches_aiosmtpd(arg: str) -> None:
    fast = simple_path(arg)
    if fast is not None:
        assert fast == aiosmtpd_getaddr(arg)


@pytest.mark.parametrize(("arg", "expected"), [
    ("<alice@example.org>", ("alice@example.org", "")),
    ("<a.b+c@mx-1.example.org> SIZE=12", ("a.b+c@mx-1.example.org", "SIZE=12")),
    ("<Alice@EXAMPLE.test>  BODY=8BITMIME", ("Alice@EXAMPLE.test", "BODY=8BITMIME")),
])
def test_usual_paths_take_the_fast_way(arg: str, expected: tuple[str, str]) -> None:
    assert simple_path(arg) == expected


@pytest.mark.parametrize("arg", ["<>", '<"q x"@example.org>', "<@relay:a@b>", "<a@[192.0.2.1]>",
                                 "<jörg@example.org>", "<a@b>X", "<a@b> (c)", "a@b", "<a..b@c>",
                                 "<a@b..c>", "<.a@b>", " <a@b>"])
def test_anything_else_takes_the_full_parser(arg: str) -> None:
    assert simple_path(arg) is None
