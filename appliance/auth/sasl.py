"""SASL PLAIN (RFC 4616) and LOGIN: pure parsing of what a client sends, with size limits.

Protocol-neutral: SMTP AUTH, IMAP AUTHENTICATE and POP3 AUTH all carry the same base64
responses; each protocol driver reads the lines, these functions decide what they mean.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

# RFC 4616 2: the server "MUST be capable of accepting authzid, authcid, and passwd of up to
# 255 octets"; we accept twice that for identities and enough for the longest password the
# account rules allow (1024 characters of up to 4 UTF-8 octets each).
MAX_IDENTITY_OCTETS = 510
MAX_PASSWORD_OCTETS = 4096
MAX_PLAIN_OCTETS = 2 * MAX_IDENTITY_OCTETS + MAX_PASSWORD_OCTETS + 2
MAX_RESPONSE_CHARS = 4 * ((MAX_PLAIN_OCTETS + 2) // 3)   # base64 of the largest message

# The challenges of the LOGIN mechanism (draft-murchison-sasl-login 2.1): clients ignore
# their text, but these are the ones every other server sends.
LOGIN_USERNAME_CHALLENGE = b"Username:"
LOGIN_PASSWORD_CHALLENGE = b"Password:"

# RFC 4954 4: "=" is a present but empty initial response; "*" cancels the exchange.
EMPTY_INITIAL_RESPONSE = "="
CANCEL = "*"


class SaslError(ValueError):
    """The client's SASL response is malformed; `str(error)` says why (never the secret)."""


@dataclass(frozen=True)
class Credentials:
    """A username and password from PLAIN or LOGIN; the password never shows in a repr."""

    username: str
    password: str = field(repr=False)
    authzid: str = ""


def decode_response(text: str) -> bytes:
    """Decode one base64 client response (RFC 4648 section 4, no line breaks).

    Raises:
        SaslError: too long, not base64, or padded wrongly.
    """
    text = text.strip()
    if text == EMPTY_INITIAL_RESPONSE:
        return b""
    if len(text) > MAX_RESPONSE_CHARS:
        raise SaslError(f"response longer than {MAX_RESPONSE_CHARS} characters")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise SaslError("response is not valid base64") from exc


def parse_plain(message: bytes) -> Credentials:
    """Parse a PLAIN message: `[authzid] NUL authcid NUL passwd` (RFC 4616 section 2).

    The authorization identity must be empty or name the authenticating user: acting as
    someone else (proxy authorization) is not offered.

    Raises:
        SaslError: wrong number of fields, empty or oversized fields, invalid UTF-8, or an
            authzid naming another user.
    """
    if len(message) > MAX_PLAIN_OCTETS:
        raise SaslError(f"PLAIN message longer than {MAX_PLAIN_OCTETS} octets")
    fields = message.split(b"\x00")
    if len(fields) != 3:
        raise SaslError("PLAIN message needs exactly two NUL separators")
    authzid = _text(fields[0], "authzid", MAX_IDENTITY_OCTETS, allow_empty=True)
    username = _text(fields[1], "authcid", MAX_IDENTITY_OCTETS)
    password = _text(fields[2], "password", MAX_PASSWORD_OCTETS)
    if authzid and authzid.casefold() != username.casefold():
        raise SaslError("authzid differs from authcid (proxy authorization not allowed)")
    return Credentials(username, password, authzid)


def parse_login_username(data: bytes) -> str:
    """The decoded answer to LOGIN's username challenge.

    Raises:
        SaslError: empty, oversized, containing NUL, or invalid UTF-8.
    """
    return _text(data, "username", MAX_IDENTITY_OCTETS)


def parse_login_password(data: bytes) -> str:
    """The decoded answer to LOGIN's password challenge.

    Raises:
        SaslError: empty, oversized, containing NUL, or invalid UTF-8.
    """
    return _text(data, "password", MAX_PASSWORD_OCTETS)


def _text(data: bytes, what: str, limit: int, *, allow_empty: bool = False) -> str:
    """One field as text: RFC 4616 `1*SAFE`, any UTF-8 character except NUL."""
    if not data and not allow_empty:
        raise SaslError(f"empty {what}")
    if len(data) > limit:
        raise SaslError(f"{what} longer than {limit} octets")
    if b"\x00" in data:
        raise SaslError(f"{what} contains NUL")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SaslError(f"{what} is not valid UTF-8") from exc
