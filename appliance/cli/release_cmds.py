"""`mailstead release init|add|remove|list|publish|timestamp|rotate` (and `build`, from
update_cmds.py): the publisher's side of updates, a signed TUF repository in a directory
(appliance/update/repository.py; key handling in appliance/update/README.md)."""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.cli import context, update_cmds

if TYPE_CHECKING:    # python-tuf and cryptography load only when a release command runs
    from appliance.update.repository import Expiries, ReleaseRepository


def register(commands: Any) -> None:
    release = commands.add_parser("release", help="publish signed releases (TUF repository)")
    sub = release.add_subparsers(dest="release_command", required=True, metavar="ACTION")
    init = _action(sub, "init", "generate keys and version 1 of all metadata")
    init.add_argument("--root-keys", type=Path, required=True, metavar="OFFLINE_DIR",
                      help="where the root private keys go (keep it offline afterwards)")
    init.add_argument("--root-threshold", type=int, default=1,
                      help="root keys that must sign a new root (default 1)")
    init.add_argument("--root-key-count", type=int, default=0,
                      help="root keys to make (default: the threshold)")
    add = _action(sub, "add", "sign a bundle into a channel and publish it")
    add.add_argument("bundle", type=Path)
    add.add_argument("--channel", choices=("stable", "beta"), default="stable")
    add.add_argument("--version", help="default: the bundle's manifest")
    add.add_argument("--min-version", help="default: the bundle's manifest")
    add.add_argument("--data-schema", type=int, help="default: the bundle's manifest")
    remove = _action(sub, "remove", "withdraw a version from a channel")
    remove.add_argument("version")
    remove.add_argument("--channel", choices=("stable", "beta"), default="stable")
    listing = _action(sub, "list", "the releases of each channel")
    listing.add_argument("--channel", choices=("stable", "beta"))
    _action(sub, "publish", "re-sign snapshot and timestamp")
    _action(sub, "timestamp", "a new timestamp, and re-sign any role past half its validity "
            "(run by cron on the publisher, e.g. every 6 hours)")
    rotate = _action(sub, "rotate", "replace the keys of a role (root, targets, snapshot, "
                     "timestamp: needs --root-keys; stable, beta)")
    rotate.add_argument("role", choices=("root", "targets", "snapshot", "timestamp",
                                         "stable", "beta"))
    rotate.add_argument("--root-keys", type=Path, metavar="OFFLINE_DIR")
    update_cmds.add_release_build(sub)


def _action(sub: Any, name: str, text: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=text)
    parser.add_argument("dir", type=Path, help="the repository work directory")
    parser.add_argument("--expiry", action="append", default=[], metavar="ROLE=DAYS",
                        help="validity of what is signed now (defaults: root 365, targets "
                             "and channels 90, snapshot 7, timestamp 1)")
    parser.set_defaults(handler=release_command)
    return parser


def release_command(args: argparse.Namespace) -> int:
    from appliance.update.repository import RepositoryError
    repo = _repository(args)
    try:
        _run(args, repo)
    except RepositoryError as exc:
        raise context.CliError(str(exc)) from None
    return 0


def _run(args: argparse.Namespace, repo: ReleaseRepository) -> None:
    action = args.release_command
    if action == "init":
        repo.create(root_threshold=args.root_threshold, root_key_count=args.root_key_count)
        print(f"created {repo.workdir}; serve {repo.workdir / 'public'} over HTTPS; ship "
              f"{repo.metadata_dir / '1.root.json'} as the image's update.trusted_root; "
              f"move {args.root_keys} offline")
    elif action == "add":
        version, min_version, schema = _release_facts(args)
        target = repo.add_release(args.channel, args.bundle, version=version,
                                  min_version=min_version, data_schema=schema)
        print(f"published {target.path} ({target.length} bytes, sha256 "
              f"{target.hashes['sha256']})")
    elif action == "remove":
        repo.remove_release(args.channel, args.version)
        print(f"removed {args.version} from {args.channel}")
    elif action == "list":
        for channel in [args.channel] if args.channel else ["stable", "beta"]:
            for target in repo.releases(channel):
                custom = target.custom
                print(f"{channel} {custom['version']} min_version={custom['min_version']} "
                      f"data_schema={custom['data_schema']} {target.length} bytes")
    elif action == "publish":
        repo.publish()
    elif action == "timestamp":
        renewed = repo.renew()
        print("re-signed timestamp" + "".join(f", {role}" for role in renewed))
        _warn_root_expiry(repo)
    elif action == "rotate":
        new = repo.rotate(args.role)
        print(f"{args.role} now signed by key {', '.join(new)}")


def _warn_root_expiry(repo: ReleaseRepository) -> None:
    """Root is signed offline: say so well before it expires (clients then refuse all)."""
    left = repo.load("root").signed.expires - repo.clock()
    if left < datetime.timedelta(days=60):
        print(f"warning: root expires in {left.days} days: re-sign it with the offline keys "
              "(mailstead release rotate DIR root --root-keys OFFLINE_DIR)", file=sys.stderr)


def _repository(args: argparse.Namespace) -> ReleaseRepository:
    from appliance.update.repository import ReleaseRepository
    return ReleaseRepository(args.dir, root_keys=getattr(args, "root_keys", None),
                             expiries=_expiries(args.expiry))


def _expiries(items: list[str]) -> Expiries:
    from appliance.update.repository import ROLES, Expiries
    days: dict[str, datetime.timedelta] = {}
    for item in items:
        role, _, count = item.partition("=")
        role = "targets" if role in ("stable", "beta") else role
        if role not in ROLES or not count.isdigit() or int(count) < 1:
            raise context.CliError(f"--expiry {item!r}: expected ROLE=DAYS, ROLE one of "
                                   f"{', '.join(ROLES)}")
        days[role] = datetime.timedelta(days=int(count))
    return Expiries(**days)


def _release_facts(args: argparse.Namespace) -> tuple[str, str, int]:
    """version, min_version, data_schema: the bundle's manifest (install helper's
    bundle.py), each overridable; without a readable manifest all three must be given."""
    from appliance.update import bundle
    given = (args.version, args.min_version, args.data_schema)
    try:
        manifest = bundle.read_manifest(args.bundle)
    except (bundle.BundleError, OSError) as exc:
        if None in given:
            raise context.CliError(f"{args.bundle}: {exc}; or give --version, "
                                   "--min-version and --data-schema") from None
        return args.version, args.min_version, args.data_schema
    facts = (manifest.version, manifest.min_version, manifest.data_schema)
    for name, value, found in zip(("version", "min-version", "data-schema"), given, facts,
                                  strict=True):
        if value is not None and value != found:
            raise context.CliError(f"--{name} {value} differs from the bundle's {found}")
    return facts
