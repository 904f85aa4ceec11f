"""`mailstead ssh apply [--dry-run]`: apply `ssh.enabled` and `ssh.authorized_keys`
(appliance/net/ssh_access.py): write root's authorized_keys and start or stop sshd. Root,
on the appliance: mailstead-ssh.service runs it at boot and whenever the console touches
the trigger file (mailstead-ssh.path)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from appliance.cli import context
from appliance.core import log
from appliance.net import ssh_access
from appliance.net.ssh_access import KEY_FILE, KEYS_DIR, SERVICE, SshPlan


def register(commands: Any) -> None:
    ssh = commands.add_parser("ssh", help="SSH access for the admin (key-only)")
    sub = ssh.add_subparsers(dest="action", required=True, metavar="ACTION")
    apply = sub.add_parser("apply", help="write root's authorized_keys from "
                                         "ssh.authorized_keys and start or stop sshd (root)")
    apply.add_argument("--dry-run", action="store_true",
                       help="print the file and the systemctl action instead of doing them")
    apply.add_argument("--keys-dir", type=Path, default=KEYS_DIR, metavar="DIR",
                       help=f"sshd's AuthorizedKeysFile directory (default: {KEYS_DIR})")
    apply.set_defaults(handler=apply_command)


def apply_command(args: argparse.Namespace) -> int:
    current = context.settings(args)
    log.configure(current.get_str("log.level"))
    try:
        if args.dry_run:
            return _dry_run(ssh_access.plan(current), args.keys_dir)
        done = ssh_access.apply(current, keys_dir=args.keys_dir)
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"mailstead ssh apply: {exc}", file=sys.stderr)
        return 1
    state = "running" if done.running else "stopped"
    print(f"SSH {state}: {len(done.keys)} key(s) in ssh.authorized_keys, "
          f"ssh.enabled = {str(done.enabled).lower()}")
    return 0


def _dry_run(wanted: SshPlan, keys_dir: Path) -> int:
    path = keys_dir / KEY_FILE
    if wanted.file_text is None:
        print(f"would remove {path}")
    else:
        print(f"would write {path} (0644):")
        sys.stdout.write(wanted.file_text)
    for key in wanted.keys:
        print(f"key {key.fingerprint} ({key.key_type}, {key.bits} bits) {key.comment}".rstrip())
    print(f"would run: systemctl {wanted.action} {SERVICE}")
    return 0
