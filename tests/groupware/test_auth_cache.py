"""The DAV login cache: a repeat request costs no verification, a wrong password is never
cached and drops the entry, a changed password stops working after the TTL; the cache
itself is bounded and expires. The app is the real one (Radicale, the guard, the
directory in mailstead.db), called in-process with a verifier that counts its calls."""

from __future__ import annotations

import time
from pathlib import Path

from appliance.groupware.app import create_app
from appliance.groupware.auth import LoginCache

from .conftest import (
    ALICE,
    BOB,
    CountingVerifier,
    add_accounts,
    basic,
    call,
    dav_settings,
    set_password,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_cache_entry_matches_only_the_same_password_and_expires() -> None:
    clock = Clock()
    cache = LoginCache(ttl=10, max_entries=2, clock=clock)
    cache.put("alice@example.test", "secret", ALICE)
    assert cache.get("alice@example.test", "secret") == ALICE
    assert cache.get("alice@example.test", "Secret") is None
    assert cache.get("Alice@example.test", "secret") is None
    clock.now += 10
    assert cache.get("alice@example.test", "secret") is None
    assert len(cache) == 0


def test_cache_is_bounded_least_recently_used_out() -> None:
    cache = LoginCache(ttl=60, max_entries=2)
    cache.put("a@x.test", "1", "a@x.test")
    cache.put("b@x.test", "2", "b@x.test")
    assert cache.get("a@x.test", "1") == "a@x.test"      # a is now the most recent
    cache.put("c@x.test", "3", "c@x.test")
    assert len(cache) == 2
    assert cache.get("b@x.test", "2") is None
    assert cache.get("a@x.test", "1") == "a@x.test"
    cache.drop("a@x.test")
    assert cache.get("a@x.test", "1") is None


def test_cache_holds_no_password() -> None:
    cache = LoginCache(ttl=60, max_entries=4)
    cache.put(ALICE, "a very recognisable password", ALICE)
    assert b"recognisable" not in repr(vars(cache)).encode()


def test_second_request_does_not_verify_again(tmp_path: Path) -> None:
    settings = dav_settings(tmp_path / "data")
    add_accounts(settings, [ALICE])
    verifier = CountingVerifier(settings)
    app = create_app(settings, verifier)
    for _ in range(3):
        assert call(app, "PROPFIND", f"/{ALICE}/", auth=basic(ALICE)).status == 207
    assert verifier.calls == 1


def test_wrong_password_is_never_cached_and_drops_the_entry(tmp_path: Path) -> None:
    settings = dav_settings(tmp_path / "data")
    add_accounts(settings, [ALICE])
    verifier = CountingVerifier(settings)
    app = create_app(settings, verifier)
    for _ in range(2):
        assert call(app, "PROPFIND", f"/{ALICE}/", auth=basic(ALICE, "wrong")).status == 401
    assert verifier.calls >= 2
    assert call(app, "PROPFIND", f"/{ALICE}/", auth=basic(ALICE)).status == 207
    before = verifier.calls
    assert call(app, "PROPFIND", f"/{ALICE}/", auth=basic(ALICE, "wrong")).status == 401
    assert verifier.calls > before                     # the wrong one was verified ...
    before = verifier.calls
    assert call(app, "PROPFIND", f"/{ALICE}/", auth=basic(ALICE)).status == 207
    assert verifier.calls > before                     # ... and dropped the cached right one


def test_changed_password_stops_working_after_the_ttl(tmp_path: Path) -> None:
    settings = dav_settings(tmp_path / "data", dav__auth_cache_seconds=1)
    add_accounts(settings, [ALICE, BOB])
    app = create_app(settings, CountingVerifier(settings))
    assert call(app, "PROPFIND", f"/{ALICE}/", auth=basic(ALICE)).status == 207
    set_password(settings, ALICE, "a new password 9")
    assert call(app, "PROPFIND", f"/{ALICE}/", auth=basic(ALICE)).status == 207   # cached
    time.sleep(1.2)
    assert call(app, "PROPFIND", f"/{ALICE}/", auth=basic(ALICE)).status == 401
    assert call(app, "PROPFIND", f"/{ALICE}/",
                auth=basic(ALICE, "a new password 9")).status == 207


def test_zero_ttl_verifies_every_request(tmp_path: Path) -> None:
    settings = dav_settings(tmp_path / "data", dav__auth_cache_seconds=0)
    add_accounts(settings, [ALICE])
    verifier = CountingVerifier(settings)
    app = create_app(settings, verifier)
    for _ in range(2):
        assert call(app, "PROPFIND", f"/{ALICE}/", auth=basic(ALICE)).status == 207
    assert verifier.calls == 2
