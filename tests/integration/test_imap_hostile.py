"""Hostile input to the IMAP listeners over real sockets: slowloris before login, a 100 MB
literal announced, overlong lines, 1000 pipelined commands in one write, a stream of bad
commands, STARTTLS command injection, too many connections from one address, and shutdown
telling idle clients BYE."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable
from pathlib import Path

from appliance.imap import server
from appliance.imap.server_config import PRE_AUTH_MAX_LITERAL
from appliance.imap.server_plans import BYE_AUTOLOGOUT
from harness.engine import EngineProcess
from harness.imap import ImapWire, client_context, logged_in_wire

MX_SETTINGS = {"server__dev_mode": False, "auth__failure_delay_ms": 0,
               "imap__login_timeout": 2, "imap__max_line_length": 8192,
               "imap__max_connections_per_ip": 30}


def _greeted(mx: EngineProcess) -> ImapWire:
    wire = ImapWire(mx.imap_port)
    greeting = wire.read_line()
    assert greeting is not None
    assert greeting.startswith(b"* OK [CAPABILITY IMAP4rev1 "), greeting
    return wire


def test_slowloris_before_login_is_logged_out(mx: EngineProcess) -> None:
    with _greeted(mx) as wire:
        started = time.monotonic()
        # One octet every half second: trickling never completes a command in time.
        for octet in b"A1 CAPABILITY":
            try:
                wire.send(bytes([octet]))
            except OSError:
                break
            time.sleep(0.5)
            if time.monotonic() - started > 2.5:
                break
        assert wire.read_line(timeout=5) == BYE_AUTOLOGOUT.rstrip(b"\r\n")
        assert wire.is_closed()
        assert time.monotonic() - started < 5


def test_silent_client_is_logged_out(mx: EngineProcess) -> None:
    with _greeted(mx) as wire:
        assert wire.read_line(timeout=5) == BYE_AUTOLOGOUT.rstrip(b"\r\n")
        assert wire.is_closed()


def test_huge_literal_refused_without_reading_it(mx: EngineProcess,
                                                 new_account: Callable[[str], str]) -> None:
    with _greeted(mx) as wire:
        wire.send_line("A1 LOGIN {104857600}")
        assert wire.read_line() == b"A1 NO [TOOBIG] Literal too big"
        # Before login nothing but a user name or password comes as a literal.
        wire.send_line(f"A0 LOGIN {{{PRE_AUTH_MAX_LITERAL + 1}}}")
        assert wire.read_line() == b"A0 NO [TOOBIG] Literal too big"
        assert wire.command("A2", "NOOP")[-1].startswith(b"A2 OK")
    with logged_in_wire(mx, new_account("huge")) as wire:
        wire.send_line("A1 APPEND INBOX (\\Seen) {104857600}")
        assert wire.read_line() == b"A1 NO [TOOBIG] Literal too big"
        assert wire.command("A2", "NOOP")[-1].startswith(b"A2 OK")


def test_overlong_line_is_bad_and_the_session_goes_on(mx: EngineProcess) -> None:
    with _greeted(mx) as wire:
        wire.send_line("A1 CAPABILITY " + "x" * 20_000)
        assert wire.read_line() == b"A1 BAD Command line too long"
        wire.send_line("y" * 20_000)      # no tag to answer with: untagged BAD
        assert (wire.read_line() or b"").startswith(b"* BAD ")
        reply = wire.command("A2", "CAPABILITY")
        assert reply[0].startswith(b"* CAPABILITY ")
        assert reply[-1].startswith(b"A2 OK")


def test_thousand_pipelined_commands_in_one_write(mx: EngineProcess,
                                                  new_account: Callable[[str], str]) -> None:
    with logged_in_wire(mx, new_account("pipe")) as wire:
        wire.command("S", "SELECT INBOX")
        wire.send(b"".join(f"P{n} NOOP\r\n".encode() for n in range(1000)))
        tagged: list[bytes] = []
        while len(tagged) < 1000:
            line = wire.read_line()
            assert line is not None
            if not line.startswith(b"* "):
                tagged.append(line)
        assert [line.split(b" ", 2)[:2] for line in tagged] == [
            [f"P{n}".encode(), b"OK"] for n in range(1000)]


def test_many_bad_commands_end_the_session(mx: EngineProcess) -> None:
    with _greeted(mx) as wire:
        wire.send(b"".join(f"B{n} FROBNICATE\r\n".encode() for n in range(25)))
        lines = [wire.read_line() for _ in range(21)]
        assert all(line is not None and re.match(rb"B\d+ BAD ", line) for line in lines[:20])
        assert lines[20] == server.BYE_TOO_MANY_BAD.rstrip(b"\r\n")
        assert wire.is_closed()


def test_good_commands_reset_the_bad_count(mx: EngineProcess) -> None:
    with _greeted(mx) as wire:
        for round_ in range(3):
            for n in range(15):
                assert wire.command(f"B{round_}x{n}", "FROBNICATE")[-1].startswith(
                    f"B{round_}x{n} BAD".encode())
            assert wire.command(f"N{round_}", "NOOP")[-1].startswith(f"N{round_} OK".encode())


def test_starttls_command_injection_is_dropped(mx: EngineProcess) -> None:
    with _greeted(mx) as wire:
        wire.send(b"S1 STARTTLS\r\nX1 CAPABILITY\r\n")
        assert wire.read_line() == b"S1 OK Begin TLS negotiation now"
        context = client_context(mx)
        context.check_hostname = False
        wire.start_tls(context)
        reply = wire.command("C1", "CAPABILITY")
        assert reply[-1].startswith(b"C1 OK"), reply
        assert not any(line.startswith(b"X1") for line in reply)
        assert b"AUTH=PLAIN" in reply[0]
        assert b"STARTTLS" not in reply[0]


def test_too_many_connections_from_one_address(mx: EngineProcess) -> None:
    wires = [_greeted(mx) for _ in range(30)]
    try:
        with ImapWire(mx.imap_port) as extra:
            line = extra.read_line()
            assert line == server.BYE_TOO_MANY_FROM_YOU.rstrip(b"\r\n"), line
            assert extra.is_closed()
    finally:
        for wire in wires:
            wire.close()


def test_shutdown_says_bye_to_idle_clients(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path / "data", auth__failure_delay_ms=0)
    engine.start()
    try:
        engine.add_domain("example.test")
        engine.add_account("carol@example.test")
        with logged_in_wire(engine, "carol@example.test") as wire:
            wire.command("S", "SELECT INBOX")
            wire.send_line("I IDLE")
            assert wire.read_line() == b"+ idling"
            assert engine.stop() == 0
            assert wire.read_line() == server.BYE_SHUTTING_DOWN.rstrip(b"\r\n")
            assert wire.is_closed()
    finally:
        if engine.proc is not None and engine.proc.poll() is None:
            engine.stop()


def test_client_vanishing_mid_fetch_leaves_the_server_well(
        mx: EngineProcess, new_account: Callable[[str], str]) -> None:
    address = new_account("vanish")
    body = b"Subject: big\r\n\r\n" + b"0123456789abcdef" * 200_000 + b"\r\n"
    with logged_in_wire(mx, address) as wire:
        wire.send_line(f"A APPEND INBOX {{{len(body)}+}}")
        wire.send(body + b"\r\n")
        assert wire.read_until_tagged("A")[-1].startswith(b"A OK")
        wire.command("S", "SELECT INBOX")
        for n in range(5):
            wire.send_line(f"F{n} FETCH 1 BODY.PEEK[]")
        wire.sock.shutdown(socket.SHUT_RDWR)
    with logged_in_wire(mx, address) as wire:
        reply = wire.command("S", "SELECT INBOX")
        assert b"* 1 EXISTS" in reply
        reply = wire.command("F", "FETCH 1 BODY.PEEK[]")
        assert reply[-1].startswith(b"F OK")
        assert body in reply[0]
