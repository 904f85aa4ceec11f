"""`mailstead dav serve` (CalDAV/CardDAV under gunicorn in the foreground) and `mailstead dav
provision ADDRESS` (an account's default calendar, task list and address book now)."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from appliance.cli import context


def register(commands: Any) -> None:
    dav = commands.add_parser("dav", help="the CalDAV/CardDAV server (mailstead-dav)")
    sub = dav.add_subparsers(dest="action", required=True, metavar="ACTION")
    serve = sub.add_parser("serve", help="run the DAV server under gunicorn in the foreground")
    serve.add_argument("--bind", metavar="HOST:PORT",
                       help="listen here instead of listen.dav_address:listen.dav_port")
    provision = sub.add_parser(
        "provision", help="create an account's default calendar, tasks and contacts (and "
                          "its domain's shared ones) where missing")
    provision.add_argument("address")
    dav.set_defaults(handler=dav_command)


def dav_command(args: argparse.Namespace) -> int:
    current = context.settings(args)
    if args.action == "provision":
        return _provision(current.data_dir, args.address)
    env = dict(os.environ)
    config = context.config_path(args)
    if config is not None:
        env["MAILSTEAD_CONFIG"] = str(config.resolve())
    if args.bind:
        env["MAILSTEAD_DAV_BIND"] = args.bind
    spec = importlib.util.find_spec("appliance.groupware")
    if spec is None or spec.origin is None:
        raise context.CliError("the DAV package (appliance.groupware) is not installed")
    conf = Path(spec.origin).parent / "gunicorn.conf.py"
    argv = [sys.executable, "-m", "gunicorn", "-c", str(conf)]
    # Replaces this process (gunicorn gets the signals); an argument list, no shell.
    os.execve(sys.executable, argv, env)  # noqa: S606
    return 0                                   # not reached


def _provision(data_dir: Path, address: str) -> int:
    from appliance.auth.guard import normalise_username
    from appliance.groupware.provision import provision_account
    from appliance.groupware.storage import open_storage

    parsed = normalise_username(address)
    if parsed is None:
        raise context.CliError(f"not an address: {address!r}")
    if not data_dir.is_dir():
        raise context.CliError(f"data directory {data_dir} does not exist")
    created = provision_account(open_storage(data_dir), parsed.key, force=True)
    for path in created:
        print(f"created {path}")
    if not created:
        print(f"{parsed.key}: all default collections exist")
    return 0
