"""The `disk-added` and `disk-failed` firmware hooks: an executable of that name in
`monitor.hooks_dir`, run with the disk's facts in MAILSTEAD_DISK_* variables (the table in
firmware-hooks/README.md), a fixed PATH, `monitor.hook_timeout`, no shell; its exit code and
output are logged. A missing hook is skipped.

A small runner for these two stages only: the update issue (every stage, pre-install to
rollback) is to generalise it into one hook runner for both, keeping this contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from appliance.core import log
from appliance.hardware.rules.base import Disk
from appliance.hardware.rules.disk_health import Health
from appliance.hardware.run import ToolResult, run_tool

STAGES = ("disk-added", "disk-failed")
LOGGED_OUTPUT = 2000        # characters of a hook's stdout/stderr kept in the log


@dataclass(frozen=True)
class HookRun:
    stage: str
    path: str
    returncode: int
    output: str


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


def run_hook(hooks_dir: Path, stage: str, env: Mapping[str, str],
             timeout: float) -> HookRun | None:
    """Run `hooks_dir/stage` if it exists; None when it does not."""
    if stage not in STAGES:
        raise ValueError(f"unknown disk hook stage {stage!r}")
    path = hooks_dir / stage
    if not path.is_file():
        log.event("monitor.hook_missing", stage=stage, path=str(path))
        return None
    result: ToolResult = run_tool([str(path)], timeout, extra_env=env)
    output = (result.stdout + result.stderr).decode("utf-8", "replace")[:LOGGED_OUTPUT]
    log.event("monitor.hook_ran", stage=stage, path=str(path), status=result.returncode,
              disk=env.get("MAILSTEAD_DISK_DEVNODE", ""), output=output)
    return HookRun(stage, str(path), result.returncode, output)
