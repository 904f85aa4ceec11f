"""The update bundle built from a real small disk image (sfdisk GPT, mkfs.vfat + mtools
ESP, mkfs.ext4 -d root), read back, and refused when tampered with, oversized, reordered
or carrying names that are not ours."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import zlib
from pathlib import Path

import pytest

from appliance.storage.db import migrations
from appliance.update import bundle, gpt
from appliance.update.bundle import BundleError
from harness import update_image


@pytest.fixture(autouse=True, scope="module")
def _image_tools() -> None:
    update_image.ensure_tools()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return update_image.make_bundle(tmp_path_factory.mktemp("bundle"), "0.2.0", "0.1.0")


def read_all(path: Path) -> dict[str, bytes]:
    manifest = bundle.read_manifest(path)
    return {name: stream.read() for name, stream in bundle.members(path, manifest)}


def entries(path: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(path) as tar:
        out = []
        for info in tar:
            stream = tar.extractfile(info)
            assert stream is not None
            out.append((info.name, stream.read()))
        return out


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_bundle_holds_the_root_partition_kernel_initrd_and_template(built: Path) -> None:
    assert built.name == "mailstead-0.2.0-amd64.bundle"
    manifest = bundle.read_manifest(built)
    assert (manifest.version, manifest.min_version, manifest.arch) == ("0.2.0", "0.1.0", "amd64")
    assert manifest.data_schema == bundle.current_data_schema() == migrations()[-1][0]
    data = read_all(built)
    assert list(data) == list(bundle.PAYLOAD)
    root = gzip.decompress(data[bundle.ROOT])       # the shrunk filesystem (test_update_rootfs)
    assert manifest.root.size == len(root) < 6 * 1024 * 1024
    assert manifest.root.sha256 == hashlib.sha256(root).hexdigest()
    assert data[bundle.KERNEL].startswith(b"vmlinuz of 0.2.0")
    assert data[bundle.INITRD].startswith(b"initrd of 0.2.0")
    assert data[bundle.ENTRY] == update_image.ENTRY_TEMPLATE.read_bytes()
    assert next(name for name, _ in entries(built)) == bundle.MANIFEST


def test_gpt_of_the_image_is_parsed(built: Path) -> None:
    parts = gpt.read_partitions(built.parent / "build" / "mailstead-0.2.0-amd64.img")
    assert [p.name for p in parts] == ["esp", "root-a", "root-b", "data"]
    assert parts[0].offset == 1024 * 1024
    assert parts[0].size == 8 * 1024 * 1024


def test_tampered_member_is_refused_at_its_end(built: Path, tmp_path: Path) -> None:
    members = entries(built)
    index = [name for name, _ in members].index(bundle.KERNEL)
    name, data = members[index]
    members[index] = (name, data[:-1] + bytes([data[-1] ^ 1]))
    bad = write_tar(tmp_path / "bad.bundle", members)
    with pytest.raises(BundleError, match="vmlinuz does not match the manifest"):
        read_all(bad)


def test_unhashed_member_is_checked_for_its_size_only(built: Path, tmp_path: Path) -> None:
    members = entries(built)
    index = [name for name, _ in members].index(bundle.ROOT)
    name, data = members[index]
    members[index] = (name, data[:100] + bytes([data[100] ^ 1]) + data[101:])
    bad = write_tar(tmp_path / "bad.bundle", members)
    manifest = bundle.read_manifest(bad)
    read = {n: s.read() for n, s in bundle.members(bad, manifest, unhashed=(bundle.ROOT,))}
    assert read[bundle.ROOT] == members[index][1]     # install verifies it on the device
    with pytest.raises(BundleError, match=r"root\.img\.gz does not match the manifest"):
        read_all(bad)
    members[index] = (name, data + b"x")
    longer = write_tar(tmp_path / "longer.bundle", members)
    with pytest.raises(BundleError, match="not the size"):
        list(bundle.members(longer, manifest, unhashed=(bundle.ROOT,)))


def test_member_of_another_size_is_refused(built: Path, tmp_path: Path) -> None:
    members = entries(built)
    members[2] = (members[2][0], members[2][1] + b"more")
    with pytest.raises(BundleError, match="not the size"):
        read_all(write_tar(tmp_path / "bad.bundle", members))


@pytest.mark.parametrize("name", ["../root.img.gz", "/etc/passwd", "sub/vmlinuz",
                                  "root.img.gz/../../x", "manifest.json.extra"])
def test_foreign_member_names_are_refused(built: Path, tmp_path: Path, name: str) -> None:
    members = entries(built)
    members.insert(1, (name, b"x"))
    with pytest.raises(BundleError, match="unexpected member"):
        read_all(write_tar(tmp_path / "bad.bundle", members))


def test_trailing_member_is_refused(built: Path, tmp_path: Path) -> None:
    members = [*entries(built), (bundle.KERNEL, b"again")]
    with pytest.raises(BundleError, match="after the entry template"):
        read_all(write_tar(tmp_path / "bad.bundle", members))


def test_symlink_member_is_refused(built: Path, tmp_path: Path) -> None:
    path = tmp_path / "link.bundle"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo(bundle.MANIFEST)
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/shadow"
        tar.addfile(info)
    with pytest.raises(BundleError, match="not a regular file"):
        bundle.read_manifest(path)


def test_manifest_must_come_first(built: Path, tmp_path: Path) -> None:
    members = entries(built)
    members[0], members[1] = members[1], members[0]
    with pytest.raises(BundleError, match="first member"):
        bundle.read_manifest(write_tar(tmp_path / "bad.bundle", members))


def test_oversize_manifest_is_refused(tmp_path: Path) -> None:
    huge = json.dumps({"format": 1, "pad": "x" * bundle.MAX_MANIFEST}).encode()
    with pytest.raises(BundleError, match="larger than"):
        bundle.read_manifest(write_tar(tmp_path / "big.bundle", [(bundle.MANIFEST, huge)]))


def test_compressed_or_foreign_files_are_not_bundles(built: Path, tmp_path: Path) -> None:
    packed = tmp_path / "packed.bundle"
    packed.write_bytes(gzip.compress(built.read_bytes()))
    with pytest.raises(BundleError):
        bundle.read_manifest(packed)
    text = tmp_path / "text.bundle"
    text.write_text("hello\n")
    with pytest.raises(BundleError):
        bundle.read_manifest(text)


def good_manifest() -> dict[str, object]:
    info = {"size": 1, "sha256": "0" * 64}
    return {"format": 1, "version": "1.0", "min_version": "0.9", "data_schema": 7,
            "arch": "amd64", "created": "", "files": dict.fromkeys(bundle.PAYLOAD, info),
            "root": info}


@pytest.mark.parametrize(("change", "message"), [
    ({"format": 2}, "format"), ({"arch": "arm64"}, "arm64"), ({"version": "one"}, "version"),
    ({"min_version": None}, "min_version"), ({"data_schema": -1}, "data_schema"),
    ({"data_schema": True}, "data_schema"), ({"files": {}}, "exactly"),
    ({"root": {"size": 1, "sha256": "A" * 64}}, "sha256"),
    ({"root": {"size": "1", "sha256": "0" * 64}}, "size"), ({"root": []}, "root"),
])
def test_manifest_fields_are_checked(change: dict[str, object], message: str) -> None:
    assert bundle.parse_manifest(json.dumps(good_manifest()).encode()).version == "1.0"
    with pytest.raises(BundleError, match=message):
        bundle.parse_manifest(json.dumps({**good_manifest(), **change}).encode())


def test_gunzip_is_bounded_and_strict() -> None:
    data = bytes(1024 * 1024 * 3)
    packed = gzip.compress(data)
    assert b"".join(bundle.gunzip_bounded(io.BytesIO(packed), len(data))) == data
    with pytest.raises(BundleError, match="expands beyond"):
        b"".join(bundle.gunzip_bounded(io.BytesIO(packed), len(data) - 1))
    with pytest.raises(BundleError, match="after the end"):
        b"".join(bundle.gunzip_bounded(io.BytesIO(packed + b"junk"), len(data)))
    with pytest.raises(BundleError, match="truncated"):
        b"".join(bundle.gunzip_bounded(io.BytesIO(packed[:-10]), len(data)))
    with pytest.raises(BundleError, match="not valid gzip"):
        b"".join(bundle.gunzip_bounded(io.BytesIO(b"\x1f\x8bnot gzip at all"), 10))


def test_image_without_gpt_or_root_a_is_refused(tmp_path: Path) -> None:
    plain = tmp_path / "mailstead-1.0-amd64.img"
    plain.write_bytes(bytes(1024 * 1024))
    with pytest.raises(BundleError, match="no GPT signature"):
        bundle.build_bundle(plain, tmp_path, "1.0", "0", 7, update_image.ENTRY_TEMPLATE)
    update_image.run("sfdisk", "-q", str(plain), stdin="label: gpt\nsize=100K, name=data\n")
    with pytest.raises(BundleError, match="no root-a and esp"):
        bundle.build_bundle(plain, tmp_path, "1.0", "0", 7, update_image.ENTRY_TEMPLATE)


def test_gpt_crc_mismatch_is_refused(built: Path) -> None:
    image = built.parent / "build" / "mailstead-0.2.0-amd64.img"
    with image.open("rb") as src:
        src.seek(gpt.SECTOR)
        sector = bytearray(src.read(gpt.SECTOR))
    assert gpt.parse_header(bytes(sector)).entry_count == 128
    sector[40] ^= 1
    with pytest.raises(gpt.GptError, match="CRC32"):
        gpt.parse_header(bytes(sector))
    header = gpt.parse_header(bytes(sector[:40]) + bytes([sector[40] ^ 1]) + bytes(sector[41:]))
    with pytest.raises(gpt.GptError, match="entry array CRC32"):
        gpt.parse_entries(bytes(header.entries_bytes), header)
    assert zlib.crc32(b"") == 0
