"""STARTTLS on the MX (RFC 3207): TLS 1.2 and 1.3 work and are recorded as ESMTPS, TLS 1.0
and 1.1 are refused, plaintext pipelined behind STARTTLS is discarded, and a second STARTTLS
inside TLS is refused without breaking the session.
"""

from __future__ import annotations

import smtplib
import ssl
import warnings

import pytest

from appliance.smtp import replies
from harness.engine import EngineProcess
from harness.smtp_wire import SMTPWire, greeted

HOSTNAME = "mx.mailstead.test"
MX_SETTINGS = {"limits__shutdown_grace": 2}


def verifying_context(mx: EngineProcess, version: ssl.TLSVersion) -> ssl.SSLContext:
    """A client context that trusts the engine's self-signed certificate, pinned to `version`."""
    context = ssl.create_default_context(cafile=str(mx.data_dir / "tls" / "cert.pem"))
    context.minimum_version = context.maximum_version = version
    return context


def legacy_context(version: ssl.TLSVersion) -> ssl.SSLContext:
    """A client that is willing to speak old TLS (OpenSSL 3 refuses it by default)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = context.maximum_version = version
    return context


def start_tls(wire: SMTPWire, context: ssl.SSLContext) -> ssl.SSLSocket:
    assert str(wire.command("STARTTLS")) == replies.READY_FOR_TLS
    tls = context.wrap_socket(wire.sock, server_hostname=HOSTNAME)
    wire.sock = tls
    return tls


@pytest.mark.parametrize(("version", "name"), [(ssl.TLSVersion.TLSv1_2, "TLSv1.2"),
                                               (ssl.TLSVersion.TLSv1_3, "TLSv1.3")],
                         ids=["TLSv1.2", "TLSv1.3"])
def test_starttls_delivers_and_is_recorded_as_esmtps(
        mx: EngineProcess, version: ssl.TLSVersion, name: str) -> None:
    rcpt = f"tls{name[-1]}@example.test"
    mx.add_account(rcpt)
    # "localhost" is in the certificate too, and smtplib checks the certificate against it.
    with smtplib.SMTP("localhost", mx.smtp_port, local_hostname="client.example.org",
                      timeout=10) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        code, _ = client.starttls(context=verifying_context(mx, version))
        assert code == 220
        assert isinstance(client.sock, ssl.SSLSocket)
        assert client.sock.version() == name
        client.ehlo()
        assert not client.has_extn("starttls")      # not offered again inside TLS
        assert not client.has_extn("auth")          # and no AUTH on the MX, even with TLS
        assert client.sendmail("sender@example.org", [rcpt], b"Subject: tls\r\n\r\nx\r\n") == {}
    (data,) = mx.messages(rcpt)
    assert f"by {HOSTNAME} (Mailstead) with ESMTPS id ".encode() in data


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1],
                         ids=["TLSv1.0", "TLSv1.1"])
def test_old_tls_versions_are_refused(mx: EngineProcess, version: ssl.TLSVersion) -> None:
    with greeted(mx.smtp_port) as wire:
        with pytest.raises((ssl.SSLError, ConnectionError)) as failed:
            start_tls(wire, legacy_context(version))
        # The client did offer the old version: the refusal came from the server.
        assert getattr(failed.value, "reason", None) not in ("NO_PROTOCOLS_AVAILABLE",
                                                             "NO_CIPHERS_AVAILABLE")
    with greeted(mx.smtp_port) as again:                 # the engine goes on
        assert str(again.command("NOOP")) == replies.OK


def test_the_legacy_client_itself_works_with_tls12(mx: EngineProcess) -> None:
    """The control for the test above: the same client settings succeed at TLS 1.2."""
    with greeted(mx.smtp_port) as wire:
        tls = start_tls(wire, legacy_context(ssl.TLSVersion.TLSv1_2))
        assert tls.version() == "TLSv1.2"
        assert wire.command("EHLO client.example.org").code == 250


def test_plaintext_pipelined_after_starttls_is_discarded(mx: EngineProcess) -> None:
    """STARTTLS command injection (CVE-2011-0411): commands sent in the same packet as
    STARTTLS must not be executed inside the TLS session."""
    with greeted(mx.smtp_port) as wire:
        wire.send(b"STARTTLS\r\nMAIL FROM:<injected@evil.test>\r\nNOOP\r\n")
        assert str(wire.read_reply()) == replies.READY_FOR_TLS
        wire.sock = verifying_context(mx, ssl.TLSVersion.TLSv1_3).wrap_socket(
            wire.sock, server_hostname=HOSTNAME)
        ehlo = wire.command("EHLO client.example.org")
        assert ehlo.lines[0] == f"250-{HOSTNAME}", str(ehlo)
        assert str(wire.command("MAIL FROM:<sender@example.org>")) == replies.SENDER_OK


def test_second_starttls_is_refused_and_session_goes_on(mx: EngineProcess) -> None:
    with greeted(mx.smtp_port) as wire:
        start_tls(wire, verifying_context(mx, ssl.TLSVersion.TLSv1_3))
        assert wire.command("EHLO client.example.org").code == 250
        assert str(wire.command("STARTTLS")) == replies.TLS_ALREADY_ACTIVE
        assert str(wire.command("NOOP")) == replies.OK
        assert str(wire.command("QUIT")) == replies.BYE


def test_mail_without_tls_is_still_accepted(mx: EngineProcess) -> None:
    """An MX cannot require TLS from the Internet (RFC 3207 4): plaintext works, as ESMTP."""
    mx.add_account("plain@example.test")
    with smtplib.SMTP("127.0.0.1", mx.smtp_port, timeout=10) as client:
        assert client.sendmail("sender@example.org", ["plain@example.test"],
                               b"Subject: plain\r\n\r\nx\r\n") == {}
    assert b" with ESMTP id " in mx.messages("plain@example.test")[0]
