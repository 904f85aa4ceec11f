"""Submission policy (pure): reading From/Sender strictly, and the fields we add."""

from __future__ import annotations

import email.utils

import pytest

from appliance.core.addresses import parse_address
from appliance.smtp.submission_policy import (
    Authors,
    HeaderProblem,
    authors,
    date_field,
    message_id_field,
    missing_fields,
    received_field,
    split_header,
    with_fields,
)


def from_of(*lines: str) -> Authors:
    return authors(("\r\n".join(lines) + "\r\n").encode())


def keys(found: Authors) -> list[str]:
    assert found.problem is None, found
    return [a.key for a in found.addresses]


# -- splitting -------------------------------------------------------------------------------

@pytest.mark.parametrize(("content", "header", "rest"), [
    (b"A: 1\r\nB: 2\r\n\r\nbody\r\n", b"A: 1\r\nB: 2\r\n", b"\r\nbody\r\n"),
    (b"A: 1\n\nbody\n", b"A: 1\n", b"\nbody\n"),
    (b"\r\nbody only\r\n", b"", b"\r\nbody only\r\n"),
    (b"A: 1\r\nB: 2\r\n", b"A: 1\r\nB: 2\r\n", b""),
    (b"", b"", b""),
])
def test_split_header(content: bytes, header: bytes, rest: bytes) -> None:
    assert split_header(content) == (header, rest)


# -- From and Sender -------------------------------------------------------------------------

@pytest.mark.parametrize("value", [
    "alice@example.test",
    "<alice@example.test>",
    "Alice <alice@example.test>",
    '"Example, Alice" <alice@example.test>',
    "alice@example.test (Alice in a comment)",
    "=?utf-8?q?Al=C3=AFce?= <alice@example.test>",
    "=?utf-8?b?QWxpY2U=?= <ALICE@Example.TEST>",
])
def test_ordinary_from_fields(value: str) -> None:
    assert keys(from_of(f"From: {value}", "Subject: x")) == ["alice@example.test"]


def test_the_header_of_a_multipart_message_is_not_malformed() -> None:
    """Python 3.11.2 (Debian 12) reports a MultipartInvariantViolationDefect for a multipart
    header parsed without its body; every message with an attachment would be refused."""
    found = from_of("From: alice@example.test", "MIME-Version: 1.0",
                    'Content-Type: multipart/mixed; boundary="=====42=="')
    assert keys(found) == ["alice@example.test"]


def test_folded_and_lower_case_from_field() -> None:
    assert keys(from_of("from: Alice", " <alice@example.test>")) == ["alice@example.test"]


def test_utf8_address_in_from() -> None:
    """RFC 6532: a UTF-8 header is fine, its domain compares as an A-label."""
    found = from_of("From: José <josé@exämple.test>")
    assert keys(found) == ["josé@xn--exmple-cua.test"]


def test_every_author_is_returned_with_sender() -> None:
    found = from_of("From: alice@example.test, bob@example.test",
                    "Sender: carol@example.test")
    assert keys(found) == ["alice@example.test", "bob@example.test", "carol@example.test"]


@pytest.mark.parametrize(("lines", "problem"), [
    (("Subject: no from",), HeaderProblem.MISSING_FROM),
    (("From: alice@example.test", "From: bob@example.test"), HeaderProblem.MULTIPLE_FIELDS),
    (("From: alice@example.test", "FROM: bob@example.test"), HeaderProblem.MULTIPLE_FIELDS),
    (("From: alice@example.test", "Sender: a@example.test", "Sender: b@example.test"),
     HeaderProblem.MULTIPLE_FIELDS),
    (("From: undisclosed-recipients:;",), HeaderProblem.GROUP),
    (("From: team: alice@example.test, bob@example.test;",), HeaderProblem.GROUP),
    (("From:",), HeaderProblem.MALFORMED),
    (("From: alice",), HeaderProblem.MALFORMED),
    # The display name looks like an address: a lenient parse says bob@evil.test.
    (("From: bob@evil.test <alice@example.test>",), HeaderProblem.MALFORMED),
    (("From: Alice <alice@example.test> bob@evil.test",), HeaderProblem.MALFORMED),
    (("From: <alice@example.test",), HeaderProblem.MALFORMED),
    (("From: <@evil.test:alice@example.test>",), HeaderProblem.MALFORMED),     # source route
    (("From: Alice <alice@[127.0.0.1]>",), HeaderProblem.MALFORMED),
    # An encoded word where the address must be: some programs decode it anyway.
    (("From: =?utf-8?q?bob=40evil.test?=",), HeaderProblem.MALFORMED),
    (("From: <=?utf-8?q?bob?=@evil.test>",), HeaderProblem.MALFORMED),
    # Obsolete spacing before the colon: readers disagree on whether it is a From field.
    (("Subject: x", "From : bob@evil.test", "From: alice@example.test"),
     HeaderProblem.MALFORMED),
    (("From\t: bob@evil.test",), HeaderProblem.MALFORMED),
    # An mbox "From " line or a broken header section hides fields from some readers.
    (("From bob@evil.test Mon Jan  1 00:00:00 2024", "From: alice@example.test"),
     HeaderProblem.MALFORMED),
    ((" continued", "From: alice@example.test"), HeaderProblem.MALFORMED),
    (("From: alice@example.test", "no colon here", "From: bob@evil.test"),
     HeaderProblem.MALFORMED),
    (("From: Al\udcffice <alice@example.test>",), HeaderProblem.MALFORMED),
])
def test_from_fields_we_cannot_trust(lines: tuple[str, ...], problem: HeaderProblem) -> None:
    raw = ("\r\n".join(lines) + "\r\n").encode("utf-8", errors="surrogateescape")
    assert authors(raw) == Authors(problem=problem)


def test_invalid_utf8_in_from_is_malformed() -> None:
    assert authors(b"From: Al\xffce <al\xffce@example.test>\r\n").problem is not None


def test_quoted_local_part_is_one_address() -> None:
    found = from_of('From: "alice@evil.test"@example.test')
    assert [str(a) for a in found.addresses] == ['"alice@evil.test"@example.test']


# -- Date, Message-ID, Received --------------------------------------------------------------

def test_missing_fields() -> None:
    assert missing_fields(b"From: a@example.test\r\n") == ("Date", "Message-ID")
    assert missing_fields(b"Date: x\r\nmessage-id: <1@x>\r\n") == ()
    assert missing_fields(b"DATE: x\r\n") == ("Message-ID",)
    assert missing_fields(b"") == ("Date", "Message-ID")


def test_date_field_is_rfc5322() -> None:
    field = date_field(0.0)
    assert field == b"Date: Thu, 01 Jan 1970 00:00:00 +0000\r\n"
    assert email.utils.parsedate_to_datetime(field[6:].decode().strip()).timestamp() == 0


def test_message_id_field() -> None:
    assert message_id_field("Q1.ab", "mx.example.test") == (
        b"Message-ID: <Q1.ab@mx.example.test>\r\n")


@pytest.mark.parametrize(("content", "expected"), [
    (b"From: a\r\n\r\nbody\r\n", b"From: a\r\nX: 1\r\n\r\nbody\r\n"),
    (b"From: a\r\n", b"From: a\r\nX: 1\r\n"),
    (b"From: a", b"From: a\r\nX: 1\r\n"),
    (b"\r\nbody\r\n", b"X: 1\r\n\r\nbody\r\n"),
    (b"From: a\r\n\r\nX: in the body\r\n\r\nmore\r\n",
     b"From: a\r\nX: 1\r\n\r\nX: in the body\r\n\r\nmore\r\n"),
])
def test_with_fields_appends_to_the_header_section(content: bytes, expected: bytes) -> None:
    assert with_fields(content, b"X: 1\r\n") == expected


def test_received_field_names_no_client() -> None:
    field = received_field("mx.example.test", "ESMTPSA", "Q1", 0.0)
    assert field == (b"Received: by mx.example.test (Mailstead) with ESMTPSA id Q1;\r\n"
                     b"\tThu, 01 Jan 1970 00:00:00 +0000\r\n")
    assert b"from" not in field.lower().split(b";")[0]


def test_parse_address_agrees_with_header_keys() -> None:
    assert keys(from_of("From: ALICE@EXAMPLE.TEST")) == [
        parse_address("alice@example.test").key]
