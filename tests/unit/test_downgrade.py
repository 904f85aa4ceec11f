"""8BITMIME downgrade (RFC 6152 3): 8-bit parts become quoted-printable, the rest stays."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

from hypothesis import given
from hypothesis import strategies as st

from appliance.outbound.downgrade import to_7bit

MIXED = (
    "From: a@example.test\r\nMIME-Version: 1.0\r\n"
    'Content-Type: multipart/mixed; boundary="BOUND"\r\n\r\n'
    "preamble\r\n"
    "--BOUND\r\nContent-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n\r\nGrüße, = Gleichheit\r\n"
    "--BOUND\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nplain ascii\r\n"
    "--BOUND\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    "Subject: inner\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n\r\nçà et là\r\n"
    "--BOUND--\r\nepilogue\r\n").encode()


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_each_8bit_part_is_quoted_printable_and_decodes_to_the_same_text() -> None:
    converted = to_7bit(MIXED)
    assert converted is not None
    assert converted.isascii()
    parts = list(parse(converted).iter_parts())
    first, second, third = parts
    assert first["Content-Transfer-Encoding"] == "quoted-printable"
    assert first.get_content() == "Grüße, = Gleichheit"   # the CRLF before "--" is the boundary's
    assert second["Content-Transfer-Encoding"] is None          # ASCII: left alone
    assert b"plain ascii" in converted
    assert third["Content-Transfer-Encoding"] == "7bit"          # RFC 2046 5.2.1
    inner = third.get_content()
    assert inner["Content-Transfer-Encoding"] == "quoted-printable"
    assert inner.get_content() == "çà et là"
    assert b"preamble\r\n" in converted
    assert b"epilogue" in converted


def test_long_lines_get_soft_breaks_with_crlf() -> None:
    body = ("é" * 200).encode("utf-8")
    raw = (b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
           + body + b"\r\n")
    converted = to_7bit(raw)
    assert converted is not None
    assert all(len(line) <= 76 for line in converted.split(b"\r\n"))
    assert b"\n" not in converted.replace(b"\r\n", b"")
    assert parse(converted).get_content().replace("\r\n", "\n") == "é" * 200 + "\n"


def test_8bit_headers_cannot_be_converted() -> None:
    assert to_7bit("Subject: Grüße\r\nMIME-Version: 1.0\r\n\r\nx\r\n".encode()) is None


def test_non_mime_mail_is_sent_as_it_is() -> None:
    raw = "Subject: legacy\r\n\r\ncafé\r\n".encode()
    assert to_7bit(raw) == raw


def test_lf_input_comes_out_crlf() -> None:
    raw = "MIME-Version: 1.0\nContent-Type: text/plain\n\nnaïve\n".encode()
    converted = to_7bit(raw)
    assert converted == (b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n"
                         b"Content-Transfer-Encoding: quoted-printable\r\n\r\nna=C3=AFve\r\n")


@given(st.binary(max_size=2000))
def test_any_input_is_converted_to_ascii_or_refused(raw: bytes) -> None:
    message = b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" + raw
    converted = to_7bit(message)
    assert converted is None or converted.isascii()
