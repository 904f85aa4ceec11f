"""Hardware readers on real captured output (tests/fixtures/hardware/SOURCES.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from appliance.hardware.readers import blockdev, mdadm, mdstat, smart, system

FIXTURES = Path(__file__).parent.parent / "fixtures" / "hardware"


def report(name: str) -> smart.SmartReport:
    return smart.parse_smartctl((FIXTURES / "smartctl" / name).read_bytes())


def arrays(name: str) -> dict[str, mdstat.MdArray]:
    parsed = mdstat.parse_mdstat((FIXTURES / "mdstat" / name).read_text())
    return {a.name: a for a in parsed.arrays}


# -- smartctl --------------------------------------------------------------------------------

def test_healthy_hdd_attributes_and_identity() -> None:
    r = report("hdd_helium_ok_7.3.json")
    assert (r.model, r.serial, r.smartctl_version) == ("WDC  WUH721816ALE6L4", "3WJMHZ6L", "7.3")
    assert (r.kind, r.protocol, r.rotation_rate) == ("hdd", "ATA", 7200)
    assert r.smart_passed is True
    assert r.exit_status == 0
    assert r.exit_flags == ()
    assert r.temperature == 26
    assert r.power_on_hours == 593
    assert [r.raw(i) for i in (5, 9, 10, 196, 197, 198, 199)] == [0, 593, 0, 0, 0, 0, 0]
    assert r.raw(187) is None
    assert r.raw(188) is None
    assert r.capacity_bytes == 16000900661248


def test_failing_hdd_reallocated_pending_and_exit_bits() -> None:
    r = report("hdd_failing_hitachi_7.1.json")
    assert r.smart_passed is False
    assert r.exit_status == 216
    assert r.exit_flags == ("disk_failing", "prefail_below_threshold",
                            "error_log_has_errors", "self_test_log_has_errors")
    realloc = r.attribute(5)
    assert realloc is not None
    assert (realloc.raw, realloc.value, realloc.thresh) == (1975, 1, 5)
    assert realloc.when_failed == "now"
    assert realloc.prefailure
    assert (r.raw(196), r.raw(197), r.raw(198), r.raw(199)) == (3831, 8, 0, 0)
    assert r.temperature == 25                                  # not the packed raw 194
    assert r.raw(194) == 167504969753
    assert len(r.self_tests) == 21
    failed = [t for t in r.self_tests if t.passed is False]
    assert [(t.kind, t.lifetime_hours) for t in failed] == [
        ("Extended offline", 4), ("Extended offline", 65375), ("Extended offline", 65231)]
    assert r.self_tests[0].passed is True
    assert r.self_tests[0].status == "Completed without error"


def test_healthy_sata_ssd() -> None:
    r = report("ssd_sata_ok_samsung840_7.0.json")
    assert (r.kind, r.device_type, r.smartctl_version) == ("ssd", "sat", "7.0")
    assert (r.raw(5), r.raw(187), r.raw(190), r.raw(199)) == (0, 0, 33, 108)
    assert r.temperature == 33
    assert r.self_tests == ()
    assert not r.self_test_running


def test_nvme_health_logs() -> None:
    ok = report("nvme_ok_7.3.json")
    assert ok.kind == "nvme"
    assert ok.nvme is not None
    assert (ok.nvme.critical_warning, ok.nvme.available_spare, ok.nvme.percentage_used,
            ok.nvme.media_errors, ok.nvme.unsafe_shutdowns) == (0, 100, 0, 0, 29)
    worn = report("nvme_media_errors_samsung970_7.0.json")
    assert worn.nvme is not None
    assert (worn.nvme.media_errors, worn.nvme.error_log_entries, worn.nvme.unsafe_shutdowns,
            worn.nvme.available_spare_threshold, worn.temperature) == (7, 62, 10, 10, 35)
    assert worn.attributes == ()
    assert worn.scsi_grown_defects is None


def test_sas_grown_defects_without_header() -> None:
    r = report("sas_grown_defects_seagate_trimmed.json")
    assert (r.kind, r.protocol, r.scsi_grown_defects) == ("hdd", "SCSI", 56)
    assert (r.temperature, r.drive_trip_temperature, r.power_on_hours) == (34, 68, 43549)
    assert r.exit_status is None
    assert r.smartctl_version == ""
    assert r.model == "SEAGATE ST4000NM0043"


def test_this_machine_virtio_disk_has_no_smart() -> None:
    r = smart.parse_smartctl((FIXTURES / "local" / "smartctl_vda_7.3.json").read_bytes())
    assert r.exit_status == 1
    assert r.exit_flags == ("command_line_error",)
    assert r.messages == ("/dev/vda: Unable to detect device type",)
    assert r.kind == "unknown"
    assert r.smart_passed is None
    assert smart.parse_scan((FIXTURES / "local" / "smartctl_scan_open_7.3.json")
                            .read_bytes()) == ()


@pytest.mark.parametrize(("status", "flags"), [
    (0, ()), (1, ("command_line_error",)), (2, ("device_open_failed",)),
    (4, ("smart_command_failed",)), (32, ("past_threshold",)),
    (255, smart.EXIT_BITS), (192, ("error_log_has_errors", "self_test_log_has_errors"))])
def test_exit_status_bits(status: int, flags: tuple[str, ...]) -> None:
    assert smart.decode_exit_status(status) == flags


@pytest.mark.parametrize(("value", "names"), [
    (2, ("temperature",)), (4, ("reliability_degraded",)),
    (9, ("available_spare_low", "read_only")), (0x30, ("volatile_backup_failed",
                                                        "pmr_read_only"))])
def test_nvme_critical_warning_bits(value: Any, names: tuple[str, ...]) -> None:
    assert smart.decode_nvme_warning(value) == names


def test_not_json_is_refused() -> None:
    with pytest.raises(smart.SmartParseError):
        smart.parse_smartctl(b"smartctl 7.3 2022-02-28 r5338\n")
    with pytest.raises(smart.SmartParseError):
        smart.parse_smartctl(b"[1, 2]")


def test_argv_has_no_shell_and_a_type_when_known() -> None:
    assert smart.smartctl_argv("/dev/sda") == ["smartctl", "--json=c", "-a", "/dev/sda"]
    assert smart.smartctl_argv("/dev/bus/0", "megaraid,16")[-3:] == [
        "-d", "megaraid,16", "/dev/bus/0"]
    with pytest.raises(ValueError, match="short or long"):
        smart.start_self_test("/dev/sda", "conveyance")


# -- /proc/mdstat ----------------------------------------------------------------------------

def test_raid1_clean_and_auto_read_only() -> None:
    found = arrays("raid1_clean_auto_read_only.txt")
    assert sorted(found) == ["md0", "md1", "md2"]
    md2 = found["md2"]
    assert (md2.level, md2.read_only, md2.status, md2.degraded) == (
        "raid1", "auto-read-only", "UU", False)
    assert [m.name for m in md2.members] == ["sdc3", "sdd3"]
    assert md2.blocks == 1757700984
    assert found["md1"].read_only == ""
    assert found["md1"].sync is None


def test_raid1_degraded_recovering() -> None:
    md0 = arrays("raid1_degraded_recovering.txt")["md0"]
    assert md0.degraded
    assert md0.missing == 1
    assert md0.status == "_U"
    assert md0.sync == mdstat.MdSync("recovery", 0.4, 1024, 208704, 276.9, 12)


def test_raid5_failed_member_and_degraded() -> None:
    md0 = arrays("raid5_failed_member.txt")["md0"]
    assert (md0.level, md0.raid_disks, md0.working_disks) == ("raid5", 3, 2)
    assert md0.faulty_members == ("sdc1",)
    assert md0.degraded
    assert md0.bitmap is None


def test_raid1_faulty_member_not_degraded_with_bitmap() -> None:
    md1 = arrays("raid1_failed_member_bitmap.txt")["md1"]
    assert md1.faulty_members == ("sdh1",)
    assert not md1.degraded
    assert md1.bitmap == mdstat.MdBitmap(2, 15, 65536, "")


def test_raid5_spare_and_bitmap() -> None:
    md1 = arrays("raid5_clean_spare_bitmap.txt")["md1"]
    assert md1.spares == ("sdk",)
    assert not md1.degraded
    assert md1.bitmap is not None
    assert {m.name: m.role for m in md1.members}["sdj"] == 6


def test_raid6_recovering_two_missing() -> None:
    md0 = arrays("raid6_recovering.txt")["md0"]
    assert (md0.level, md0.missing, md0.status) == ("raid6", 2, "UUUU__")
    assert md0.sync is not None
    assert md0.sync.percent == 19.6
    assert (md0.sync.finish_minutes, md0.sync.speed_kib) == (1420.1, 13810)
    assert [m.name for m in md0.members][-1] == "sdc"          # a whole disk, no partition


def test_raid10_with_and_without_bitmap() -> None:
    found = arrays("raid10_clean.txt")
    assert found["md1"].level == "raid10"
    assert found["md1"].bitmap is not None
    assert found["md0"].bitmap is None
    assert found["md0"].status == "UUUU"


def test_check_and_delayed_resync() -> None:
    found = arrays("raid1_delayed_check_bitmap.txt")
    assert found["md1"].sync == mdstat.MdSync("resync", None, None, None, None, None,
                                              "DELAYED")
    assert found["md0"].sync is not None
    assert found["md0"].sync.action == "check"
    assert arrays("raid1_check.txt")["md2"].sync == mdstat.MdSync(
        "check", 98.3, 2879283712, 2927641919, 81.7, 9854)


def test_imsm_container_is_inactive_without_level() -> None:
    md0 = arrays("raid1_imsm_container.txt")["md0"]
    assert not md0.active
    assert md0.level == ""
    assert md0.spares == ("sda", "sdb")


def test_composite_file_tabs_inactive_pending() -> None:
    found = arrays("node_exporter_composite.txt")
    assert len(found) == 12
    assert found["md8"].sync is not None
    assert found["md8"].sync.action == "resync"
    assert found["md7"].degraded
    assert found["md7"].bitmap is not None
    assert found["md11"].sync is not None
    assert found["md11"].sync.waiting == "PENDING"
    assert found["md10"].level == "raid0"
    assert found["md10"].raid_disks is None
    assert not found["md4"].active
    assert found["md4"].level == "raid1"


def test_no_md_driver_reads_none(tmp_path: Path) -> None:
    assert mdstat.read_mdstat(tmp_path / "mdstat") is None


# -- mdadm --detail --export -----------------------------------------------------------------

def test_mdadm_export_identity_and_roles() -> None:
    d = mdadm.parse_detail_export((FIXTURES / "mdadm" / "raid1_clean_osiris.env").read_text())
    assert (d.level, d.raid_devices, d.metadata, d.devname, d.name) == (
        "raid1", 2, "1.2", "raid_2tb", "osiris:raid_2tb")
    assert d.uuid == "d0d68537:3bc9e8fd:770d7d5e:353ce578"
    assert d.members == (mdadm.MdadmMember("/dev/sdc5", "0"), mdadm.MdadmMember("/dev/sdd5", "1"))
    other = mdadm.parse_detail_export((FIXTURES / "mdadm" / "raid1_clean_meta10.env").read_text())
    assert other.metadata == "1.0"
    assert [m.device for m in other.members] == [
        "/dev/sda2", "/dev/sdb2"]


# -- udev and psutil -------------------------------------------------------------------------

def test_block_device_from_this_machines_udev_capture() -> None:
    devices = json.loads((FIXTURES / "local" / "udev_block_disks.json").read_text())
    vda = next(d for d in devices if d["sys_name"] == "vda")
    disk = blockdev.block_device("vda", vda["properties"], vda["attributes"])
    assert (disk.devnode, disk.bus, disk.size_bytes, disk.rotational) == (
        "/dev/vda", "virtio", 536870912 * 512, True)
    assert disk.serial == "overlayblk"
    loops = [d for d in devices if d["sys_name"].startswith("loop")]
    assert loops
    assert all(blockdev.is_virtual(d["properties"]) for d in loops)


def test_udev_properties_win_over_sysfs() -> None:
    disk = blockdev.block_device("sda", {"DEVNAME": "/dev/sda", "ID_MODEL": "WDC_WD40EFRX",
                                         "ID_SERIAL_SHORT": "WD-1", "ID_BUS": "ata"},
                                 {"size": "7814037168", "queue/rotational": "1",
                                  "removable": "0"})
    assert (disk.model, disk.serial, disk.bus) == ("WDC WD40EFRX", "WD-1", "ata")


def test_space_and_io_rates_from_this_machines_capture() -> None:
    snap = json.loads((FIXTURES / "local" / "psutil_snapshot.json").read_text())
    usage, st = snap["disk_usage_work"], snap["statvfs_work"]
    space = system.space_of("/work", usage["total"], usage["used"], usage["free"],
                            st["f_files"], st["f_favail"])
    assert round(space.percent, 1) == usage["percent"]
    assert 0 < space.inodes_percent < 100
    vda = snap["disk_io_counters"]["vda"]
    before = {"vda": system.IoCounters(vda["read_count"], vda["write_count"], vda["read_bytes"],
                                       vda["write_bytes"], vda["read_time"], vda["write_time"])}
    after = {"vda": system.IoCounters(vda["read_count"] + 10, vda["write_count"] + 30,
                                      vda["read_bytes"] + 40960, vda["write_bytes"] + 122880,
                                      vda["read_time"] + 20, vda["write_time"] + 60)}
    (rate,) = system.io_rates(before, after, 2.0)
    assert (rate.reads_per_s, rate.writes_per_s, rate.read_bytes_per_s) == (5, 15, 20480)
    assert rate.latency_ms == 2.0
    assert system.io_rates(after, before, 2.0) == ()            # counters went backwards
    assert snap["sensors_temperatures"] == {}
    assert snap["sensors_fans"] == {}


# -- captured by us in the qemu guest (vm/) --------------------------------------------------

@pytest.mark.parametrize(("name", "status", "faulty", "spares", "action"), [
    ("vm_raid1_clean_bitmap.txt", "UU", (), (), None),
    ("vm_raid1_faulty.txt", "U_", ("vdc",), (), None),
    ("vm_raid1_degraded.txt", "U_", (), (), None),
    ("vm_raid1_recovering.txt", "U_", (), (), "recovery"),
    ("vm_raid5_initial_recovery_spare.txt", "UU_", (), ("vdg",), "recovery"),
    ("vm_raid6_clean.txt", "UUUUU", (), (), None),
    ("vm_raid6_two_missing.txt", "UUU__", (), (), None),
    ("vm_raid6_recovering.txt", "UUU__", (), (), "recovery"),
    ("vm_raid10_clean_bitmap.txt", "UUUU", (), (), None),
    ("vm_raid10_degraded.txt", "U_UU", ("vdc",), (), None)])
def test_vm_mdstat_captures(name: str, status: str, faulty: tuple[str, ...],
                            spares: tuple[str, ...], action: str | None) -> None:
    (array,) = arrays(name).values()
    assert array.status == status
    assert array.faulty_members == faulty
    assert array.spares == spares
    assert (array.sync.action if array.sync else None) == action


def test_vm_recovery_progress_and_bitmap() -> None:
    md0 = arrays("vm_raid1_recovering.txt")["md0"]
    assert md0.sync == mdstat.MdSync("recovery", 1.5, 1408, 64512, 2.9, 352)
    assert md0.bitmap == mdstat.MdBitmap(1, 1, 65536, "")
    assert arrays("vm_raid6_clean.txt")["md2"].bitmap is None
    empty = mdstat.parse_mdstat((FIXTURES / "mdstat" / "vm_none.txt").read_text())
    assert empty.arrays == ()
    assert len(empty.personalities) == 8


def test_vm_mdadm_exports_faulty_reads_spare_removed_is_gone() -> None:
    def detail(name: str) -> mdadm.MdadmDetail:
        return mdadm.parse_detail_export((FIXTURES / "mdadm" / name).read_text())

    clean = detail("vm_raid1_clean.env")
    assert [(m.device, m.role) for m in clean.members] == [("/dev/vdb", "0"), ("/dev/vdc", "1")]
    assert clean.name == "(none):0"
    assert clean.devname == ""
    faulty = detail("vm_raid1_faulty.env")
    assert [(m.device, m.role) for m in faulty.members] == [("/dev/vdb", "0"),
                                                            ("/dev/vdc", "spare")]
    assert [m.device for m in detail("vm_raid1_degraded.env").members] == ["/dev/vdb"]
    raid6 = detail("vm_raid6_two_missing.env")
    assert (raid6.level, raid6.raid_devices, len(raid6.members)) == ("raid6", 5, 3)
    spare = detail("vm_raid5_initial_recovery_spare.env")
    assert ("/dev/vdg", "spare") in [(m.device, m.role) for m in spare.members]
    assert detail("vm_raid10_degraded.env").uuid == detail("vm_raid10_clean.env").uuid


def test_qemu_nvme_critical_warning_and_sata() -> None:
    nvme = report("qemu_nvme_critical_warning_7.3.json")
    assert nvme.nvme is not None
    assert (nvme.nvme.critical_warning, nvme.nvme.warnings) == (2, ("temperature",))
    assert (nvme.exit_status, nvme.exit_flags, nvme.smart_passed) == (8, ("disk_failing",),
                                                                      False)
    assert (nvme.model, nvme.serial, nvme.kind) == ("QEMU NVMe Ctrl", "NVME0001", "nvme")
    sata = report("qemu_sata_7.3.json")
    assert (sata.model, sata.serial, sata.device_type, sata.kind) == (
        "QEMU-SATA-DISK", "SATA0001", "sat", "unknown")
    assert sata.temperature == 31
    assert sata.raw(5) == 0
    scanned = smart.parse_scan((FIXTURES / "smartctl" / "qemu_scan_open_7.3.json").read_bytes())
    assert [(d.name, d.device_type) for d in scanned] == [
        ("/dev/sda", "sat"), ("/dev/sdb", "sat"), ("/dev/nvme0", "nvme")]
