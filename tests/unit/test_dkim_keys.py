"""DKIM keys on disk: private files, dated selectors and the two-step rotation."""

from __future__ import annotations

import base64
import datetime
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from appliance.dkim import keys
from appliance.dkim.keys import DkimKeyError, SelectorPair

NOV = datetime.date(2026, 11, 27)
DEC = datetime.date(2026, 12, 3)


def test_first_keys_are_private_files_with_dated_selectors(tmp_path: Path) -> None:
    state = keys.ensure_keys(tmp_path, "Example.TEST", NOV)
    assert state == keys.DomainKeys("example.test", SelectorPair("ms202611"), None)
    assert (state.active.rsa, state.active.ed25519) == ("ms202611r", "ms202611e")
    directory = tmp_path / "dkim" / "example.test"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert sorted(p.name for p in directory.iterdir()) == [
        "ms202611e.pem", "ms202611r.pem", "state.json"]
    for path in directory.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    rsa_key = serialization.load_pem_private_key((directory / "ms202611r.pem").read_bytes(),
                                                 None)
    assert isinstance(rsa_key, rsa.RSAPrivateKey)
    assert rsa_key.key_size == 2048
    ed_key = serialization.load_pem_private_key((directory / "ms202611e.pem").read_bytes(),
                                                None)
    assert isinstance(ed_key, ed25519.Ed25519PrivateKey)
    # a second call keeps what exists
    assert keys.ensure_keys(tmp_path, "example.test", DEC) == state


def test_rotation_is_pending_until_activated(tmp_path: Path) -> None:
    first = keys.ensure_keys(tmp_path, "example.test", NOV)
    signing_before = keys.signing_keys(tmp_path, "example.test")
    rotated = keys.start_rotation(tmp_path, "example.test", DEC)
    assert rotated.active == first.active
    assert rotated.pending == SelectorPair("ms202612")
    assert keys.load_state(tmp_path, "example.test") == rotated
    # signing does not change while the new keys are pending
    assert keys.signing_keys(tmp_path, "example.test") == signing_before
    # rotating again while one is pending keeps that one
    assert keys.start_rotation(tmp_path, "example.test", DEC) == rotated
    active = keys.activate_pending(tmp_path, "example.test")
    assert active == keys.DomainKeys("example.test", SelectorPair("ms202612"), None)
    assert [k.selector for k in keys.signing_keys(tmp_path, "example.test")] == [
        "ms202612r", "ms202612e"]
    with pytest.raises(DkimKeyError, match="no pending"):
        keys.activate_pending(tmp_path, "example.test")
    # the same month again gets a distinct base; old key files stay
    again = keys.start_rotation(tmp_path, "example.test", DEC)
    assert again.pending == SelectorPair("ms202612-2")
    assert (tmp_path / "dkim" / "example.test" / "ms202611r.pem").is_file()


def test_rotation_needs_keys(tmp_path: Path) -> None:
    with pytest.raises(DkimKeyError, match="no DKIM keys"):
        keys.start_rotation(tmp_path, "example.test")
    assert keys.load_state(tmp_path, "example.test") is None
    assert keys.signing_keys(tmp_path, "example.test") == []


def test_next_base_skips_used_names() -> None:
    assert keys.next_base(set(), NOV) == "ms202611"
    assert keys.next_base({"ms202611", "ms202611-2"}, NOV) == "ms202611-3"


def test_public_records_match_the_private_keys(tmp_path: Path) -> None:
    state = keys.ensure_keys(tmp_path, "example.test", NOV)
    records = dict(keys.pair_records(tmp_path, "example.test", state.active))
    rsa_value = records["ms202611r._domainkey.example.test"]
    ed_value = records["ms202611e._domainkey.example.test"]
    assert rsa_value.startswith("v=DKIM1; k=rsa; p=")
    der = base64.b64decode(rsa_value.split("p=")[1])
    public = serialization.load_der_public_key(der)
    assert isinstance(public, rsa.RSAPublicKey)
    assert public.key_size == 2048
    # RFC 8463 4: the Ed25519 p= is the bare 32-byte key
    assert ed_value.startswith("v=DKIM1; k=ed25519; p=")
    assert len(base64.b64decode(ed_value.split("p=")[1])) == 32
    ed_signing = keys.signing_keys(tmp_path, "example.test")[1]
    assert ed_signing.algorithm == b"ed25519-sha256"
    seed = base64.b64decode(ed_signing.private)
    derived = ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert base64.b64encode(derived).decode() == ed_value.split("p=")[1]


def test_unreadable_state_is_an_error(tmp_path: Path) -> None:
    keys.ensure_keys(tmp_path, "example.test", NOV)
    (tmp_path / "dkim" / "example.test" / "state.json").write_text("{not json")
    with pytest.raises(DkimKeyError, match="unreadable"):
        keys.load_state(tmp_path, "example.test")
