"""The boot-time decision after an update (`mailstead update commit`, run by
mailstead-update-commit.service once the engine and console have started): on a trial boot
of the new slot, judge its health and bless it or mark it bad and reboot; on the previous
slot with an install pending, record the rollback, run the rollback hooks and mail the admin.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from appliance.core import log
from appliance.hardware import notify
from appliance.pipeline.local_deliverer import local_deliverer
from appliance.settings import Settings
from appliance.storage.db import DB_NAME, connect
from appliance.storage.directory import SqliteDirectory
from appliance.update import health, hooks, slots, state
from appliance.update.bootenv import BootEnv
from appliance.update.install import System, hook_env

NO_VERDICT = "the new slot did not pass its health check within its boot attempts"

Alert = Callable[[str, str], None]       # (subject, text): mail the admin
Reboot = Callable[[], None]


@dataclass(frozen=True)
class Result:
    decision: slots.Decision
    outcome: str            # nothing, committed, failed (rebooting), rolled back
    reason: str = ""


def commit(system: System, targets: health.Targets, wait: float, *,
           alert: Alert, reboot: Reboot) -> Result:
    """Decide and act for this boot (slots.decide's table)."""
    current = state.load(system.update_dir)
    booted = slots.booted_slot(system.cmdline)
    decision = slots.decide(booted, current.pending)
    if decision is slots.Decision.TRIAL:
        return _judge(system, targets, wait, current, reboot)
    if decision is slots.Decision.ROLLED_BACK:
        return _rolled_back(system, current, alert)
    return Result(decision, "nothing")


def _judge(system: System, targets: health.Targets, wait: float,
           current: state.UpdateState, reboot: Reboot) -> Result:
    pending = current.pending
    assert pending is not None
    report = health.check(targets, wait)
    hooked = hooks.run_stage("health-check", hook_env(system, pending),
                             dirs=system.hook_dirs, timeout=system.hook_timeout)
    boot = BootEnv(system.esp)
    if report.ok and hooked.ok:
        boot.bless(pending.to_slot)
        current.pending = None
        current.record(state.Outcome(pending.version, "committed", "health check passed",
                                     pending.from_version))
        state.save(system.update_dir, current)
        log.event("update.committed", version=pending.version, slot=pending.to_slot)
        return Result(slots.Decision.TRIAL, "committed")
    reasons = [] if report.ok else [report.summary()]
    reasons += [f"health-check hook {run.path.name}: {run.status}" for run in hooked.failures]
    reason = "; ".join(reasons)
    boot.mark_bad(pending.to_slot)
    current.failure = reason
    state.save(system.update_dir, current)
    log.event("update.health_failed", version=pending.version, reason=reason)
    reboot()
    return Result(slots.Decision.TRIAL, "failed", reason)


def _rolled_back(system: System, current: state.UpdateState, alert: Alert) -> Result:
    pending = current.pending
    assert pending is not None
    reason = current.failure or NO_VERDICT
    BootEnv(system.esp).remove_entries(pending.to_slot)    # never boot it again by itself
    env = {**hook_env(system, pending), "MAILSTEAD_UPDATE_REASON": reason}
    hooks.run_stage("rollback", env, dirs=system.hook_dirs, timeout=system.hook_timeout)
    current.pending, current.failure = None, ""
    current.failed_versions = sorted({*current.failed_versions, pending.version})
    current.record(state.Outcome(pending.version, "rolled back", reason,
                                 pending.from_version))
    state.save(system.update_dir, current)
    log.event("update.rolled_back", version=pending.version, reason=reason)
    try:
        alert(f"[Mailstead CRITICAL] Update to {pending.version} rolled back",
              rollback_text(pending, reason))
    except Exception as exc:       # the rollback is recorded; a lost mail must not undo it
        log.error("update.alert_failed", exc, version=pending.version)
    return Result(slots.Decision.ROLLED_BACK, "rolled back", reason)


def rollback_text(pending: slots.Pending, reason: str) -> str:
    return (f"The update from Mailstead {pending.from_version} to {pending.version} was "
            f"installed into slot {pending.to_slot} but did not prove healthy:\n\n"
            f"  {reason}\n\nThe appliance booted slot {pending.from_slot} "
            f"({pending.from_version}) again and runs as before. Version {pending.version} "
            "will not be installed automatically again; `mailstead update status` shows "
            "the history.\n")


def mail_admin(settings: Settings) -> Alert:
    """An Alert that delivers to the admin's mailbox the way the monitor's alerts go
    (notify.admin_mailbox, system_mail, the local Deliverer); logged when there is none."""
    def send(subject: str, text: str) -> None:
        conn = connect(settings.data_dir / DB_NAME)      # no migration: maybe newer data
        try:
            admin = notify.admin_mailbox(settings, SqliteDirectory(conn))
        finally:
            conn.close()
        if admin is None:
            log.event("update.no_admin_address", subject=subject)
            return
        hostname = settings.get_str("server.hostname")
        message = notify.system_mail(f"Mailstead updater <{admin.sender}>", admin.address,
                                     subject, text, hostname)
        def deliver() -> None:
            with ThreadPoolExecutor(1) as executor:
                deliverer = local_deliverer(settings.data_dir, executor)
                queue_id = asyncio.run(notify.send(deliverer, admin.to, message))
            log.event("update.mailed", to=admin.address, queue_id=queue_id)

        as_owner(settings.data_dir, deliver)
    return send


def as_owner(path: Path, action: Callable[[], None]) -> None:
    """Run `action` as the owner of `path` when this process is root and the owner is not
    (this unit runs as root; the mail files must be the mail user's, like the engine's own).

    Raises:
        RuntimeError: the action failed in the child (its error is logged there).
    """
    info = path.stat()
    if os.geteuid() != 0 or info.st_uid == 0:
        action()
        return
    pid = os.fork()
    if pid == 0:                                     # the child: drop root, act, exit
        code = 1
        try:
            os.setgroups([])
            os.setgid(info.st_gid)
            os.setuid(info.st_uid)
            action()
            code = 0
        except BaseException as exc:
            log.error("update.as_owner_failed", exc, uid=info.st_uid)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"delivery as uid {info.st_uid} failed")
