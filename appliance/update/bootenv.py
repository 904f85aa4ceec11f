"""The boot environment on the ESP (a directory: `/efi` on the appliance, a tmp dir in
tests): each slot's kernel and initrd, its loader entry with boot counting, blessing and
marking bad, and loader.conf's `default` pattern. How systemd-boot picks the entry from
these is in appliance/update/README.md, "Boot selection".
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from appliance.core import fsio
from appliance.update import slots

ENTRIES = Path("loader") / "entries"
LOADER_CONF = Path("loader") / "loader.conf"
# A glob over every slot's entry: systemd-boot takes the first match in its sorted list,
# where entries with no tries left come last and, with a sort-key, the newest version first.
DEFAULT_PATTERN = "root-*"
SORT_KEY = "mailstead"
_DEFAULT_LINE = re.compile(r"^\s*default\s.*$", re.MULTILINE)


class BootEnvError(RuntimeError):
    """The ESP cannot be changed as asked."""


def render_entry(template: str, slot: str, version: str) -> str:
    """A loader entry from the release's entry.conf.in: @SLOT@ and @VERSION@ filled in,
    `version` in systemd-boot's order (slots.loader_version) and a `sort-key` line so
    that ordering is by version, newest first (Boot Loader Specification, "sort-key")."""
    slots.other(slot)
    lines = []
    for line in template.replace("@SLOT@", slot).splitlines():
        key = line.split(None, 1)[0] if line.strip() else ""
        if key == "version":
            line = f"version {slots.loader_version(version)}"
        if key == "sort-key":
            continue
        lines.append(line.replace("@VERSION@", version))
    lines.insert(1 if lines else 0, f"sort-key {SORT_KEY}")
    return "\n".join(lines) + "\n"


def with_default_pattern(loader_conf: str) -> str:
    """loader.conf with its `default` line set to DEFAULT_PATTERN (added when missing)."""
    line = f"default {DEFAULT_PATTERN}"
    if _DEFAULT_LINE.search(loader_conf):
        return _DEFAULT_LINE.sub(line, loader_conf, count=1)
    return loader_conf.rstrip("\n") + ("\n" if loader_conf.strip() else "") + line + "\n"


class BootEnv:
    """One ESP directory."""

    def __init__(self, esp: Path) -> None:
        self.esp = esp

    def entries(self, slot: str) -> list[tuple[Path, slots.EntryName]]:
        """The loader entries of `slot` now on the ESP."""
        folder = self.esp / ENTRIES
        if not folder.is_dir():
            return []
        found = []
        for path in sorted(folder.iterdir()):
            name = slots.parse_entry_name(path.name)
            if name is not None and name.slot == slot:
                found.append((path, name))
        return found

    def install_boot_files(self, slot: str, kernel: bytes, initrd: bytes) -> None:
        """`/root-X/vmlinuz` and `/root-X/initrd`, each replaced atomically (temp, fsync,
        rename, fsync of the directory: vfat supports all four)."""
        folder = self.esp / f"root-{slot}"
        folder.mkdir(exist_ok=True)
        fsio.atomic_write(folder / "vmlinuz", kernel, 0o644)
        fsio.atomic_write(folder / "initrd", initrd, 0o644)

    def write_trial_entry(self, slot: str, text: str, tries: int) -> Path:
        """Replace the slot's entries by `root-X+<tries>.conf` with `text`; point
        loader.conf's default at the slot entries' pattern."""
        folder = self.esp / ENTRIES
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / slots.trial_entry(slot, tries).file_name()
        for path, _name in self.entries(slot):
            path.unlink()
        fsio.atomic_write(target, text.encode(), 0o644)
        self.set_default_pattern()
        return target

    def remove_entries(self, slot: str) -> None:
        """Take the slot out of the boot menu (before its partition is overwritten)."""
        for path, _name in self.entries(slot):
            path.unlink()
        if (self.esp / ENTRIES).is_dir():
            fsio.fsync_dir(self.esp / ENTRIES)

    def set_default_pattern(self) -> None:
        conf = self.esp / LOADER_CONF
        conf.parent.mkdir(parents=True, exist_ok=True)
        old = conf.read_text() if conf.is_file() else ""
        new = with_default_pattern(old)
        if new != old:
            fsio.atomic_write(conf, new.encode(), 0o644)

    def bless(self, slot: str) -> bool:
        """Drop the slot entry's boot counter (`root-b+2-1.conf` -> `root-b.conf`): it stays
        the default and is never counted down again. False when nothing was counting."""
        return self._rename(slot, lambda name: name.blessed_name())

    def mark_bad(self, slot: str) -> bool:
        """Set the slot entry's tries left to 0 (`root-b+0-1.conf`): systemd-boot sorts it
        last, so the next boot takes the other slot."""
        return self._rename(slot, lambda name: name.bad_name())

    def _rename(self, slot: str, change: Callable[[slots.EntryName], slots.EntryName]) -> bool:
        found = self.entries(slot)
        if len(found) != 1:
            raise BootEnvError(f"expected one loader entry of slot {slot}, found "
                               f"{[p.name for p, _ in found]}")
        path, name = found[0]
        new = change(name)
        if new == name:
            return False
        os.replace(path, path.with_name(new.file_name()))
        fsio.fsync_dir(path.parent)
        return True
