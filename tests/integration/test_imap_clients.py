"""IMAP with real client libraries against the real engine: Python's imaplib (STARTTLS and
IMAP4_SSL, LOGIN and AUTHENTICATE, the mailbox and message commands, IDLE woken by a message
delivered over SMTP), imapclient, and two clients on one mailbox at once."""

from __future__ import annotations

import base64
import imaplib
import re
import ssl
import threading
import time
from collections.abc import Callable, Sequence

import imapclient  # type: ignore[import-untyped]
import pytest

from harness.engine import EngineProcess
from harness.imap import (
    PASSWORD,
    ImapWire,
    client_context,
    deliver,
    logged_in_wire,
    ssl_client,
    starttls_client,
)

MX_SETTINGS = {"server__dev_mode": False, "auth__failure_delay_ms": 0}


def _message(number: int) -> bytes:
    return (f"From: a@example.org\r\nTo: b@example.test\r\nSubject: message {number}\r\n"
            f"\r\nbody of message {number}\r\n").encode()


def _line(data: Sequence[object]) -> bytes:
    """The first item of an imaplib answer, which must be one line."""
    assert isinstance(data[0], bytes), data
    return data[0]


def _pair(data: Sequence[object]) -> tuple[bytes, bytes]:
    """The first item of an imaplib answer, which must be (line, literal)."""
    item = data[0]
    assert isinstance(item, tuple), data
    assert isinstance(item[0], bytes)
    assert isinstance(item[1], bytes)
    return item[0], item[1]


def _fill(client: imaplib.IMAP4, count: int, mailbox: str = "INBOX") -> None:
    for number in range(1, count + 1):
        status, _ = client.append(mailbox, None, None, _message(number))
        assert status == "OK"


# -- TLS and login --------------------------------------------------------------------------

def test_login_refused_before_starttls_then_accepted(
        mx: EngineProcess, new_account: Callable[[str], str]) -> None:
    address = new_account("tls")
    client = imaplib.IMAP4("127.0.0.1", mx.imap_port, timeout=15)
    try:
        assert "LOGINDISABLED" in client.capabilities
        assert "STARTTLS" in client.capabilities
        assert not any(cap.startswith("AUTH=") for cap in client.capabilities)
        with pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED"):
            client.login(address, PASSWORD)
        context = client_context(mx)
        context.check_hostname = False
        client.starttls(context)
        assert "LOGINDISABLED" not in client.capabilities
        assert "AUTH=PLAIN" in client.capabilities
        assert client.login(address, PASSWORD)[0] == "OK"
        assert client.state == "AUTH"
    finally:
        client.logout()


def test_implicit_tls_authenticate_plain_and_wrong_password(
        mx: EngineProcess, new_account: Callable[[str], str]) -> None:
    address = new_account("plain")
    client = ssl_client(mx)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        client.authenticate("PLAIN", lambda _: f"\0{address}\0wrong".encode())
    status, data = client.authenticate("PLAIN", lambda _: f"\0{address}\0{PASSWORD}".encode())
    assert status == "OK"
    assert b"CAPABILITY" in _line(data)
    assert client.select("INBOX")[0] == "OK"
    client.logout()


def test_authenticate_login_sasl_ir_and_cancel(
        mx: EngineProcess, new_account: Callable[[str], str]) -> None:
    address = new_account("sasl")
    with ImapWire(mx.imaps_port, tls=_context(mx)) as wire:
        assert wire.read_line() is not None
        wire.send_line("A1 AUTHENTICATE LOGIN")
        assert wire.read_line() == b"+ " + base64.b64encode(b"Username:")
        wire.send_line(base64.b64encode(address.encode()))
        assert wire.read_line() == b"+ " + base64.b64encode(b"Password:")
        wire.send_line("*")
        assert wire.read_line() == b"A1 BAD Authentication cancelled"
        wire.send_line("A2 AUTHENTICATE PLAIN")
        assert wire.read_line() == b"+ "
        wire.send_line("not base64!")
        assert wire.read_until_tagged("A2")[-1].startswith(b"A2 BAD")
        initial = base64.b64encode(f"\0{address}\0{PASSWORD}".encode()).decode()
        reply = wire.command("A3", f"AUTHENTICATE PLAIN {initial}")     # SASL-IR, RFC 4959
        assert reply[-1].startswith(b"A3 OK [CAPABILITY "), reply


def test_authenticate_login_mechanism(mx: EngineProcess,
                                      new_account: Callable[[str], str]) -> None:
    address = new_account("loginmech")
    answers = iter([address.encode(), PASSWORD.encode()])
    client = ssl_client(mx)
    assert client.authenticate("LOGIN", lambda _: next(answers))[0] == "OK"
    client.logout()


def test_too_many_connections_for_one_account(
        mx: EngineProcess, new_account: Callable[[str], str]) -> None:
    # imap.max_connections_per_account defaults to 20.
    address = new_account("many")
    clients = [ssl_client(mx, address) for _ in range(20)]
    try:
        extra = ssl_client(mx)
        with pytest.raises(imaplib.IMAP4.error, match=r"\[LIMIT\]"):
            extra.login(address, PASSWORD)
        clients.pop().logout()
        assert extra.login(address, PASSWORD)[0] == "OK"
        extra.logout()
    finally:
        for client in clients:
            client.logout()


# -- mailboxes and messages -----------------------------------------------------------------

def test_select_fetch_store_search(mx: EngineProcess,
                                   new_account: Callable[[str], str]) -> None:
    client = starttls_client(mx, new_account("msgs"))
    try:
        _fill(client, 3)
        status, data = client.select("INBOX")
        assert (status, data) == ("OK", [b"3"])
        status, fetched = client.fetch("2", "(UID FLAGS RFC822.SIZE BODY.PEEK[])")
        assert status == "OK"
        header, body = _pair(fetched)
        assert re.search(rb"UID 2\b", header)
        assert body == _message(2)
        assert client.store("1:2", "+FLAGS", "(\\Flagged)")[0] == "OK"
        assert client.search(None, "FLAGGED") == ("OK", [b"1 2"])
        assert client.search(None, "UNFLAGGED") == ("OK", [b"3"])
        assert client.uid("SEARCH", "SUBJECT", '"message 3"') == ("OK", [b"3"])
        status, fetched = client.uid("FETCH", "3", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert b"Subject: message 3" in _pair(fetched)[1]
    finally:
        client.logout()


def test_copy_move_expunge(mx: EngineProcess, new_account: Callable[[str], str]) -> None:
    client = ssl_client(mx, new_account("copy"))
    try:
        _fill(client, 4)
        client.select("INBOX")
        status, data = client.copy("1", "Archive")
        assert status == "OK"
        assert b"COPYUID" in data[0]
        status, data = client.uid("MOVE", "2", "Trash")
        assert status == "OK"
        assert client.uid("STORE", "3", "+FLAGS", "(\\Deleted)")[0] == "OK"
        status, data = client.expunge()
        assert status == "OK"
        assert data[0] is not None
        status, data = client.uid("SEARCH", "ALL")
        assert data == [b"1 4"]
        assert client.status("Archive", "(MESSAGES)")[1][0].endswith(b"(MESSAGES 1)")
        assert client.status("Trash", "(MESSAGES)")[1][0].endswith(b"(MESSAGES 1)")
        status, data = client.copy("1", "Nowhere")
        assert status == "NO"
        assert b"TRYCREATE" in data[0]
    finally:
        client.logout()


def test_create_rename_delete_list_status(mx: EngineProcess,
                                          new_account: Callable[[str], str]) -> None:
    client = ssl_client(mx, new_account("folders"))
    try:
        assert client.create("Projects/2026")[0] == "OK"
        status, data = client.create("Projects/2026")
        assert status == "NO"
        assert b"ALREADYEXISTS" in data[0]
        _fill(client, 2, "Projects/2026")
        assert client.rename("Projects/2026", "Projects/Done")[0] == "OK"
        names = [_line([line]).rsplit(b' "/" ', 1)[1] for line in client.list()[1]]
        assert b"Projects/Done" in names
        assert b"Projects/2026" not in names
        status, data = client.status("Projects/Done", "(MESSAGES UIDNEXT UNSEEN)")
        assert status == "OK"
        assert b"MESSAGES 2" in data[0]
        assert b"UNSEEN 2" in data[0]
        assert client.delete("Projects/Done")[0] == "OK"
        status, data = client.select("Projects/Done")
        assert status == "NO"
        assert b"NONEXISTENT" in _line(data)
    finally:
        client.logout()


def test_append_too_big_refused_before_upload(
        mx: EngineProcess, new_account: Callable[[str], str]) -> None:
    with logged_in_wire(mx, new_account("big")) as wire:
        wire.send_line(f"A1 APPEND INBOX {{{60 * 1024 * 1024}}}")
        assert (wire.read_line() or b"").startswith(b"A1 NO [TOOBIG]")
        assert wire.command("A2", "NOOP")[-1].startswith(b"A2 OK")


# -- IDLE -----------------------------------------------------------------------------------

def test_idle_woken_by_smtp_delivery_within_one_second(
        mx: EngineProcess, new_account: Callable[[str], str]) -> None:
    address = new_account("idle")
    with logged_in_wire(mx, address) as wire:
        assert any(b"0 EXISTS" in line for line in wire.command("S", "SELECT INBOX"))
        wire.send_line("I IDLE")
        assert wire.read_line() == b"+ idling"
        deliver(mx, address, "wake up")
        delivered = time.monotonic()
        line = wire.read_line(timeout=5)
        assert line == b"* 1 EXISTS", line
        assert time.monotonic() - delivered < 1.0
        wire.send_line("DONE")
        assert wire.read_until_tagged("I")[-1].startswith(b"I OK")


def test_idle_ended_by_other_than_done(mx: EngineProcess,
                                       new_account: Callable[[str], str]) -> None:
    with logged_in_wire(mx, new_account("idlebad")) as wire:
        wire.command("S", "SELECT INBOX")
        wire.send_line("I IDLE")
        assert wire.read_line() == b"+ idling"
        wire.send_line("X NOOP")
        assert wire.read_until_tagged("I")[-1].startswith(b"I BAD")
        assert wire.command("N", "NOOP")[-1].startswith(b"N OK")


# -- imapclient -----------------------------------------------------------------------------

def test_imapclient_session(mx: EngineProcess, new_account: Callable[[str], str]) -> None:
    address = new_account("imapclient")
    context = _context(mx)
    client = imapclient.IMAPClient("127.0.0.1", port=mx.imaps_port, ssl=True,
                                   ssl_context=context, timeout=15)
    try:
        client.login(address, PASSWORD)
        assert b"MOVE" in client.capabilities()
        folders = {name for _, _, name in client.list_folders()}
        assert {"INBOX", "Sent", "Trash", "Drafts", "Junk", "Archive"} <= folders
        assert client.find_special_folder(imapclient.imapclient.SENT) == "Sent"
        client.append("INBOX", _message(1), flags=[imapclient.imapclient.SEEN])
        client.append("INBOX", _message(2))
        info = client.select_folder("INBOX")
        assert info[b"EXISTS"] == 2
        uids = client.search(["UNSEEN"])
        assert len(uids) == 1
        fetched = client.fetch(uids, ["ENVELOPE", "FLAGS", "RFC822.SIZE"])
        envelope = fetched[uids[0]][b"ENVELOPE"]
        assert envelope.subject == b"message 2"
        client.add_flags(uids, [imapclient.imapclient.FLAGGED])
        assert imapclient.imapclient.FLAGGED in client.get_flags(uids)[uids[0]]
        client.idle()
        deliver(mx, address, "while idling")
        responses = client.idle_check(timeout=5)
        client.idle_done()
        assert (3, b"EXISTS") in responses
        client.move(uids, "Archive")
        assert client.folder_status("Archive", [b"MESSAGES"])[b"MESSAGES"] == 1
    finally:
        client.logout()


# -- two clients on one mailbox -------------------------------------------------------------

def test_expunge_while_another_client_fetches(
        mx: EngineProcess, new_account: Callable[[str], str]) -> None:
    address = new_account("shared")
    filler = ssl_client(mx, address)
    _fill(filler, 6)
    filler.logout()
    with logged_in_wire(mx, address) as first, logged_in_wire(mx, address) as second:
        first.command("S", "SELECT INBOX")
        second.command("S", "SELECT INBOX")
        first.command("D", "STORE 2:5 +FLAGS.SILENT (\\Deleted)")
        assert first.command("E", "EXPUNGE")[-1].startswith(b"E OK")
        # The second client still sees six messages until it is told otherwise (RFC 9051
        # 7.5.1: no EXPUNGE during FETCH); what it fetches must be the right message for
        # each UID, never a neighbour's, and the gone ones are NO [EXPUNGEISSUED] or absent.
        reply = second.command("F", "FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert re.match(rb"F (OK|NO \[EXPUNGEISSUED\])", reply[-1]), reply[-1]
        fetched = [line for line in reply if b"BODY[HEADER.FIELDS (SUBJECT)]" in line]
        for line in fetched:
            uid = re.search(rb"UID (\d+)", line)
            assert uid is not None, line
            assert f"Subject: message {int(uid.group(1))}".encode() in line
        assert {re.search(rb"UID (\d+)", line).group(1)  # type: ignore[union-attr]
                for line in fetched} >= {b"1", b"6"}
        noop = second.command("N", "NOOP")
        assert sum(line.endswith(b" EXPUNGE") for line in noop) == 4, noop
        assert second.command("U", "UID SEARCH ALL")[0] == b"* SEARCH 1 6"
        after = second.command("G", "UID FETCH 3 (FLAGS)")
        assert len(after) == 1, after
        assert after[-1].startswith(b"G OK"), after


def _context(mx: EngineProcess) -> ssl.SSLContext:
    context = client_context(mx)
    context.check_hostname = False
    return context


def test_expunges_racing_fetches_never_mix_up_uids(
        mx: EngineProcess, new_account: Callable[[str], str]) -> None:
    address = new_account("race")
    filler = ssl_client(mx, address)
    _fill(filler, 60)
    filler.logout()
    done = threading.Event()
    problems: list[str] = []

    def expunger() -> None:
        try:
            with logged_in_wire(mx, address) as wire:
                wire.command("S", "SELECT INBOX")
                for round_ in range(15):
                    uids = ",".join(str(4 * round_ + k) for k in (1, 2, 3))
                    wire.command(f"D{round_}", f"UID STORE {uids} +FLAGS.SILENT (\\Deleted)")
                    reply = wire.command(f"E{round_}", "EXPUNGE")
                    if not reply[-1].startswith(f"E{round_} OK".encode()):
                        problems.append(repr(reply[-1]))
        finally:
            done.set()

    thread = threading.Thread(target=expunger)
    with logged_in_wire(mx, address) as reader:
        reader.command("S", "SELECT INBOX")
        thread.start()
        rounds = 0
        while not done.is_set() or rounds < 3:
            rounds += 1
            reply = reader.command(f"F{rounds}",
                                   "UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            assert re.match(rb"F\d+ (OK|NO \[EXPUNGEISSUED\])", reply[-1]), reply[-1]
            for line in reply:
                if b"BODY[HEADER.FIELDS (SUBJECT)]" in line:   # not flag updates
                    uid = re.search(rb"UID (\d+)", line)
                    assert uid is not None, line
                    assert f"Subject: message {int(uid.group(1))}\r".encode() in line, line
            assert reader.command(f"N{rounds}", "NOOP")[-1].startswith(f"N{rounds} OK".encode())
        thread.join(30)
        left = reader.command("U", "UID SEARCH ALL")[0].split()[2:]
    assert problems == []
    # Round r removed UIDs 4r+1..4r+3 (r < 15): every fourth UID stays.
    expected = [n for n in range(1, 61) if n % 4 == 0]
    assert [int(uid) for uid in left] == expected
