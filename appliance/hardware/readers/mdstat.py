"""Linux md RAID through /proc/mdstat (drivers/md/md.c, md_seq_show): per array its level,
members and their flags, `[n/m] [UU_]` health, resync/recovery/check progress with speed
and ETA, and the write-intent bitmap.

The file's format is the kernel's; real outputs vary in indentation (spaces or tabs) and
some copies carry a shell prompt line, so unknown lines are skipped, not fatal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

MDSTAT = Path("/proc/mdstat")

# md.c status_resync: "[==>....]  recovery = 19.6% (288381540/1465135936) finish=1420.1min
# speed=13810K/sec"; the action is resync, recovery, check, repair or reshape.
_PROGRESS = re.compile(
    r"(?P<action>resync|recovery|check|repair|reshape)\s*=\s*(?P<percent>[\d.]+)%\s*"
    r"\((?P<done>\d+)/(?P<total>\d+)\)(?:\s*finish=(?P<finish>[\d.]+)min)?"
    r"(?:\s*speed=(?P<speed>\d+)K/sec)?")
_PENDING = re.compile(r"(?P<action>resync|recovery|check|repair|reshape)\s*=\s*"
                      r"(?P<state>DELAYED|PENDING|REMOTE)")
_BITMAP = re.compile(r"bitmap:\s*(?P<used>\d+)/(?P<total>\d+)\s+pages\s+\[\d+KB\],\s*"
                     r"(?P<chunk>\d+)KB\s+chunk(?:,\s*file:\s*(?P<file>\S+))?")
_COUNTS = re.compile(r"\[(?P<raid>\d+)/(?P<working>\d+)\]\s*\[(?P<status>[U_]*)\]")
_BLOCKS = re.compile(r"^(?P<blocks>\d+)\s+blocks")
_MEMBER = re.compile(r"^(?P<name>[^\[\s]+)\[(?P<role>\d+)\](?P<flags>(?:\([A-Z]\))*)$")
_ARRAY = re.compile(r"^(?P<name>md[\w/]*)\s*:\s*(?P<rest>.*)$")
FLAG_NAMES = {"F": "faulty", "S": "spare", "W": "write_mostly", "R": "replacement",
              "J": "journal"}


@dataclass(frozen=True)
class MdMember:
    name: str            # the kernel's device name, e.g. "sdb1"
    role: int            # the number in brackets: the slot descriptor
    flags: tuple[str, ...]   # "faulty", "spare", "write_mostly", "replacement", "journal"

    @property
    def faulty(self) -> bool:
        return "faulty" in self.flags

    @property
    def spare(self) -> bool:
        return "spare" in self.flags


@dataclass(frozen=True)
class MdSync:
    action: str                # resync, recovery, check, repair, reshape
    percent: float | None
    done_blocks: int | None
    total_blocks: int | None
    finish_minutes: float | None
    speed_kib: int | None
    waiting: str = ""          # "DELAYED", "PENDING" or "REMOTE" when not running yet


@dataclass(frozen=True)
class MdBitmap:
    pages_used: int
    pages_total: int
    chunk_kib: int
    file: str


@dataclass(frozen=True)
class MdArray:
    name: str
    active: bool
    read_only: str             # "", "read-only" or "auto-read-only"
    level: str                 # "raid1", "raid5", ... ("" for an inactive container)
    members: tuple[MdMember, ...]
    blocks: int | None
    raid_disks: int | None
    working_disks: int | None
    status: str                # "UU_": one letter per slot, "_" for a missing member
    sync: MdSync | None
    bitmap: MdBitmap | None

    @property
    def degraded(self) -> bool:
        """Fewer working members than slots: one more failure may lose data (RAID1/5),
        or already has lost redundancy."""
        if self.raid_disks is not None and self.working_disks is not None:
            return self.working_disks < self.raid_disks
        return "_" in self.status

    @property
    def missing(self) -> int:
        if self.raid_disks is None or self.working_disks is None:
            return self.status.count("_")
        return max(self.raid_disks - self.working_disks, 0)

    @property
    def faulty_members(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.members if m.faulty)

    @property
    def spares(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.members if m.spare)


@dataclass(frozen=True)
class MdStat:
    personalities: tuple[str, ...]
    arrays: tuple[MdArray, ...]


def parse_mdstat(text: str) -> MdStat:
    """Parse the text of /proc/mdstat. Never raises: lines it does not know are skipped."""
    personalities: tuple[str, ...] = ()
    blocks: list[tuple[str, str, list[str]]] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("Personalities"):
            personalities = tuple(re.findall(r"\[([^\]]+)\]", stripped))
            continue
        match = _ARRAY.match(line)
        if match and not line[:1].isspace():
            blocks.append((match["name"], match["rest"], []))
        elif blocks and line[:1].isspace() and stripped:
            blocks[-1][2].append(stripped)
    return MdStat(personalities, tuple(_array(n, h, body) for n, h, body in blocks))


def _array(name: str, header: str, body: list[str]) -> MdArray:
    words = header.split()
    active = bool(words) and words[0] == "active"
    words = words[1:] if words and words[0] in ("active", "inactive") else words
    read_only = ""
    if words and words[0] in ("(read-only)", "(auto-read-only)"):
        read_only, words = words[0].strip("()"), words[1:]
    level = ""
    if words and _MEMBER.match(words[0]) is None:
        level, words = words[0], words[1:]
    members = tuple(m for m in (_member(w) for w in words) if m is not None)
    text = " ".join(body)
    counts = _COUNTS.search(text)
    size = _BLOCKS.match(body[0]) if body else None
    return MdArray(
        name=name, active=active, read_only=read_only, level=level, members=members,
        blocks=int(size["blocks"]) if size else None,
        raid_disks=int(counts["raid"]) if counts else None,
        working_disks=int(counts["working"]) if counts else None,
        status=counts["status"] if counts else "", sync=_sync(text), bitmap=_bitmap(text))


def _member(word: str) -> MdMember | None:
    match = _MEMBER.match(word)
    if match is None:
        return None
    flags = tuple(FLAG_NAMES.get(f, f) for f in re.findall(r"\(([A-Z])\)", match["flags"]))
    return MdMember(match["name"], int(match["role"]), flags)


def _sync(text: str) -> MdSync | None:
    match = _PROGRESS.search(text)
    if match:
        return MdSync(match["action"], float(match["percent"]), int(match["done"]),
                      int(match["total"]),
                      float(match["finish"]) if match["finish"] else None,
                      int(match["speed"]) if match["speed"] else None)
    waiting = _PENDING.search(text)
    if waiting:
        return MdSync(waiting["action"], None, None, None, None, None, waiting["state"])
    return None


def _bitmap(text: str) -> MdBitmap | None:
    match = _BITMAP.search(text)
    if match is None:
        return None
    return MdBitmap(int(match["used"]), int(match["total"]), int(match["chunk"]),
                    match["file"] or "")


def read_mdstat(path: Path = MDSTAT) -> MdStat | None:
    """The arrays now, or None when the kernel has no md driver (no /proc/mdstat)."""
    try:
        return parse_mdstat(path.read_text(encoding="utf-8", errors="replace"))
    except FileNotFoundError:
        return None
