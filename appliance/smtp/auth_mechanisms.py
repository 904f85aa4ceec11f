"""SMTP AUTH (RFC 4954) with PLAIN and LOGIN for aiosmtpd, every login through the guard.

aiosmtpd offers the `auth_<NAME>` methods it finds on the handler (they replace its own).
We provide them instead of using its `authenticator=` callback because that callback is
synchronous: an argon2id verification inside it would stall every session of the process
for ~50 ms. Ours read the (initial) responses, parse them with the pure `auth.sasl`, await
`LoginGuard.login` (which verifies in a thread) and map its outcome to a catalogue reply.
"""

from __future__ import annotations

from typing import Any

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Session

from appliance.auth import sasl
from appliance.auth.guard import LoginGuard, LoginResult, Outcome
from appliance.core import log
from appliance.smtp import replies
from appliance.smtp.envelope import client_ip

PROTOCOL = "smtp"

_REPLIES = {
    Outcome.ACCEPTED: replies.AUTH_SUCCESSFUL,
    Outcome.REJECTED: replies.AUTH_FAILED,          # RFC 4954 6: 535 5.7.8
    Outcome.LOCKED: replies.AUTH_LOCKED,            # RFC 4954 6: 454 4.7.0, temporary
    Outcome.UNAVAILABLE: replies.AUTH_TEMPORARY,
}

_HANDLED = AuthResult(success=False, handled=True)   # the reply was already sent


def auth_reply(result: LoginResult) -> str:
    """The reply for the guard's answer."""
    return _REPLIES[result.outcome]


def authenticated_account(session: Session) -> str | None:
    """The account (`Address.key`) the session logged in as, or None."""
    account: Any = session.auth_data
    return account if session.authenticated and isinstance(account, str) else None


class SmtpAuthMechanisms:
    """Handler mixin: the PLAIN and LOGIN mechanisms, and nothing else, over the guard."""

    def __init__(self, guard: LoginGuard) -> None:
        self._guard = guard

    async def auth_PLAIN(self, server: SMTP, args: list[str]) -> AuthResult:
        """RFC 4616: one response `authzid NUL authcid NUL password`, maybe as SASL-IR."""
        message = await _first_response(server, args, b"")
        if message is None:
            return _HANDLED
        try:
            credentials = sasl.parse_plain(message)
        except sasl.SaslError as exc:
            return await _malformed(server, "PLAIN", exc)
        return await self._login(server, credentials.username, credentials.password)

    async def auth_LOGIN(self, server: SMTP, args: list[str]) -> AuthResult:
        """draft-murchison-sasl-login: username, then password, each answering a challenge."""
        username_data = await _first_response(server, args, sasl.LOGIN_USERNAME_CHALLENGE)
        if username_data is None:
            return _HANDLED
        password_data = await _challenge(server, sasl.LOGIN_PASSWORD_CHALLENGE)
        if password_data is None:
            return _HANDLED
        try:
            username = sasl.parse_login_username(username_data)
            password = sasl.parse_login_password(password_data)
        except sasl.SaslError as exc:
            return await _malformed(server, "LOGIN", exc)
        return await self._login(server, username, password)

    async def _login(self, server: SMTP, username: str, password: str) -> AuthResult:
        assert server.session is not None
        result = await self._guard.login(username, password, client_ip=client_ip(server.session),
                                         protocol=PROTOCOL)
        if result.ok:
            return AuthResult(success=True, auth_data=result.account,
                              message=replies.AUTH_SUCCESSFUL)
        return AuthResult(success=False, handled=False, message=auth_reply(result))


async def _first_response(server: SMTP, args: list[str], challenge: bytes) -> bytes | None:
    """The initial response given with AUTH (RFC 4954 4, SASL-IR), else the answer to
    `challenge`; None if the exchange ended (the reply is sent)."""
    if len(args) < 2:
        return await _challenge(server, challenge)
    try:
        return sasl.decode_response(args[1])
    except sasl.SaslError:
        await server.push(replies.AUTH_BAD_BASE64)
        return None


async def _challenge(server: SMTP, challenge: bytes) -> bytes | None:
    """Send `334 <base64 challenge>` and decode the answer; None if the client cancelled
    with "*" or sent bad base64 (aiosmtpd has replied) or an overlong line (we reply)."""
    try:
        answer = await server.challenge_auth(challenge)
    except ValueError:
        # StreamReader.readline gave up on a line longer than its whole buffer (64 KiB) and
        # dropped what it held: the rest of that line would be read as commands, so the
        # session ends here. No client has a reason to send a response that long.
        await server.push(replies.LINE_TOO_LONG)
        if server.transport is not None:
            server.transport.close()
        return None
    if answer is MISSING or not isinstance(answer, bytes):
        return None
    return answer


async def _malformed(server: SMTP, mechanism: str, error: sasl.SaslError) -> AuthResult:
    assert server.session is not None
    log.event("auth.malformed", protocol=PROTOCOL, mechanism=mechanism,
              client=client_ip(server.session), reason=str(error))
    await server.push(replies.AUTH_MALFORMED)
    return _HANDLED
