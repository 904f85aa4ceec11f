"""The GUID Partition Table of a disk image, parsed from bytes (UEFI 2.10 section 5.3):
which partitions a built image has, by name, and where. Pure functions plus one reader.

The image is untrusted input as far as this parser is concerned: every count and size is
bounded before it is used, and both CRC32s (header and entry array) must match.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

SECTOR = 512                     # images are built with 512-byte logical sectors
SIGNATURE = b"EFI PART"
MAX_ENTRIES = 1024               # sfdisk writes 128; the spec allows more, nobody uses them
MIN_ENTRY_SIZE, MAX_ENTRY_SIZE = 128, 1024
MIN_HEADER_SIZE = 92
# UEFI 2.10 table 5-5: signature, revision, header size, header CRC32, reserved, my LBA,
# alternate LBA, first usable, last usable, disk GUID, entry array LBA, entry count,
# entry size, entry array CRC32.
_HEADER = struct.Struct("<8sIIII4Q16sQIII")
# Table 5-6: type GUID, unique GUID, first LBA, last LBA, attributes, name (UTF-16LE, 72 B).
_ENTRY = struct.Struct("<16s16sQQQ72s")


class GptError(ValueError):
    """Not a GPT disk image, or a corrupt one."""


@dataclass(frozen=True)
class Header:
    entries_lba: int
    entry_count: int
    entry_size: int
    entries_crc: int

    @property
    def entries_bytes(self) -> int:
        return self.entry_count * self.entry_size


@dataclass(frozen=True)
class Partition:
    name: str
    first_lba: int
    last_lba: int

    @property
    def offset(self) -> int:
        return self.first_lba * SECTOR

    @property
    def size(self) -> int:
        return (self.last_lba - self.first_lba + 1) * SECTOR


def parse_header(sector: bytes) -> Header:
    """The primary GPT header (LBA 1's 512 bytes).

    Raises:
        GptError: no signature, a bad size or count, or a CRC32 mismatch.
    """
    if len(sector) < SECTOR:
        raise GptError("short GPT header sector")
    fields = _HEADER.unpack_from(sector)
    signature, _rev, size, crc = fields[0], fields[1], fields[2], fields[3]
    if signature != SIGNATURE:
        raise GptError("no GPT signature at LBA 1")
    if not MIN_HEADER_SIZE <= size <= SECTOR:
        raise GptError(f"GPT header size {size} out of range")
    zeroed = sector[:16] + b"\0\0\0\0" + sector[20:size]
    if zlib.crc32(zeroed) != crc:
        raise GptError("GPT header CRC32 mismatch")
    entries_lba, count, entry_size, entries_crc = fields[10], fields[11], fields[12], fields[13]
    if not 0 < count <= MAX_ENTRIES or entry_size % 8 \
            or not MIN_ENTRY_SIZE <= entry_size <= MAX_ENTRY_SIZE:
        raise GptError(f"GPT entry count {count} or size {entry_size} out of range")
    if entries_lba < 2:
        raise GptError("GPT entry array overlaps the header")
    return Header(entries_lba, count, entry_size, entries_crc)


def parse_entries(data: bytes, header: Header) -> list[Partition]:
    """The used entries of the partition entry array, in table order.

    Raises:
        GptError: short array, CRC32 mismatch, a name that is not UTF-16, last < first.
    """
    if len(data) < header.entries_bytes:
        raise GptError("short GPT entry array")
    data = data[:header.entries_bytes]
    if zlib.crc32(data) != header.entries_crc:
        raise GptError("GPT entry array CRC32 mismatch")
    found = []
    for index in range(header.entry_count):
        type_guid, _uid, first, last, _attr, raw_name = _ENTRY.unpack_from(
            data, index * header.entry_size)
        if type_guid == bytes(16):
            continue                                  # an unused entry
        if last < first:
            raise GptError(f"GPT entry {index + 1} ends before it starts")
        try:
            name = raw_name.decode("utf-16-le").split("\0", 1)[0]
        except UnicodeDecodeError:
            raise GptError(f"GPT entry {index + 1} has a malformed name") from None
        found.append(Partition(name, first, last))
    return found


def read_partitions(image: Path) -> list[Partition]:
    """The partitions of a disk image file, checked against its size.

    Raises:
        GptError: not a GPT image, or a partition beyond the end of the file.
    """
    size = image.stat().st_size
    with image.open("rb") as src:
        src.seek(SECTOR)
        header = parse_header(src.read(SECTOR))
        src.seek(header.entries_lba * SECTOR)
        parts = parse_entries(src.read(header.entries_bytes), header)
    for part in parts:
        if part.offset + part.size > size:
            raise GptError(f"partition {part.name} lies beyond the end of {image}")
    return parts
