"""`mailstead update install|status|commit|run|requests` (the A/B updater on the
appliance) and `mailstead release build` (a bundle from a built image; registered into the
`release` command by `add_release_build`).

install, commit, run and requests run as root from mailstead-update*.service; `--esp`,
`--device` and `--cmdline` point them at other places (recovery by hand, tests on plain
files). `requests` acts on what the console asked for (appliance/update/requests.py). Each
check records its answer, and each run its view of the ESP, in state.json for the console.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import appliance
from appliance.cli import context, update_check_cmd
from appliance.core import log
from appliance.settings import Settings

CHECKOUT_TEMPLATE = Path("image") / "boot" / "entry.conf.in"
_IMAGE_NAME = re.compile(r"mailstead-(.+)-amd64\.img")
LOCK_FILE = "lock"


def running_version() -> str:
    try:
        return metadata.version("mailstead")
    except metadata.PackageNotFoundError:
        return appliance.__version__


def register(commands: Any) -> None:
    update = commands.add_parser("update", help="install, commit and show A/B updates")
    sub = update.add_subparsers(dest="update_command", required=True, metavar="ACTION")
    install = sub.add_parser("install", help="install a bundle file into the other slot")
    install.add_argument("bundle", type=Path)
    install.add_argument("--force", action="store_true",
                         help="install even a version that failed its health check before")
    install.add_argument("--no-reboot", action="store_true",
                         help="do not reboot (nor schedule one) afterwards")
    _system_options(install)
    install.set_defaults(handler=install_command)
    status = sub.add_parser("status", help="running version, booted slot, pending, history")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.add_argument("--cmdline", type=Path, default=Path("/proc/cmdline"),
                        help=argparse.SUPPRESS)
    status.set_defaults(handler=status_command)
    commit = sub.add_parser("commit", help="after a boot: bless a healthy new slot, or "
                            "mark it bad and reboot; record a rollback and mail the admin")
    commit.add_argument("--no-reboot", action="store_true", help="do not reboot after a "
                        "failed health check (the entry is still marked bad)")
    _system_options(commit)
    commit.set_defaults(handler=commit_command)
    update_check_cmd.add_check(sub)
    run = sub.add_parser("run", help="check, download and install a newer release, then "
                         "reboot in the maintenance window (mailstead-update.service)")
    run.add_argument("--no-reboot", action="store_true", help="install, but do not reboot")
    _system_options(run)
    run.set_defaults(handler=run_command)
    queue = sub.add_parser("requests", help="act on the console's requests in "
                           "<data_dir>/update-requests (mailstead-update-request.service)")
    queue.add_argument("--no-reboot", action="store_true",
                       help="do not reboot after an install, a reboot or a rollback request")
    _system_options(queue)
    queue.set_defaults(handler=requests_command)


def _system_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--esp", type=Path, help="the ESP directory (default /efi)")
    parser.add_argument("--device", action="append", default=[], metavar="SLOT=PATH",
                        help="a slot's device (default /dev/disk/by-partlabel/root-SLOT)")
    parser.add_argument("--cmdline", type=Path, help="kernel command line file "
                        "(default /proc/cmdline)")


def add_release_build(releases: Any) -> None:
    """Add `build` to the `release` command's subparsers (release_cmds.py owns `release`)."""
    build = releases.add_parser("build", help="make an update bundle from a built image")
    build.add_argument("image", type=Path, help="out/mailstead-<version>-amd64.img")
    build.add_argument("--version", help="release version (default: from the file name)")
    build.add_argument("--min-version", default="0", help="oldest version that may update "
                       "to this one (default 0: any)")
    build.add_argument("--out", type=Path, help="output directory (default: the image's)")
    build.add_argument("--entry-template", type=Path,
                       help=f"loader entry template (default: the checkout's {CHECKOUT_TEMPLATE})")
    build.set_defaults(handler=release_build_command)


# -- handlers ----------------------------------------------------------------------------

def _system(args: argparse.Namespace, current: Settings) -> Any:
    from appliance.update import install, slots
    from appliance.update.bundle import current_data_schema
    system = install.system_from(current, current_data_schema(), running_version())
    devices = dict(system.devices)
    for item in args.device:
        slot, _, path = item.partition("=")
        slots.other(slot)
        devices[slot] = Path(path)
    cmdline = args.cmdline.read_text() if args.cmdline else system.cmdline
    return install.System(system.data_dir, args.esp or system.esp, devices, cmdline,
                          system.mounts, system.running_version, _db_schema(current),
                          system.hook_dirs, system.hook_timeout, system.boot_attempts,
                          system.state_dir)


def _db_schema(current: Settings) -> int:
    from appliance.storage.db import DB_NAME, connect
    path = current.data_dir / DB_NAME
    if not path.is_file():
        return 0
    conn = connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def install_command(args: argparse.Namespace) -> int:
    current = context.settings(args)
    log.configure(current.get_str("log.level"))
    with updater_lock(current):
        return _install(args, current)


def _install(args: argparse.Namespace, current: Settings) -> int:
    from appliance.update import install
    system = _system(args, current)
    try:
        pending = install.install(args.bundle, system, force=args.force)
    except install.InstallError as exc:
        raise context.CliError(f"update not installed: {exc}") from None
    finally:
        note_esp(system)
    now = install.now_local()
    when = install.plan_reboot(current.get_str("update.maintenance_window"), now)
    print(f"installed {pending.version} into slot {pending.to_slot}; reboot "
          f"{'now' if when <= now else 'at ' + when.strftime('%Y-%m-%d %H:%M')}")
    if not args.no_reboot:
        install.reboot(when, now)
    return 0


def run_command(args: argparse.Namespace) -> int:
    """The timer's job: nothing when updates are off, an install waits, or the newest
    release is the running one or one that failed here before; else install it."""
    current = context.settings(args)
    log.configure(current.get_str("log.level"))
    with updater_lock(current):
        return _run(args, current)


def _run(args: argparse.Namespace, current: Settings) -> int:
    from appliance.update import state
    from appliance.update.trust import UpdateClient, UpdateRefused, config_from_settings
    if not current.get_str("update.url"):
        print("updates are off (update.url is empty)")
        return 0
    found = state.load(state.state_dir(current))
    if found.pending is not None:
        print(f"{found.pending.version} is installed and waits for its reboot")
        return 0
    client = UpdateClient(config_from_settings(current))
    channel = current.get_str("update.channel")
    try:
        offer = client.check(channel, running_version())
        record_check(current, channel, "up to date" if offer is None
                     else f"offered {offer.version}")
        if offer is None or offer.version in found.failed_versions:
            print("up to date" if offer is None else f"{offer.version} failed here before: "
                  "not installed again (mailstead update install --force BUNDLE)")
            return 0
        path = client.download(offer, state.update_dir(state.state_dir(current)) / "downloads")
    except UpdateRefused as exc:
        record_check(current, channel, f"refused: {exc.reason}", exc.message)
        print(f"update refused ({exc.reason}): {exc.message}", file=sys.stderr)
        return 1
    try:
        args.bundle, args.force = path, False
        return _install(args, current)
    finally:
        path.unlink(missing_ok=True)           # installed (or refused): the slot has it


def commit_command(args: argparse.Namespace) -> int:
    from appliance.update import commit, health, install
    from appliance.update.bundle import current_data_schema
    current = context.settings(args)
    log.configure(current.get_str("log.level"))
    system = _system(args, current)
    targets = health.Targets.from_settings(current, current_data_schema())

    def reboot() -> None:
        if not args.no_reboot:
            now = install.now_local()
            install.reboot(now, now)

    try:
        result = commit.commit(system, targets, float(current.get_int("update.health_wait")),
                               alert=commit.mail_admin(current), reboot=reboot)
    finally:
        note_esp(system)
    print(f"{result.decision.value}: {result.outcome}"
          + (f" ({result.reason})" if result.reason else ""))
    return 1 if result.outcome == "failed" else 0


@contextlib.contextmanager
def updater_lock(current: Settings) -> Iterator[None]:
    """One updater at a time: the timer's run, an install by hand and the console's requests
    wait for each other (flock on `<update.state_dir>/lock`, released when the process ends).

    Raises:
        CliError: the state directory cannot be written (not run as root on the appliance).
    """
    from appliance.update import state
    try:
        fd = os.open(state.update_dir(state.state_dir(current)) / LOCK_FILE,
                     os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise context.CliError(f"cannot take the updater's lock: {exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def record_check(current: Settings, channel: str, result: str, detail: str = "") -> None:
    """Keep the update server's answer in state.json (`last_check`) for the console; a
    state directory this user cannot write (a check run by hand, not as root) is logged."""
    from appliance.update import state
    folder = state.state_dir(current)
    try:
        found = state.load(folder)
        found.last_check = state.LastCheck(channel, result, detail)
        state.save(folder, found)
    except (OSError, ValueError) as exc:
        log.event("update.check_not_recorded", folder=str(folder), error=str(exc))


def note_esp(system: Any) -> None:
    """Keep the loader entries of each slot in state.json (`esp`): the console cannot read
    the ESP (root's, 0700) but shows whether the previous slot can boot."""
    from appliance.update import requests, state
    if not (system.esp / "loader").is_dir():
        return
    try:
        found = state.load(system.update_dir)
        found.esp = requests.esp_view(system.esp)
        state.save(system.update_dir, found)
    except (OSError, ValueError) as exc:
        log.event("update.esp_not_recorded", error=str(exc))


def requests_command(args: argparse.Namespace) -> int:
    """Take the console's request files and act on each action once, in the order asked;
    after a reboot or a rollback the rest is dropped (logged: the admin asks again).
    Refused files are logged and do not change the exit status (the actions' worst)."""
    current = context.settings(args)
    log.configure(current.get_str("log.level"))
    with updater_lock(current):
        return _requests(args, current)


def _requests(args: argparse.Namespace, current: Settings) -> int:
    from appliance.update import requests
    taken = requests.take(requests.request_dir(current.data_dir))
    actions = list(dict.fromkeys(t.request.action for t in taken if t.request))
    for item in taken:
        if item.request is None:
            print(f"refused request {item.name!r}: {item.refused}", file=sys.stderr)
    status = 0
    for index, action in enumerate(actions):
        code, rebooting = _ACTIONS[action](args, current)
        status = max(status, code)
        if rebooting:
            for later in actions[index + 1:]:
                log.event("update.request_skipped", action=later, reason="rebooting")
                print(f"{later}: skipped, the appliance reboots")
            break
    note_esp(_system(args, current))
    return status


def _check_request(args: argparse.Namespace, current: Settings) -> tuple[int, bool]:
    from appliance.update.trust import UpdateClient, UpdateRefused, config_from_settings
    channel = current.get_str("update.channel")
    try:
        offer = UpdateClient(config_from_settings(current)).check(channel, running_version())
    except UpdateRefused as exc:
        record_check(current, channel, f"refused: {exc.reason}", exc.message)
        print(f"check: refused ({exc.reason}): {exc.message}", file=sys.stderr)
        return 1, False
    result = "up to date" if offer is None else f"offered {offer.version}"
    record_check(current, channel, result)
    print(f"check: {result}")
    return 0, False


def _install_request(args: argparse.Namespace, current: Settings) -> tuple[int, bool]:
    """`update run`: its reboot waits for the maintenance window (or a reboot request)."""
    from appliance.update.install import InstallError
    try:
        return _run(args, current), False
    except (context.CliError, InstallError) as exc:
        print(f"install: {exc}", file=sys.stderr)
        return 1, False


def _reboot_request(args: argparse.Namespace, current: Settings) -> tuple[int, bool]:
    from appliance.update import slots, state
    system = _system(args, current)
    pending = state.load(system.update_dir).pending
    if pending is None or slots.booted_slot(system.cmdline) != pending.from_slot:
        log.event("update.request_refused", action="reboot", reason="no install pending")
        print("reboot: refused, no installed update waits for a reboot", file=sys.stderr)
        return 1, False
    print(f"reboot: into {pending.version} (slot {pending.to_slot})")
    rebooted = _reboot_now(args)
    return (0 if rebooted else 1), rebooted


def _rollback_request(args: argparse.Namespace, current: Settings) -> tuple[int, bool]:
    from appliance.update import requests, slots
    system = _system(args, current)
    why = requests.roll_back(system.esp, system.update_dir,
                             slots.booted_slot(system.cmdline), running_version())
    if why:
        log.event("update.request_refused", action="rollback", reason=why)
        print(f"rollback: refused, {why}", file=sys.stderr)
        return 1, False
    print("rollback: this slot is marked bad; the next boot takes the previous one")
    return (0 if _reboot_now(args) else 1), True     # marked: the rest waits regardless


def _reboot_now(args: argparse.Namespace) -> bool:
    """Reboot now (not with --no-reboot); False when systemctl failed."""
    from appliance.update import install
    if not args.no_reboot:
        now = install.now_local()
        try:
            install.reboot(now, now)
        except install.InstallError as exc:
            print(f"reboot failed: {exc}", file=sys.stderr)
            return False
    return True


_ACTIONS = {"check": _check_request, "install": _install_request,
            "reboot": _reboot_request, "rollback": _rollback_request}


def status_command(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from appliance.update import slots, state
    current = context.settings(args)
    found = state.load(state.state_dir(current))
    cmdline = args.cmdline.read_text() if args.cmdline.is_file() else ""
    data = {"running_version": running_version(), "booted_slot": slots.booted_slot(cmdline),
            "pending": asdict(found.pending) if found.pending else None,
            "last": asdict(found.last) if found.last else None,
            "failed_versions": found.failed_versions,
            "last_check": asdict(found.last_check) if found.last_check else None}
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(f"running {data['running_version']} from slot {data['booted_slot'] or '?'}")
    if found.pending:
        print(f"pending: {found.pending.version} in slot {found.pending.to_slot}")
    if found.last:
        print(f"last: {found.last.version} {found.last.outcome}"
              + (f" ({found.last.reason})" if found.last.reason else ""))
    if found.last_check:
        print(f"last check: {found.last_check.result} ({found.last_check.channel})")
    return 0


def release_build_command(args: argparse.Namespace) -> int:
    """`release build IMAGE`: the bundle (bundle.build_release), saying how big the root
    filesystem in it is; the last line printed is the bundle's path, which scripts read."""
    from appliance.update import bundle
    version = args.version or _version_from_name(args.image)
    template = args.entry_template or _checkout_template()
    try:
        built = bundle.build_release(args.image, args.out or args.image.parent, version,
                                     args.min_version, bundle.current_data_schema(),
                                     template)
    except bundle.BundleError as exc:
        raise context.CliError(str(exc)) from None
    mib = 1024 * 1024
    print(f"root filesystem {built.root_size / mib:.0f} MiB (of the "
          f"{built.partition_size / mib:.0f} MiB partition)")
    print(built.path)
    return 0


def _version_from_name(image: Path) -> str:
    found = _IMAGE_NAME.fullmatch(image.name)
    if found is None:
        raise context.CliError(f"cannot tell the version from {image.name}: give --version")
    return found.group(1)


def _checkout_template() -> Path:
    root = context.checkout_root()
    if root is None:
        raise context.CliError("not run from a checkout: give --entry-template")
    return root / CHECKOUT_TEMPLATE
