"""`mailstead run` (the engine in the foreground), `mailstead engine status|restart` (ask the
running engine over its control socket) and `mailstead dev-init` (a dev ./var/)."""

from __future__ import annotations

import argparse
import secrets
import time
from pathlib import Path
from typing import Any

from appliance import datadir, workers
from appliance.auth.passwords import Passwords
from appliance.cli import context
from appliance.cli.context import CliError
from appliance.control import client
from appliance.control.messages import ControlError
from appliance.control.server import SOCKET_NAME
from appliance.core import log
from appliance.dkim import keys
from appliance.settings import load_settings, render_toml
from appliance.settings_store import log_ignored
from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory
from appliance.storage.maildir.store import create_maildir

DEV_DOMAIN = "example.test"
DEV_ACCOUNT = f"postmaster@{DEV_DOMAIN}"
DEV_SETTINGS: dict[str, Any] = {
    "server.hostname": "mail.example.test",
    "server.dev_mode": True,
    "paths.data_dir": ".",
    "listen.address": "127.0.0.1",
    "listen.smtp_port": 2525,
    "listen.submission_port": 5870,
    "listen.submissions_port": 4650,
    "listen.imap_port": 1430,
    "listen.imaps_port": 9930,
    "listen.pop3_port": 1100,
    "listen.pop3s_port": 9950,
    "listen.dav_port": 5232,
    "listen.console_port": 8080,
    "listen.public_web_port": 8000,       # the public web listener: 80 shifted
    "listen.public_tls_port": 4430,       # and its HTTPS (443 shifted, like 465 -> 4650)
    # No clamd in a dev checkout: scanning on would answer 451 to every message. The
    # appliance runs Debian's clamd and keeps the default (on).
    "antivirus.enabled": False,
    # Greylisting would answer 451 to the first message of every test sender, and the DNS
    # lists need a resolver that the lists answer; the appliance keeps both on.
    "dnsbl.enabled": False,
    "greylist.enabled": False,
    # A dev box on loopback talks to nobody outside: the DNS page's port 25 probe is off.
    "dns.port25_target": "",
}


def register(commands: Any) -> None:
    run = commands.add_parser("run", help="run the mail engine in the foreground")
    run.set_defaults(handler=run_command)
    init = commands.add_parser("dev-init", help="create a dev data directory (once)")
    init.add_argument("directory", help="where to create it, e.g. ./var")
    init.set_defaults(handler=dev_init_command)
    engine = commands.add_parser("engine", help="ask the running mail engine")
    sub = engine.add_subparsers(dest="action", required=True, metavar="ACTION")
    sub.add_parser("status", help="whether it runs, since when, with which settings")
    restart = sub.add_parser("restart", help="restart it gracefully (applies saved settings)")
    restart.add_argument("--no-wait", action="store_true",
                         help="return once asked, without waiting until it is back")
    engine.set_defaults(handler=engine_command)


def run_command(args: argparse.Namespace) -> int:
    found = context.effective(args)     # mailstead.toml, then mailstead.db's values
    current = found.settings
    log.configure(current.get_str("log.level"))
    datadir.prepare(current)
    if current.get_str("log.file"):     # inside data_dir, which prepare() made (mode 0700)
        log.configure(current.get_str("log.level"), current.data_path("log.file"),
                      current.get_int("log.file_max_size"))
    log_ignored(found.ignored)
    try:
        return workers.run(current)
    except OSError as exc:
        raise CliError(f"cannot start the engine: {exc}") from exc


def dev_init_command(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    config_file = directory / "mailstead.toml"
    if config_file.exists():
        print(f"reusing {directory}/ (delete it to start afresh)")
        return 0
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    config_file.write_text("# Mailstead dev settings, written by `mailstead dev-init`.\n"
                           + render_toml(DEV_SETTINGS), encoding="utf-8")
    current = load_settings(config_file)
    datadir.prepare(current)
    accounts = SqliteDirectory(open_database(current.data_dir))
    accounts.add_domain(DEV_DOMAIN)
    keys.ensure_keys(current.data_dir, DEV_DOMAIN)
    password = secrets.token_urlsafe(15)
    account = accounts.add_account(DEV_ACCOUNT,
                                   Passwords.from_settings(current).hash(password))
    create_maildir(current.data_dir / account.maildir)
    print(f"created {directory}/ with domain {DEV_DOMAIN}")
    print(f"account {DEV_ACCOUNT} password (shown once): {password}")
    return 0


RESTART_SLACK = 60.0    # seconds beyond limits.shutdown_grace that a restart may take


def engine_command(args: argparse.Namespace) -> int:
    current = context.settings(args)
    path = current.data_dir / SOCKET_NAME
    try:
        before = client.call(path, f"engine.{args.action}")
    except client.ControlUnavailableError as exc:
        raise CliError(f"the mail engine is not running ({exc})") from exc
    except ControlError as exc:
        raise CliError(str(exc)) from exc
    if args.action == "status":
        print(_describe(before))
        return 0
    print(f"mail engine (pid {before['pid']}) is restarting")
    if args.no_wait:
        return 0
    after = _wait_restarted(path, str(before["instance"]),
                            current.get_int("limits.shutdown_grace") + RESTART_SLACK)
    print(f"restarted: {_describe(after)}")
    return 0


def _wait_restarted(path: Path, instance: str, timeout: float) -> dict[str, Any]:
    """The status of the engine that answers after the one called `instance` is gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            status = client.call(path, "engine.status")
        except (client.ControlUnavailableError, ControlError, OSError):
            continue    # stopping, or not listening yet
        if isinstance(status, dict) and status.get("instance") != instance:
            return status
    raise CliError(f"the mail engine did not come back within {timeout:.0f} s: see its log")


def _describe(status: dict[str, Any]) -> str:
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(status["started"])))
    state = "restarting" if status.get("restarting") else "running"
    return (f"{state}, pid {status['pid']}, since {since}, "
            f"settings fingerprint {status['fingerprint']}")
