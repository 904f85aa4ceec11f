"""The root filesystem of a release as a bundle carries it: root-a's ext4 copied out of a
built disk image and shrunk to its minimum with e2fsprogs (e2fsck, resize2fs -M, dumpe2fs),
so that an update gunzips, writes and hashes the filesystem rather than the whole partition.
"""

from __future__ import annotations

import os
from pathlib import Path

from appliance.core.run import run_tool
from appliance.update import gpt

E2FS_TIMEOUT = 600.0          # e2fsck / resize2fs of a 1.5 GiB root take seconds on a host
CHUNK = 1024 * 1024


class RootFsError(ValueError):
    """root-a is not a clean ext4, or an e2fsprogs tool is missing or failed."""


def shrink_root(image: Path, part: gpt.Partition, out: Path) -> int:
    """Copy the partition's bytes into `out` and shrink the ext4 filesystem there to its
    minimum; the filesystem's new size in bytes (`out` holds it at its start).

    The slot it is installed into stays bigger than the filesystem, which ext4 accepts: the
    kernel and e2fsck go by the superblock's block count, not the device's size.

    Raises:
        RootFsError: not a clean ext4 after e2fsck, or an e2fsprogs tool missing or failing.
    """
    _copy_partition(image, part, out)
    # resize2fs wants a freshly checked filesystem. -p (preen), not -y: it makes only the
    # fixes that are safe without a human (mkfs -d's directories get re-indexed, exit 0
    # or 1) and exits 4 on real damage, which stops the build rather than shipping a root
    # that e2fsck "repaired"
    _e2fs(["e2fsck", "-f", "-p", str(out)], "e2fsck", ok=(0, 1))
    _e2fs(["resize2fs", "-M", str(out)], "resize2fs -M")
    # what ships must be clean as it is: a read-only check, nothing to fix (exit 0)
    _e2fs(["e2fsck", "-f", "-n", str(out)], "e2fsck after the resize")
    size = _fs_size(out)
    if not 0 < size <= min(part.size, out.stat().st_size):
        raise RootFsError(f"resize2fs left a filesystem of {size} bytes in a "
                          f"{part.size}-byte partition")
    return size


def _copy_partition(image: Path, part: gpt.Partition, out: Path) -> None:
    """The partition's bytes into `out`, sparse (its free space is mostly zeros)."""
    zeros = bytes(CHUNK)
    with image.open("rb") as src, out.open("wb") as dst:
        src.seek(part.offset)
        left = part.size
        while left:
            chunk = src.read(min(CHUNK, left))
            if not chunk:
                raise RootFsError(f"{image} ends inside partition {part.name}")
            if chunk == zeros[:len(chunk)]:
                dst.seek(len(chunk), os.SEEK_CUR)
            else:
                dst.write(chunk)
            left -= len(chunk)
        dst.truncate(part.size)


def _e2fs(argv: list[str], what: str, ok: tuple[int, ...] = (0,)) -> str:
    """Run an e2fsprogs tool (core/run.py); its stdout. e2fsck: 0 clean, 1 corrected."""
    done = run_tool(argv, E2FS_TIMEOUT)
    if not done.started:
        raise RootFsError(f"cannot run {argv[0]} (Debian package e2fsprogs): "
                          f"{done.stderr.decode(errors='replace').strip()}")
    if done.timed_out:
        raise RootFsError(f"{what} took longer than {E2FS_TIMEOUT:.0f} s")
    if done.returncode not in ok:
        output = (done.stdout + done.stderr).decode(errors="replace").strip()
        raise RootFsError(f"{what} of root-a failed (exit {done.returncode}): "
                          f"{output[-2000:]}")
    return done.stdout.decode(errors="replace")


def _fs_size(path: Path) -> int:
    return parse_fs_size(_e2fs(["dumpe2fs", "-h", str(path)], "dumpe2fs"))


def parse_fs_size(text: str) -> int:
    """A filesystem's size in bytes from `dumpe2fs -h` output: Block count x Block size.

    Raises:
        RootFsError: either field missing, not a number, or not positive.
    """
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    count, size = fields.get("Block count", ""), fields.get("Block size", "")
    if not (count.isascii() and count.isdigit() and size.isascii() and size.isdigit()):
        raise RootFsError("dumpe2fs -h shows no block count and block size")
    if int(count) == 0 or int(size) == 0:
        raise RootFsError(f"dumpe2fs -h shows {count} blocks of {size} bytes")
    return int(count) * int(size)
