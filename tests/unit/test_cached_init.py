"""`CachedInitSMTP` builds exactly the object aiosmtpd's own `SMTP.__init__` builds.

Both constructors run on the same class and handler; every attribute must match: plain
values equal, bound-method tables binding the same functions to the same objects, and
per-connection objects (reader, futures) of the same type but not shared.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session, auth_mechanism

from appliance.smtp.cached_init import CachedInitSMTP

PER_CONNECTION = {"_closed", "_drain_waiters", "_stream_reader_wr", "_strong_reader",
                  "_client_connected_cb"}


class Probe(CachedInitSMTP):
    """A protocol class with its own command and mechanism, like ours have."""

    line_length_limit = 2001

    async def smtp_XPROBE(self, arg: str) -> None:
        await self.push("250 probed")

    async def auth_XOWN(self, _: SMTP, args: list[str]) -> AuthResult:
        return AuthResult(success=False)


class NewHandler:
    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        return responses

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return "250 OK"

    @auth_mechanism("X-NAMED")
    async def auth_WHATEVER(self, server: SMTP, args: list[str]) -> AuthResult:
        return AuthResult(success=True, auth_data=LoginPassword(b"a", b"b"))

    async def auth_PLAIN(self, server: SMTP, args: list[str]) -> AuthResult:
        return AuthResult(success=False)     # the handler's overrides the built-in one


class NoHooks:
    pass


def _context() -> ssl.SSLContext:
    return ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)


CASES: list[tuple[str, Callable[[], Any], dict[str, Any]]] = [
    ("defaults", NewHandler, {"hostname": "mx.example.test"}),
    ("no hooks", NoHooks, {"hostname": "h", "data_size_limit": None}),
    ("everything", NewHandler, {
        "hostname": "mx", "ident": "ESMTP Test", "data_size_limit": 1234,
        "enable_SMTPUTF8": True, "decode_data": True, "tls_context": _context(),
        "require_starttls": True, "timeout": 17, "auth_required": True,
        "auth_require_tls": False, "auth_exclude_mechanism": ["LOGIN", "X-NAMED"],
        "auth_callback": lambda mechanism, login, password: True}),
    ("authenticator", NewHandler, {
        "hostname": "mx", "authenticator": lambda *args: AuthResult(success=True)}),
]


def _comparable(name: str, value: Any, owner: object) -> Any:
    """A form of one attribute that is equal for equal construction, whoever built it."""
    def binding(method: Any) -> tuple[Any, Any]:
        return method.__func__, "self" if method.__self__ is owner else method.__self__

    if name in PER_CONNECTION:
        return type(value)
    if name in ("_smtp_methods", "_handle_hooks"):
        return {key: binding(method) for key, method in value.items()}
    if name == "_auth_methods":
        return {key: (*binding(entry.method), entry.is_builtin) for key, entry in value.items()}
    return value


def _built(constructor: Callable[..., None], handler: Any, kwargs: dict[str, Any]) -> Probe:
    probe = Probe.__new__(Probe)
    constructor(probe, handler, **kwargs)
    return probe


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize(("name", "make_handler", "kwargs"), CASES, ids=[c[0] for c in CASES])
def test_cached_construction_matches_aiosmtpd(
        name: str, make_handler: Callable[[], Any], kwargs: dict[str, Any]) -> None:
    async def build() -> None:
        handler = make_handler()
        for _ in range(2):                     # the second one comes from the cache
            ours = _built(CachedInitSMTP.__init__, handler, kwargs)
            theirs = _built(SMTP.__init__, handler, kwargs)
            assert set(vars(ours)) == set(vars(theirs))
            for key in vars(theirs):
                assert (_comparable(key, vars(ours)[key], ours)
                        == _comparable(key, vars(theirs)[key], theirs)), key
            assert vars(ours)["_strong_reader"] is not vars(theirs)["_strong_reader"]

    asyncio.run(build())


def test_methods_are_bound_to_each_connection() -> None:
    async def build() -> tuple[Probe, Probe]:
        handler = NewHandler()
        return (_built(CachedInitSMTP.__init__, handler, {"hostname": "a"}),
                _built(CachedInitSMTP.__init__, handler, {"hostname": "a"}))

    first, second = asyncio.run(build())
    assert first._smtp_methods["XPROBE"].__self__ is first
    assert second._smtp_methods["XPROBE"].__self__ is second
    assert first._auth_methods["XOWN"].method.__self__ is first
    assert first._auth_methods["X-NAMED"].method.__self__ is first.event_handler
