"""aiosmtpd's `SMTP.__init__`, minus the reflection it repeats for every connection.

aiosmtpd builds a protocol object per connection, and each time scans that object and the
handler with `inspect.getmembers`, `dir()` and `inspect.signature` to find the `smtp_*`
commands, `auth_*` mechanisms and `handle_*` hooks: about a quarter of the engine's CPU per
4 KB message. What it finds depends only on the class and the handler, so `CachedInitSMTP`
finds it once per (class, handler) and only binds the methods per connection. Everything
else is set exactly as aiosmtpd 1.4 sets it; tests/unit/test_cached_init.py compares the
two attribute by attribute, so an aiosmtpd upgrade that changes them fails there first.
Not supported (we never use them): `command_call_limit`, `proxy_protocol_timeout`, `loop`.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import ssl
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiosmtpd.smtp import (
    DATA_SIZE_DEFAULT,
    SMTP,
    AuthCallbackType,
    AuthenticatorType,
    __ident__,
    _AuthMechAttr,
    login_always_fail,
    make_loop,
)


@dataclass(frozen=True)
class _Blueprint:
    """What aiosmtpd's reflection finds for one protocol class and one handler."""

    commands: tuple[tuple[str, str], ...]          # (command, attribute) on the protocol
    mechanisms: tuple[tuple[str, str, bool], ...]  # (mechanism, attribute, on the protocol)
    hooks: tuple[tuple[str, str], ...]             # (hook, attribute) on the handler
    ehlo_hook_version: str | None


_BLUEPRINTS: weakref.WeakKeyDictionary[Any, dict[type, _Blueprint]] = (
    weakref.WeakKeyDictionary())


def _blueprint(cls: type, handler: Any) -> _Blueprint:
    by_class = _BLUEPRINTS.setdefault(handler, {})   # the handler outlives its sessions
    found = by_class.get(cls)
    if found is None:
        found = by_class[cls] = _reflect(cls, handler)
    return found


def _reflect(cls: type, handler: Any) -> _Blueprint:
    """Find commands, mechanisms and hooks the way SMTP.__init__ does."""
    commands = tuple((name[5:], name) for name in dir(cls) if name.startswith("smtp_"))
    mechanisms = tuple(
        (getattr(function, "__auth_mechanism_name__",
                 name.replace("auth_", "").replace("__", "-")), name, owner is cls)
        for owner in (cls, handler)
        for name, function in inspect.getmembers(owner) if name.startswith("auth_"))
    hooks = tuple((name.replace("handle_", ""), name)
                  for name in dir(handler) if name.startswith("handle_"))
    ehlo = getattr(handler, "handle_EHLO", None) if ("EHLO", "handle_EHLO") in hooks else None
    return _Blueprint(commands, mechanisms, hooks, _ehlo_hook_version(ehlo))


def _ehlo_hook_version(hook: Any) -> str | None:
    if hook is None:
        return None
    parameters = len(inspect.signature(hook).parameters)
    if parameters not in (4, 5):
        raise RuntimeError("Unsupported EHLO Hook")
    return "old" if parameters == 4 else "new"


def _event_loop() -> asyncio.AbstractEventLoop:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:          # built outside the loop (tests): what aiosmtpd would use
        return make_loop()


class CachedInitSMTP(SMTP):
    """aiosmtpd's SMTP whose constructor reflects on its class and handler only once."""

    def __init__(self, handler: Any, *, data_size_limit: int | None = DATA_SIZE_DEFAULT,
                 enable_SMTPUTF8: bool = False, decode_data: bool = False,  # noqa: N803
                 hostname: str | None = None, ident: str | None = None,
                 tls_context: ssl.SSLContext | None = None, require_starttls: bool = False,
                 timeout: float = 300, auth_required: bool = False,
                 auth_require_tls: bool = True,
                 auth_exclude_mechanism: Iterable[str] | None = None,
                 auth_callback: AuthCallbackType | None = None,
                 authenticator: AuthenticatorType | None = None) -> None:
        self.__ident__ = ident or __ident__
        self.loop = _event_loop()
        asyncio.StreamReaderProtocol.__init__(
            self, asyncio.StreamReader(loop=self.loop, limit=self.line_length_limit),
            client_connected_cb=self._cb_client_connected, loop=self.loop)
        self.event_handler = handler
        self.data_size_limit = data_size_limit
        self.enable_SMTPUTF8 = enable_SMTPUTF8
        self._decode_data = decode_data
        self.command_size_limits.clear()
        self.hostname = hostname or socket.getfqdn()
        self.tls_context = tls_context
        self.require_starttls = tls_context and require_starttls
        self._timeout_duration = timeout
        self._set_initial_state()
        self._auth_require_tls = auth_require_tls
        self._proxy_timeout = None
        self._authenticator = authenticator
        self._auth_callback = None if authenticator else auth_callback or login_always_fail
        self._auth_required = auth_required
        self._bind(_blueprint(type(self), handler), set(auth_exclude_mechanism or ()))
        self._enforce_call_limit = False

    def _set_initial_state(self) -> None:
        self._timeout_handle = None
        self._tls_handshake_okay = True
        self._tls_protocol = None
        self._original_transport = None
        self.session = None
        self.envelope = None
        self.transport = None
        self._handler_coroutine = None

    def _bind(self, blueprint: _Blueprint, excluded: set[str]) -> None:
        handler = self.event_handler
        self._auth_methods = {
            mechanism: _AuthMechAttr(getattr(self if own else handler, name), own)
            for mechanism, name, own in blueprint.mechanisms if mechanism not in excluded}
        self._handle_hooks = {hook: getattr(handler, name) for hook, name in blueprint.hooks}
        self._ehlo_hook_ver = blueprint.ehlo_hook_version
        self._smtp_methods = {command: getattr(self, name) for command, name in blueprint.commands}
