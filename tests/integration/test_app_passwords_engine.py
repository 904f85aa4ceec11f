"""App passwords against the real engine: IMAP LOGIN, POP3 USER/PASS and SMTP AUTH accept an
app password made while the engine runs, in any typed form, and refuse it once revoked."""

from __future__ import annotations

import imaplib
import poplib
import smtplib
from collections.abc import Callable

import pytest

from appliance.auth.passwords import Passwords
from appliance.storage.app_passwords import AppPasswordStore, NewAppPassword
from appliance.storage.db import open_database
from harness.engine import FAST_ARGON2, EngineProcess
from harness.imap import ssl_client, starttls_client
from harness.pop3 import ssl_client as pop3_client
from harness.submission import PASSWORD, auth_plain, implicit_tls_wire, smtp_client

# Failed logins are part of the test: no delay, no lockout from 127.0.0.1.
MX_SETTINGS = {"auth__failure_delay_ms": 0, "auth__max_failures_per_ip": 10_000,
               "auth__max_failures": 1000}


def store(mx: EngineProcess) -> AppPasswordStore:
    """The console's view of the engine's database (the engine's own argon2 parameters)."""
    passwords = Passwords(FAST_ARGON2["auth.argon2_time_cost"],
                          FAST_ARGON2["auth.argon2_memory_kib"],
                          FAST_ARGON2["auth.argon2_parallelism"])
    return AppPasswordStore(open_database(mx.data_dir), passwords)


@pytest.fixture
def app_password(mx: EngineProcess,
                 new_account: Callable[[str], str]) -> tuple[str, NewAppPassword]:
    address = new_account("app")
    return address, store(mx).create(address, "phone")


def imap_login_works(mx: EngineProcess, address: str, password: str) -> bool:
    client = ssl_client(mx)
    try:
        client.login(address, password)
    except imaplib.IMAP4.error as exc:
        refusal = str(exc)
    else:
        refusal = ""
    finally:
        client.shutdown()
    assert not refusal or "AUTHENTICATIONFAILED" in refusal, refusal
    return not refusal


def smtp_auth_works(mx: EngineProcess, address: str, password: str) -> bool:
    with implicit_tls_wire(mx) as wire:
        reply = auth_plain(wire, address, password)
    assert reply.code in (235, 535), str(reply)
    return reply.code == 235


def pop3_login_works(mx: EngineProcess, address: str, password: str) -> bool:
    client = pop3_client(mx)
    try:
        client.user(address)
        client.pass_(password)
    except poplib.error_proto:
        return False
    client.quit()
    return True


def test_imap_login_with_an_app_password_then_revoked(
        mx: EngineProcess, app_password: tuple[str, NewAppPassword]) -> None:
    address, made = app_password
    client = starttls_client(mx, address, made.secret)
    try:
        status, _ = client.select("INBOX")
        assert status == "OK"
    finally:
        client.logout()
    assert imap_login_works(mx, address, made.secret.replace("-", "").upper())
    assert imap_login_works(mx, address, PASSWORD)            # the account password too
    store(mx).revoke(address, made.record.id)
    assert not imap_login_works(mx, address, made.secret)
    assert imap_login_works(mx, address, PASSWORD)


def test_smtp_auth_with_an_app_password_sends_then_revoked(
        mx: EngineProcess, app_password: tuple[str, NewAppPassword]) -> None:
    address, made = app_password
    with smtp_client(mx, address, made.secret) as client:
        refused = client.sendmail(address, ["bob@example.test"],
                                  f"From: {address}\r\nTo: bob@example.test\r\n"
                                  "Subject: from my phone\r\n\r\nSent with an app password.\r\n")
        assert refused == {}
    assert any(b"Subject: from my phone" in m for m in mx.messages("bob@example.test"))
    store(mx).revoke(address, made.record.id)
    assert not smtp_auth_works(mx, address, made.secret)
    with pytest.raises(smtplib.SMTPAuthenticationError):
        smtp_client(mx, address, made.secret)
    assert smtp_auth_works(mx, address, PASSWORD)


def test_pop3_login_with_an_app_password_then_revoked(
        mx: EngineProcess, app_password: tuple[str, NewAppPassword]) -> None:
    address, made = app_password
    assert pop3_login_works(mx, address, made.secret)
    store(mx).revoke(address, made.record.id)
    assert not pop3_login_works(mx, address, made.secret)
    assert pop3_login_works(mx, address, PASSWORD)


def test_an_app_password_opens_only_its_own_account(
        mx: EngineProcess, app_password: tuple[str, NewAppPassword]) -> None:
    _address, made = app_password
    assert not imap_login_works(mx, "alice@example.test", made.secret)
    assert not smtp_auth_works(mx, "alice@example.test", made.secret)


def test_the_log_never_holds_an_app_password(
        mx: EngineProcess, app_password: tuple[str, NewAppPassword]) -> None:
    address, made = app_password
    assert imap_login_works(mx, address, made.secret)
    assert not imap_login_works(mx, address, made.secret[:-1] + "x"
                                if not made.secret.endswith("x") else made.secret[:-1] + "y")
    log = mx.log_text()
    assert made.secret not in log
    assert made.secret.replace("-", "") not in log
    assert made.secret[:-1] not in log
