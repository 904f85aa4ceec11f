"""POP3 with curl (pop3:// with STLS, pop3s://), a message delivered over SMTP to the MX and
fetched over POP3, connection limits per client address, and a large RETR."""

from __future__ import annotations

import smtplib
import subprocess
from collections.abc import Callable

from appliance.pop3 import replies
from harness.debian import ensure_package
from harness.engine import EngineProcess
from harness.pop3 import (
    HOSTNAME,
    PASSWORD,
    client_context,
    put_message,
    sample,
    ssl_client,
    wire,
)
from harness.smtp_wire import SMTPWire

MX_SETTINGS = {"server__dev_mode": False, "pop3__max_connections_per_ip": 3}


def _curl(mx: EngineProcess, url: str, address: str,
          *extra: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [ensure_package("curl", "curl"), "--silent", "--show-error", "--max-time", "20",
         "--cacert", str(mx.data_dir / "tls" / "cert.pem"),
         "--resolve", f"mx.mailstead.test:{mx.pop3_port}:127.0.0.1",
         "--resolve", f"mx.mailstead.test:{mx.pop3s_port}:127.0.0.1",
         "--user", f"{address}:{PASSWORD}", *extra, url],
        capture_output=True, timeout=30, check=False)


def test_curl_pop3_with_stls(mx: EngineProcess, new_account: Callable[[str], str]) -> None:
    address = new_account("curl")
    put_message(mx.maildir(address), sample(1))
    put_message(mx.maildir(address), sample(2, extra="X-Dots: yes\r\n"))
    base = f"pop3://mx.mailstead.test:{mx.pop3_port}"
    listing = _curl(mx, f"{base}/", address, "--ssl-reqd")
    assert listing.returncode == 0, listing.stderr
    second = sample(2, extra="X-Dots: yes\r\n")
    assert listing.stdout.splitlines() == [f"1 {len(sample(1))}".encode(),
                                           f"2 {len(second)}".encode()]
    fetched = _curl(mx, f"{base}/2", address, "--ssl-reqd")
    assert fetched.returncode == 0, fetched.stderr
    assert fetched.stdout == second


def test_curl_pop3s_and_sasl_plain(mx: EngineProcess,
                                   new_account: Callable[[str], str]) -> None:
    address = new_account("curls")
    put_message(mx.maildir(address), sample(7))
    base = f"pop3s://mx.mailstead.test:{mx.pop3s_port}"
    fetched = _curl(mx, f"{base}/1", address, "--login-options", "AUTH=PLAIN")
    assert fetched.returncode == 0, fetched.stderr
    assert fetched.stdout == sample(7)
    deleted = _curl(mx, f"{base}/1", address, "--request", "DELE", "--list-only")
    assert deleted.returncode == 0, deleted.stderr
    assert mx.messages(address) == []


def test_curl_refuses_without_tls_when_required(mx: EngineProcess,
                                                new_account: Callable[[str], str]) -> None:
    address = new_account("nocurl")
    # Without --ssl-reqd curl does not start TLS, and our server takes no password then.
    refused = _curl(mx, f"pop3://mx.mailstead.test:{mx.pop3_port}/", address)
    assert refused.returncode != 0


def test_message_delivered_over_smtp_is_fetched_over_pop3(
        mx: EngineProcess, new_account: Callable[[str], str]) -> None:
    address = new_account("smtp")
    content = (f"From: sender@example.org\r\nTo: {address}\r\nSubject: over SMTP\r\n\r\n"
               ".a line that starts with a dot\r\nbye\r\n").encode()
    with smtplib.SMTP("127.0.0.1", mx.smtp_port, timeout=10) as smtp:
        smtp.sendmail("sender@example.org", [address], content)
    client = ssl_client(mx, address)
    try:
        assert client.stat()[0] == 1
        _, lines, _ = client.retr(1)
        assert lines[-2:] == [b".a line that starts with a dot", b"bye"]
        assert b"Subject: over SMTP" in lines
        assert any(line.startswith(b"Received: ") for line in lines)
    finally:
        client.quit()


def test_connections_over_the_per_address_limit_are_refused(mx: EngineProcess) -> None:
    held = [wire(mx) for _ in range(3)]
    try:
        with SMTPWire(mx.pop3_port) as extra:
            assert extra.read_line() == replies.TOO_MANY_FROM_YOU
            assert extra.is_closed()
        with SMTPWire(mx.pop3s_port, source="127.0.0.2") as other:   # others are served
            other.sock = client_context(mx).wrap_socket(other.sock,
                                                        server_hostname=HOSTNAME)
            assert other.read_line() == replies.GREETING
    finally:
        for connection in held:
            connection.close()


def test_large_message_retr(mx: EngineProcess, new_account: Callable[[str], str]) -> None:
    address = new_account("large")
    body = b"".join(b"%07d " % n + b"x" * 90 + b"\r\n" for n in range(200_000))   # ~20 MB
    content = b"From: a@example.org\r\nSubject: large\r\n\r\n" + body
    put_message(mx.maildir(address), content)
    client = ssl_client(mx, address)
    try:
        client.sock.settimeout(60)
        _, lines, octets = client.retr(1)
        assert octets == len(content)
        assert lines[-1] == b"0199999 " + b"x" * 90
        assert len(lines) == 200_000 + 3
    finally:
        client.quit()
