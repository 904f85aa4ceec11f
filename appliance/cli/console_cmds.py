"""`mailstead console serve` (the web console under gunicorn; with `--public` or
`--public-http` the public-only listener of webui/public.py) and `mailstead console
setup-code` (the one-time code the first-boot wizard asks for)."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from appliance.cli import context
from appliance.storage.db import open_database


def register(commands: Any) -> None:
    console = commands.add_parser("console", help="the web console")
    sub = console.add_subparsers(dest="action", required=True, metavar="ACTION")
    serve = sub.add_parser("serve", help="run the console under gunicorn in the foreground")
    serve.add_argument("--bind", metavar="ADDRESS:PORT",
                       help="listen here instead of listen.console_address:console_port")
    which = serve.add_mutually_exclusive_group()
    which.add_argument("--public", dest="listener", action="store_const", const="https",
                       help="the public listener instead: only the paths the internet needs "
                            "(ACME, autoconfig, Autodiscover, MTA-STS) over HTTPS on "
                            "listen.public_tls_port")
    which.add_argument("--public-http", dest="listener", action="store_const", const="http",
                       help="the public listener's plain HTTP side on listen.public_web_port "
                            "(ACME challenges and autoconfig; the rest is sent to HTTPS)")
    sub.add_parser("setup-code", help="print the one-time setup code (until an admin exists)")
    console.set_defaults(handler=console_command)


def console_command(args: argparse.Namespace) -> int:
    current = context.settings(args)
    if args.action == "setup-code":
        return _print_setup_code(current.data_dir)
    env = dict(os.environ)
    config = context.config_path(args)
    if config is not None:
        env["MAILSTEAD_CONFIG"] = str(config.resolve())
    if args.bind:
        env["MAILSTEAD_CONSOLE_BIND"] = args.bind
    conf_name = "gunicorn.conf.py"
    if args.listener is not None:
        if not current.get_bool("listen.public_web_enabled"):
            print("the public web listener is off (listen.public_web_enabled = false)")
            return 0                    # a clean exit: systemd does not restart it
        env["MAILSTEAD_PUBLIC_LISTENER"] = args.listener
        conf_name = "gunicorn_public.conf.py"
    spec = importlib.util.find_spec("webui")
    if spec is None or spec.origin is None:
        raise context.CliError("the console package (webui) is not installed")
    conf = Path(spec.origin).parent / conf_name
    argv = [sys.executable, "-m", "gunicorn", "-c", str(conf)]
    # Replaces this process (gunicorn gets the signals); an argument list, no shell.
    os.execve(sys.executable, argv, env)  # noqa: S606
    return 0                                   # not reached


def _print_setup_code(data_dir: Path) -> int:
    # Imported here: the engine's commands must not load Flask.
    from webui import admins, setup_code

    if not data_dir.is_dir():
        raise context.CliError(f"data directory {data_dir} does not exist")
    conn = open_database(data_dir)
    try:
        if admins.any_admin(conn):
            print("an admin exists: the console needs no setup code any more")
            return 1
    finally:
        conn.close()
    print(setup_code.ensure(data_dir))
    return 0
