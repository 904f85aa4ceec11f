"""`mailstead domain|account|alias ...`: the directory from the command line.

Passwords are read from a prompt, or from standard input as two identical lines for
scripts; never from the arguments, and never printed.
"""

from __future__ import annotations

import argparse
import getpass
import shutil
import sys
from typing import Any

from appliance.auth.passwords import Passwords
from appliance.auth.verify import AccountVerifier
from appliance.cli import context
from appliance.cli.context import CliError
from appliance.dkim import keys
from appliance.groupware import storage as groupware_storage
from appliance.storage.maildir.store import create_maildir


def register(commands: Any) -> None:
    _register_domain(commands.add_parser("domain", help="manage mail domains"))
    _register_account(commands.add_parser("account", help="manage accounts"))
    _register_alias(commands.add_parser("alias", help="manage aliases and catch-alls"))


def _register_domain(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    sub.add_parser("add", help="add a domain").add_argument("domain")
    sub.add_parser("list", help="list domains")
    sub.add_parser("remove", help="remove an empty domain").add_argument("domain")
    parser.set_defaults(handler=domain_command)


def _register_account(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = sub.add_parser("add", help="add an account (password from prompt or stdin)")
    add.add_argument("address")
    add.add_argument("--quota", type=_byte_count, default=0, metavar="BYTES",
                     help="0 = no limit")
    sub.add_parser("list", help="list accounts").add_argument("domain", nargs="?")
    sub.add_parser("passwd", help="set a new password").add_argument("address")
    sub.add_parser("verify", help="check a password (exit 0 if it matches, 1 if not)"
                   ).add_argument("address")
    sub.add_parser("disable", help="stop login and delivery").add_argument("address")
    sub.add_parser("enable", help="allow login and delivery again").add_argument("address")
    remove = sub.add_parser("remove", help="remove an account (mail is kept unless --purge)")
    remove.add_argument("address")
    remove.add_argument("--purge", action="store_true",
                        help="also delete the account's mail, calendars and contacts")
    parser.set_defaults(handler=account_command)


def _register_alias(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = sub.add_parser("add", help="add SOURCE -> TARGET (SOURCE @domain is a catch-all)")
    add.add_argument("source")
    add.add_argument("target")
    sub.add_parser("list", help="list aliases").add_argument("domain", nargs="?")
    remove = sub.add_parser("remove", help="remove one target, or all targets of SOURCE")
    remove.add_argument("source")
    remove.add_argument("target", nargs="?")
    parser.set_defaults(handler=alias_command)


def domain_command(args: argparse.Namespace) -> int:
    current = context.settings(args)
    directory, _ = context.open_directory(current)
    if args.action == "add":
        name = directory.add_domain(args.domain)
        print(f"added domain {name}")
        dkim = keys.ensure_keys(current.data_dir, name)
        print(f"DKIM selectors {dkim.active.rsa} and {dkim.active.ed25519}: "
              f"publish `mailstead dns records {name}`")
    elif args.action == "list":
        for name in directory.list_domains():
            print(name)
    else:
        directory.remove_domain(args.domain)
        print(f"removed domain {args.domain}")
    return 0


def account_command(args: argparse.Namespace) -> int:
    current = context.settings(args)
    directory, _ = context.open_directory(current)
    if args.action == "list":
        for account in directory.list_accounts(args.domain):
            state = "enabled" if account.enabled else "disabled"
            print(f"{account.address}\t{state}\tquota={account.quota_bytes}\t{account.maildir}")
        return 0
    if args.action == "verify":
        verifier = AccountVerifier(directory, Passwords.from_settings(current))
        ok = verifier.verify(args.address, read_password())
        print("password matches" if ok else "password does not match (or account disabled)")
        return 0 if ok else 1
    if args.action in ("add", "passwd"):
        hashed = Passwords.from_settings(current).hash(read_new_password())
        if args.action == "add":
            account = directory.add_account(args.address, hashed, args.quota)
            create_maildir(current.data_dir / account.maildir)
            print(f"added account {account.address} ({account.maildir})")
        else:
            directory.set_password_hash(args.address, hashed)
            print(f"password changed for {args.address}")
    elif args.action in ("disable", "enable"):
        directory.set_enabled(args.address, args.action == "enable")
        print(f"{args.action}d {args.address}")
    else:
        account = directory.remove_account(args.address)
        maildir = current.data_dir / account.maildir
        if args.purge:
            shutil.rmtree(maildir, ignore_errors=True)
            groupware_storage.remove_account(current.data_dir, account.address)
            print(f"removed account {account.address}, its mail, calendars and contacts")
        else:
            print(f"removed account {account.address}; its mail is kept in {maildir}, "
                  "its calendars and contacts in the DAV store")
    return 0


def alias_command(args: argparse.Namespace) -> int:
    directory, _ = context.open_directory(context.settings(args))
    if args.action == "add":
        alias = directory.add_alias(args.source, args.target)
        print(f"added alias {alias.source} -> {alias.target}")
    elif args.action == "list":
        for alias in directory.list_aliases(args.domain):
            print(f"{alias.source}\t{alias.target}")
    else:
        count = directory.remove_alias(args.source, args.target)
        print(f"removed {count} alias target(s) of {args.source}")
    return 0


def read_password() -> str:
    """One password from a prompt, or the first line of standard input."""
    if sys.stdin.isatty():
        return getpass.getpass("Password: ")
    return sys.stdin.readline().rstrip("\r\n")


def read_new_password() -> str:
    """Ask twice on a terminal, or read two identical lines from standard input."""
    if sys.stdin.isatty():
        first = getpass.getpass("New password: ")
        second = getpass.getpass("Repeat password: ")
    else:
        first = sys.stdin.readline().rstrip("\r\n")
        second = sys.stdin.readline().rstrip("\r\n")
    if first != second:
        raise CliError("the two passwords differ")
    return first


def _byte_count(text: str) -> int:
    """argparse type for sizes: a non-negative integer."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative: expected 0 or more bytes")
    return value
