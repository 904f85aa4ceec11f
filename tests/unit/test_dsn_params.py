"""RFC 3461 parameters: xtext, splitting them out of MAIL/RCPT, validating each."""

from __future__ import annotations

import pytest

from appliance.smtp import replies
from appliance.smtp.dsn_params import (
    MAIL_KEYWORDS,
    RCPT_KEYWORDS,
    DsnError,
    MailDsn,
    RcptDsn,
    parse_mail,
    parse_rcpt,
    split_params,
    xtext_decode,
    xtext_encode,
)


@pytest.mark.parametrize(("encoded", "decoded"), [
    ("", ""), ("abc", "abc"), ("a+2Bb", "a+b"), ("a+3Db", "a=b"), ("+20", " "),
    ("rfc822;x@y", "rfc822;x@y"),
])
def test_xtext_decode(encoded: str, decoded: str) -> None:
    assert xtext_decode(encoded) == decoded
    assert xtext_encode(decoded) == encoded


@pytest.mark.parametrize("bad", ["a+2b", "a+", "a+G0", "a=b", "a b", "é"])
def test_xtext_decode_refuses(bad: str) -> None:
    with pytest.raises(ValueError, match="xtext"):
        xtext_decode(bad)


@pytest.mark.parametrize(("arg", "rest", "found"), [
    ("FROM:<a@b.test>", "FROM:<a@b.test>", {}),
    ("FROM:<a@b.test> RET=HDRS", "FROM:<a@b.test>", {"RET": "HDRS"}),
    ("FROM:<a@b.test> SIZE=10 ret=full ENVID=Ab+2Bc BODY=8BITMIME",
     "FROM:<a@b.test> SIZE=10 BODY=8BITMIME", {"RET": "full", "ENVID": "Ab+2Bc"}),
    ('FROM:<"x RET=FULL"@b.test> ENVID=1', 'FROM:<"x RET=FULL"@b.test>', {"ENVID": "1"}),
    ("FROM: <> RET=HDRS", "FROM: <>", {"RET": "HDRS"}),
    ("FROM:a@b.test RET=HDRS", "FROM:a@b.test", {"RET": "HDRS"}),
])
def test_split_mail_params(arg: str, rest: str, found: dict[str, str]) -> None:
    assert split_params(arg, MAIL_KEYWORDS) == (rest, found)


def test_split_rcpt_params_keeps_case_of_values() -> None:
    rest, found = split_params("TO:<x@y.test> NOTIFY=Success ORCPT=rfc822;MiXeD@Case.test",
                               RCPT_KEYWORDS)
    assert rest == "TO:<x@y.test>"
    assert found == {"NOTIFY": "Success", "ORCPT": "rfc822;MiXeD@Case.test"}


@pytest.mark.parametrize("arg", ["FROM:<a@b> RET=HDRS RET=FULL", "FROM:<a@b> RET=",
                                 "FROM:<a@b> RET"])
def test_split_refuses_repeats_and_empty_values(arg: str) -> None:
    with pytest.raises(DsnError) as caught:
        split_params(arg, MAIL_KEYWORDS)
    assert caught.value.reply == replies.BAD_DSN_PARAMETER


def test_parse_mail() -> None:
    assert parse_mail({}) == MailDsn()
    assert parse_mail({"RET": "hdrs", "ENVID": "QQ+2B1"}) == MailDsn("HDRS", "QQ+1")
    for bad in ({"RET": "BODY"}, {"ENVID": "x" * 101}, {"ENVID": "a+00"}, {"ENVID": "a+2"}):
        with pytest.raises(DsnError):
            parse_mail(bad)


def test_parse_rcpt() -> None:
    assert parse_rcpt({}) == RcptDsn()
    assert parse_rcpt({"NOTIFY": "delay,success,DELAY"}) == RcptDsn(("SUCCESS", "DELAY"))
    assert parse_rcpt({"NOTIFY": "NEVER"}) == RcptDsn(("NEVER",))
    assert parse_rcpt({"ORCPT": "rfc822;a+2Bb@x.test"}) == RcptDsn((), "rfc822;a+b@x.test")
    assert parse_rcpt({"ORCPT": "utf-8;j\\x{F6}rg@x.test"}).orcpt == "utf-8;jörg@x.test"
    for bad in ({"NOTIFY": "NEVER,SUCCESS"}, {"NOTIFY": "SOMETIMES"}, {"NOTIFY": ","},
                {"ORCPT": "x@y"}, {"ORCPT": "rfc822;"}, {"ORCPT": "rfc 822;a@b"},
                {"ORCPT": "rfc822;" + "a" * 600}, {"ORCPT": "utf-8;\\x{D800}@x"}):
        with pytest.raises(DsnError):
            parse_rcpt(bad)
