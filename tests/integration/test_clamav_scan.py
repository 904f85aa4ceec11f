"""The virus check against a real clamd (Debian's, our test signatures): verdicts for clean,
infected, zipped and nested mail, broken MIME, clamd's size limit, a stopped clamd and a
hung one. The engine-level tests (replies over SMTP) are in test_clamav_engine.py."""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.checks.clamav import (
    SKIPPED_HEADER,
    UNAVAILABLE_HEADER,
    ClamavCheck,
    ClamdAddress,
    parse_address,
)
from appliance.checks.context import MessageContext
from appliance.checks.result import CheckResult, Verdict
from appliance.smtp import replies
from harness import malware
from peers.clamd import EICAR, EICAR_NAME, PATTERN_NAME, STREAM_MAX, ClamdInstance

A, B = "a@example.org", "b@example.test"


@pytest.fixture(scope="module")
def clamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClamdInstance]:
    with ClamdInstance(tmp_path_factory.mktemp("clamd")) as instance:
        yield instance


def scan(address: ClamdAddress | str, message: bytes, *, timeout: float = 10,
         fail_open: bool = False, max_scan_size: int = 16 * 1024 * 1024) -> CheckResult:
    if isinstance(address, str):
        address = parse_address(address)
    check = ClamavCheck(address, timeout=timeout, fail_open=fail_open,
                        max_scan_size=max_scan_size)
    return asyncio.run(check.check(message, MessageContext("Q1", "127.0.0.1")))


def unix(clamd: ClamdInstance) -> str:
    return str(clamd.socket_path)


def assert_rejected(result: CheckResult, name: str) -> None:
    assert result.verdict is Verdict.REJECT, result
    assert result.reply == replies.POLICY_REJECTED
    assert result.reply.startswith("554 5.7.1 ")
    assert name in result.reason
    assert name not in result.reply


# -- verdicts ------------------------------------------------------------------------------

def test_clean_message_is_accepted_over_both_sockets(clamd: ClamdInstance) -> None:
    for address in (unix(clamd), clamd.tcp_address):
        result = scan(address, malware.clean(A, B))
        assert result == CheckResult("clamav", Verdict.ACCEPT, reason="clean")


@pytest.mark.parametrize(("build", "name"), [
    (malware.eicar, EICAR_NAME),
    (malware.pattern, PATTERN_NAME),
    (malware.eicar_zip, EICAR_NAME),
    (malware.eicar_zip_in_zip, EICAR_NAME),
    (malware.pattern_zip_in_zip, PATTERN_NAME),
])
def test_infected_messages_are_rejected(clamd: ClamdInstance, build: malware.Builder,
                                        name: str) -> None:
    message = build(A, B)
    assert EICAR not in message          # base64 in the mail: clamd had to decode it
    assert_rejected(scan(unix(clamd), message), name)


def test_bare_signature_without_mime_is_rejected(clamd: ClamdInstance) -> None:
    assert_rejected(scan(clamd.tcp_address, EICAR), EICAR_NAME)


def test_large_message_is_sent_in_many_chunks(clamd: ClamdInstance) -> None:
    filler = b"".join(b"line %d of a long clean message\r\n" % i for i in range(40_000))
    assert len(filler) > 1024 * 1024
    assert scan(unix(clamd), filler).verdict is Verdict.ACCEPT
    assert_rejected(scan(unix(clamd), filler + EICAR + b"\r\n"), EICAR_NAME)


# -- malformed MIME: a defined verdict, never an exception, and clamd keeps working --------

def _malformed() -> dict[str, bytes]:
    encoded = base64.b64encode(EICAR)
    head = b"From: a@example.org\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n"
    return {
        "unterminated_boundary": head + b"--XX\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                                 + encoded + b"\r\n",
        "broken_base64": head + b"--XX\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                         + b"!!!" + encoded[:20] + b"%%%" + encoded[20:] + b"\r\n--XX--\r\n",
        "no_boundary_parameter": b"Content-Type: multipart/mixed\r\n\r\n--\r\n" + encoded,
        "deep_nesting": b"".join(b"Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n"
                                 b"--b%d\r\n" % (i, i) for i in range(2000)) + encoded,
        "header_only_garbage": b"\xff\xfe\x00" * 5000,
        "empty": b"",
    }


@pytest.mark.parametrize("case", sorted(_malformed()))
def test_malformed_mime_gets_a_defined_verdict(clamd: ClamdInstance, case: str) -> None:
    result = scan(unix(clamd), _malformed()[case])
    assert result.verdict in (Verdict.ACCEPT, Verdict.REJECT), result
    if result.verdict is Verdict.REJECT:
        assert EICAR_NAME in result.reason
    assert_rejected(scan(unix(clamd), malware.eicar(A, B)), EICAR_NAME)   # still working


def test_unterminated_multipart_still_finds_the_attachment(clamd: ClamdInstance) -> None:
    assert_rejected(scan(unix(clamd), _malformed()["unterminated_boundary"]), EICAR_NAME)


# -- limits and failures -------------------------------------------------------------------

def test_clamd_size_limit_is_a_tempfail_not_an_accept(clamd: ClamdInstance) -> None:
    big = b"x" * (STREAM_MAX + 1024) + EICAR
    result = scan(unix(clamd), big, max_scan_size=2 * STREAM_MAX)
    assert result.verdict is Verdict.TEMPFAIL, result
    assert result.reply == replies.POLICY_DEFERRED
    assert "size limit" in result.reason


def test_message_over_max_scan_size_is_tagged_not_silent(clamd: ClamdInstance) -> None:
    result = scan(unix(clamd), b"y" * 70_000, max_scan_size=64 * 1024)
    assert result.verdict is Verdict.TAG
    assert result.headers == (SKIPPED_HEADER,)
    assert "max_scan_size" in result.reason


def test_missing_socket_tempfails_or_tags(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-clamd.sock")
    result = scan(missing, malware.clean(A, B))
    assert result.verdict is Verdict.TEMPFAIL
    assert result.reply.startswith("451 4.7.1 ")
    assert "unreachable" in result.reason
    result = scan(missing, malware.clean(A, B), fail_open=True)
    assert result.verdict is Verdict.TAG
    assert result.headers == (UNAVAILABLE_HEADER,)


def test_stopped_clamd_tempfails(tmp_path: Path) -> None:
    with ClamdInstance(tmp_path) as instance:
        assert scan(instance.tcp_address, malware.clean(A, B)).verdict is Verdict.ACCEPT
    for address in (unix(instance), instance.tcp_address):
        result = scan(address, malware.eicar(A, B))
        assert result.verdict is Verdict.TEMPFAIL, result
        assert result.reply == replies.POLICY_DEFERRED


@pytest.fixture
def hung_clamd() -> Iterator[str]:
    """A socket that accepts, reads everything and never answers: a hung clamd."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            held.append(conn)
            conn.settimeout(0.2)
            while not stop.is_set():
                try:
                    if not conn.recv(65536):
                        break
                except TimeoutError:
                    continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        server.close()


def test_hung_clamd_tempfails_after_the_timeout(hung_clamd: str) -> None:
    started = time.monotonic()
    result = scan(hung_clamd, malware.eicar(A, B), timeout=1)
    elapsed = time.monotonic() - started
    assert result.verdict is Verdict.TEMPFAIL, result
    assert "within 1s" in result.reason
    assert 0.9 <= elapsed < 5
    tagged = scan(hung_clamd, malware.clean(A, B), timeout=1, fail_open=True)
    assert tagged.verdict is Verdict.TAG
    assert tagged.headers == (UNAVAILABLE_HEADER,)
