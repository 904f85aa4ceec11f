"""Mailbox quota on SMTP delivery, over a real socket to the engine: a full mailbox is
refused at RCPT with `452 4.2.2` (that recipient alone; the others get the message), a
mailbox that fills up between RCPT and DATA tempfails the whole message (nothing stored,
nothing queued), and the sender's retry succeeds once there is room."""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from pathlib import Path

from appliance.smtp import replies
from appliance.storage.mailbox_api import INBOX
from appliance.storage.maildir.account import MaildirAccount
from harness.engine import EngineProcess

NewAccount = Callable[[str], str]
SENDER = "sender@example.org"
QUOTA = 3200
BODY = b"x" * 700 + b"\r\n"


def message(to: str, n: int) -> bytes:
    return f"From: <{SENDER}>\r\nTo: <{to}>\r\nSubject: quota {n}\r\n\r\n".encode() + BODY


def send(mx: EngineProcess, recipients: list[str], n: int) -> dict[str, tuple[int, bytes]]:
    """One message; the refused recipients (smtplib raises when all of them are)."""
    with smtplib.SMTP("127.0.0.1", mx.smtp_port, timeout=10) as client:
        return client.sendmail(SENDER, recipients, message(recipients[0], n))


def reply(code: int, text: bytes) -> str:
    return f"{code} {text.decode()}"


def count(mx: EngineProcess, address: str) -> int:
    root = mx.maildir(address)
    return len([*(root / "new").iterdir(), *(root / "cur").iterdir()])


def fill(mx: EngineProcess, address: str) -> int:
    """Deliver until the MX refuses; return how many messages went in."""
    for n in range(20):
        try:
            send(mx, [address], n)
        except smtplib.SMTPRecipientsRefused as exc:
            [(code, text)] = exc.recipients.values()
            assert reply(code, text) == replies.MAILBOX_FULL
            return n
    raise AssertionError("the quota never took effect")


def test_full_mailbox_is_refused_at_rcpt_alone(mx: EngineProcess,
                                               new_account: NewAccount) -> None:
    full, other = new_account("full"), new_account("other")
    mx.directory.set_quota(full, QUOTA)
    stored = fill(mx, full)
    # About 1,020 octets each as stored (trace fields and Authentication-Results included);
    # smtplib announces SIZE, so the fourth is refused at RCPT already (3 x 1,030 + 776 > 3200).
    assert stored == 3
    assert count(mx, full) == 3
    refused = send(mx, [full, other], 99)
    assert {k: reply(*v) for k, v in refused.items()} == {full: replies.MAILBOX_FULL}
    assert count(mx, other) == 1
    assert count(mx, full) == 3
    assert "smtp.recipient_deferred" in mx.log_text()


def test_retry_succeeds_once_there_is_room(mx: EngineProcess, new_account: NewAccount) -> None:
    """The quota counts what IMAP/POP3 indexed as well as new mail; removing some makes room,
    and so does raising the quota (the directory change is seen at the next RCPT)."""
    address = new_account("room")
    mx.directory.set_quota(address, QUOTA)
    fill(mx, address)
    mail = MaildirAccount(address, mx.maildir(address))       # as the IMAP server opens it
    uids = [m.uid for m in mail.sync(INBOX).messages]
    assert len(uids) == 3
    assert count(mx, address) == 3
    assert fill(mx, address) == 0          # still full: the index is counted now
    mail.remove(INBOX, uids[:1])
    assert send(mx, [address], 1) == {}
    mx.directory.set_quota(address, 0)
    assert send(mx, [address], 2) == {}
    assert count(mx, address) == 4
    mail.close()


def test_announced_size_beyond_the_quota_is_refused_for_good(
        mx: EngineProcess, new_account: NewAccount) -> None:
    address = new_account("small")
    mx.directory.set_quota(address, QUOTA)
    with smtplib.SMTP("127.0.0.1", mx.smtp_port, timeout=10) as client:
        client.ehlo("client.example.org")
        assert client.mail(SENDER, [f"SIZE={QUOTA + 1}"])[0] == 250
        assert reply(*client.rcpt(address)) == replies.LARGER_THAN_QUOTA
        client.rset()
        assert client.mail(SENDER, [f"SIZE={QUOTA // 2}"])[0] == 250
        assert client.rcpt(address)[0] == 250


def test_mailbox_filled_between_rcpt_and_data_tempfails_the_message(
        mx: EngineProcess, new_account: NewAccount) -> None:
    """After DATA there is one reply for all recipients: nobody gets a copy, the client
    retries the whole message (all or nothing, as with a failed write)."""
    tight, other = new_account("tight"), new_account("bystander")
    mx.directory.set_quota(tight, QUOTA)
    with smtplib.SMTP("127.0.0.1", mx.smtp_port, timeout=10) as client:
        client.ehlo("client.example.org")
        assert client.mail(SENDER)[0] == 250
        assert client.rcpt(tight)[0] == 250
        assert client.rcpt(other)[0] == 250
        big = mx.maildir(tight) / "new" / f"1.M1P1.elsewhere,S={QUOTA},W={QUOTA}"
        Path(big).write_bytes(b"Subject: arrived meanwhile\n\n" + b"y" * 2900 + b"\n")
        code, text = client.data(message(tight, 1))
        assert reply(code, text) == replies.MAILBOX_FULL
    assert count(mx, other) == 0
    assert count(mx, tight) == 1           # only the file that filled it


def test_submission_refuses_a_full_local_recipient_alone(mx: EngineProcess,
                                                         new_account: NewAccount) -> None:
    """Submission to a full local mailbox: that recipient gets 452 4.2.2 at RCPT, the
    others get the message (the user's client can retry or tell the user)."""
    from harness.submission import smtp_client
    full, other, sender = new_account("subfull"), new_account("subother"), new_account("sub")
    mx.directory.set_quota(full, QUOTA)
    fill(mx, full)
    data = message(other, 99).replace(f"From: <{SENDER}>".encode(), f"From: <{sender}>".encode())
    with smtp_client(mx, sender) as client:
        client.mail(sender, [f"SIZE={len(data)}"])     # as fill() sent: no room for it
        code, text = client.rcpt(full)
        assert reply(code, text) == replies.MAILBOX_FULL
        assert client.rcpt(other)[0] == 250
        assert client.data(data)[0] == 250
    assert count(mx, other) == 1


def test_message_count_quota_refuses_at_rcpt(tmp_path: Path) -> None:
    """limits.max_messages_per_account: the MESSAGE quota holds on SMTP delivery too."""
    with EngineProcess(tmp_path / "data", limits__max_messages_per_account=2) as engine:
        engine.add_domain("example.test")
        address = "counted@example.test"
        engine.add_account(address)
        send(engine, [address], 1)
        send(engine, [address], 2)
        try:
            send(engine, [address], 3)
        except smtplib.SMTPRecipientsRefused as exc:
            [(code, text)] = exc.recipients.values()
            assert reply(code, text) == replies.MAILBOX_FULL
        else:
            raise AssertionError("the third message was accepted")
        assert count(engine, address) == 2
