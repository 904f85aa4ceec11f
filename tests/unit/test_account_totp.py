"""A mail user's TOTP second factor (RFC 6238): pending until a code confirms it, one step
of drift, no code accepted twice, and the RFC's own test vectors through pyotp."""

from __future__ import annotations

import base64
import sqlite3
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest

from appliance.storage.account_totp import (
    STEP_SECONDS,
    AccountTotp,
    TotpError,
    TotpState,
    normalise_code,
    provisioning_uri,
)
from appliance.storage.directory import SqliteDirectory
from harness.account_db import database_with_account
from harness.clock import ManualClock

ALICE = "alice@example.test"


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    return database_with_account(tmp_path, ALICE)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def totp(conn: sqlite3.Connection, clock: ManualClock) -> AccountTotp:
    return AccountTotp(conn, clock)


def code(secret: str, at: float) -> str:
    return pyotp.TOTP(secret).at(at)


def test_rfc6238_appendix_b_vector() -> None:
    """SHA-1 seed "12345678901234567890", T = 59 s, 8 digits: 94287082 (we show 6)."""
    secret = base64.b32encode(b"12345678901234567890").decode()
    assert pyotp.TOTP(secret, digits=8).at(59) == "94287082"
    assert pyotp.TOTP(secret).at(59) == "287082"


def test_enrolment_is_pending_until_a_code_confirms_it(totp: AccountTotp,
                                                     clock: ManualClock) -> None:
    assert totp.state(ALICE) == TotpState(False, False)
    secret = totp.begin(ALICE)
    assert totp.state(ALICE) == TotpState(False, True)
    assert totp.pending_secret(ALICE) == secret
    assert totp.totp_secret(ALICE) is None
    assert not totp.verify(ALICE, code(secret, clock.now))      # not on yet
    wrong = f"{(int(code(secret, clock.now)) + 1) % 10**6:06d}"
    assert not totp.confirm(ALICE, wrong)
    assert not totp.state(ALICE).enabled
    assert totp.confirm(ALICE, code(secret, clock.now))
    assert totp.state(ALICE) == TotpState(True, False)
    assert totp.totp_secret(ALICE) == secret
    assert totp.enabled(ALICE)


def test_a_new_enrolment_replaces_a_pending_one_but_not_an_enabled_one(
        totp: AccountTotp, clock: ManualClock) -> None:
    first = totp.begin(ALICE)
    second = totp.begin(ALICE)
    assert first != second
    assert totp.pending_secret(ALICE) == second
    assert totp.confirm(ALICE, code(second, clock.now))
    with pytest.raises(TotpError, match="already on"):
        totp.begin(ALICE)
    totp.disable(ALICE)
    assert totp.state(ALICE) == TotpState(False, False)


def test_codes_within_one_step_of_now_are_accepted_once(totp: AccountTotp,
                                                        clock: ManualClock) -> None:
    secret = totp.begin(ALICE)
    assert totp.confirm(ALICE, code(secret, clock.now - STEP_SECONDS))
    assert not totp.verify(ALICE, code(secret, clock.now - STEP_SECONDS))   # replay
    assert totp.verify(ALICE, code(secret, clock.now))
    assert not totp.verify(ALICE, code(secret, clock.now))                   # replay
    assert totp.verify(ALICE, code(secret, clock.now + STEP_SECONDS))
    assert not totp.verify(ALICE, code(secret, clock.now))                   # older step
    clock.now += 10 * STEP_SECONDS
    assert not totp.verify(ALICE, code(secret, clock.now - 2 * STEP_SECONDS))  # too old
    assert not totp.verify(ALICE, code(secret, clock.now + 2 * STEP_SECONDS))  # too new
    assert totp.verify(ALICE, " ".join([code(secret, clock.now)[:3],
                                        code(secret, clock.now)[3:]]))


@pytest.mark.parametrize("typed", ["", "12345", "1234567", "12a456", "١٢٣٤٥٦", "123 45"])
def test_malformed_codes(typed: str) -> None:
    assert normalise_code(typed) is None


def test_unknown_account(totp: AccountTotp) -> None:
    with pytest.raises(TotpError, match="no such account"):
        totp.begin("nobody@example.test")
    assert not totp.verify("nobody@example.test", "123456")
    assert not totp.enabled("not an address")


def test_provisioning_uri_names_the_account_and_issuer() -> None:
    secret = pyotp.random_base32()
    uri = urlsplit(provisioning_uri(secret, ALICE))
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert uri.path == "/Mailstead:alice%40example.test"
    query = parse_qs(uri.query)
    assert query["secret"] == [secret]
    assert query["issuer"] == ["Mailstead"]


def test_deleting_the_account_deletes_its_secret(totp: AccountTotp,
                                                 conn: sqlite3.Connection) -> None:
    totp.begin(ALICE)
    SqliteDirectory(conn).remove_account(ALICE)
    assert conn.execute("SELECT count(*) FROM account_totp").fetchone()[0] == 0
