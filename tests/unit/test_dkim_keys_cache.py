"""DKIM public records are cached per key file, and read again when the file changes."""

from __future__ import annotations

import base64
import datetime
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from appliance.core.fsio import atomic_write
from appliance.dkim import keys

NOV = datetime.date(2026, 11, 27)
DEC = datetime.date(2026, 12, 3)


def _p_tag(record: str) -> bytes:
    return base64.b64decode(record.rsplit("p=", 1)[1])


def _public_raw(path: Path) -> bytes:
    key = serialization.load_pem_private_key(path.read_bytes(), None)
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    return key.public_key().public_bytes(serialization.Encoding.Raw,
                                         serialization.PublicFormat.Raw)


def test_cached_record_is_read_again_when_the_key_file_is_replaced(tmp_path: Path) -> None:
    state = keys.ensure_keys(tmp_path, "example.test", NOV)
    selector = state.active.ed25519
    path = keys.domain_dir(tmp_path, "example.test") / f"{selector}.pem"
    first = keys.public_record(tmp_path, "example.test", selector)
    assert _p_tag(first) == _public_raw(path)
    assert keys.public_record(tmp_path, "example.test", selector) == first
    assert path in keys._PUBLIC_RECORDS            # served from the cache the second time

    # The key is made anew under the same selector (same name, same size): new record.
    replacement = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    atomic_write(path, replacement, 0o600)
    second = keys.public_record(tmp_path, "example.test", selector)
    assert second != first
    assert _p_tag(second) == _public_raw(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600    # keys stay private


def test_rotation_shows_the_new_pair_beside_the_cached_one(tmp_path: Path) -> None:
    state = keys.ensure_keys(tmp_path, "example.test", NOV)
    before = keys.pair_records(tmp_path, "example.test", state.active)
    rotated = keys.start_rotation(tmp_path, "example.test", DEC)
    assert rotated.pending is not None
    pending = keys.pair_records(tmp_path, "example.test", rotated.pending)
    assert keys.pair_records(tmp_path, "example.test", rotated.active) == before
    assert {v for _, v in pending}.isdisjoint(v for _, v in before)
    assert [n for n, _ in pending] == ["ms202612r._domainkey.example.test",
                                       "ms202612e._domainkey.example.test"]


def test_a_cache_for_one_data_dir_is_not_served_for_another(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    keys.ensure_keys(one, "example.test", NOV)
    keys.ensure_keys(two, "example.test", NOV)
    selector = "ms202611r"
    assert keys.public_record(one, "example.test", selector) != keys.public_record(
        two, "example.test", selector)
