"""The environment of the `disk-added` and `disk-failed` firmware hooks (the disk's facts in
MAILSTEAD_DISK_* variables, the table in firmware-hooks/README.md), and their run through
the one hook runner (appliance/update/hooks.py: `<stage>.d/` folders of the image's and the
admin's hook directories, `hooks.timeout`).
"""

from __future__ import annotations

from appliance.hardware.rules.base import Disk
from appliance.hardware.rules.disk_health import Health
from appliance.settings import Settings
from appliance.update.hooks import StageResult, hook_dirs, run_stage

STAGES = ("disk-added", "disk-failed")


def disk_env(disk: Disk, stage: str, reason: str = "",
             health: Health | None = None) -> dict[str, str]:
    """The hook's environment: every variable is always set ("" when unknown)."""
    block, smart = disk.block, disk.smart
    rotational = block.rotational if block is not None else None
    size = (block.size_bytes if block is not None and block.size_bytes else
            smart.capacity_bytes if smart is not None else None)
    return {
        "MAILSTEAD_HOOK_STAGE": stage,
        "MAILSTEAD_DISK_NAME": disk.name,
        "MAILSTEAD_DISK_DEVNODE": disk.devnode,
        "MAILSTEAD_DISK_MODEL": (smart.model if smart else "") or (block.model if block else ""),
        "MAILSTEAD_DISK_SERIAL": disk.ident if disk.ident != disk.name else "",
        "MAILSTEAD_DISK_BUS": block.bus if block is not None else "",
        "MAILSTEAD_DISK_SIZE": str(size) if size else "",
        "MAILSTEAD_DISK_ROTATIONAL": "" if rotational is None else str(int(rotational)),
        "MAILSTEAD_DISK_WWN": block.wwn if block is not None else "",
        "MAILSTEAD_DISK_KIND": smart.kind if smart is not None else "",
        "MAILSTEAD_DISK_HEALTH": health.state if health is not None else "",
        "MAILSTEAD_DISK_REASON": reason,
    }


def run_disk_hooks(settings: Settings, stage: str, env: dict[str, str]) -> StageResult:
    """Run the hooks of a disk stage with `env` (from `disk_env`); the result changes
    nothing in the monitor, which has alerted by mail already: the runner logs it.

    Raises:
        ValueError: `stage` is not a disk stage.
    """
    if stage not in STAGES:
        raise ValueError(f"unknown disk hook stage {stage!r}")
    return run_stage(stage, env, dirs=hook_dirs(settings),
                     timeout=settings.get_int("hooks.timeout"))
