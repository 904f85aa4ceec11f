"""Fuzz the SSH key parser (appliance/net/ssh_access.py), which reads what an admin pastes
into the console: it accepts or raises its own SshKeyError, never anything else, and what
it accepts renders back to lines it accepts again."""

from __future__ import annotations

import base64

from hypothesis import example, given
from hypothesis import strategies as st

from appliance.net.ssh_access import KEY_TYPES, MAX_KEYS, SshKeyError, parse_keys

ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=400)


def _string(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


# lines that get past the type and base64 checks: a known type and a blob built from
# wire strings (some well-formed, most not)
BLOBS = st.lists(st.binary(max_size=70), max_size=4).map(
    lambda parts: b"".join(_string(p) for p in parts))
KEY_LINES = st.builds(
    lambda t, inner, blob, raw, comment: " ".join(
        [t, base64.b64encode((_string(t.encode()) if inner else b"") + blob
                             + raw).decode(), comment]),
    st.sampled_from(sorted(KEY_TYPES)), st.booleans(), BLOBS, st.binary(max_size=8),
    st.text(max_size=20))
TEXTS = st.lists(KEY_LINES | ANY_TEXT, max_size=MAX_KEYS + 3).map("\n".join)


@given(TEXTS | ANY_TEXT)
@example("ssh-ed25519 " + base64.b64encode(_string(b"ssh-ed25519") + _string(b"\0" * 32))
         .decode())
@example("ssh-rsa " + base64.b64encode(_string(b"ssh-rsa") + _string(b"\x01\x00\x01")
                                       + _string(b"\xff" * 384)).decode())
@example("ssh-rsa " + base64.b64encode(_string(b"ssh-rsa") + _string(b"")
                                       + _string(b"")).decode())
def test_parse_keys_accepts_or_raises_its_own_error(text: str) -> None:
    try:
        keys = parse_keys(text)
    except SshKeyError:
        return              # refused: its own error, with a message (the type says so)
    assert len(keys) <= MAX_KEYS
    assert parse_keys("\n".join(key.line() for key in keys)) == keys
    for key in keys:
        assert key.fingerprint.startswith("SHA256:")
