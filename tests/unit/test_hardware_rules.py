"""Hardware rules on data: every threshold of the `monitor.*` settings and the trend rule.
Disks come from the real fixtures; a threshold's edge is tested by changing one value of a
real report (dataclasses.replace), never by a hand-written report."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from appliance.hardware.readers import mdstat, smart
from appliance.hardware.readers.system import SpaceReading, Temperature
from appliance.hardware.rules import (
    disk_health,
    evaluate,
    raid,
    selftest,
    space,
    temperature,
    trend,
)
from appliance.hardware.rules.base import CRITICAL, WARNING, Disk, Snapshot, Thresholds
from appliance.settings import SettingsError, load_settings

FIXTURES = Path(__file__).parent.parent / "fixtures" / "hardware"
LIMITS = Thresholds()


def report(name: str) -> smart.SmartReport:
    return smart.parse_smartctl((FIXTURES / "smartctl" / name).read_bytes())


def with_raw(r: smart.SmartReport, **raws: int) -> smart.SmartReport:
    """The real report with some attributes' raw values changed (ids as a5=..., a197=...)."""
    wanted = {int(k[1:]): v for k, v in raws.items()}
    return dataclasses.replace(r, attributes=tuple(
        dataclasses.replace(a, raw=wanted.get(a.id, a.raw)) for a in r.attributes))


def with_nvme(r: smart.SmartReport, **fields: Any) -> smart.SmartReport:
    assert r.nvme is not None
    nvme = dataclasses.replace(r.nvme, **fields)
    nvme = dataclasses.replace(nvme, warnings=smart.decode_nvme_warning(nvme.critical_warning))
    return dataclasses.replace(r, nvme=nvme)


def snap(*reports: smart.SmartReport, **kw: object) -> Snapshot:
    disks = tuple(Disk(f"sd{chr(97 + i)}", None, r) for i, r in enumerate(reports))
    return Snapshot(0.0, disks, **kw)  # type: ignore[arg-type]


# -- disk health -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["hdd_helium_ok_7.3.json", "ssd_sata_ok_samsung840_7.0.json",
                                  "nvme_ok_7.3.json"])
def test_healthy_fixtures_are_ok(name: str) -> None:
    assert disk_health.health_of(report(name), LIMITS).state == "ok"
    assert evaluate(snap(report(name)), LIMITS) == ()


def test_failing_hdd_is_failing_with_its_reasons() -> None:
    health = disk_health.health_of(report("hdd_failing_hitachi_7.1.json"), LIMITS)
    assert health.state == "failing"
    text = "\n".join(health.reasons)
    assert "FAILED" in text
    assert "Reallocated_Sector_Ct is at or below" in text
    assert "1983 bad sectors" in text
    assert "8 pending sectors" in text
    (finding,) = disk_health.check(snap(report("hdd_failing_hitachi_7.1.json")), LIMITS)
    assert finding.key == "disk_health:MSK423Y20S3HBC"
    assert finding.level == CRITICAL


@pytest.mark.parametrize("attribute", [5, 187, 188, 197, 198])
def test_any_backblaze_predictor_warns(attribute: int) -> None:
    base = report("ssd_sata_ok_samsung840_7.0.json")      # has 5 and 187 in its table
    helium = report("hdd_helium_ok_7.3.json")              # has 5, 197, 198
    source = base if attribute in (5, 187) else helium
    if attribute == 188:                                   # neither has 188: add the row
        row = dataclasses.replace(helium.attributes[0], id=188, name="Command_Timeout", raw=1)
        changed = dataclasses.replace(helium, attributes=(*helium.attributes, row))
    else:
        changed = with_raw(source, **{f"a{attribute}": 1})
    health = disk_health.health_of(changed, LIMITS)
    assert health.state == "warning"
    assert f"SMART {attribute}" in health.reasons[0]


def test_bad_sector_count_threshold_makes_failing() -> None:
    helium = report("hdd_helium_ok_7.3.json")
    limits = Thresholds(bad_sectors_failing=10)
    assert disk_health.health_of(with_raw(helium, a5=4, a197=5), limits).state == "warning"
    assert disk_health.health_of(with_raw(helium, a5=4, a197=5, a198=1), limits).state == \
        "failing"


def test_199_crc_errors_alone_are_not_a_disk_fault() -> None:
    # 199 counts cable/link CRC errors: the Samsung fixture has 108 and is healthy
    assert disk_health.health_of(report("ssd_sata_ok_samsung840_7.0.json"), LIMITS).state == "ok"


def test_sas_grown_defects_warn_then_fail() -> None:
    sas = report("sas_grown_defects_seagate_trimmed.json")
    assert disk_health.health_of(sas, LIMITS).state == "warning"
    assert disk_health.health_of(sas, Thresholds(bad_sectors_failing=56)).state == "failing"


@pytest.mark.parametrize(("bits", "word"), [(1, "available spare low"), (2, "temperature"),
                                             (4, "reliability degraded"), (8, "read only")])
def test_nvme_critical_warning_bits_are_failing(bits: int, word: str) -> None:
    health = disk_health.health_of(with_nvme(report("nvme_ok_7.3.json"),
                                             critical_warning=bits), LIMITS)
    assert health.state == "failing"
    assert word in health.reasons[0]


def test_nvme_spare_below_threshold_wear_and_media_errors() -> None:
    ok = report("nvme_ok_7.3.json")
    assert disk_health.health_of(with_nvme(ok, available_spare=9), LIMITS).state == "failing"
    assert disk_health.health_of(with_nvme(ok, available_spare=10), LIMITS).state == "ok"
    assert disk_health.health_of(with_nvme(ok, percentage_used=89), LIMITS).state == "ok"
    worn = disk_health.health_of(with_nvme(ok, percentage_used=90), LIMITS)
    assert worn.state == "warning"
    assert "90 % of the rated endurance" in worn.reasons[0]
    media = disk_health.health_of(report("nvme_media_errors_samsung970_7.0.json"), LIMITS)
    assert media.state == "warning"
    assert "7 media and data integrity errors" in media.reasons


def test_no_smart_data_is_unknown_not_an_alert() -> None:
    local = smart.parse_smartctl((FIXTURES / "local" / "smartctl_vda_7.3.json").read_bytes())
    assert disk_health.health_of(local, LIMITS).state == "unknown"
    assert evaluate(snap(local), LIMITS) == ()


# -- temperature -----------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "warn", "crit"), [
    ("hdd_helium_ok_7.3.json", 50, 60), ("ssd_sata_ok_samsung840_7.0.json", 60, 70),
    ("nvme_ok_7.3.json", 70, 80)])
def test_temperature_limits_by_drive_kind(name: str, warn: int, crit: int) -> None:
    base = report(name)
    levels = []
    for degrees in (warn - 1, warn, crit - 1, crit):
        found = temperature.check(snap(dataclasses.replace(base, temperature=degrees)), LIMITS)
        levels.append(found[0].level if found else None)
    assert levels == [None, WARNING, WARNING, CRITICAL]


def test_temperature_settings_change_the_limits() -> None:
    settings = load_settings(None, environ={"MAILSTEAD_MONITOR__HDD_TEMPERATURE_WARNING": "40",
                                            "MAILSTEAD_MONITOR__HDD_TEMPERATURE_CRITICAL": "45"})
    limits = Thresholds.from_settings(settings)
    hot = dataclasses.replace(report("hdd_helium_ok_7.3.json"), temperature=45)
    assert temperature.check(snap(hot), limits)[0].level == CRITICAL


def test_sas_drive_trip_point_lowers_critical() -> None:
    sas = dataclasses.replace(report("sas_grown_defects_seagate_trimmed.json"),
                              drive_trip_temperature=55, temperature=56)
    assert temperature.check(snap(sas), LIMITS)[0].level == CRITICAL


def test_host_sensors_against_their_own_points() -> None:
    sensors = (Temperature("coretemp", "Package id 0", 81.0, 80.0, 100.0),
               Temperature("coretemp", "Core 0", 101.0, 80.0, 100.0),
               Temperature("acpitz", "acpitz", 40.0, None, None))
    found = temperature.check(Snapshot(0.0, temperatures=sensors), LIMITS)
    assert [(f.key, f.level) for f in found] == [
        ("sensor:coretemp:Package id 0", WARNING), ("sensor:coretemp:Core 0", CRITICAL)]


# -- self-tests ------------------------------------------------------------------------------

def test_newest_failed_self_test_is_critical_older_failures_are_not() -> None:
    failing = report("hdd_failing_hitachi_7.1.json")
    assert selftest.check(snap(failing), LIMITS) == []        # newest (42 h) passed
    newest_failed = dataclasses.replace(failing, self_tests=failing.self_tests[2:])
    (finding,) = selftest.check(snap(newest_failed), LIMITS)
    assert finding.level == CRITICAL
    assert "Completed: read failure" in finding.text


# -- RAID ------------------------------------------------------------------------------------

def md(name: str) -> mdstat.MdStat:
    return mdstat.parse_mdstat((FIXTURES / "mdstat" / name).read_text())


@pytest.mark.parametrize(("fixture", "array", "state"), [
    ("raid1_clean_auto_read_only.txt", "md2", "clean"),
    ("raid1_degraded_recovering.txt", "md0", "rebuilding"),
    ("raid5_failed_member.txt", "md0", "degraded"),
    ("raid6_recovering.txt", "md0", "rebuilding"),
    ("raid1_check.txt", "md2", "resyncing"),
    ("raid1_delayed_check_bitmap.txt", "md1", "clean"),
    ("raid1_imsm_container.txt", "md0", "container"),
    ("node_exporter_composite.txt", "md7", "degraded"),
    ("node_exporter_composite.txt", "md4", "inactive"),
    ("raid10_clean.txt", "md1", "clean")])
def test_array_states(fixture: str, array: str, state: str) -> None:
    found = {a.name: a for a in md(fixture).arrays}
    assert raid.array_state(found[array]) == state


def test_failed_array_when_more_missing_than_the_level_survives() -> None:
    md0 = md("raid6_recovering.txt").arrays[0]
    three_gone = dataclasses.replace(md0, working_disks=3, status="UUU___")
    assert raid.array_state(three_gone) == "failed"
    raid5 = md("raid5_failed_member.txt").arrays[0]
    assert raid.array_state(dataclasses.replace(raid5, working_disks=1)) == "failed"


def test_raid_findings_levels_and_member_alerts() -> None:
    found = {f.key: f for f in raid.check(Snapshot(0.0, mdstat=md("raid5_failed_member.txt")),
                                          LIMITS)}
    assert found["raid:md0"].level == CRITICAL
    assert "1 member(s) missing" in found["raid:md0"].text
    assert found["raid_member:md0:sdc1"].level == WARNING
    rebuilding = raid.check(Snapshot(0.0, mdstat=md("raid6_recovering.txt")), LIMITS)
    assert rebuilding[0].level == WARNING
    assert "19.6 % done" in rebuilding[0].text
    assert "about 1420 minutes left" in rebuilding[0].text
    spare_ok = raid.check(Snapshot(0.0, mdstat=md("raid1_failed_member_bitmap.txt")), LIMITS)
    assert [f.key for f in spare_ok] == ["raid_member:md1:sdh1"]
    assert raid.check(Snapshot(0.0, mdstat=md("raid10_clean.txt")), LIMITS) == []


# -- space -----------------------------------------------------------------------------------

def reading(used_percent: float, inodes_percent: float = 10.0) -> SpaceReading:
    total = 1000 * 2**20
    used = int(total * used_percent / 100)
    return SpaceReading("/var/lib/mailstead", total, used, total - used, 1000,
                        int(1000 - 10 * inodes_percent))


@pytest.mark.parametrize(("percent", "level"), [(84.9, None), (85.0, WARNING),
                                                 (94.9, WARNING), (95.0, CRITICAL)])
def test_space_thresholds(percent: float, level: str | None) -> None:
    found = space.check(Snapshot(0.0, space=reading(percent)), LIMITS)
    assert (found[0].level if found else None) == level
    assert space.is_critical(reading(percent), LIMITS) == (level == CRITICAL)


def test_inodes_count_too() -> None:
    found = space.check(Snapshot(0.0, space=reading(10.0, inodes_percent=96.0)), LIMITS)
    assert [(f.key, f.level) for f in found] == [("inodes:/var/lib/mailstead", CRITICAL)]
    assert space.is_critical(reading(10.0, 96.0), LIMITS)


def test_space_settings_are_validated() -> None:
    settings = load_settings(None, environ={"MAILSTEAD_MONITOR__SPACE_WARNING_PERCENT": "70"})
    assert Thresholds.from_settings(settings).space_warning == 70
    with pytest.raises(SettingsError, match=r"monitor\.space_critical_percent"):
        load_settings(None, environ={"MAILSTEAD_MONITOR__SPACE_CRITICAL_PERCENT": "101"})
    with pytest.raises(SettingsError, match=r"monitor\.admin_address"):
        load_settings(None, environ={"MAILSTEAD_MONITOR__ADMIN_ADDRESS": "not an address"})


# -- trend -----------------------------------------------------------------------------------

def test_new_bad_sectors_since_yesterday() -> None:
    today = with_raw(report("hdd_helium_ok_7.3.json"), a5=3, a197=1)
    disk = Disk("sda", None, today)
    assert trend.check(Snapshot(0.0, (disk,)), LIMITS, {}) == []            # no history yet
    assert trend.check(Snapshot(0.0, (disk,)), LIMITS, {disk.ident: 4.0}) == []
    (finding,) = trend.check(Snapshot(0.0, (disk,)), LIMITS, {disk.ident: 1.0})
    assert finding.key == "trend:3WJMHZ6L"
    assert "3 new bad sectors" in finding.title
    media = report("nvme_media_errors_samsung970_7.0.json")
    nvme = Disk("nvme0", None, media)
    assert trend.check(Snapshot(0.0, (nvme,)), LIMITS, {nvme.ident: 5.0})[0].level == WARNING


def test_evaluate_one_finding_per_key() -> None:
    failing = report("hdd_failing_hitachi_7.1.json")
    keys = [f.key for f in evaluate(snap(failing, failing), LIMITS)]
    assert keys == sorted(set(keys), key=keys.index)
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize(("fixture", "state", "level"), [
    ("vm_raid1_clean_bitmap.txt", "clean", None),
    ("vm_raid1_faulty.txt", "degraded", CRITICAL),
    ("vm_raid1_degraded.txt", "degraded", CRITICAL),
    ("vm_raid1_recovering.txt", "rebuilding", WARNING),
    ("vm_raid5_initial_recovery_spare.txt", "rebuilding", WARNING),
    ("vm_raid6_two_missing.txt", "degraded", CRITICAL),
    ("vm_raid6_recovering.txt", "rebuilding", WARNING),
    ("vm_raid10_degraded.txt", "degraded", CRITICAL),
    ("vm_raid10_clean_bitmap.txt", "clean", None)])
def test_vm_captured_arrays(fixture: str, state: str, level: str | None) -> None:
    (array,) = md(fixture).arrays
    assert raid.array_state(array) == state
    found = {f.key: f.level for f in raid.check(Snapshot(0.0, mdstat=md(fixture)), LIMITS)}
    assert found.get(f"raid:{array.name}") == level


def test_qemu_nvme_temperature_warning_bit_is_failing() -> None:
    health = disk_health.health_of(report("qemu_nvme_critical_warning_7.3.json"), LIMITS)
    assert health.state == "failing"
    assert any("critical warning 0x02: temperature" in r for r in health.reasons)
    assert disk_health.health_of(report("qemu_sata_7.3.json"), LIMITS).state == "ok"
