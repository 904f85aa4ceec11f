"""Fuzz the vacation responder's parsing of strangers' messages and the reply it builds:
nothing raises, and whatever the user's text and the sender's headers, the reply is one
well-formed message marked auto-replied that threads only real message ids."""

from __future__ import annotations

import datetime
from email import message_from_bytes, policy

from hypothesis import example, given, settings
from hypothesis import strategies as st

from appliance.pipeline.vacation import build_reply, envelope_sender, should_reply
from appliance.smtp.submission_policy import parse_header, split_header
from appliance.storage.account_settings import AccountSettingsError, Vacation, check_vacation

ALICE = "alice@example.test"
NOW = datetime.datetime(2026, 7, 2, 9, 30, tzinfo=datetime.UTC)
FIELD_NAMES = st.sampled_from(["To", "Cc", "Bcc", "From", "Message-ID", "References",
                               "Auto-Submitted", "Precedence", "List-Id", "Subject",
                               "Resent-To", "X-Other"])
FIELD_VALUE = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=120)
HEADER = st.lists(st.tuples(FIELD_NAMES, FIELD_VALUE), max_size=12).map(
    lambda fields: "".join(f"{n}: {v}\r\n" for n, v in fields).encode("utf-8",
                                                                     "surrogateescape"))


@given(st.binary(max_size=400))
@example(b"Return-Path: <\xff@example.org>\r\n")
@example(b"Return-Path: <a@b>\nSubject: x")
def test_envelope_sender(data: bytes) -> None:
    sender = envelope_sender(data)
    assert sender is None or ("<" not in sender and ">" not in sender)


@settings(max_examples=300)
@given(st.text(max_size=80) | st.just("bob@example.org"), HEADER | st.binary(max_size=600),
       st.sampled_from(["", "Junk"]))
@example("bob@example.org", b"To: alice@example.test\r\nAuto-Submitted: \xff\r\n", "")
@example("bob@example.org", b"To: 0@\r\n", "")     # IndexError in the stdlib address parser
def test_should_reply_never_raises(sender: str, header: bytes, folder: str) -> None:
    reason = should_reply(sender, parse_header(split_header(header)[0]), [ALICE], ALICE,
                          folder)
    assert reason is None or isinstance(reason, str)


@settings(max_examples=200)
@given(st.text(max_size=250), st.text(max_size=2000), HEADER)
@example("Away\u2028Bcc: x@example.org", "body", b"Message-ID: <a@b>\r\n")
def test_reply_is_well_formed(subject: str, body: str, header: bytes) -> None:
    try:
        vacation = check_vacation(Vacation(True, subject, body))
    except AccountSettingsError:
        return
    reply = build_reply(ALICE, "bob@example.org", parse_header(header), vacation,
                        "mx.example.test", NOW)
    head, _ = split_header(reply)
    assert all(len(line) <= 998 for line in reply.split(b"\r\n"))
    names = [line.split(b":", 1)[0].lower() for line in head.split(b"\r\n")
             if line and not line[:1].isspace()]
    assert names.count(b"subject") == 1
    assert names.count(b"auto-submitted") == 1
    assert b"bcc" not in names
    parsed = message_from_bytes(reply, policy=policy.default)
    assert parsed["Auto-Submitted"] == "auto-replied"
    assert parsed["To"] == "bob@example.org"
