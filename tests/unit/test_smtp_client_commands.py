"""MAIL/RCPT command building, xtext, SMTPUTF8 needs and the DATA payload."""

from __future__ import annotations

import pytest

from appliance.outbound.smtp_client_commands import (
    CommandError,
    crlf_message,
    data_payload,
    header_block,
    mail_command,
    needs_smtputf8,
    rcpt_command,
    xtext,
)
from appliance.outbound.smtp_client_protocol import Capabilities
from appliance.outbound.types import OutboundEnvelope, OutboundRecipient

ALL = Capabilities(keywords={"SIZE": "1000", "8BITMIME": "", "SMTPUTF8": "", "DSN": "",
                             "PIPELINING": ""})
NONE = Capabilities(keywords={})


def envelope(sender: str = "a@example.org", *rcpts: str, **kw: object) -> OutboundEnvelope:
    recipients = tuple(OutboundRecipient(r) for r in (rcpts or ("b@peer.test",)))
    return OutboundEnvelope("Q", sender, recipients, 10, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "encoded"), [
    ("plain", "plain"), ("a+b=c", "a+2Bb+3Dc"), ("sp ace", "sp+20ace"),
    ("é", "+C3+A9"), ("\r\n", "+0D+0A"),
])
def test_xtext(text: str, encoded: str) -> None:
    assert xtext(text) == encoded


def test_mail_with_every_parameter() -> None:
    env = envelope(ret="full", envid="id 1")
    line = mail_command(env, ALL, size=123, smtputf8=True, eightbit=True)
    assert line == b"MAIL FROM:<a@example.org> SIZE=123 BODY=8BITMIME SMTPUTF8 RET=FULL " \
                   b"ENVID=id+201\r\n"


def test_mail_without_extensions_has_no_parameters() -> None:
    line = mail_command(envelope(ret="HDRS", envid="x"), NONE, size=5, smtputf8=False,
                        eightbit=True)
    assert line == b"MAIL FROM:<a@example.org>\r\n"


def test_null_sender() -> None:
    assert mail_command(envelope(""), NONE, size=1, smtputf8=False,
                        eightbit=False) == b"MAIL FROM:<>\r\n"


def test_unknown_ret_value_is_left_out() -> None:
    line = mail_command(envelope(ret="ALL"), ALL, size=1, smtputf8=False, eightbit=False)
    assert b"RET=" not in line


def test_rcpt_with_dsn() -> None:
    rcpt = OutboundRecipient("b@peer.test", ("success", "DELAY"), "rfc822;B@peer.test")
    assert rcpt_command(rcpt, ALL) == (
        b"RCPT TO:<b@peer.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;B@peer.test\r\n")


@pytest.mark.parametrize("orcpt", ["nosemicolon", ";x@y", "rfc822;", "bad type;x@y",
                                   "rfc822;jörg@peer.test"])
def test_unusable_orcpt_is_left_out(orcpt: str) -> None:
    assert b"ORCPT" not in rcpt_command(OutboundRecipient("b@peer.test", (), orcpt), ALL)


def test_bad_notify_words_are_left_out() -> None:
    line = rcpt_command(OutboundRecipient("b@peer.test", ("SUCCESS", "ALWAYS")), ALL)
    assert b"NOTIFY" not in line


@pytest.mark.parametrize("address", ["b@peer.test>\r\nRSET", "b\n@peer.test", "b\x00@x"])
def test_command_injection_is_refused(address: str) -> None:
    with pytest.raises(CommandError):
        rcpt_command(OutboundRecipient(address), NONE)
    with pytest.raises(CommandError):
        mail_command(envelope(address), NONE, size=1, smtputf8=False, eightbit=False)


def test_envid_cannot_inject_either() -> None:
    line = mail_command(envelope(envid="x\r\nRSET"), ALL, size=1, smtputf8=False,
                        eightbit=False)
    assert line.count(b"\r\n") == 1


@pytest.mark.parametrize(("env", "message", "needed"), [
    (envelope("jörg@example.org"), b"Subject: x\n\nbody", True),
    (envelope("a@example.org", "b@pëer.test"), b"Subject: x\n\nbody", True),
    (envelope(smtputf8=True), "Subject: grüße\n\nbody".encode(), True),
    (envelope(smtputf8=False), "Subject: grüße\n\nbody".encode(), False),
    (envelope(smtputf8=True), "Subject: x\n\ngrüße".encode(), False),
    (envelope(smtputf8=True), b"Subject: x\r\n\r\nbody", False),
])
def test_needs_smtputf8(env: OutboundEnvelope, message: bytes, needed: bool) -> None:
    assert needs_smtputf8(env, message) is needed


@pytest.mark.parametrize(("message", "headers"), [
    (b"A: 1\nB: 2\n\nbody\n", b"A: 1\nB: 2"), (b"A: 1\r\n\r\nbody", b"A: 1"),
    (b"\nbody only", b""), (b"A: only headers\n", b"A: only headers\n"),
])
def test_header_block(message: bytes, headers: bytes) -> None:
    assert header_block(message) == headers


@pytest.mark.parametrize(("message", "wire"), [
    (b"a\nb\n", b"a\r\nb\r\n"), (b"a\r\nb", b"a\r\nb\r\n"), (b"a\rb\r", b"a\r\nb\r\n"),
    (b"", b""), (b"a\r\r\nb", b"a\r\n\r\nb\r\n"),
])
def test_crlf_message(message: bytes, wire: bytes) -> None:
    assert crlf_message(message) == wire


@pytest.mark.parametrize(("message", "payload"), [
    (b".start\n.\nend\n", b"..start\r\n..\r\nend\r\n.\r\n"),
    (b"a\n\n.\n", b"a\r\n\r\n..\r\n.\r\n"),
    (b"no final newline", b"no final newline\r\n.\r\n"),
    (b"", b".\r\n"),
    (b"x\n.\r\n", b"x\r\n..\r\n.\r\n"),     # the smuggling shape "\n.\r\n" cannot end DATA
])
def test_data_payload(message: bytes, payload: bytes) -> None:
    assert data_payload(message) == payload
