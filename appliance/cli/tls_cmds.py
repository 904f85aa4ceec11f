"""`mailstead tls renew|show`: the ACME renewal job (run daily by a timer) and what the
current certificate is (appliance/tls/acme_client.py does the work)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from appliance.cli import context

if TYPE_CHECKING:    # the work's imports are heavy: loaded by the handlers
    from appliance.tls import acme_client



def register(commands: Any) -> None:
    tls = commands.add_parser("tls", help="the TLS certificate and its ACME renewal")
    sub = tls.add_subparsers(dest="action", required=True, metavar="ACTION")
    renew = sub.add_parser("renew", help="renew from the ACME CA when tls.acme_enabled is "
                           "true and the certificate is self-signed, lacks a name or has "
                           "less than 30 days left")
    renew.add_argument("--force", action="store_true", help="renew even a fresh certificate")
    sub.add_parser("show", help="names, issuer and expiry of the current certificate")
    tls.set_defaults(handler=tls_command)


def tls_command(args: argparse.Namespace) -> int:
    from appliance.tls import acme_client
    current = context.settings(args)
    if args.action == "show":
        info = acme_client.cert_info(current.data_path("tls.cert_file"))
        if info is None:
            print("no readable certificate at " + str(current.data_path("tls.cert_file")))
            return 1
        _print_info(info)
        return 0
    directory, conn = context.open_directory(current)
    try:
        domains = directory.list_domains()
    finally:
        conn.close()
    try:
        result = acme_client.renew_if_due(current, domains, force=args.force)
    except acme_client.AcmeError as exc:
        print(f"mailstead: renewal failed, the current certificate stays: {exc}",
              file=sys.stderr)
        return 1
    print(f"{result.outcome}: {result.reason}")
    if result.info is not None and result.outcome == "renewed":
        _print_info(result.info)
    return 0


def _print_info(info: acme_client.CertInfo) -> None:
    print(f"names: {', '.join(info.names)}")
    print(f"issuer: {info.issuer}{' (self-signed)' if info.self_signed else ''}")
    print(f"valid until: {info.not_after:%Y-%m-%d %H:%M} UTC")
