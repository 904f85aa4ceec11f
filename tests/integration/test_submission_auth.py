"""SMTP AUTH on the submission listeners (RFC 4954, RFC 6409, RFC 8314): only inside TLS,
only PLAIN and LOGIN, SASL-IR, enhanced codes, and passwords never in the log."""

from __future__ import annotations

import contextlib
import smtplib
import socket
import ssl

import pytest

from appliance.smtp import replies
from harness.engine import EngineProcess
from harness.smtp_wire import greeted
from harness.submission import (
    HOSTNAME,
    PASSWORD,
    auth_plain,
    b64,
    client_context,
    implicit_tls_wire,
    plain,
    starttls_wire,
)

# All tests here come from 127.0.0.1: the per-address limit must not get in the way.
MX_SETTINGS = {"auth__failure_delay_ms": 0, "auth__max_failures_per_ip": 10_000,
               "auth__max_failures": 1000}
ALICE = "alice@example.test"


def test_before_tls_auth_is_not_offered_and_refused_with_538(mx: EngineProcess) -> None:
    with greeted(mx.submission_port) as wire:
        ehlo = wire.command("EHLO client.example.org")
        assert "250-STARTTLS" in ehlo.lines
        assert not any(line[4:].startswith("AUTH") for line in ehlo.lines)
        for command in (f"AUTH PLAIN {plain(ALICE)}", "AUTH LOGIN", "AUTH PLAIN"):
            assert str(wire.command(command)) == replies.AUTH_NEEDS_TLS


def test_mail_before_auth_is_refused_with_530(mx: EngineProcess) -> None:
    with greeted(mx.submission_port) as wire:                      # plaintext
        assert str(wire.command(f"MAIL FROM:<{ALICE}>")) == replies.AUTH_REQUIRED
        assert str(wire.command("RCPT TO:<bob@example.test>")) == replies.AUTH_REQUIRED
        assert str(wire.command("DATA")) == replies.AUTH_REQUIRED
    with starttls_wire(mx) as wire:                                # TLS, not logged in
        assert str(wire.command(f"MAIL FROM:<{ALICE}>")) == replies.AUTH_REQUIRED


def test_inside_starttls_only_plain_and_login_are_offered(mx: EngineProcess) -> None:
    with starttls_wire(mx) as wire:
        ehlo = wire.command("EHLO client.example.org")
        assert "250-AUTH LOGIN PLAIN" in ehlo.lines
        assert "250-STARTTLS" not in ehlo.lines
        assert str(wire.command("AUTH CRAM-MD5")) == replies.AUTH_UNKNOWN_MECHANISM
        assert str(wire.command("AUTH XOAUTH2 abc")) == replies.AUTH_UNKNOWN_MECHANISM


def test_auth_plain_with_initial_response(mx: EngineProcess) -> None:
    with starttls_wire(mx) as wire:
        assert str(auth_plain(wire, ALICE)) == replies.AUTH_SUCCESSFUL
        assert str(wire.command(f"AUTH PLAIN {plain(ALICE)}")) == replies.AUTH_ALREADY
        assert str(wire.command(f"MAIL FROM:<{ALICE}>")) == replies.SENDER_OK


def test_auth_plain_with_a_challenge_and_mixed_case(mx: EngineProcess) -> None:
    with starttls_wire(mx) as wire:
        assert str(wire.command("auth plain")) == "334 "          # empty challenge, RFC 4954
        assert str(wire.command(plain("Alice@EXAMPLE.test"))) == replies.AUTH_SUCCESSFUL


def test_auth_plain_with_an_equal_authzid(mx: EngineProcess) -> None:
    with starttls_wire(mx) as wire:
        reply = wire.command(f"AUTH PLAIN {plain(ALICE, authzid=ALICE)}")
        assert str(reply) == replies.AUTH_SUCCESSFUL


def test_auth_plain_acting_as_another_user_is_refused(mx: EngineProcess) -> None:
    with starttls_wire(mx) as wire:
        reply = wire.command(f"AUTH PLAIN {plain(ALICE, authzid='bob@example.test')}")
        assert str(reply) == replies.AUTH_MALFORMED
        assert str(wire.command(f"MAIL FROM:<{ALICE}>")) == replies.AUTH_REQUIRED


def test_auth_login_with_challenges(mx: EngineProcess) -> None:
    with starttls_wire(mx) as wire:
        assert str(wire.command("AUTH LOGIN")) == "334 VXNlcm5hbWU6"        # "Username:"
        assert str(wire.command(b64(ALICE))) == "334 UGFzc3dvcmQ6"          # "Password:"
        assert str(wire.command(b64(PASSWORD))) == replies.AUTH_SUCCESSFUL


def test_auth_login_with_initial_username(mx: EngineProcess) -> None:
    with implicit_tls_wire(mx) as wire:
        assert str(wire.command(f"AUTH LOGIN {b64(ALICE)}")) == "334 UGFzc3dvcmQ6"
        assert str(wire.command(b64(PASSWORD))) == replies.AUTH_SUCCESSFUL


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_wrong_password_gets_535(mx: EngineProcess, mechanism: str) -> None:
    with starttls_wire(mx) as wire:
        if mechanism == "PLAIN":
            reply = auth_plain(wire, ALICE, "wrong password")
        else:
            wire.command(f"AUTH LOGIN {b64(ALICE)}")
            reply = wire.command(b64("wrong password"))
        assert str(reply) == replies.AUTH_FAILED
        assert str(wire.command(f"MAIL FROM:<{ALICE}>")) == replies.AUTH_REQUIRED
        assert str(auth_plain(wire, ALICE)) == replies.AUTH_SUCCESSFUL    # may try again


def test_unknown_and_disabled_accounts_get_the_same_535(mx: EngineProcess) -> None:
    mx.add_account("disabled@example.test")
    mx.directory.set_enabled("disabled@example.test", False)
    with starttls_wire(mx) as wire:
        for user in ("nobody@example.test", "disabled@example.test", "not-an-address"):
            assert str(auth_plain(wire, user)) == replies.AUTH_FAILED


def test_cancel_and_garbage_in_the_exchange(mx: EngineProcess) -> None:
    with starttls_wire(mx) as wire:
        assert wire.command("AUTH LOGIN").code == 334
        assert str(wire.command("*")) == replies.AUTH_ABORTED           # RFC 4954 4
        assert str(wire.command("AUTH PLAIN !!!")) == replies.AUTH_BAD_BASE64
        assert wire.command("AUTH PLAIN").code == 334
        assert str(wire.command("not base64")) == replies.AUTH_BAD_BASE64
        assert str(wire.command(f"AUTH PLAIN {b64('no separators')}")) == (
            replies.AUTH_MALFORMED)
        assert str(wire.command("AUTH PLAIN a b c")).startswith("501 5.5.4")
        assert str(auth_plain(wire, ALICE)) == replies.AUTH_SUCCESSFUL   # the session goes on


def test_an_oversized_response_is_refused_and_the_session_goes_on(mx: EngineProcess) -> None:
    with starttls_wire(mx) as wire:
        assert wire.command("AUTH PLAIN").code == 334
        assert str(wire.command("A" * 8000)) == replies.AUTH_MALFORMED    # over the SASL limit
        assert str(wire.command("NOOP")) == replies.OK


def test_a_response_longer_than_the_read_buffer_ends_the_session(mx: EngineProcess) -> None:
    with starttls_wire(mx) as wire:
        assert wire.command("AUTH LOGIN").code == 334
        # the server may answer and close while the rest is still on its way
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            wire.send(b"A" * 200_000 + b"\r\n")
        assert str(wire.read_reply()) == replies.LINE_TOO_LONG
        assert wire.is_closed()
    with starttls_wire(mx) as wire:                      # the engine goes on
        assert str(auth_plain(wire, ALICE)) == replies.AUTH_SUCCESSFUL


def test_implicit_tls_offers_auth_at_once_and_no_starttls(mx: EngineProcess) -> None:
    with implicit_tls_wire(mx) as wire:
        ehlo = wire.command("EHLO client.example.org")
        assert "250-AUTH LOGIN PLAIN" in ehlo.lines
        assert "250-STARTTLS" not in ehlo.lines
        assert str(wire.command(f"MAIL FROM:<{ALICE}>")) == replies.AUTH_REQUIRED
        assert str(auth_plain(wire, ALICE)) == replies.AUTH_SUCCESSFUL


def test_implicit_tls_port_refuses_plaintext(mx: EngineProcess) -> None:
    with socket.create_connection(("127.0.0.1", mx.submissions_port), timeout=5) as sock:
        sock.sendall(b"EHLO client.example.org\r\n")
        try:
            data = sock.recv(1024)
        except (ConnectionError, TimeoutError):
            data = b""
    assert not data.startswith((b"220", b"250"))


def test_smtplib_login_over_starttls_and_implicit_tls(mx: EngineProcess) -> None:
    with smtplib.SMTP("localhost", mx.submission_port, timeout=10) as client:
        client.starttls(context=client_context(mx))
        assert client.login(ALICE, PASSWORD)[0] == 235
    with smtplib.SMTP_SSL("localhost", mx.submissions_port, timeout=10,
                          context=client_context(mx)) as client:
        client.ehlo()
        client.user, client.password = ALICE, PASSWORD
        assert client.auth("LOGIN", client.auth_login, initial_response_ok=False)[0] == 235


def test_smtplib_refuses_to_send_a_password_before_starttls(mx: EngineProcess) -> None:
    """The server offers no AUTH before TLS, so a client cannot even try to leak one."""
    with (smtplib.SMTP("localhost", mx.submission_port, timeout=10) as client,
          pytest.raises(smtplib.SMTPNotSupportedError)):
        client.login(ALICE, PASSWORD)


def test_tls_certificate_names_the_host(mx: EngineProcess) -> None:
    with implicit_tls_wire(mx) as wire:
        assert isinstance(wire.sock, ssl.SSLSocket)
        assert wire.sock.version() in ("TLSv1.2", "TLSv1.3")
        assert wire.sock.server_hostname == HOSTNAME


def test_the_mx_still_refuses_auth(mx: EngineProcess) -> None:
    with greeted(mx.smtp_port) as wire:
        assert str(wire.command(f"AUTH PLAIN {plain(ALICE)}")) == replies.AUTH_NOT_ENABLED


def test_no_password_reaches_the_engine_log(mx: EngineProcess) -> None:
    secret = "Tr0ub4dor&3-not-logged"
    with starttls_wire(mx) as wire:
        auth_plain(wire, ALICE, secret)
        wire.command(f"AUTH LOGIN {b64(ALICE)}")
        wire.command(b64(secret))
        auth_plain(wire, secret, secret)              # typed into the username field
        auth_plain(wire, ALICE)
    log = mx.log_text()
    for leaked in (secret, PASSWORD, b64(secret), plain(ALICE, secret), plain(ALICE)):
        assert leaked not in log
    assert '"event": "auth.login"' in log
    assert '"username": "(malformed)"' in log
