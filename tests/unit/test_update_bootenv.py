"""The ESP as the updater leaves it, checked against a model of systemd-boot's choice (the
rules of src/boot/efi/boot.c that appliance/update/README.md "Boot selection" cites):
a new slot on trial boots first, its tries running out boots the previous slot, and a
blessed slot stays the default."""

from __future__ import annotations

import functools
import os
from fnmatch import fnmatchcase
from pathlib import Path

import pytest
from packaging.version import Version

from appliance.update import bootenv, slots
from appliance.update.bootenv import BootEnv, render_entry

IMAGE_BOOT = Path(__file__).resolve().parents[2] / "image" / "boot"
TEMPLATE = (IMAGE_BOOT / "entry.conf.in").read_text()


def _fields(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if key and not key.startswith("#"):
            found.setdefault(key, value.strip())
    return found


def _compare(a: tuple[str, dict[str, str]], b: tuple[str, dict[str, str]]) -> int:
    """config_entry_compare: no tries left last; sort-key entries before others; by
    sort-key, then version (newest first); then id (descending); then more tries left."""
    (id_a, fa), (id_b, fb) = a, b
    na, nb = slots.parse_entry_name(id_a), slots.parse_entry_name(id_b)
    assert na is not None
    assert nb is not None
    for key_a, key_b in [(na.bad, nb.bad), ("sort-key" not in fa, "sort-key" not in fb)]:
        if key_a != key_b:
            return 1 if key_a else -1
    if "sort-key" in fa:
        if fa["sort-key"] != fb["sort-key"]:
            return -1 if fa["sort-key"] < fb["sort-key"] else 1
        va, vb = Version(fa["version"].replace("~", "")), Version(fb["version"].replace("~", ""))
        if va != vb:
            return -1 if va > vb else 1
    return -1 if id_a > id_b else (1 if id_a < id_b else 0)


def sd_boot_pick(esp: Path) -> str:
    """The entry systemd-boot boots: sorted as above, the first whose id (the file name,
    lower-cased, counter included) matches loader.conf's `default` glob, else the first."""
    entries = sorted(((p.name.lower(), _fields(p.read_text()))
                      for p in (esp / bootenv.ENTRIES).iterdir() if p.suffix == ".conf"),
                     key=functools.cmp_to_key(_compare))
    pattern = _fields((esp / bootenv.LOADER_CONF).read_text()).get("default")
    for entry_id, _ in entries:
        if pattern and fnmatchcase(entry_id, pattern.lower()):
            return entry_id
    return entries[0][0]


def boot(esp: Path) -> str:
    """Pick an entry and count the try down the way the loader renames it."""
    picked = sd_boot_pick(esp)
    name = slots.parse_entry_name(picked)
    assert name is not None
    if name.tries_left:
        counted = slots.EntryName(name.slot, name.tries_left - 1, (name.tries_done or 0) + 1)
        os.replace(esp / bootenv.ENTRIES / picked, esp / bootenv.ENTRIES / counted.file_name())
    return name.slot


@pytest.fixture
def esp(tmp_path: Path) -> Path:
    """The ESP as build-image.sh writes it: loader.conf and one entry per slot."""
    (tmp_path / "loader" / "entries").mkdir(parents=True)
    (tmp_path / "loader" / "loader.conf").write_text((IMAGE_BOOT / "loader.conf").read_text())
    for slot in slots.SLOTS:
        text = TEMPLATE.replace("@SLOT@", slot).replace("@VERSION@", "0.1.0")
        (tmp_path / "loader" / "entries" / f"root-{slot}.conf").write_text(text)
    return tmp_path


def install(esp: Path, slot: str, version: str, tries: int = 3) -> Path:
    env = BootEnv(esp)
    env.install_boot_files(slot, b"kernel " + version.encode(), b"initrd")
    return env.write_trial_entry(slot, render_entry(TEMPLATE, slot, version), tries)


def test_render_entry_keeps_the_image_template_and_adds_the_sort_key() -> None:
    text = render_entry(TEMPLATE, "b", "1.2.0rc1")
    fields = _fields(text)
    assert fields["sort-key"] == bootenv.SORT_KEY
    assert fields["version"] == "1.2.0~rc1"
    assert fields["linux"] == "/root-b/vmlinuz"
    assert fields["initrd"] == "/root-b/initrd"
    assert "root=PARTLABEL=root-b" in fields["options"]
    assert "mailstead.slot=b" in fields["options"]
    assert fields["title"] == "Mailstead 1.2.0rc1 (slot b)"
    assert "@" not in text


def test_default_pattern_replaces_or_adds_the_default_line() -> None:
    shipped = (IMAGE_BOOT / "loader.conf").read_text()
    changed = bootenv.with_default_pattern(shipped)
    assert "default root-*\n" in changed
    assert "default root-a.conf" not in changed
    assert changed.count("default") == shipped.count("default")
    assert bootenv.with_default_pattern("timeout 0\n") == "timeout 0\ndefault root-*\n"
    assert bootenv.with_default_pattern("") == "default root-*\n"


def test_the_image_boots_slot_a(esp: Path) -> None:
    assert sd_boot_pick(esp) == "root-a.conf"


def test_update_trial_bless_and_second_update(esp: Path) -> None:
    entry = install(esp, "b", "0.2.0")
    assert entry.name == "root-b+3.conf"
    assert not (esp / "loader" / "entries" / "root-b.conf").exists()   # stale entry gone
    assert (esp / "root-b" / "vmlinuz").read_bytes() == b"kernel 0.2.0"
    assert boot(esp) == "b"                                 # the new slot on trial first
    assert BootEnv(esp).entries("b")[0][0].name == "root-b+2-1.conf"
    assert BootEnv(esp).bless("b")
    assert BootEnv(esp).entries("b")[0][0].name == "root-b.conf"
    assert not BootEnv(esp).bless("b")                      # blessing twice changes nothing
    assert [boot(esp) for _ in range(3)] == ["b", "b", "b"]  # blessed: stays the default
    install(esp, "a", "0.3.0")                              # the next update: back to a
    assert boot(esp) == "a"
    BootEnv(esp).bless("a")
    assert boot(esp) == "a"


def test_tries_running_out_boot_the_previous_slot(esp: Path) -> None:
    install(esp, "b", "0.2.0", tries=2)
    assert [boot(esp) for _ in range(4)] == ["b", "b", "a", "a"]
    assert BootEnv(esp).entries("b")[0][0].name == "root-b+0-2.conf"


def test_marked_bad_boots_the_previous_slot(esp: Path) -> None:
    install(esp, "b", "0.2.0")
    assert boot(esp) == "b"
    assert BootEnv(esp).mark_bad("b")
    assert BootEnv(esp).entries("b")[0][0].name == "root-b+0-1.conf"
    assert boot(esp) == "a"


def test_failed_update_after_a_committed_one_falls_back_to_it(esp: Path) -> None:
    install(esp, "b", "0.2.0")
    boot(esp)
    BootEnv(esp).bless("b")
    install(esp, "a", "0.3.0")
    assert boot(esp) == "a"
    BootEnv(esp).mark_bad("a")
    assert boot(esp) == "b"                                  # 0.2.0, blessed, not 0.1.0


def test_remove_entries_takes_a_slot_out(esp: Path) -> None:
    BootEnv(esp).remove_entries("b")
    assert BootEnv(esp).entries("b") == []
    assert [p.name for p, _ in BootEnv(esp).entries("a")] == ["root-a.conf"]


def test_bless_needs_exactly_one_entry(esp: Path) -> None:
    (esp / "loader" / "entries" / "root-b+1.conf").write_text("")
    with pytest.raises(bootenv.BootEnvError, match="expected one"):
        BootEnv(esp).bless("b")
