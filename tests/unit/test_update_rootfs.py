"""The root filesystem a bundle carries (appliance/update/rootfs.py): root-a of a real small
disk image (harness/update_image.py) shrunk with e2fsprogs, checked with e2fsck -fn, dumpe2fs
and debugfs, alone and written into a slot bigger than it (as install.py leaves it), and a
damaged root stopping the build."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from appliance.update import bundle, gpt, rootfs
from appliance.update.bundle import BundleError
from appliance.update.rootfs import RootFsError
from harness import update_image


@pytest.fixture(autouse=True, scope="module")
def _image_tools() -> None:
    update_image.ensure_tools()      # e2fsprogs brings e2fsck, resize2fs, dumpe2fs, debugfs


def e2fs(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, env=update_image.ENV,
                          timeout=60, check=False)


def debugfs(fs: Path, request: str) -> str:
    done = e2fs("debugfs", "-R", request, str(fs))
    assert done.returncode == 0, done.stderr
    return done.stdout


def image_and_root(folder: Path) -> tuple[Path, gpt.Partition]:
    image = update_image.make_image(folder, "0.2.0")
    return image, {p.name: p for p in gpt.read_partitions(image)}["root-a"]


def assert_is_the_release_root(fs: Path, folder: Path, size: int) -> None:
    """A clean ext4 of `size` bytes (whatever the file's length) with the tree's files."""
    checked = e2fs("e2fsck", "-f", "-n", str(fs))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    header = e2fs("dumpe2fs", "-h", str(fs))
    assert header.returncode == 0
    assert rootfs.parse_fs_size(header.stdout) == size
    listing = debugfs(fs, "ls -l /")
    assert "etc" in listing
    assert "random.bin" in listing
    assert debugfs(fs, "cat /etc/mailstead-release") == "0.2.0\n"
    tree = folder / "tree-0.2.0"
    dumped = folder / "random.out"
    debugfs(fs, f"dump /random.bin {dumped}")
    assert dumped.read_bytes() == (tree / "random.bin").read_bytes()


def test_root_is_shrunk_to_a_clean_filesystem_with_the_same_files(tmp_path: Path) -> None:
    image, part = image_and_root(tmp_path / "build")
    out = tmp_path / "root.ext4"
    size = rootfs.shrink_root(image, part, out)
    assert 0 < size < part.size == 6 * 1024 * 1024
    assert out.stat().st_size >= size
    assert_is_the_release_root(out, tmp_path / "build", size)


def test_shrunk_root_in_a_bigger_slot_that_held_other_bytes_is_sound(tmp_path: Path) -> None:
    """What install.py leaves: the filesystem at the start of the slot, the slot's old bytes
    after it. ext4 goes by the superblock's block count (the kernel too: ext4_fill_super
    only refuses a block count *beyond* the device)."""
    image, part = image_and_root(tmp_path / "build")
    out = tmp_path / "root.ext4"
    size = rootfs.shrink_root(image, part, out)
    slot = tmp_path / "slot-b.img"
    slot.write_bytes(os.urandom(8 * 1024 * 1024))        # the old release, say
    with out.open("rb") as src, slot.open("r+b") as dev:
        dev.write(src.read(size))
    assert slot.stat().st_size == 8 * 1024 * 1024
    assert_is_the_release_root(slot, tmp_path / "build", size)


def test_bundle_root_is_the_shrunk_filesystem(tmp_path: Path) -> None:
    image, part = image_and_root(tmp_path / "build")
    built = bundle.build_release(image, tmp_path, "0.2.0", "0.1.0", 7,
                                 update_image.ENTRY_TEMPLATE)
    manifest = bundle.read_manifest(built.path)
    assert (built.root_size, built.partition_size) == (manifest.root.size, part.size)
    assert built.root_size < part.size
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # work dir gone
    fs = tmp_path / "from-bundle.ext4"
    for name, stream in bundle.members(built.path, manifest):
        if name == bundle.ROOT:
            fs.write_bytes(b"".join(bundle.gunzip_bounded(stream, manifest.root.size)))
        stream.read()
    assert_is_the_release_root(fs, tmp_path / "build", manifest.root.size)


def test_damaged_root_stops_the_build(tmp_path: Path) -> None:
    image, part = image_and_root(tmp_path / "build")
    with image.open("r+b") as dev:             # the primary superblock, at 1024 (ext4 docs)
        dev.seek(part.offset + 1024)
        dev.write(bytes(1024))
    with pytest.raises(RootFsError, match="e2fsck of root-a failed"):
        rootfs.shrink_root(image, part, tmp_path / "root.ext4")
    with pytest.raises(BundleError, match="e2fsck of root-a failed"):
        bundle.build_bundle(image, tmp_path / "out", "0.2.0", "0", 7,
                            update_image.ENTRY_TEMPLATE)
    assert list((tmp_path / "out").iterdir()) == []        # no bundle, no work dir left


def test_root_that_is_not_ext4_stops_the_build(tmp_path: Path) -> None:
    image, part = image_and_root(tmp_path / "build")
    with image.open("r+b") as dev:
        dev.seek(part.offset)
        dev.write(bytes(part.size))
    with pytest.raises(RootFsError, match=r"e2fsck of root-a failed \(exit 8\)"):
        rootfs.shrink_root(image, part, tmp_path / "root.ext4")


def test_a_missing_tool_is_named() -> None:
    with pytest.raises(RootFsError, match=r"cannot run no-such-e2fs-tool .*e2fsprogs"):
        rootfs._e2fs(["no-such-e2fs-tool", "-h"], "no-such-e2fs-tool")


HEADER = """Filesystem volume name:   root-a
Inode count:              81920
Block count:              321262
Reserved block count:     16063
Block size:               4096
Journal backup:           inode blocks
"""


@pytest.mark.parametrize(("text", "size"), [
    (HEADER, 321262 * 4096),
    ("Block size: 1024\nBlock count: 6144\n", 6 * 1024 * 1024),
    ("Block count: 10\nBlock size: 1024\nBlock count: 99\n", 10 * 1024),   # the first
])
def test_dumpe2fs_header_gives_the_size(text: str, size: int) -> None:
    assert rootfs.parse_fs_size(text) == size


@pytest.mark.parametrize("text", [
    "", "Block count: 10\n", "Block size: 4096\n", "Block count: ten\nBlock size: 4096\n",
    "Block count: -1\nBlock size: 4096\n", "Block count: 0\nBlock size: 4096\n",
    "Block count: ١٢\nBlock size: 4096\n",
])
def test_dumpe2fs_header_without_a_size_is_refused(text: str) -> None:
    with pytest.raises(RootFsError):
        rootfs.parse_fs_size(text)
