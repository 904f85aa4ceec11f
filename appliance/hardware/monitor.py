"""`mailstead-monitor`: the driver that polls the readers, judges with the rules, records
alerts and history, mails the admin, keeps the engine's critical-space flag, starts the
scheduled SMART self-tests and runs the disk hooks. All decisions are in rules/, alerts.py
and schedule.py; this module only does I/O.

Hot-plug: a netlink monitor of block disks (pyudev) wakes the loop at once on add, remove
and change; where netlink is not available (containers), the monitor polls only and logs
that it does.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from appliance.core import fsio, log
from appliance.hardware import hooks, notify, schedule
from appliance.hardware.alerts import AlertBook, History, Notice
from appliance.hardware.collect import Collector
from appliance.hardware.readers import blockdev, smart
from appliance.hardware.rules import evaluate, space
from appliance.hardware.rules.base import CRITICAL, Disk, Finding, Snapshot, Thresholds
from appliance.hardware.rules.disk_health import health_of
from appliance.pipeline.deliver import Deliverer
from appliance.pipeline.local_deliverer import local_deliverer
from appliance.pipeline.space import MONITOR_FLAG
from appliance.settings import Settings
from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory

FAILED_KEYS = ("disk_health:", "selftest:", "raid_member:")   # run disk-failed on these
EVENT_DEBOUNCE = 2.0      # seconds to wait after a udev event for its siblings to arrive


@dataclass
class PollResult:
    snapshot: Snapshot
    findings: tuple[Finding, ...]
    notices: list[Notice]
    queued: str | None = None          # the alert mail's queue id
    self_tests: list[tuple[str, str]] = field(default_factory=list)


class Monitor:
    """One monitor for one data directory; `poll` is one round, `run` the daemon."""

    def __init__(self, settings: Settings, collector: Collector | None = None,
                 conn: sqlite3.Connection | None = None) -> None:
        self.settings = settings
        self.collector = collector or Collector(settings.data_dir)
        self.conn = conn or open_database(settings.data_dir)
        self.limits = Thresholds.from_settings(settings)
        self.book = AlertBook(self.conn, settings.get_int("monitor.reminder_hours") * 3600)
        self.history = History(self.conn)
        self.interval = settings.get_int("monitor.poll_interval")
        self._executor = ThreadPoolExecutor(2, thread_name_prefix="monitor")
        self._deliverer: Deliverer | None = None
        self._known: set[str] = set()

    async def poll(self) -> PollResult:
        loop = asyncio.get_running_loop()
        snapshot = await loop.run_in_executor(self._executor, self.collector.collect)
        now = int(snapshot.taken_at)
        findings = evaluate(snapshot, self.limits, self.history.baseline(now))
        notices = self.book.update(findings, now)
        self.history.record(snapshot, now)
        self.history.prune(now, self.settings.get_int("monitor.history_days"))
        self._space_flag(space.is_critical(snapshot.space, self.limits), now)
        result = PollResult(snapshot, findings, notices)
        result.self_tests = await loop.run_in_executor(self._executor, self._self_tests,
                                                       snapshot, now)
        if notices:         # the alert first: a hook may take up to hooks.timeout
            result.queued = await self._mail(notices)
        await loop.run_in_executor(self._executor, self._failed_hooks, snapshot, notices)
        log.event("monitor.poll", disks=len(snapshot.disks), findings=len(findings),
                  notices=len(notices), overall=max((f.level for f in findings), default="ok"))
        return result

    # -- actions -------------------------------------------------------------------------

    def _space_flag(self, critical: bool, now: int) -> None:
        """Tell the engine (pipeline/space.py): the flag's mtime is when it expires, three
        poll intervals from now, so a dead monitor stops refusing mail by itself."""
        flag = self.settings.data_dir / MONITOR_FLAG
        if not critical:
            if flag.exists():
                flag.unlink()
                log.event("monitor.space_ok", flag=str(flag))
            return
        flag.parent.mkdir(mode=0o755, exist_ok=True)
        if not flag.exists():
            fsio.atomic_write(flag, b"mail storage above monitor.space_critical_percent\n",
                              0o644)
            log.event("monitor.space_critical", flag=str(flag))
        expires = now + 3 * self.interval
        os.utime(flag, (expires, expires))

    def _self_tests(self, snapshot: Snapshot, now: int) -> list[tuple[str, str]]:
        started = []
        short = self.settings.get_int("monitor.short_test_hours")
        long_days = self.settings.get_int("monitor.long_test_days")
        for disk in snapshot.disks:
            report = disk.smart
            if report is None or (report.smart_passed is None and not report.attributes
                                  and report.nvme is None):
                continue                    # no SMART: nothing to test
            last = self.history.get(f"selftest:{disk.ident}")
            times: dict[str, float] = dict(last) if isinstance(last, dict) else {"first": now}
            kind = schedule.due_test(now, times, short, long_days, report.self_test_running)
            if kind is not None:
                result = smart.start_self_test(disk.devnode, kind, report.device_type)
                log.event("monitor.self_test", disk=disk.devnode, kind=kind,
                          status=result.returncode)
                times[kind] = now
                started.append((disk.devnode, kind))
            self.history.put(f"selftest:{disk.ident}", times)
        return started

    def _failed_hooks(self, snapshot: Snapshot, notices: Sequence[Notice]) -> None:
        for notice in filter(wants_failed_hook, notices):
            disk = _disk_for(snapshot, notice.device)
            env = hooks.disk_env(disk, "disk-failed", notice.title,
                                 health_of(disk.smart, self.limits))
            hooks.run_disk_hooks(self.settings, "disk-failed", env)

    def disk_added(self, event: blockdev.DiskEvent) -> None:
        """Run the disk-added hooks for a hot-plugged disk (udev `add`)."""
        disk = Disk(event.device.name, event.device)
        hooks.run_disk_hooks(self.settings, "disk-added",
                             hooks.disk_env(disk, "disk-added", "hot-plugged"))

    async def _mail(self, notices: list[Notice]) -> str | None:
        admin = notify.admin_mailbox(self.settings, SqliteDirectory(self.conn))
        if admin is None:
            log.event("monitor.no_admin_address",
                      address=self.settings.get_str("monitor.admin_address"),
                      notices=len(notices))
            return None
        address, to = admin.address, admin.to
        if self._deliverer is None:
            self._deliverer = local_deliverer(
                self.settings.data_dir, self._executor,
                self.settings.get_int("limits.max_messages_per_account"))
        message = notify.compose(notices, admin.sender, address,
                                 self.settings.get_str("server.hostname"))
        try:
            queue_id = await notify.send(self._deliverer, to, message)
        except Exception as exc:     # a failed mail must not stop monitoring; logged
            log.error("monitor.mail_failed", exc, to=address)
            return None
        log.event("monitor.mailed", to=address, queue_id=queue_id, notices=len(notices))
        return queue_id

    # -- the daemon ----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Poll every `monitor.poll_interval` seconds and at once after a disk event."""
        stop = stop or asyncio.Event()
        wake = asyncio.Event()
        watcher = self._watch(wake)
        try:
            while not stop.is_set():
                await self.poll()
                await _wait_any(stop, wake, self.interval)
                if wake.is_set() and not stop.is_set():
                    await asyncio.sleep(EVENT_DEBOUNCE)
                    wake.clear()
        finally:
            if watcher is not None:
                watcher()
            self._executor.shutdown(wait=False)

    def _watch(self, wake: asyncio.Event) -> Any:
        """Start the udev monitor on the loop; returns its stop function, or None."""
        try:
            monitor = blockdev.open_monitor()
        except Exception as exc:     # pyudev raises several types where netlink is missing
            log.event("monitor.udev_unavailable", reason=str(exc)[:200], mode="poll only")
            return None
        loop = asyncio.get_running_loop()

        def readable() -> None:
            device = monitor.poll(timeout=0)
            event = blockdev.event_of(device) if device is not None else None
            if event is None:
                return
            log.event("monitor.udev_event", action=event.action, disk=event.device.devnode)
            if event.action == "add":
                loop.run_in_executor(self._executor, self.disk_added, event)
            wake.set()

        loop.add_reader(monitor.fileno(), readable)
        log.event("monitor.udev_listening", mode="events and poll",
                  source=blockdev.event_source())
        return lambda: loop.remove_reader(monitor.fileno())


async def serve(monitor: Monitor) -> None:
    """Run `monitor` until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.event("monitor.start", interval=monitor.interval)
    await monitor.run(stop)
    log.event("monitor.stop")


def exit_status(findings: Sequence[Finding]) -> int:
    """0 all well, 1 a warning, 2 something critical (`mailstead health`, `--once`)."""
    levels = {f.level for f in findings}
    return 2 if CRITICAL in levels else 1 if levels else 0


def wants_failed_hook(notice: Notice) -> bool:
    """disk-failed runs when a disk turns critical (health, self-test) or md marks a
    member faulty; once per change, not on reminders."""
    if notice.event not in ("raised", "changed") or not notice.key.startswith(FAILED_KEYS):
        return False
    return notice.level == CRITICAL or notice.key.startswith("raid_member:")


def _disk_for(snapshot: Snapshot, device: str) -> Disk:
    for disk in snapshot.disks:
        if device in (disk.devnode, f"/dev/{disk.name}"):
            return disk
    name = device.rsplit("/", 1)[-1] if device else ""
    return Disk(name or "unknown")


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event, timeout: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    for waiter in waiters:
        waiter.cancel()

