"""Fuzz the updater's parsers of untrusted or hand-written input: loader entry names, the
GPT header and entry array, manifest.json, bounded gunzip and the maintenance window. Each
raises only its own error, and what parses prints back the same."""

from __future__ import annotations

import contextlib
import io
import struct
import zlib

from hypothesis import example, given
from hypothesis import strategies as st

from appliance.update import bundle, gpt, slots, window

NAMES = st.from_regex(r"root-[abc]?(\+[0-9-]{0,5})?\.conf", fullmatch=True) | st.text(max_size=40)


@given(NAMES)
@example("root-b+0-3.conf")
def test_entry_names_round_trip(name: str) -> None:
    parsed = slots.parse_entry_name(name)
    if parsed is not None:
        assert parsed.file_name() == name
        assert slots.parse_entry_name(parsed.bad_name().file_name()) == parsed.bad_name()


def header(count: int, size: int, entries_lba: int, entries_crc: int, hsize: int = 92) -> bytes:
    raw = bytearray(struct.pack("<8sIIII4Q16sQIII", b"EFI PART", 0x10000, hsize, 0, 0, 1, 0,
                                34, 0, bytes(16), entries_lba, count, size, entries_crc))
    raw += bytes(512 - len(raw))
    struct.pack_into("<I", raw, 16, zlib.crc32(bytes(raw[:hsize])))
    return bytes(raw)


@given(st.binary(min_size=512, max_size=600))
def test_gpt_header_raises_only_gpt_error(data: bytes) -> None:
    with contextlib.suppress(gpt.GptError):
        gpt.parse_header(data)


@given(st.integers(0, 2000), st.integers(0, 2048), st.integers(0, 10), st.binary(max_size=4096))
def test_gpt_entries_raise_only_gpt_error(count: int, size: int, lba: int, body: bytes) -> None:
    try:
        parsed = gpt.parse_header(header(count, size, lba, zlib.crc32(body)))
    except gpt.GptError:
        return
    try:
        parts = gpt.parse_entries(body, parsed)
    except gpt.GptError:
        return
    assert all(p.size > 0 for p in parts)


JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                       lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.text(max_size=12), inner, max_size=6), max_leaves=20)


@given(st.binary(max_size=300) | JSONISH.map(lambda v: repr(v).encode()))
def test_manifest_raises_only_bundle_error(raw: bytes) -> None:
    with contextlib.suppress(bundle.BundleError):
        bundle.parse_manifest(raw)


@given(st.binary(max_size=2000), st.integers(0, 5000))
def test_gunzip_raises_only_bundle_error_and_stays_bounded(raw: bytes, limit: int) -> None:
    try:
        out = b"".join(bundle.gunzip_bounded(io.BytesIO(b"\x1f\x8b\x08\x00" + raw), limit))
    except bundle.BundleError:
        return
    assert len(out) <= limit


@given(st.text(max_size=20) | st.from_regex(r"\d\d:\d\d-\d\d:\d\d", fullmatch=True))
def test_window_raises_only_value_error(text: str) -> None:
    try:
        parsed = window.parse_window(text)
    except ValueError:
        return
    assert parsed.immediate == (text.strip() == "now")
