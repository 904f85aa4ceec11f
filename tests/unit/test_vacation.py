"""Vacation replies (RFC 3834), the pure parts: whom not to answer, and the reply itself."""

from __future__ import annotations

import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from appliance.pipeline.vacation import (
    MAX_REFERENCES,
    build_reply,
    envelope_sender,
    should_reply,
    zone_clock,
)
from appliance.smtp.submission_policy import parse_header
from appliance.storage.account_settings import Vacation

ALICE = "alice@example.test"
BOB = "bob@example.org"
NOW = datetime.datetime(2026, 7, 2, 9, 30, tzinfo=datetime.UTC)


def header(*lines: str) -> EmailMessage:
    return parse_header("".join(f"{line}\r\n" for line in lines).encode())


PERSONAL = (f"From: Bob <{BOB}>", f"To: Alice <{ALICE}>", "Subject: lunch?",
            "Message-ID: <m1@example.org>")


@pytest.mark.parametrize(("first_line", "sender"), [
    (b"Return-Path: <bob@example.org>\r\n", BOB),
    (b"return-path:<>\r\n", ""),
    (b"Received: from x\r\n", None),
    (b"Return-Path: bob@example.org\r\n", None),
])
def test_envelope_sender_from_the_top_line(first_line: bytes, sender: str | None) -> None:
    assert envelope_sender(first_line + b"Subject: x\r\n\r\nbody\r\n") == sender


def test_a_personal_message_gets_a_reply() -> None:
    assert should_reply(BOB, header(*PERSONAL), [ALICE], ALICE, "") is None


@pytest.mark.parametrize(("sender", "lines", "folder", "reason"), [
    ("", PERSONAL, "", "no sender address"),
    ("not an address", PERSONAL, "", "no sender address"),
    ("Alice@example.test", PERSONAL, "", "own message"),
    ("MAILER-DAEMON@example.org", PERSONAL, "", "system or list sender"),
    ("owner-list@example.org", PERSONAL, "", "system or list sender"),
    ("list-request@example.org", PERSONAL, "", "system or list sender"),
    (BOB, PERSONAL, "Junk", "spam"),
    (BOB, (*PERSONAL, "Auto-Submitted: auto-replied"), "", "auto-submitted"),
    (BOB, (*PERSONAL, "Auto-Submitted: auto-generated; owner-email=x@example.org"), "",
     "auto-submitted"),
    (BOB, (*PERSONAL, "Precedence: bulk"), "", "bulk"),
    (BOB, (*PERSONAL, "Precedence: List"), "", "bulk"),
    (BOB, (*PERSONAL, "List-Id: <news.example.org>"), "", "mailing list"),
    (BOB, (*PERSONAL, "List-Unsubscribe: <mailto:u@example.org>"), "", "mailing list"),
    (BOB, (f"From: {BOB}", "To: someone@example.org", "Subject: bcc"), "",
     "not addressed by name"),
])
def test_no_reply(sender: str, lines: tuple[str, ...], folder: str, reason: str) -> None:
    assert should_reply(sender, header(*lines), [ALICE], ALICE, folder) == reason


def test_auto_submitted_no_is_a_person() -> None:
    lines = (*PERSONAL, "Auto-Submitted: no")
    assert should_reply(BOB, header(*lines), [ALICE], ALICE, "") is None


def test_addressed_through_an_alias_or_in_cc_counts() -> None:
    in_cc = header(f"From: {BOB}", "To: team@example.test", "Cc: ALICE@Example.Test")
    assert should_reply(BOB, in_cc, [ALICE], ALICE, "") is None
    to_alias = header(f"From: {BOB}", "To: Sales <sales@example.test>")
    assert should_reply(BOB, to_alias, [ALICE, "sales@example.test"], ALICE, "") is None


def parsed(reply: bytes) -> EmailMessage:
    message = message_from_bytes(reply, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_the_reply() -> None:
    original = header(*PERSONAL, "References: <m0@example.org>")
    vacation = Vacation(True, "Away until Monday", "I am away.\nAlice")
    reply = build_reply(ALICE, BOB, original, vacation, "mx.example.test", NOW)
    assert b"\r\n" in reply
    assert b"\n" not in reply.replace(b"\r\n", b"")
    message = parsed(reply)
    assert message["From"] == ALICE
    assert message["To"] == BOB
    assert message["Subject"] == "Away until Monday"
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["In-Reply-To"] == "<m1@example.org>"
    assert message["References"] == "<m0@example.org> <m1@example.org>"
    assert message["Message-ID"].endswith("@mx.example.test>")
    assert message["Date"] == "Thu, 02 Jul 2026 09:30:00 +0000"
    body = message.get_body()
    assert body is not None
    assert body.get_content().replace("\r\n", "\n") == "I am away.\nAlice\n"


def test_unicode_text_and_no_message_id() -> None:
    vacation = Vacation(True, "Abwesend – zurück am Montag", "Grüße\nAlice")
    reply = build_reply(ALICE, BOB, header(f"From: {BOB}"), vacation, "mx.example.test", NOW)
    assert reply.isascii()                                   # encoded words and a CTE
    message = parsed(reply)
    assert message["Subject"] == "Abwesend – zurück am Montag"
    assert "In-Reply-To" not in message
    assert "References" not in message
    body = message.get_body()
    assert body is not None
    assert body.get_content().replace("\r\n", "\n") == "Grüße\nAlice\n"


def test_references_are_bounded() -> None:
    many = " ".join(f"<r{n}@example.org>" for n in range(100))
    original = header(*PERSONAL, f"References: {many}")
    message = parsed(build_reply(ALICE, BOB, original, Vacation(True, "Away", "x"),
                                 "mx.example.test", NOW))
    references = message["References"].split()
    assert len(references) == MAX_REFERENCES
    assert references[-1] == "<m1@example.org>"
    assert references[-2] == "<r99@example.org>"


def test_a_hostile_message_id_is_not_copied() -> None:
    original = header(f"From: {BOB}", "Message-ID: no brackets here")
    message = parsed(build_reply(ALICE, BOB, original, Vacation(True, "Away", "x"),
                                 "mx.example.test", NOW))
    assert "In-Reply-To" not in message


def test_the_vacation_calendar_is_the_box_time_zone() -> None:
    """Kiritimati is UTC+14 and Niue UTC-11: at any moment their calendars differ by at
    least one day, so a one-day vacation in Kiritimati's "today" is on there and off in
    Niue — which a clock that ignored the zone (UTC for both) could not give."""
    ahead, behind = zone_clock("Pacific/Kiritimati")(), zone_clock("Pacific/Niue")()
    assert ahead.utcoffset() == datetime.timedelta(hours=14)
    assert behind.utcoffset() == datetime.timedelta(hours=-11)
    away = Vacation(True, "Away", "Back soon", start=ahead.date(), end=ahead.date())
    assert away.active_on(ahead.date())
    assert not away.active_on(behind.date())
