"""Block devices through pyudev: the disks with model, serial, bus, size and rotation, and
the kernel's add/remove/change events for hot-plug.

udev's database (ID_MODEL, ID_SERIAL_SHORT, ID_BUS) is used when a udev daemon filled it;
sysfs attributes are the fallback (a host without udevd, such as a container, still lists
its disks). Virtual devices (loop, zram, dm, md) are not disks to watch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyudev  # type: ignore[import-untyped]  # pyudev ships no type information

SECTOR = 512     # /sys/block/*/size counts 512-byte sectors whatever the disk's block size


@dataclass(frozen=True)
class BlockDevice:
    name: str                # kernel name: "sda", "nvme0n1"
    devnode: str             # "/dev/sda"
    model: str
    serial: str
    bus: str                 # "ata", "nvme", "scsi", "usb", "virtio", ... or ""
    size_bytes: int
    rotational: bool | None
    removable: bool
    wwn: str


@dataclass(frozen=True)
class DiskEvent:
    action: str              # "add", "remove", "change"
    device: BlockDevice


def is_virtual(properties: Mapping[str, str]) -> bool:
    return "/devices/virtual/" in properties.get("DEVPATH", "")


def block_device(name: str, properties: Mapping[str, str],
                 attributes: Mapping[str, str]) -> BlockDevice:
    """A BlockDevice from udev properties and sysfs attribute texts (pure)."""
    size = attributes.get("size", "").strip()
    rotational = attributes.get("queue/rotational", "").strip()
    return BlockDevice(
        name=name, devnode=properties.get("DEVNAME", f"/dev/{name}"),
        model=(properties.get("ID_MODEL") or attributes.get("device/model", "")).strip()
        .replace("_", " "),
        serial=(properties.get("ID_SERIAL_SHORT") or attributes.get("serial", "")
                or attributes.get("device/serial", "")).strip(),
        bus=properties.get("ID_BUS") or _bus(properties.get("DEVPATH", "")),
        size_bytes=int(size) * SECTOR if size.isdigit() else 0,
        rotational=None if rotational not in ("0", "1") else rotational == "1",
        removable=attributes.get("removable", "").strip() == "1",
        wwn=properties.get("ID_WWN", ""))


def _bus(devpath: str) -> str:
    """The bus from the device path when udev did not name it."""
    for marker, bus in (("/nvme/", "nvme"), ("/usb", "usb"), ("/virtio", "virtio"),
                        ("/ata", "ata"), ("/host", "scsi")):
        if marker in devpath:
            return bus
    return ""


_ATTRIBUTES = ("size", "queue/rotational", "removable", "serial", "device/model",
               "device/serial")


def _from_udev(device: Any) -> BlockDevice:
    attributes = {}
    for name in _ATTRIBUTES:
        try:
            value = device.attributes.get(name)
        except (OSError, UnicodeDecodeError):
            value = None
        attributes[name] = value.decode("utf-8", "replace") if isinstance(value, bytes) else ""
    return block_device(device.sys_name, dict(device.properties), attributes)


def enumerate_disks(context: pyudev.Context | None = None) -> tuple[BlockDevice, ...]:
    """The physical disks the kernel knows now (no partitions, no virtual devices)."""
    context = context or pyudev.Context()
    found = [_from_udev(d) for d in context.list_devices(subsystem="block", DEVTYPE="disk")
             if not is_virtual(d.properties)]
    return tuple(sorted(found, key=lambda d: d.name))


UDEVD_CONTROL = Path("/run/udev/control")


def event_source() -> str:
    """"udev" (events udevd processed, with ID_* properties) where udevd runs, else
    "kernel" (the raw uevents: hot-plug still seen on a host without udevd)."""
    return "udev" if UDEVD_CONTROL.exists() else "kernel"


def open_monitor(context: pyudev.Context | None = None,
                 source: str | None = None) -> pyudev.Monitor:
    """A started netlink monitor of block disks. Raises OSError (or pyudev's errors)
    where netlink is not available; the daemon then polls only."""
    monitor = pyudev.Monitor.from_netlink(context or pyudev.Context(),
                                          source=source or event_source())
    monitor.filter_by("block", "disk")
    monitor.start()
    return monitor


def event_of(device: Any) -> DiskEvent | None:
    """The DiskEvent of one device the monitor received, or None for one we ignore."""
    action = device.action or ""
    if action not in ("add", "remove", "change") or is_virtual(device.properties):
        return None
    return DiskEvent(action, _from_udev(device))
