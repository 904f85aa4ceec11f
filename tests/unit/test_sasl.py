"""SASL PLAIN (RFC 4616) and LOGIN parsing: fields, limits, authzid, base64 and SASL-IR."""

from __future__ import annotations

import base64

import pytest

from appliance.auth import sasl
from appliance.auth.sasl import Credentials, SaslError


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- base64 responses ------------------------------------------------------------------------

def test_decode_response_round_trips() -> None:
    assert sasl.decode_response(b64(b"\x00alice@example.test\x00pw")) == (
        b"\x00alice@example.test\x00pw")


def test_equals_sign_is_an_empty_initial_response() -> None:
    """RFC 4954 4: "=" stands for an initial response of zero length."""
    assert sasl.decode_response("=") == b""


def test_surrounding_whitespace_is_ignored() -> None:
    assert sasl.decode_response(f"  {b64(b'x')} ") == b"x"


@pytest.mark.parametrize("text", ["not base64!", "YWJ", "=YWJj", "YW Jj", "ä", "YWJjZA"])
def test_bad_base64_is_refused(text: str) -> None:
    with pytest.raises(SaslError, match="base64"):
        sasl.decode_response(text)


def test_oversized_response_is_refused_before_decoding() -> None:
    with pytest.raises(SaslError, match="longer than"):
        sasl.decode_response("A" * (sasl.MAX_RESPONSE_CHARS + 4))


def test_largest_allowed_plain_message_fits_the_response_limit() -> None:
    message = (b"a" * sasl.MAX_IDENTITY_OCTETS + b"\x00" + b"a" * sasl.MAX_IDENTITY_OCTETS
               + b"\x00" + b"p" * sasl.MAX_PASSWORD_OCTETS)
    assert len(message) == sasl.MAX_PLAIN_OCTETS
    assert sasl.parse_plain(sasl.decode_response(b64(message))).password == (
        "p" * sasl.MAX_PASSWORD_OCTETS)


# -- PLAIN -----------------------------------------------------------------------------------

def test_plain_without_authzid() -> None:
    assert sasl.parse_plain(b"\x00alice@example.test\x00s3cret pass") == Credentials(
        "alice@example.test", "s3cret pass", "")


def test_plain_with_equal_authzid_any_case() -> None:
    parsed = sasl.parse_plain(b"Alice@Example.TEST\x00alice@example.test\x00pw")
    assert parsed.username == "alice@example.test"
    assert parsed.authzid == "Alice@Example.TEST"


def test_plain_refuses_acting_as_someone_else() -> None:
    """RFC 4616 2: the server may refuse an authzid; we allow no proxy authorization."""
    with pytest.raises(SaslError, match="authzid"):
        sasl.parse_plain(b"bob@example.test\x00alice@example.test\x00pw")


def test_plain_keeps_utf8_and_spaces_in_the_password() -> None:
    parsed = sasl.parse_plain("\x00josé@exämple.test\x00 pässwörd ✓ ".encode())
    assert parsed.username == "josé@exämple.test"
    assert parsed.password == " pässwörd ✓ "


@pytest.mark.parametrize(("message", "reason"), [
    (b"", "two NUL"),
    (b"alice\x00pw", "two NUL"),
    (b"\x00alice\x00pw\x00extra", "two NUL"),
    (b"\x00\x00pw", "empty authcid"),
    (b"\x00alice\x00", "empty password"),
    (b"\x00al\xffice\x00pw", "UTF-8"),
    (b"\x00alice\x00p\xc3", "UTF-8"),
    (b"\x00" + b"a" * (sasl.MAX_IDENTITY_OCTETS + 1) + b"\x00pw", "authcid longer"),
    (b"\x00alice\x00" + b"p" * (sasl.MAX_PASSWORD_OCTETS + 1), "longer than"),
])
def test_plain_refuses_malformed_messages(message: bytes, reason: str) -> None:
    with pytest.raises(SaslError, match=reason):
        sasl.parse_plain(message)


def test_the_password_is_not_in_the_repr_or_the_errors() -> None:
    parsed = sasl.parse_plain(b"\x00alice@example.test\x00hunter2-secret")
    assert "hunter2" not in repr(parsed)
    with pytest.raises(SaslError) as failed:
        sasl.parse_plain(b"bob\x00alice\x00hunter2-secret")
    assert "hunter2" not in str(failed.value)


# -- LOGIN -----------------------------------------------------------------------------------

def test_login_fields() -> None:
    assert sasl.parse_login_username(b"alice@example.test") == "alice@example.test"
    assert sasl.parse_login_password("pässword".encode()) == "pässword"


@pytest.mark.parametrize("data", [b"", b"a\x00b", b"\xff", b"a" * (sasl.MAX_IDENTITY_OCTETS + 1)])
def test_login_username_refuses_bad_data(data: bytes) -> None:
    with pytest.raises(SaslError):
        sasl.parse_login_username(data)


@pytest.mark.parametrize("data", [b"", b"pw\x00", b"\xc3", b"p" * (sasl.MAX_PASSWORD_OCTETS + 1)])
def test_login_password_refuses_bad_data(data: bytes) -> None:
    with pytest.raises(SaslError):
        sasl.parse_login_password(data)


def test_login_challenges_are_the_customary_ones() -> None:
    assert b64(sasl.LOGIN_USERNAME_CHALLENGE) == "VXNlcm5hbWU6"
    assert b64(sasl.LOGIN_PASSWORD_CHALLENGE) == "UGFzc3dvcmQ6"
