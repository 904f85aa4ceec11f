"""POP3 with Python's poplib against the real engine: STLS and POP3_SSL, USER/PASS and
AUTH PLAIN, RETR and TOP byte for byte, UIDL stable across sessions and IMAP-side changes,
DELE applied only at QUIT, a dropped connection deleting nothing, and the maildrop lock."""

from __future__ import annotations

import base64
import poplib
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.pop3 import replies
from appliance.pop3.server import build_stores
from appliance.settings import load_settings
from appliance.storage.mailbox_api import INBOX, FlagOperation
from harness.engine import EngineProcess
from harness.pop3 import put_message, sample, ssl_client, stls_client, wire

MX_SETTINGS = {"server__dev_mode": False, "auth__failure_delay_ms": 0}


def _mailbox(mx: EngineProcess, new_account: Callable[[str], str], count: int) -> str:
    address = new_account("pop")
    for number in range(1, count + 1):
        put_message(mx.maildir(address), sample(number, lines=number + 1))
    return address


def test_stls_login_stat_list_retr_top(mx: EngineProcess,
                                       new_account: Callable[[str], str]) -> None:
    address = _mailbox(mx, new_account, 2)
    client = stls_client(mx)
    try:
        assert client.capa()["SASL"] == ["PLAIN"]
        client.user(address)
        client.pass_("correct horse battery")
        count, size = client.stat()
        assert count == 2
        assert size == len(sample(1, 2)) + len(sample(2, 3))
        _, listing, _ = client.list()
        assert listing == [f"1 {len(sample(1, 2))}".encode(), f"2 {len(sample(2, 3))}".encode()]
        _, lines, octets = client.retr(2)
        assert b"\r\n".join(lines) + b"\r\n" == sample(2, 3)
        assert octets == len(sample(2, 3))
        _, top, _ = client.top(2, 1)
        assert top[-2:] == [b"", b"line 1 of message 2"]
    finally:
        client.quit()


def test_pop3s_with_auth_plain(mx: EngineProcess, new_account: Callable[[str], str]) -> None:
    address = _mailbox(mx, new_account, 1)
    client = ssl_client(mx)
    assert "STLS" not in client.capa()
    client.quit()
    response = base64.b64encode(f"\0{address}\0correct horse battery".encode()).decode()
    with wire(mx, tls=True) as connection:
        connection.send_line(f"AUTH PLAIN {response}")
        logged_in = replies.LOGGED_IN.format(count=1, size=len(sample(1, 2)))
        assert connection.read_line() == logged_in
        connection.send_line("STAT")
        assert connection.read_line() == f"+OK 1 {len(sample(1, 2))}"
        connection.send_line("QUIT")
        assert connection.read_line() == replies.BYE_UPDATED.format(count=1)


def test_password_refused_before_stls(mx: EngineProcess,
                                      new_account: Callable[[str], str]) -> None:
    address = new_account("plain")
    client = poplib.POP3("127.0.0.1", mx.pop3_port, timeout=10)
    try:
        assert "USER" not in client.capa()
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
            client.user(address)
    finally:
        client.quit()


def test_wrong_password_is_an_auth_error(mx: EngineProcess,
                                         new_account: Callable[[str], str]) -> None:
    address = new_account("wrong")
    with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\]"):
        stls_client(mx, address, password="not the password")


def test_uidl_is_stable_across_sessions_and_imap_changes(
        mx: EngineProcess, new_account: Callable[[str], str]) -> None:
    address = _mailbox(mx, new_account, 3)
    first = _uidl(mx, address)
    assert len(set(first.values())) == 3
    # What an IMAP client does meanwhile: flag one message, expunge another, add a third.
    stores = build_stores(load_settings(mx.config_file, environ={}))
    try:
        mail = stores.open(address)
        snapshot = mail.sync(INBOX)
        uids = [m.uid for m in snapshot.messages]
        mail.store_flags(INBOX, [uids[0]], FlagOperation.ADD, frozenset({"\\Seen"}))
        mail.store_flags(INBOX, [uids[1]], FlagOperation.ADD, frozenset({"\\Deleted"}))
        mail.expunge(INBOX)
        mail.append(INBOX, sample(4))
    finally:
        stores.close()
    second = _uidl(mx, address)
    assert second[1] == first[1]
    assert second[2] == first[3]                 # renumbered, same unique id
    assert second[3] not in first.values()
    assert second[1] == f"{_uid_of(first[1]):08X}{first[1][8:]}"


def test_dele_applies_only_at_quit(mx: EngineProcess,
                                   new_account: Callable[[str], str]) -> None:
    address = _mailbox(mx, new_account, 3)
    client = stls_client(mx, address)
    client.dele(1)
    client.dele(3)
    assert client.stat()[0] == 1
    assert len(mx.messages(address)) == 3        # nothing removed before QUIT
    client.rset()
    client.dele(2)
    client.quit()
    assert sorted(_uidl(mx, address)) == [1, 2]
    assert len(mx.messages(address)) == 2


def test_dropped_connection_deletes_nothing(mx: EngineProcess,
                                            new_account: Callable[[str], str]) -> None:
    address = _mailbox(mx, new_account, 2)
    client = stls_client(mx, address)
    client.dele(1)
    client.dele(2)
    client.sock.shutdown(socket.SHUT_RDWR)        # gone without QUIT (RFC 1939 6)
    client.sock.close()
    # The lock is released once the server sees the connection end.
    deadline = time.monotonic() + 5
    while (listing := _uidl_unless_in_use(mx, address)) is None:
        assert time.monotonic() < deadline, "the maildrop lock was never released"
        time.sleep(0.1)
    assert len(listing) == 2
    assert len(mx.messages(address)) == 2


def test_second_session_is_refused_while_the_first_is_in(
        mx: EngineProcess, new_account: Callable[[str], str]) -> None:
    address = _mailbox(mx, new_account, 1)
    first = stls_client(mx, address)
    try:
        second = stls_client(mx)
        second.user(address)
        with pytest.raises(poplib.error_proto) as refused:
            second.pass_("correct horse battery")
        assert refused.value.args[0] == replies.IN_USE.encode()
        second.quit()
        assert first.stat()[0] == 1
    finally:
        first.quit()
    again = ssl_client(mx, address)                  # released at QUIT
    assert again.stat()[0] == 1
    again.quit()


def test_idle_session_before_login_is_closed(tmp_path: Path) -> None:
    with EngineProcess(tmp_path / "data", pop3__login_timeout=1) as engine:
        connection = wire(engine)
        assert connection.read_line(timeout=5) == replies.IDLE_TIMEOUT
        assert connection.is_closed()


def _uidl(mx: EngineProcess, address: str) -> dict[int, str]:
    client = ssl_client(mx, address)
    try:
        _, lines, _ = client.uidl()
        return {int(n): uid for n, uid in (line.decode().split() for line in lines)}
    finally:
        client.quit()


def _uidl_unless_in_use(mx: EngineProcess, address: str) -> dict[int, str] | None:
    try:
        return _uidl(mx, address)
    except poplib.error_proto as exc:
        if exc.args[0] == replies.IN_USE.encode():
            return None
        raise


def _uid_of(unique_id: str) -> int:
    return int(unique_id[:8], 16)
