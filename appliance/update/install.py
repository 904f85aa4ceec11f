"""Installing a bundle into the inactive slot: check the manifest against the running
system, run the pre-install hooks, stream the root image onto the slot's device and verify
it there, put kernel, initrd and a boot-counting entry on the ESP, run the post-install
hooks, record the pending install. Rebooting into it is a separate step (`plan_reboot`).

Every device and directory is a field of `System`, so tests install into plain files.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

from packaging.version import Version

from appliance.core import log
from appliance.core.run import run_tool
from appliance.settings import Settings
from appliance.update import bundle, hooks, slots, state, window
from appliance.update.bootenv import BootEnv, render_entry
from appliance.update.bundle import BundleError, Manifest

CMDLINE = Path("/proc/cmdline")
MOUNTS = Path("/proc/self/mounts")
ESP = Path("/efi")
MAX_BOOT_FILE = 512 * 1024 * 1024     # a kernel or initrd bigger than this is not ours
CHUNK = 1024 * 1024
REBOOT_UNIT = "mailstead-update-reboot"


class InstallError(RuntimeError):
    """The install was refused or aborted; the message says why (and state.json keeps it)."""


@dataclass(frozen=True)
class System:
    """What the install writes to and knows about the running system."""

    data_dir: Path
    esp: Path
    devices: Mapping[str, Path]      # slot -> its block device (a plain file in tests)
    cmdline: str                     # the kernel command line (/proc/cmdline)
    mounts: str                      # /proc/self/mounts
    running_version: str
    data_schema: int                 # what the running mailstead.db is migrated to
    hook_dirs: Sequence[Path]
    hook_timeout: float
    boot_attempts: int
    state_dir: Path | None = None    # update.state_dir; None: <data_dir>/update

    @property
    def update_dir(self) -> Path:
        """Where state.json lives (state.state_dir)."""
        return self.state_dir or self.data_dir / state.UPDATE_DIR


def device_of(slot: str) -> Path:
    return Path(f"/dev/disk/by-partlabel/root-{slot}")


def system_from(settings: Settings, data_schema: int, running_version: str) -> System:
    """The appliance's own System: /efi, the slots by label, /proc."""
    return System(
        data_dir=settings.data_dir, esp=ESP,
        devices={slot: device_of(slot) for slot in slots.SLOTS},
        cmdline=CMDLINE.read_text(), mounts=MOUNTS.read_text(),
        running_version=running_version, data_schema=data_schema,
        hook_dirs=hooks.hook_dirs(settings),
        hook_timeout=float(settings.get_int("hooks.timeout")),
        boot_attempts=settings.get_int("update.boot_attempts"),
        state_dir=state.state_dir(settings))


def check_manifest(manifest: Manifest, running: str, data_schema: int,
                   failed: Sequence[str] = ()) -> None:
    """Whether this system may install the bundle (pure).

    Raises:
        InstallError: not newer than the running version, the running version is older
            than min_version, the data schema would go backwards, or it failed before.
    """
    if Version(manifest.version) <= Version(running):
        raise InstallError(f"version {manifest.version} is not newer than the running "
                           f"{running}")
    if Version(manifest.min_version) > Version(running):
        raise InstallError(f"version {manifest.version} needs at least {manifest.min_version}"
                           f" to update from; this is {running}")
    if manifest.data_schema < data_schema:
        raise InstallError(f"version {manifest.version} reads data schema "
                           f"{manifest.data_schema}, but mailstead.db is at {data_schema}")
    if manifest.version in failed:
        raise InstallError(f"version {manifest.version} failed its health check before; "
                           "install it by hand with --force to try again")


def install(path: Path, system: System, *, force: bool = False) -> slots.Pending:
    """Install the bundle at `path` into the slot that is not booted.

    Returns:
        The pending install now recorded in state.json.
    Raises:
        InstallError: refused or aborted; nothing is bootable from the target slot then,
            and the history in state.json says why.
    """
    current = state.load(system.update_dir)
    manifest: Manifest | None = None
    try:
        manifest = bundle.read_manifest(path)
        pending = _prepare(manifest, system, current, force)
        _write(path, manifest, system, pending)
    except (InstallError, BundleError, OSError) as exc:
        version = manifest.version if manifest else path.name
        current.record(state.Outcome(version, "aborted", str(exc), system.running_version))
        state.save(system.update_dir, current)
        log.event("update.install_aborted", version=version, reason=str(exc))
        raise InstallError(str(exc)) from exc
    current.pending, current.failure = pending, ""
    current.record(state.Outcome(manifest.version, "installed", f"slot {pending.to_slot}",
                                 system.running_version))
    state.save(system.update_dir, current)
    log.event("update.installed", version=manifest.version, slot=pending.to_slot)
    return pending


def _prepare(manifest: Manifest, system: System, current: state.UpdateState,
             force: bool) -> slots.Pending:
    """The checks before anything is written, then the pre-install hooks."""
    if current.pending is not None:
        raise InstallError(f"version {current.pending.version} is installed and waits for "
                           "its reboot and commit; run `mailstead update commit` first")
    booted = slots.booted_slot(system.cmdline)
    if booted is None:
        raise InstallError("the booted slot is unknown (no mailstead.slot= on the kernel "
                           "command line)")
    check_manifest(manifest, system.running_version, system.data_schema,
                   () if force else current.failed_versions)
    pending = slots.Pending(manifest.version, booted, slots.other(booted),
                            system.running_version)
    _check_target(system, pending)
    result = hooks.run_stage("pre-install", hook_env(system, pending),
                             dirs=system.hook_dirs, timeout=system.hook_timeout)
    if not result.ok:
        names = ", ".join(run.path.name for run in result.failures)
        raise InstallError(f"pre-install hook failed ({names}): nothing was written")
    return pending


def _check_target(system: System, pending: slots.Pending) -> None:
    target = os.path.realpath(system.devices[pending.to_slot])
    if target == os.path.realpath(system.devices[pending.from_slot]):
        raise InstallError(f"slot {pending.to_slot}'s device is the booted slot's")
    for line in system.mounts.splitlines():
        source = line.split(" ", 1)[0]
        if source.startswith("/") and os.path.realpath(source) == target:
            raise InstallError(f"{target} (slot {pending.to_slot}) is mounted")


def hook_env(system: System, pending: slots.Pending) -> dict[str, str]:
    return {"MAILSTEAD_UPDATE_VERSION": pending.version,
            "MAILSTEAD_UPDATE_FROM_VERSION": pending.from_version,
            "MAILSTEAD_UPDATE_SLOT": pending.to_slot,
            "MAILSTEAD_UPDATE_FROM_SLOT": pending.from_slot,
            "MAILSTEAD_DATA_DIR": str(system.data_dir)}


def _write(path: Path, manifest: Manifest, system: System, pending: slots.Pending) -> None:
    """Root image to the device (verified there), then the ESP, then post-install."""
    boot, env = BootEnv(system.esp), hook_env(system, pending)
    boot.remove_entries(pending.to_slot)        # no half-written slot is ever bootable
    device = system.devices[pending.to_slot]
    files: dict[str, bytes] = {}
    # One SHA-256 pass over the root: the verify on disk. The compressed member is not
    # hashed as well (unhashed): a corrupt member fails gzip's CRC-32 and length trailer
    # while it inflates (RFC 1952 section 2.3.1) or gives bytes whose hash on the device
    # is not the manifest's, and either way before any boot entry exists; whoever could
    # change the member could change the manifest beside it (TUF verified the whole
    # bundle's SHA-256 when it was downloaded). Kernel, initrd and template keep their
    # member hash: it is their only check.
    for name, stream in bundle.members(path, manifest, unhashed=(bundle.ROOT,)):
        if name == bundle.ROOT:
            _write_root(stream, device, manifest)
        else:
            files[name] = _read_bounded(stream, name)
    _verify_on_disk(device, manifest)
    boot.install_boot_files(pending.to_slot, files[bundle.KERNEL], files[bundle.INITRD])
    entry = render_entry(files[bundle.ENTRY].decode("utf-8", "replace"), pending.to_slot,
                         manifest.version)
    boot.write_trial_entry(pending.to_slot, entry, system.boot_attempts)
    result = hooks.run_stage("post-install", env, dirs=system.hook_dirs,
                             timeout=system.hook_timeout)
    if not result.ok:
        boot.remove_entries(pending.to_slot)
        names = ", ".join(run.path.name for run in result.failures)
        raise InstallError(f"post-install hook failed ({names}): the new slot was taken "
                           "out of the boot menu")


def _write_root(stream: IO[bytes], device: Path, manifest: Manifest) -> None:
    """The gunzipped root (manifest root.size bytes: the filesystem, which may be smaller
    than the slot; the rest of the slot is left as it was) onto the device, fsync'ed. No
    hash here: _verify_on_disk hashes what the device then holds, which is what counts."""
    fd = os.open(device, os.O_WRONLY | os.O_CLOEXEC)
    try:
        if os.lseek(fd, 0, os.SEEK_END) < manifest.root.size:
            raise InstallError(f"{device} is smaller than the root image "
                               f"({manifest.root.size} bytes)")
        os.lseek(fd, 0, os.SEEK_SET)
        for chunk in bundle.gunzip_bounded(stream, manifest.root.size):
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
        stream.read()                              # to the end: the member's hash check
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_bounded(stream: IO[bytes], name: str) -> bytes:
    data = stream.read(MAX_BOOT_FILE + 1)
    if len(data) > MAX_BOOT_FILE:
        raise InstallError(f"{name} is larger than {MAX_BOOT_FILE} bytes")
    stream.read()
    return data


def _verify_on_disk(device: Path, manifest: Manifest) -> None:
    """Read back what is on the device (past the page cache where the kernel allows) and
    hash it against the manifest: the one check of the root that covers both the bundle's
    bytes and the write (a device that dropped or garbled a block), so it stays."""
    digest, left = hashlib.sha256(), manifest.root.size
    fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        while left:
            chunk = os.read(fd, min(CHUNK, left))
            if not chunk:
                break
            digest.update(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    if left or digest.hexdigest() != manifest.root.sha256:
        raise InstallError(f"the root image on {device} does not match the manifest "
                           "(verify on disk failed)")


# -- the reboot ---------------------------------------------------------------------------

def plan_reboot(window_text: str, now: datetime) -> datetime:
    """When to reboot into the installed slot (pure): now, or the window's next start."""
    return window.next_reboot(window.parse_window(window_text), now)


def reboot_command(when: datetime, now: datetime) -> list[str]:
    """`systemctl reboot` now, or a transient timer (systemd-run) for `when` (local)."""
    if when <= now:
        return ["systemctl", "reboot"]
    return ["systemd-run", f"--unit={REBOOT_UNIT}",
            f"--on-calendar={when.strftime('%Y-%m-%d %H:%M:%S')}",
            "--timer-property=AccuracySec=1s", "systemctl", "reboot"]


def reboot(when: datetime, now: datetime) -> None:
    """Run the reboot (or schedule it); the thin edge of plan_reboot.

    Raises:
        InstallError: systemctl or systemd-run failed.
    """
    argv = reboot_command(when, now)
    done = run_tool(argv, 60.0)
    log.event("update.reboot", at=when.isoformat(), argv=" ".join(argv),
              status=done.returncode)
    if done.returncode != 0:
        raise InstallError(f"{argv[0]} failed: {done.stderr.decode(errors='replace')}")


def now_local() -> datetime:
    return datetime.fromtimestamp(time.time())
