"""`mailstead dkim show|rotate DOMAIN` (`mailstead dns records DOMAIN` is in dns_cmds.py).

Rotation is two steps so that no mail is signed with a key receivers cannot find:
`rotate` creates the next dated selector pair and prints its records; `rotate --activate`
switches signing to it only when both records resolve with the same public keys.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

import dns.exception
import dns.resolver

from appliance.cli import context
from appliance.cli.context import CliError
from appliance.core.addresses import normalise_domain
from appliance.dkim import keys, records
from appliance.outbound.mx import make_resolver
from appliance.settings import Settings


def register(commands: Any) -> None:
    dkim = commands.add_parser("dkim", help="DKIM signing keys of local domains")
    sub = dkim.add_subparsers(dest="action", required=True, metavar="ACTION")
    sub.add_parser("show", help="selectors and DNS records of a domain").add_argument("domain")
    rotate = sub.add_parser("rotate", help="create the next key pair; --activate switches "
                            "signing to it once its records resolve")
    rotate.add_argument("domain")
    rotate.add_argument("--activate", action="store_true",
                        help="sign with the pending keys if DNS publishes them")
    dkim.set_defaults(handler=dkim_command)


def _local_domain(current: Settings, domain: str) -> str:
    name = normalise_domain(domain)
    directory, _ = context.open_directory(current)
    if name not in directory.list_domains():
        raise CliError(f"{name} is not a local domain: `mailstead domain add {name}` first")
    return name


def dkim_command(args: argparse.Namespace) -> int:
    current = context.settings(args)
    domain = _local_domain(current, args.domain)
    data_dir = current.data_dir
    if args.action == "show":
        _show(data_dir, domain)
        return 0
    if args.activate:
        return _activate(current, domain)
    if keys.load_state(data_dir, domain) is None:
        state = keys.ensure_keys(data_dir, domain)
        print(f"{domain} had no DKIM keys: created and activated {state.active.base}; "
              "publish:")
        _print_pair(data_dir, domain, state.active)
        return 0
    state = keys.start_rotation(data_dir, domain)
    assert state.pending is not None
    print(f"pending selectors {state.pending.rsa} and {state.pending.ed25519} "
          f"(signing still uses {state.active.base}); publish:")
    _print_pair(data_dir, domain, state.pending)
    print(f"then run `mailstead dkim rotate {domain} --activate`")
    return 0


def _show(data_dir: Path, domain: str) -> None:
    state = keys.load_state(data_dir, domain)
    if state is None:
        raise CliError(f"{domain} has no DKIM keys: run `mailstead dkim rotate {domain}`")
    print(f"active: {state.active.rsa} {state.active.ed25519}")
    _print_pair(data_dir, domain, state.active)
    if state.pending is not None:
        print(f"pending: {state.pending.rsa} {state.pending.ed25519}")
        _print_pair(data_dir, domain, state.pending)


def _print_pair(data_dir: Path, domain: str, pair: keys.SelectorPair) -> None:
    for owner, value in keys.pair_records(data_dir, domain, pair):
        print(records.txt_line(owner, value))


def _activate(current: Settings, domain: str) -> int:
    state = keys.load_state(current.data_dir, domain)
    if state is None or state.pending is None:
        raise CliError(f"{domain} has no pending DKIM keys: run `mailstead dkim rotate "
                       f"{domain}` first")
    missing = asyncio.run(_missing(current, keys.pair_records(current.data_dir, domain,
                                                                state.pending)))
    if missing:
        for line in missing:
            print(line)
        print(f"still signing with {state.active.base}; publish the records and retry")
        return 1
    keys.activate_pending(current.data_dir, domain)
    print(f"{domain} now signs with {state.pending.rsa} and {state.pending.ed25519}")
    return 0


async def _missing(current: Settings, wanted: list[tuple[str, str]]) -> list[str]:
    """A line per record that DNS does not publish with our public key."""
    resolver = make_resolver(current.get_str("outbound.resolver"),
                             float(current.get_int("outbound.dns_timeout")))
    problems: list[str] = []
    for owner, value in wanted:
        try:
            answer = await resolver.resolve(owner, "TXT")
            found = [b"".join(r.strings).decode("ascii", "replace") for r in answer]
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            found = []
        except dns.exception.DNSException as exc:
            problems.append(f"missing: {owner} (lookup failed: {exc})")
            continue
        if not any(public_key(text) == public_key(value) for text in found):
            problems.append(f"missing: {records.txt_line(owner, value)}")
    return problems


def public_key(record: str) -> str | None:
    """The p= tag of a DKIM key record (RFC 6376 3.6.1), whitespace removed."""
    for tag in record.split(";"):
        name, sep, value = tag.partition("=")
        if sep and name.strip() == "p":
            return "".join(value.split())
    return None
