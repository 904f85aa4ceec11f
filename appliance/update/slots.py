"""The A/B slots as pure data: which slot booted, loader entry names with boot counting, and
the boot-time decision of commit (nothing to do, judge a trial boot, or a rollback happened).

Entry names follow the Boot Loader Specification's boot counting
(https://uapi-group.org/specifications/specs/boot_loader_specification/#boot-counting):
`root-b+3.conf` (3 tries left, none done), `root-b+2-1.conf` (2 left, 1 done),
`root-b+0-3.conf` (no tries left: bad), `root-b.conf` (blessed: no counting).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

SLOTS: tuple[str, ...] = ("a", "b")
ENTRY_SUFFIX = ".conf"
MAX_TRIES = 99          # a counter past this is not ours (systemd-boot itself takes any)

# root-X, then optionally +LEFT or +LEFT-DONE, then .conf (BLS "Boot counting").
_ENTRY = re.compile(r"root-([ab])(?:\+(0|[1-9]\d?)(?:-(0|[1-9]\d?))?)?\.conf")
_SLOT_ARG = re.compile(r"(?:^|\s)mailstead\.slot=([ab])(?=\s|$)")
_ROOT_ARG = re.compile(r"(?:^|\s)root=PARTLABEL=root-([ab])(?=\s|$)")


def other(slot: str) -> str:
    """The slot that is not `slot`.

    Raises:
        ValueError: `slot` is not a slot name.
    """
    if slot not in SLOTS:
        raise ValueError(f"not a slot: {slot!r}")
    return "b" if slot == "a" else "a"


def booted_slot(cmdline: str) -> str | None:
    """The slot the kernel was booted from: `mailstead.slot=X` on the kernel command line
    (image/boot/entry.conf.in), else `root=PARTLABEL=root-X`; None when neither is there."""
    found = _SLOT_ARG.search(cmdline) or _ROOT_ARG.search(cmdline)
    return found.group(1) if found else None


@dataclass(frozen=True)
class EntryName:
    """A loader entry file name of one slot, with its boot counter (None = not counting)."""

    slot: str
    tries_left: int | None = None
    tries_done: int | None = None

    @property
    def blessed(self) -> bool:
        return self.tries_left is None

    @property
    def bad(self) -> bool:
        """No tries left: systemd-boot sorts it last and boots the other slot."""
        return self.tries_left == 0

    def file_name(self) -> str:
        if self.tries_left is None:
            return f"root-{self.slot}{ENTRY_SUFFIX}"
        if self.tries_done is None:
            return f"root-{self.slot}+{self.tries_left}{ENTRY_SUFFIX}"
        return f"root-{self.slot}+{self.tries_left}-{self.tries_done}{ENTRY_SUFFIX}"

    def blessed_name(self) -> EntryName:
        return EntryName(self.slot)

    def bad_name(self) -> EntryName:
        """The name that marks it bad, keeping the count of tries done."""
        return EntryName(self.slot, 0, self.tries_done or 0)


def parse_entry_name(name: str) -> EntryName | None:
    """`root-b+2-1.conf` -> EntryName("b", 2, 1); None for a name that is not a slot entry."""
    found = _ENTRY.fullmatch(name)
    if found is None:
        return None
    left, done = found.group(2), found.group(3)
    return EntryName(found.group(1), int(left) if left is not None else None,
                     int(done) if done is not None else None)


def trial_entry(slot: str, tries: int) -> EntryName:
    """The entry of a freshly installed slot: `tries` boots to prove itself.

    Raises:
        ValueError: tries outside 1..MAX_TRIES, or a bad slot name.
    """
    if not 1 <= tries <= MAX_TRIES:
        raise ValueError(f"boot attempts must be 1-{MAX_TRIES}, not {tries}")
    other(slot)
    return EntryName(slot, tries)


def loader_version(version: str) -> str:
    """The entry's `version` field for systemd-boot's ordering (strverscmp_improved, newest
    first): PEP 440 pre- and dev-releases written with `~`, which sorts before the release
    ("1.2.0rc1" would otherwise sort after "1.2.0")."""
    try:
        parsed = Version(version)
    except InvalidVersion:
        return version
    text = ".".join(str(part) for part in parsed.release)
    if parsed.pre is not None:
        text += f"~{parsed.pre[0]}{parsed.pre[1]}"
    if parsed.post is not None:
        text += f".post{parsed.post}"
    if parsed.dev is not None:
        text += f"~dev{parsed.dev}"
    return text


class Decision(enum.Enum):
    """What `mailstead update commit` does on this boot."""

    NOTHING = "nothing"          # no install pending (or a state this boot cannot judge)
    TRIAL = "trial"              # booted the new slot on trial: judge its health
    ROLLED_BACK = "rolled-back"  # booted the old slot while an install was pending


@dataclass(frozen=True)
class Pending:
    """An installed but not yet committed update (state.json's `pending`)."""

    version: str
    from_slot: str
    to_slot: str
    from_version: str


def decide(booted: str | None, pending: Pending | None) -> Decision:
    """The commit decision table: booted slot against the pending install."""
    if pending is None or booted is None:
        return Decision.NOTHING
    if booted == pending.to_slot:
        return Decision.TRIAL
    if booted == pending.from_slot:
        return Decision.ROLLED_BACK
    return Decision.NOTHING
