"""The pure A/B slot logic: the booted slot from the kernel command line, loader entry names
with boot counting, the commit decision table, systemd-boot's version field, and the
maintenance window's reboot time."""

from __future__ import annotations

from datetime import datetime, time

import pytest

from appliance.update import slots, window
from appliance.update.slots import Decision, EntryName, Pending

CMDLINE_A = ("root=PARTLABEL=root-a ro rootwait mailstead.slot=a console=tty0 "
             "console=ttyS0,115200 quiet systemd.show_status=auto\n")


@pytest.mark.parametrize(("cmdline", "slot"), [
    (CMDLINE_A, "a"),
    (CMDLINE_A.replace("root-a", "root-b").replace("slot=a", "slot=b"), "b"),
    ("root=PARTLABEL=root-b ro", "b"),                       # older entry: the label decides
    ("mailstead.slot=b root=PARTLABEL=root-a", "b"),           # the explicit slot wins
    ("root=/dev/vda2 ro", None),
    ("xmailstead.slot=a", None),
    ("mailstead.slot=c", None),
    ("mailstead.slot=ab", None),
    ("", None),
])
def test_booted_slot_comes_from_the_command_line(cmdline: str, slot: str | None) -> None:
    assert slots.booted_slot(cmdline) == slot


def test_other_slot() -> None:
    assert slots.other("a") == "b"
    assert slots.other("b") == "a"
    with pytest.raises(ValueError, match="not a slot"):
        slots.other("c")


@pytest.mark.parametrize(("name", "entry"), [
    ("root-a.conf", EntryName("a")),
    ("root-b+3.conf", EntryName("b", 3)),
    ("root-b+2-1.conf", EntryName("b", 2, 1)),
    ("root-b+0-3.conf", EntryName("b", 0, 3)),
    ("root-a+12-0.conf", EntryName("a", 12, 0)),
])
def test_entry_names_parse_and_print_back(name: str, entry: EntryName) -> None:
    assert slots.parse_entry_name(name) == entry
    assert entry.file_name() == name


@pytest.mark.parametrize("name", ["root-c.conf", "root-a+.conf", "root-a+1-.conf",
                                  "root-a+1-2-3.conf", "root-a.conf.bak", "Root-a.conf",
                                  "root-a+123.conf", "../root-a.conf", "root-a", "esp.conf",
                                  "auto-root-a.conf", "root-a+-1.conf", "root-a+03.conf",
                                  "root-a+1-00.conf"])
def test_other_names_are_not_slot_entries(name: str) -> None:
    assert slots.parse_entry_name(name) is None


def test_entry_states() -> None:
    assert EntryName("a").blessed
    assert not EntryName("a").bad
    trial = slots.trial_entry("b", 3)
    assert trial.file_name() == "root-b+3.conf"
    assert not trial.blessed
    assert not trial.bad
    booted_once = EntryName("b", 2, 1)
    assert booted_once.bad_name().file_name() == "root-b+0-1.conf"
    assert booted_once.bad_name().bad
    assert booted_once.blessed_name().file_name() == "root-b.conf"
    assert trial.bad_name().file_name() == "root-b+0-0.conf"


@pytest.mark.parametrize("tries", [0, 100, -1])
def test_trial_entry_bounds(tries: int) -> None:
    with pytest.raises(ValueError, match="boot attempts"):
        slots.trial_entry("a", tries)


PENDING = Pending("0.2.0", "a", "b", "0.1.0")


@pytest.mark.parametrize(("booted", "pending", "decision"), [
    ("b", PENDING, Decision.TRIAL),             # the new slot booted: judge it
    ("a", PENDING, Decision.ROLLED_BACK),       # the loader fell back to the old slot
    ("a", None, Decision.NOTHING),              # an ordinary boot
    ("b", None, Decision.NOTHING),
    (None, PENDING, Decision.NOTHING),          # cannot tell which slot: do nothing
])
def test_commit_decision_table(booted: str | None, pending: Pending | None,
                               decision: Decision) -> None:
    assert slots.decide(booted, pending) is decision


@pytest.mark.parametrize(("version", "loader"), [
    ("1.2.0", "1.2.0"), ("1.2.0rc1", "1.2.0~rc1"), ("1.2.0.dev3", "1.2.0~dev3"),
    ("1.2.0.post1", "1.2.0.post1"), ("2!1.0", "1.0"), ("not a version", "not a version"),
])
def test_loader_version_orders_pre_releases_first(version: str, loader: str) -> None:
    assert slots.loader_version(version) == loader


# -- the maintenance window ---------------------------------------------------------------

def test_window_parsing() -> None:
    assert window.parse_window("now").immediate
    assert window.parse_window(" 03:00-05:30 ") == window.Window(time(3), time(5, 30))
    for bad in ("3:00-5:00", "24:00-01:00", "03:00-03:00", "03:00", "later", "03:60-04:00"):
        with pytest.raises(ValueError, match=r"expected|empty"):
            window.parse_window(bad)


NOON = datetime(2026, 11, 27, 12, 0)


@pytest.mark.parametrize(("text", "now", "expected"), [
    ("now", NOON, NOON),
    ("03:00-05:00", NOON, datetime(2026, 11, 28, 3, 0)),           # tomorrow's start
    ("03:00-05:00", NOON.replace(hour=2, minute=59), NOON.replace(hour=3, minute=0)),
    ("03:00-05:00", NOON.replace(hour=4), NOON.replace(hour=4)),   # inside: now
    ("03:00-05:00", NOON.replace(hour=5), datetime(2026, 11, 28, 3, 0)),   # end excluded
    ("22:00-02:00", NOON.replace(hour=23, minute=30), NOON.replace(hour=23, minute=30)),
    ("22:00-02:00", NOON.replace(hour=1), NOON.replace(hour=1)),    # across midnight
    ("22:00-02:00", NOON, NOON.replace(hour=22)),
])
def test_next_reboot(text: str, now: datetime, expected: datetime) -> None:
    assert window.next_reboot(window.parse_window(text), now) == expected
