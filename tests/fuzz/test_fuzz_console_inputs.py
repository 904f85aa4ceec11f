"""Fuzzing the console's parsers of untrusted input: the setup code, admin usernames, the
login redirect target, TOTP codes, client addresses and the session cookie."""

from __future__ import annotations

import hashlib

from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st

from webui import admins, security, setup_code
from webui.blueprints.auth import safe_next

ANY_TEXT = st.text(max_size=300)


@given(ANY_TEXT)
def test_setup_code_normalise_is_bounded_and_idempotent(typed: str) -> None:
    normal = setup_code.normalise(typed)
    assert len(normal) <= setup_code.MAX_TYPED
    assert setup_code.normalise(normal) == normal
    assert "-" not in normal
    assert not any(c.isspace() for c in normal)


@given(st.text(alphabet=setup_code.ALPHABET, min_size=12, max_size=12),
       st.sampled_from(["", "-", " ", "  "]), st.booleans())
def test_setup_code_typed_in_any_form_matches(raw: str, separator: str, lower: bool) -> None:
    typed = separator.join(raw[i:i + 4] for i in range(0, 12, 4))
    typed = typed.lower() if lower else typed
    shown = "-".join(raw[i:i + 4] for i in range(0, 12, 4))
    assert setup_code.normalise(typed) == setup_code.normalise(shown)


@given(ANY_TEXT)
def test_usernames_are_valid_or_refused(typed: str) -> None:
    try:
        name = admins.normalise_username(typed)
    except admins.AdminError:
        return
    assert admins.USERNAME.fullmatch(name)
    assert "@" not in name
    assert admins.normalise_username(name) == name


@given(ANY_TEXT)
def test_safe_next_never_leaves_the_site(target: str) -> None:
    result = _safe(target)
    assert result.startswith("/")
    assert not result.startswith("//")
    assert "\\" not in result


def _safe(target: str) -> str:
    """safe_next needs an app for its url_for fallback: a bare one will do."""
    app = Flask("fuzz")
    app.add_url_rule("/", "home.index", lambda: "")
    with app.test_request_context():
        return safe_next(target)


@given(st.text(max_size=12), st.binary(min_size=10, max_size=10))
def test_totp_step_accepts_only_six_digits(code: str, key: bytes) -> None:
    import base64

    secret = base64.b32encode(key).decode()
    step = admins.totp_step(secret, code)
    if step is not None:
        assert "".join(code.split()).isascii()
        assert "".join(code.split()).isdigit()
        assert len("".join(code.split())) == 6


@settings(max_examples=300)
@given(st.one_of(ANY_TEXT, st.ip_addresses().map(str)))
def test_client_allowed_never_raises(remote: str) -> None:
    result = security.client_allowed(remote, "127.0.0.0/8, ::1, 10.0.0.0/8, fc00::/7")
    assert isinstance(result, bool)


@given(st.text(max_size=100))
def test_session_id_hash_is_total(sid: str) -> None:
    from webui.sessions import _hash

    assert _hash(sid) == hashlib.sha256(sid.encode("ascii", "replace")).hexdigest()
