"""The update bundle: one POSIX tar `mailstead-<version>-amd64.bundle` with `manifest.json`
first, then root-a's ext4 filesystem shrunk to its minimum (gzip), the kernel, the initrd and
the loader entry template of the release. Building it from a disk image; reading it back
bounded.

A bundle is read from untrusted bytes (TUF verified the file as a whole, but this code must
not trust even that): the manifest is at most MAX_MANIFEST bytes, member names come from a
fixed set (no paths at all, so no traversal), each member's size must be the manifest's and
its SHA-256 is checked while it streams; gunzip output is capped at the manifest's root size.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import tempfile
import time
import zlib
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from packaging.version import InvalidVersion, Version

from appliance.core.run import run_tool
from appliance.storage.db import migrations
from appliance.update import gpt, rootfs

FORMAT = 1
ARCH = "amd64"
MANIFEST = "manifest.json"
ROOT = "root.img.gz"
KERNEL = "vmlinuz"
INITRD = "initrd"
ENTRY = "entry.conf.in"
PAYLOAD: tuple[str, ...] = (ROOT, KERNEL, INITRD, ENTRY)      # in this order after MANIFEST
MAX_MANIFEST = 64 * 1024
MAX_ENTRY_TEMPLATE = 16 * 1024
ROOT_PART, ESP_PART, SOURCE_SLOT = "root-a", "esp", "a"
CHUNK = 1024 * 1024
MCOPY_TIMEOUT = 300.0
SHRUNK_ROOT = "root.ext4"     # the work dir's copy of root-a, shrunk (not a bundle member)


class BundleError(ValueError):
    """The bundle (or the image it is built from) is malformed; the message says how."""


@dataclass(frozen=True)
class FileInfo:
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """manifest.json of format 1."""

    version: str
    min_version: str
    data_schema: int
    arch: str
    created: str
    files: dict[str, FileInfo]
    root: FileInfo          # the uncompressed root image

    def to_json(self) -> bytes:
        data = {"format": FORMAT, "version": self.version, "min_version": self.min_version,
                "data_schema": self.data_schema, "arch": self.arch, "created": self.created,
                "files": {n: {"size": f.size, "sha256": f.sha256}
                          for n, f in self.files.items()},
                "root": {"size": self.root.size, "sha256": self.root.sha256}}
        return json.dumps(data, indent=2, sort_keys=True).encode() + b"\n"


def bundle_name(version: str) -> str:
    return f"mailstead-{version}-{ARCH}.bundle"


def current_data_schema() -> int:
    """The storage migration number this build needs: the newest shipped
    `appliance/storage/migrations/NNNN_*.sql` (db.py records it as PRAGMA user_version)."""
    shipped = migrations()
    return shipped[-1][0] if shipped else 0


# -- reading -----------------------------------------------------------------------------

def parse_manifest(raw: bytes) -> Manifest:
    """manifest.json's bytes -> Manifest, every field checked.

    Raises:
        BundleError: not JSON, a missing or ill-typed field, an unknown format or arch.
    """
    if len(raw) > MAX_MANIFEST:
        raise BundleError(f"manifest is larger than {MAX_MANIFEST} bytes")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"manifest is not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BundleError(f"manifest format is not {FORMAT}")
    if data.get("arch") != ARCH:
        raise BundleError(f"bundle is for {data.get('arch')!r}, not {ARCH}")
    files = data.get("files")
    if not isinstance(files, dict) or set(files) != set(PAYLOAD):
        raise BundleError(f"manifest files must be exactly {', '.join(PAYLOAD)}")
    return Manifest(
        version=_version(data, "version"), min_version=_version(data, "min_version"),
        data_schema=_count(data.get("data_schema"), "data_schema"), arch=ARCH,
        created=str(data.get("created", "")),
        files={name: _file_info(files[name], name) for name in PAYLOAD},
        root=_file_info(data.get("root"), "root"))


def _version(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise BundleError(f"manifest {key} is missing")
    try:
        Version(value)
    except InvalidVersion:
        raise BundleError(f"manifest {key} {value!r} is not a version") from None
    return value


def _count(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BundleError(f"manifest {what} must be a non-negative integer")
    return value


def _file_info(value: object, what: str) -> FileInfo:
    if not isinstance(value, dict):
        raise BundleError(f"manifest entry {what} is missing")
    digest = value.get("sha256")
    if not isinstance(digest, str) or len(digest) != 64 or digest.strip("0123456789abcdef"):
        raise BundleError(f"manifest sha256 of {what} is not 64 lower-case hex digits")
    return FileInfo(_count(value.get("size"), f"size of {what}"), digest)


def read_manifest(bundle: Path) -> Manifest:
    """The manifest of `bundle`, read from its first member only.

    Raises:
        BundleError: not a tar, manifest not first, too large, or malformed.
    """
    with bundle.open("rb") as raw, _open_tar(raw) as tar:
        info = _next_member(tar)
        if info is None or info.name != MANIFEST:
            raise BundleError(f"{MANIFEST} is not the bundle's first member")
        return parse_manifest(_read_small(tar, info, MAX_MANIFEST))


def _open_tar(raw: IO[bytes]) -> tarfile.TarFile:
    try:
        return tarfile.open(fileobj=raw, mode="r|")     # a stream: uncompressed, in order
    except tarfile.TarError as exc:
        raise BundleError(f"not a tar archive: {exc}") from None


def _next_member(tar: tarfile.TarFile) -> tarfile.TarInfo | None:
    try:
        info = tar.next()
    except tarfile.TarError as exc:
        raise BundleError(f"broken tar archive: {exc}") from None
    if info is None:
        return None
    if info.name not in (MANIFEST, *PAYLOAD):
        raise BundleError(f"unexpected member {info.name!r} in the bundle")
    if not info.isreg():
        raise BundleError(f"member {info.name} is not a regular file")
    return info


def _read_small(tar: tarfile.TarFile, info: tarfile.TarInfo, limit: int) -> bytes:
    if info.size > limit:
        raise BundleError(f"{info.name} is larger than {limit} bytes")
    stream = tar.extractfile(info)
    assert stream is not None         # isreg() was checked
    return stream.read(limit + 1)


class HashingReader(io.RawIOBase):
    """Reads a member, hashing it; at its end the size and SHA-256 must be the manifest's
    (only the size when `hashed` is False: the caller verifies the content another way)."""

    def __init__(self, stream: IO[bytes], name: str, expected: FileInfo,
                 hashed: bool = True) -> None:
        self.stream, self.name, self.expected = stream, name, expected
        self.digest = hashlib.sha256() if hashed else None
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self.stream.read(len(buffer))
        if self.digest is not None:
            self.digest.update(chunk)
        self.count += len(chunk)
        if not chunk:
            self.check()
        buffer[:len(chunk)] = chunk
        return len(chunk)

    def check(self) -> None:
        if self.count != self.expected.size or (
                self.digest is not None and self.digest.hexdigest() != self.expected.sha256):
            raise BundleError(f"{self.name} does not match the manifest (size or SHA-256)")


def members(bundle: Path, manifest: Manifest, *, unhashed: Collection[str] = ()
            ) -> Iterator[tuple[str, IO[bytes]]]:
    """Each payload member in order as (name, stream); each stream raises BundleError at its
    end when its bytes are not the manifest's. Read each stream to its end before the next.
    Members named in `unhashed` are checked for their size only: for a caller that verifies
    what they hold another way (install.py: the root, gunzipped and hashed on the device).

    Raises:
        BundleError: a member missing, repeated, out of order or of the wrong size.
    """
    with bundle.open("rb") as raw, _open_tar(raw) as tar:
        first = _next_member(tar)
        if first is None or first.name != MANIFEST:
            raise BundleError(f"{MANIFEST} is not the bundle's first member")
        for name in PAYLOAD:
            info = _next_member(tar)
            if info is None or info.name != name:
                raise BundleError(f"bundle member {name} missing or out of order")
            if info.size != manifest.files[name].size:
                raise BundleError(f"{name} is not the size the manifest says")
            stream = tar.extractfile(info)
            assert stream is not None
            yield name, io.BufferedReader(HashingReader(stream, name, manifest.files[name],
                                                        hashed=name not in unhashed))
        if _next_member(tar) is not None:
            raise BundleError("bundle has members after the entry template")


def gunzip_bounded(stream: IO[bytes], limit: int) -> Iterator[bytes]:
    """Decompressed chunks of a gzip stream, refusing output beyond `limit` bytes (the
    manifest's root size: a small gzip must not expand without end) or trailing garbage.

    Raises:
        BundleError: broken gzip data, or more than `limit` bytes.
    """
    inflater = zlib.decompressobj(wbits=31)       # 16 + 15: gzip header and trailer
    produced, data = 0, b""
    while not inflater.eof:
        if not data:
            data = stream.read(CHUNK)
        try:
            out = inflater.decompress(data, CHUNK)
        except zlib.error as exc:
            raise BundleError(f"root image is not valid gzip: {exc}") from None
        if not data and not out:
            raise BundleError("root image's gzip stream is truncated")
        data = inflater.unconsumed_tail
        produced += len(out)
        if produced > limit:
            raise BundleError(f"root image expands beyond {limit} bytes")
        if out:
            yield out
    if data or inflater.unused_data or stream.read(1):
        raise BundleError("data after the end of the root image's gzip stream")


# -- building ----------------------------------------------------------------------------

@dataclass(frozen=True)
class BuiltBundle:
    """What build_release made: the bundle, and the root filesystem's size in it (the
    manifest's root.size) beside the size of the partition it came from."""

    path: Path
    root_size: int
    partition_size: int


def build_bundle(image: Path, out_dir: Path, version: str, min_version: str,
                 data_schema: int, entry_template: Path) -> Path:
    """build_release(...).path."""
    return build_release(image, out_dir, version, min_version, data_schema,
                         entry_template).path


def build_release(image: Path, out_dir: Path, version: str, min_version: str,
                  data_schema: int, entry_template: Path) -> BuiltBundle:
    """Make `out_dir/mailstead-<version>-amd64.bundle` from a built disk image: root-a's
    ext4 filesystem shrunk to its minimum (e2fsprogs, on a copy in the work dir) and
    gzipped, `/root-a/vmlinuz` and `/root-a/initrd` from its ESP (mtools, no mount), and
    the loader entry template. The work dir (a copy of the root partition: 1.5 GiB for
    the appliance) is a temporary directory in `out_dir`, removed at the end.

    Raises:
        BundleError: no GPT, no root-a or esp partition, root-a is not a clean ext4, an
            e2fsprogs tool or mcopy is missing or failed, bad versions.
    """
    for value in (version, min_version):
        _version({"v": value}, "v")
    try:
        parts = {p.name: p for p in gpt.read_partitions(image)}
    except gpt.GptError as exc:
        raise BundleError(f"{image}: {exc}") from None
    if ROOT_PART not in parts or ESP_PART not in parts:
        raise BundleError(f"{image} has no {ROOT_PART} and {ESP_PART} partitions")
    template = entry_template.read_bytes()
    if len(template) > MAX_ENTRY_TEMPLATE:
        raise BundleError(f"{entry_template} is larger than {MAX_ENTRY_TEMPLATE} bytes")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".bundle-") as work_dir:
        work = Path(work_dir)
        try:
            size = rootfs.shrink_root(image, parts[ROOT_PART], work / SHRUNK_ROOT)
        except rootfs.RootFsError as exc:
            raise BundleError(str(exc)) from None
        root = _gzip_file(work / SHRUNK_ROOT, size, work / ROOT)
        (work / SHRUNK_ROOT).unlink()
        esp_offset = parts[ESP_PART].offset
        _mcopy(image, esp_offset, f"/root-{SOURCE_SLOT}/vmlinuz", work / KERNEL)
        _mcopy(image, esp_offset, f"/root-{SOURCE_SLOT}/initrd", work / INITRD)
        (work / ENTRY).write_bytes(template)
        manifest = Manifest(version, min_version, data_schema, ARCH,
                            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                            {name: _hash_file(work / name) for name in PAYLOAD}, root)
        (work / MANIFEST).write_bytes(manifest.to_json())
        target = out_dir / bundle_name(version)
        _write_tar(work, work / "bundle.tmp")
        os.replace(work / "bundle.tmp", target)
    return BuiltBundle(target, root.size, parts[ROOT_PART].size)


def _gzip_file(path: Path, size: int, out: Path) -> FileInfo:
    """The first `size` bytes of `path` into a gzip file; their size and SHA-256."""
    digest = hashlib.sha256()
    with path.open("rb") as src, out.open("wb") as raw, \
            gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as packed:
        left = size
        while left:
            chunk = src.read(min(CHUNK, left))
            if not chunk:
                raise BundleError(f"{path} is shorter than its filesystem")
            digest.update(chunk)
            packed.write(chunk)
            left -= len(chunk)
    return FileInfo(size, digest.hexdigest())


def _mcopy(image: Path, offset: int, source: str, dest: Path) -> None:
    done = run_tool(["mcopy", "-n", "-i", f"{image}@@{offset}", f"::{source}", str(dest)],
                    MCOPY_TIMEOUT, {"MTOOLS_SKIP_CHECK": "1"})
    if done.returncode != 0:
        raise BundleError(f"cannot copy {source} from the image's ESP: "
                          f"{done.stderr.decode(errors='replace').strip()}")


def _hash_file(path: Path) -> FileInfo:
    digest = hashlib.sha256()
    with path.open("rb") as src:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
    return FileInfo(path.stat().st_size, digest.hexdigest())


def _write_tar(work: Path, out: Path) -> None:
    with out.open("wb") as raw:
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for name in (MANIFEST, *PAYLOAD):
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = (work / name).stat().st_size, 0o644, 0
                with (work / name).open("rb") as src:
                    tar.addfile(info, src)
        raw.flush()
        os.fsync(raw.fileno())
