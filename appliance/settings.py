"""The one settings schema: defaults, `mailstead.toml`, `MAILSTEAD_SECTION__KEY` overrides.

Every setting is declared once in `SCHEMA` with its type, default, bounds and help text; the
loader, `mailstead config show`, the README's reference table and the console's settings
form all come from that table. Nothing here reads a file or the environment at import time.
Settings an admin edits in the console (`Setting.editable`) are also stored in mailstead.db;
`settings_store.py` reads and writes those and lays them over what `load_settings` gives.
"""

from __future__ import annotations

import functools
import importlib
import ipaddress
import os
import re
import tomllib
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.core.sizes import parse_space
from appliance.reports.addresses import parse_addresses as parse_report_addresses

ENV_PREFIX = "MAILSTEAD_"


class SettingsError(ValueError):
    """A setting is unknown, of the wrong type or out of range; the message names it."""


@dataclass(frozen=True)
class Setting:
    """One key of the schema: how to parse, check and explain it."""

    section: str
    key: str
    kind: type
    default: Any
    help: str
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()
    secret: bool = False
    path: bool = False
    optional: bool = False    # a str setting that may be "" (meaning: the help says what)
    validate: Callable[[str], object] | None = None   # raises ValueError on a bad str value
    accepted_text: str = ""   # describes what `validate` accepts

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"

    @property
    def editable(self) -> bool:
        """Whether an admin may change it in the console (stored in mailstead.db); the
        choice and its reasons are in `_CONSOLE_SECTIONS` and its neighbours below."""
        return _console_editable(self)

    def accepted(self) -> str:
        """Describe the accepted values, for error messages and docs."""
        if self.accepted_text:
            return self.accepted_text
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.kind is bool:
            return "true or false"
        if self.kind is int:
            return f"an integer from {self.minimum} to {self.maximum}"
        if self.path:
            start = "the config file's directory" if self.section == "paths" else "data_dir"
            text = f"a file system path (a relative path starts at {start})"
            return text + " or empty" if self.optional else text
        return "a string" if self.optional else "a non-empty string"


def _owned_by(owner: str) -> Callable[[str], object]:
    """The validator of a setting whose format the check named `module:function` owns (it
    parses the value, raising ValueError). Imported when first used: those modules import
    this one."""
    module, _, name = owner.partition(":")

    def validate(text: str) -> object:
        parse: Callable[[str], object] = getattr(importlib.import_module(module), name)
        return parse(text)

    return validate


_clamd_address = _owned_by("appliance.checks.clamav:parse_address")
_spam_score = _owned_by("appliance.checks.spam:parse_score")
_dnsbl_zones = _owned_by("appliance.checks.dnsbl_zones:parse_zones")
_dnsbl_zone_names = _owned_by("appliance.checks.dnsbl_zones:parse_zone_names")
_client_networks = _owned_by("appliance.checks.ratelimit_clients:parse_networks")
_domain_list = _owned_by("appliance.checks.authentication:parse_sealers")
_admin_address = _owned_by("appliance.hardware.rules.base:parse_admin_address")
_update_window = _owned_by("appliance.update.window:parse_window")
_ssh_keys = _owned_by("appliance.net.ssh_access:parse_keys")


def _ip_version(version: int) -> Callable[[str], object]:
    """Validator of an optional IP address setting of one version (the DNS page's)."""

    def validate(text: str) -> object:
        if text.strip() and ipaddress.ip_address(text.strip()).version != version:
            raise ValueError(f"not an IPv{version} address")
        return text.strip()

    return validate


def _host_port(text: str) -> object:
    """Validator of an optional `HOST:PORT` (`[v6]:PORT`) setting (`dns.port25_target`)."""
    host, sep, port = text.strip().rpartition(":")
    if text.strip() and (not sep or not host.strip("[]") or not port.isdigit()
                         or not 0 < int(port) < 65536 or any(c.isspace() for c in host)):
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return text.strip()


_public_ipv4 = _ip_version(4)
_public_ipv6 = _ip_version(6)


@functools.cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _time_zone(text: str) -> object:
    """Validator of an IANA time zone name (`server.timezone`) known to this system."""
    if text not in _time_zones():
        raise ValueError(f"unknown time zone {text!r}")
    return text


def _update_url(text: str) -> object:
    """Validator of `update.url`: empty, or an https:// URL with a host (TUF verifies what
    comes; HTTPS also hides from the network which release an appliance fetches)."""
    if text and not re.fullmatch(r"https://[^/\s?#]+(/[^\s?#]*)?", text):
        raise ValueError(f"expected an https:// URL, got {text!r}")
    return text


def _networks(text: str) -> object:
    """Validator of a comma-separated list of IP networks (`console.allowed_networks`)."""
    nets = [part.strip() for part in text.split(",") if part.strip()]
    if not nets:
        raise ValueError("expected at least one network")
    for net in nets:
        ipaddress.ip_network(net, strict=False)
    return ", ".join(nets)


KIB = 1024
MIB = 1024 * KIB

SCHEMA: tuple[Setting, ...] = (
    Setting("server", "hostname", str, "localhost",
            "Name this server uses in its SMTP greeting and Received headers; the DNS page "
            "asks for its MX, A and PTR records. The set-up wizard sets it."),
    Setting("server", "timezone", str, "UTC",
            "IANA time zone of the console's dates and the reports (e.g. `Europe/Berlin`); "
            "the set-up wizard sets it. Mail headers and logs stay in UTC.",
            validate=_time_zone, accepted_text="an IANA time zone name such as `Europe/Berlin`"),
    Setting("server", "dev_mode", bool, False,
            "Development instance (set by `mailstead dev-init`); later listeners use it to "
            "allow password logins without TLS from loopback only."),
    Setting("paths", "data_dir", str, "/var/lib/mailstead",
            "Directory with mailstead.db, mail/, queue/, tls/ and dkim/.", path=True),
    Setting("listen", "address", str, "0.0.0.0",
            "IP address the mail listeners bind to."),
    Setting("listen", "smtp_port", int, 25, "SMTP MX port.", 1, 65535),
    Setting("listen", "submission_port", int, 587, "Submission port (STARTTLS).", 1, 65535),
    Setting("listen", "submissions_port", int, 465, "Submission port (TLS).", 1, 65535),
    Setting("listen", "imap_port", int, 143, "IMAP port (STARTTLS).", 1, 65535),
    Setting("listen", "imaps_port", int, 993, "IMAP port (TLS).", 1, 65535),
    Setting("listen", "pop3_port", int, 110, "POP3 port (STLS).", 1, 65535),
    Setting("listen", "pop3s_port", int, 995, "POP3 port (TLS).", 1, 65535),
    Setting("listen", "dav_port", int, 5232, "CalDAV/CardDAV port.", 1, 65535),
    Setting("listen", "dav_address", str, "127.0.0.1",
            "IP address the CalDAV/CardDAV server (`mailstead dav serve`) binds to: loopback "
            "by default; the appliance image sets 0.0.0.0 (the firewall keeps it to the LAN).",
            validate=ipaddress.ip_address, accepted_text="an IPv4 or IPv6 address"),
    Setting("listen", "console_port", int, 443, "Web console port.", 1, 65535),
    Setting("listen", "console_address", str, "127.0.0.1",
            "IP address the web console binds to: loopback by default; the appliance image "
            "sets the LAN address (the console still answers only console.allowed_networks).",
            validate=ipaddress.ip_address,
            accepted_text="an IPv4 or IPv6 address"),
    Setting("listen", "public_web_enabled", bool, True,
            "Run the public web listeners beside the console (`mailstead console serve "
            "--public` and `--public-http`): only the paths the internet must reach (ACME "
            "HTTP-01 challenges, autoconfig, Autodiscover, the MTA-STS policy), 404 to all "
            "else. Off: those commands exit at once and nothing listens."),
    Setting("listen", "public_web_port", int, 80,
            "Plain HTTP port of the public listener (on listen.console_address): ACME "
            "HTTP-01 challenges and autoconfig; any other path is redirected to HTTPS.",
            1, 65535),
    Setting("listen", "public_tls_port", int, 8443,
            "HTTPS port of the public listener (on listen.console_address): the appliance's "
            "firewall sends port 443 from outside the LAN here, so the internet sees only "
            "the public paths while the LAN gets the whole console on console_port.",
            1, 65535),
    Setting("dav", "max_content_length", int, 10 * MIB,
            "Largest CalDAV/CardDAV request body in bytes (an event, a vCard, a REPORT); "
            "larger ones get 413 before they are read.", 4 * KIB, 1024 * MIB),
    Setting("dav", "request_timeout", int, 30,
            "Seconds a CalDAV/CardDAV client has to send a request body; then 408.", 1, 3600),
    Setting("dav", "auth_cache_seconds", int, 300,
            "Seconds a verified CalDAV/CardDAV login is remembered in memory (clients log "
            "in on every request). A disabled account or a changed password still works "
            "for a client that logged in until then; 0 verifies every request.", 0, 3600),
    Setting("dav", "auth_cache_entries", int, 1000,
            "Verified logins the CalDAV/CardDAV login cache holds at most.", 1, 1_000_000),
    Setting("dav", "requests_per_minute", int, 1200,
            "CalDAV/CardDAV requests one client address may make a minute (then 429); "
            "0 for no limit.", 0, 1_000_000),
    Setting("console", "idle_timeout", int, 900,
            "Seconds a console session may stay unused before it must log in again.",
            60, 86400),
    Setting("console", "allowed_networks", str,
            "127.0.0.0/8, ::1, 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 169.254.0.0/16, "
            "fc00::/7, fe80::/10",
            "Networks whose clients may use the console (loopback and private ranges: the "
            "LAN); others get 403, except the public client set-up and MTA-STS files.",
            validate=_networks, accepted_text="comma-separated IP networks"),
    Setting("limits", "max_message_size", int, 50 * MIB,
            "Largest message accepted, in bytes; advertised in EHLO SIZE.", 4 * KIB, 1024 * MIB),
    Setting("limits", "max_line_length", int, 1000,
            "Longest line in a command or message, in octets with CRLF (RFC 5321 4.5.3.1.6).",
            512, 1 * MIB),
    Setting("limits", "max_recipients", int, 100,
            "Recipients per message (RFC 5321 4.5.3.1.8 requires at least 100).", 1, 100_000),
    Setting("limits", "idle_timeout", int, 300,
            "Seconds a client may stay silent between commands (RFC 5321 4.5.3.2.7).", 5, 3600),
    Setting("limits", "data_timeout", int, 600,
            "Seconds a client has to transfer one message after DATA.", 5, 7200),
    Setting("limits", "max_connections", int, 1000,
            "Simultaneous SMTP connections in all.", 1, 100_000),
    Setting("limits", "max_connections_per_ip", int, 20,
            "Simultaneous SMTP connections from one client address.", 1, 100_000),
    Setting("limits", "shutdown_grace", int, 10,
            "Seconds sessions may finish after SIGTERM before they are closed.", 0, 600),
    Setting("limits", "greeting_delay_ms", int, 500,
            "Milliseconds the MX waits before its 220 greeting; a client that sends anything "
            "before the greeting gets `554 5.5.1` and is disconnected (like Postfix "
            "postscreen's pregreet test). Even 0 refuses what arrived before the greeting; "
            "longer catches more spam bots but holds every connection that much longer.",
            0, 30_000),
    Setting("limits", "min_free_space", str, "256MiB",
            "Free space the data directory keeps: below it MAIL FROM and DATA get "
            "`452 4.3.1` (mail is refused, never lost); `0` turns the check off.",
            validate=parse_space,
            accepted_text="bytes (e.g. `512MiB`, `2G`, `0`) or a percentage (e.g. `5%`)"),
    Setting("limits", "max_messages_per_account", int, 0,
            "Messages one account may keep in all its folders (the MESSAGE quota of IMAP "
            "QUOTA, RFC 9208); APPEND, COPY and MOVE beyond it get `NO [OVERQUOTA]`. 0 means "
            "no limit; the storage quota is set per account.", 0, 100_000_000),
    Setting("engine", "workers", int, 0,
            "Engine processes: 1 runs everything in one process; N > 1 runs N workers that "
            "share the MX port (SO_REUSEPORT) under a supervisor, the first of which also "
            "runs submission, POP3, the queue and the control socket; 0 means one per CPU. "
            "Connection limits count per worker.", 0, 64),
    Setting("engine", "pin_workers", bool, True,
            "With more than one worker, run worker N on the N-th CPU only (round robin): its "
            "event loop and delivery threads hand each message back and forth many times, "
            "which is much cheaper within one CPU. False lets the kernel move them."),
    Setting("engine", "event_loop", str, "uvloop",
            "The engine's event loop: `uvloop` (libuv: about a fifth less CPU per small IMAP "
            "command, tests/bench/README.md, issue 4) or `asyncio` (the standard library's, "
            "the fallback should uvloop misbehave on a platform).",
            choices=("uvloop", "asyncio")),
    Setting("tls", "cert_file", str, "tls/cert.pem",
            "PEM certificate chain (relative to data_dir).", path=True),
    Setting("tls", "key_file", str, "tls/key.pem",
            "PEM private key, mode 0600 (relative to data_dir).", path=True),
    Setting("tls", "acme_enabled", bool, False,
            "Get and renew the certificate from an ACME CA (RFC 8555, HTTP-01 answered by "
            "the console on port 80): needs the host name in public DNS, pointing here."),
    Setting("tls", "acme_directory", str, "https://acme-v02.api.letsencrypt.org/directory",
            "The ACME CA's directory URL (Let's Encrypt production by default).",
            validate=_owned_by("appliance.tls.acme_settings:parse_directory_url"),
            accepted_text="an https:// URL"),
    Setting("tls", "acme_email", str, "",
            "Contact address given to the ACME CA for expiry and policy notices (empty: "
            "none).", optional=True,
            validate=_owned_by("appliance.tls.acme_settings:parse_contact"),
            accepted_text="an email address or empty"),
    Setting("tls", "acme_ca_file", str, "",
            "PEM CA bundle that verifies the ACME directory's HTTPS (empty: the system's "
            "CAs; for a private CA).", path=True, optional=True),
    Setting("log", "level", str, "info", "Log level.",
            choices=("debug", "info", "warning", "error")),
    Setting("log", "file", str, "log/engine.jsonl",
            "A file (relative to data_dir) where the engine also writes its log, one JSON "
            "object a line, for the console's mail log search; empty writes stderr only "
            "(journald on the appliance).", path=True, optional=True),
    Setting("log", "file_max_size", int, 64 * MIB,
            "Bytes `log.file` may reach before it is renamed to `<file>.1` (replacing the "
            "previous one) and started afresh.", 1 * MIB, 4096 * MIB),
    Setting("auth", "argon2_time_cost", int, 3,
            "argon2id iterations (RFC 9106 second recommendation).", 1, 20),
    Setting("auth", "argon2_memory_kib", int, 64 * 1024,
            "argon2id memory in KiB (RFC 9106 second recommendation: 64 MiB).", 8 * 1024,
            4 * 1024 * 1024),
    Setting("auth", "argon2_parallelism", int, 4, "argon2id lanes.", 1, 64),
    # -- the login guard (auth/guard.py) and submission (smtp/submission.py) ---------------
    Setting("auth", "max_failures", int, 5,
            "Failed logins to one account before it is locked out (from unknown clients).",
            1, 1000),
    Setting("auth", "max_failures_per_ip", int, 20,
            "Failed logins from one client address (IPv6: one /64), over all accounts, "
            "before that address is locked out.", 1, 100_000),
    Setting("auth", "lockout_seconds", int, 60,
            "Length of the first lockout; each further failure doubles it.", 1, 86_400),
    Setting("auth", "lockout_max_seconds", int, 3600,
            "Longest lockout: every lockout expires after at most this long.", 1, 604_800),
    Setting("auth", "failure_window", int, 3600,
            "Seconds after the last failure (or lockout) when the failure count is forgotten.",
            1, 604_800),
    Setting("auth", "known_client_days", int, 30,
            "A client address that logged into an account within this many days is not "
            "held back by that account's lockout (0 turns this off).", 0, 365),
    Setting("auth", "failure_delay_ms", int, 1000,
            "Milliseconds a failed or locked-out login waits before its reply.", 0, 10_000),
    Setting("auth", "max_concurrent_verifications", int, 4,
            "Password verifications (argon2id, in threads) running at once.", 1, 64),
    Setting("auth", "max_pending_verifications", int, 64,
            "Logins that may wait for a verification slot; more get a temporary failure.",
            1, 10_000),
    Setting("submission", "rate_limit_messages", int, 300,
            "Messages one account may submit per `submission.rate_limit_window`; more get "
            "`450 4.7.1`.", 1, 1_000_000),
    Setting("submission", "rate_limit_window", int, 3600,
            "Seconds of the sliding window for `submission.rate_limit_messages`.", 1, 604_800),
    # -- POP3 (pop3/server.py, pop3/state.py) ---------------------------------------------
    Setting("pop3", "login_timeout", int, 60,
            "Seconds a POP3 client may stay silent before it has logged in.", 1, 3600),
    Setting("pop3", "idle_timeout", int, 600,
            "Seconds a logged-in POP3 client may stay silent (RFC 1939 3: the autologout "
            "timer is at least 10 minutes).", 600, 86_400),
    Setting("pop3", "max_connections", int, 1000,
            "Simultaneous POP3 connections in all (both ports).", 1, 100_000),
    Setting("pop3", "max_connections_per_ip", int, 50,
            "Simultaneous POP3 connections from one client address (an office behind one "
            "NAT address polls with many).", 1, 100_000),
    Setting("pop3", "max_bad_commands", int, 10,
            "Unknown, misplaced, malformed or overlong commands before a POP3 session is "
            "closed.", 1, 1000),
    Setting("pop3", "max_login_failures", int, 3,
            "Failed logins in one POP3 session before it is closed (the login guard's "
            "lockouts count across sessions).", 1, 100),
    # -- IMAP (imap/server.py; the core's limits in imap/receiver.py) ---------------------
    Setting("imap", "login_timeout", int, 60,
            "Seconds an IMAP client has to send each whole command before it has logged in "
            "(trickling octets does not extend it).", 1, 3600),
    Setting("imap", "autologout", int, 1800,
            "Seconds a logged-in IMAP client may stay silent, IDLE included (RFC 9051 5.4: "
            "the autologout timer is at least 30 minutes).", 1800, 86_400),
    Setting("imap", "max_line_length", int, 64 * KIB,
            "Longest IMAP command text in octets, literals excluded; longer commands get "
            "BAD and the session goes on (RFC 7162 4 asks for at least 8192).",
            8 * KIB, 16 * MIB),
    Setting("imap", "max_append", int, 0,
            "Largest literal and APPEND message in octets (advertised as APPENDLIMIT, "
            "RFC 7889); `0` means `limits.max_message_size`.", 0, 1024 * MIB),
    Setting("imap", "max_connections", int, 2000,
            "Simultaneous IMAP connections in all (both ports).", 1, 100_000),
    Setting("imap", "max_connections_per_ip", int, 100,
            "Simultaneous IMAP connections from one client address (mail clients open "
            "several per account, and an office shares one NAT address).", 1, 100_000),
    Setting("imap", "max_connections_per_account", int, 20,
            "Simultaneous logged-in IMAP connections of one account; more logins get "
            "`NO [LIMIT]`.", 1, 10_000),
    Setting("imap", "max_bad_commands", int, 20,
            "Consecutive IMAP commands answered BAD before the session is closed with BYE.",
            1, 1000),
    # -- outbound delivery: one attempt to one destination (outbound/transport.py) --------
    Setting("outbound", "port", int, 25,
            "TCP port of remote MX hosts (25; tests point it at a high port).", 1, 65535),
    Setting("outbound", "resolver", str, "",
            "DNS resolver for MX, A/AAAA and MTA-STS lookups as `ADDRESS` or `ADDRESS:PORT` "
            "(`[v6]:PORT` for IPv6); empty uses the system resolver (/etc/resolv.conf).",
            optional=True),
    Setting("outbound", "dns_timeout", int, 20,
            "Seconds one DNS lookup may take before delivery is deferred.", 1, 300),
    Setting("outbound", "connect_timeout", int, 30,
            "Seconds to wait for a TCP connection to one MX address.", 1, 600),
    Setting("outbound", "greeting_timeout", int, 300,
            "Seconds to wait for the 220 greeting (RFC 5321 4.5.3.2.1: 5 minutes).", 1, 3600),
    Setting("outbound", "mail_timeout", int, 300,
            "Seconds to wait for the reply to MAIL, EHLO, STARTTLS, RSET and QUIT "
            "(RFC 5321 4.5.3.2.2: 5 minutes).", 1, 3600),
    Setting("outbound", "rcpt_timeout", int, 300,
            "Seconds to wait for the reply to each RCPT (RFC 5321 4.5.3.2.3: 5 minutes).",
            1, 3600),
    Setting("outbound", "data_init_timeout", int, 120,
            "Seconds to wait for the 354 after DATA (RFC 5321 4.5.3.2.4: 2 minutes).", 1, 3600),
    Setting("outbound", "data_block_timeout", int, 180,
            "Seconds one block of the message may take to send (RFC 5321 4.5.3.2.5: "
            "3 minutes).", 1, 3600),
    Setting("outbound", "data_end_timeout", int, 600,
            "Seconds to wait for the reply after the final dot (RFC 5321 4.5.3.2.6: "
            "10 minutes).", 1, 7200),
    Setting("outbound", "max_mx_addresses", int, 5,
            "MX addresses (hosts times IPv4/IPv6 addresses) tried in one delivery attempt.",
            1, 100),
    Setting("outbound", "ca_file", str, "",
            "PEM CA bundle for verifying MX and MTA-STS certificates (relative to data_dir); "
            "empty uses the system's trusted CAs.", path=True, optional=True),
    Setting("outbound", "mta_sts", bool, True,
            "Apply recipient domains' MTA-STS policies (RFC 8461): `enforce` requires a "
            "matching MX and a verified certificate, else delivery is deferred."),
    Setting("outbound", "mta_sts_port", int, 443,
            "HTTPS port of `mta-sts.<domain>` policy hosts (443; tests use a high port).",
            1, 65535),
    Setting("outbound", "mta_sts_timeout", int, 30,
            "Seconds fetching one MTA-STS policy may take (RFC 8461 3.3).", 1, 300),
    Setting("outbound", "session_idle_timeout", int, 5,
            "Seconds an open connection to a remote MX waits for the next message to the "
            "same destination before QUIT (connection reuse; Postfix's cache: 2 s).", 1, 300),
    Setting("outbound", "session_max_messages", int, 100,
            "Messages one connection to a remote MX carries before a fresh connection.",
            1, 100_000),
    Setting("outbound", "session_max_idle", int, 20,
            "Idle connections kept open per destination; 0 turns connection reuse off.",
            0, 1000),
    # -- the outbound queue (outbound/spool.py, scheduler.py, runner.py, bounces.py) -------
    Setting("queue", "first_retry", int, 300,
            "Seconds before the first retry of a deferred recipient; each further retry "
            "waits twice as long (with jitter), up to `queue.max_retry`.", 1, 86_400),
    Setting("queue", "max_retry", int, 3600,
            "Longest wait between two attempts, in seconds.", 1, 86_400),
    Setting("queue", "max_age", int, 5 * 86_400,
            "Seconds a message may stay queued; then its undelivered recipients are bounced.",
            60, 60 * 86_400),
    Setting("queue", "delay_warning", int, 4 * 3600,
            "Seconds after which the sender gets one delay warning (RFC 3464 `delayed`) if "
            "NOTIFY allows; 0 sends none.", 0, 60 * 86_400),
    Setting("queue", "max_deliveries", int, 100,
            "Delivery attempts (one message to one destination domain) running at once.",
            1, 1000),
    Setting("queue", "initial_per_domain", int, 5,
            "Delivery attempts to one destination domain running at once to begin with; "
            "each attempt the peer answers widens this by 1/window up to "
            "`queue.max_per_domain`, each unanswered one narrows it down to 1 (Postfix's "
            "destination concurrency window and defaults).", 1, 1000),
    Setting("queue", "max_per_domain", int, 20,
            "Most delivery attempts to one destination domain running at once.", 1, 1000),
    Setting("queue", "bounce_max_size", int, 1 * MIB,
            "Largest original message returned whole in a bounce (RET=FULL); a larger one "
            "is returned as its headers only.", 0, 1024 * MIB),
    # -- the virus check (checks/clamav.py): clamd over its socket, INSTREAM ---------------
    Setting("antivirus", "enabled", bool, True,
            "Scan every message received on the MX and on submission with clamd before it "
            "is stored or queued; infected mail gets `554 5.7.1`."),
    Setting("antivirus", "clamd_socket", str, "/run/clamav/clamd.ctl",
            "Where clamd listens: its UNIX socket path, or `HOST:PORT` for TCP.",
            validate=_clamd_address,
            accepted_text="an absolute socket path or `HOST:PORT` (`[v6]:PORT` for IPv6)"),
    Setting("antivirus", "timeout", int, 30,
            "Seconds one scan may take (connect, send, verdict); a slower or unreachable "
            "clamd counts as unavailable.", 1, 600),
    Setting("antivirus", "fail_open", bool, False,
            "When clamd is unavailable: false defers the message with `451 4.7.1` (the "
            "sender retries); true accepts it with an `X-Virus-Scan: unavailable` header."),
    Setting("antivirus", "max_scan_size", int, 25 * MIB,
            "Largest message sent to clamd, in bytes (keep it at most clamd's "
            "StreamMaxLength); larger messages are accepted unscanned with an "
            "`X-Virus-Scan: skipped` header and a log line.", 64 * KIB, 1024 * MIB),
    # -- inbound authentication (checks/spf.py, dkim_verify.py, arc.py, dmarc.py) ---------
    Setting("checks", "dns_timeout", int, 5,
            "Seconds one DNS lookup of an inbound check (SPF, DKIM, DMARC, DNSBL) may take; "
            "they ask `outbound.resolver`. Short because the client waits at the end of "
            "DATA; a lookup that times out counts as a temporary error of that check.",
            1, 60),
    Setting("checks", "spf_time_limit", int, 20,
            "Seconds all DNS lookups of one SPF evaluation may take together; past it the "
            "SPF result is `temperror`. 20 is the least RFC 7208 4.6.4 allows.", 20, 120),
    Setting("checks", "authentication", bool, True,
            "Authenticate inbound mail on the MX (SPF, DKIM, ARC, DMARC; checks/"
            "authentication.py) and apply senders' DMARC policies: `p=reject` failures get "
            "`550 5.7.1`, `p=quarantine` failures go to Junk. On by default: it is what "
            "keeps forged mail from our users' inboxes."),
    Setting("checks", "dkim_max_signatures", int, 10,
            "DKIM signatures verified per message; more are reported together as "
            "`dkim=policy` and not verified (each costs a key lookup and a body hash; real "
            "mail carries one to three, 10 leaves room for forwarders).", 1, 100),
    Setting("checks", "arc_trusted_sealers", str, "",
            "Comma-separated domains (ARC-Seal d=) of forwarders and mailing lists we trust: "
            "a message failing DMARC is accepted instead of rejected or sent to Junk when "
            "its ARC chain passes and its newest seal is from one of them (RFC 7489 "
            "local-policy override, RFC 8617 7.2). Empty by default: trust is the admin's "
            "choice.", optional=True, validate=_domain_list,
            accepted_text="comma-separated domain names"),
    # -- DNSBL/DNSWL, greylisting, per-client rate limits (checks/dnsbl.py, greylist.py) --
    Setting("dnsbl", "enabled", bool, True,
            "Look MX clients and the URL domains of their messages up in the DNS lists "
            "below (at the end of DATA, after the authentication checks)."),
    Setting("dnsbl", "ip_zones", str,
            "zen.spamhaus.org:6, bl.spamcop.net:3, psbl.surriel.com:2, list.dnswl.org:-5",
            "DNS lists (RFC 5782) the MX looks the client address up in, as `zone:points`; "
            "a listing adds the points to the spam score, negative points make an allow "
            "list. Free-use terms: Spamhaus (zen, dbl) and DNSWL are free only for low-volume, "
            "non-commercial use and refuse queries sent through public resolvers (those "
            "answers are ignored), so use a local resolver or their paid data feeds; "
            "SpamCop and PSBL are free. Empty turns IP lookups off.",
            optional=True, validate=_dnsbl_zones,
            accepted_text="comma-separated `zone[:points]` items (points -100 to 100)"),
    Setting("dnsbl", "uri_zones", str, "dbl.spamhaus.org:5, multi.surbl.org:4",
            "URI blocklists the registered domains of URLs in the message text are looked "
            "up in, as `zone:points` (Spamhaus DBL: terms as above; SURBL is free below "
            "1,000 users or 250,000 queries a day). Empty turns URI lookups off.",
            optional=True, validate=_dnsbl_zones,
            accepted_text="comma-separated `zone[:points]` items (points -100 to 100)"),
    Setting("dnsbl", "reject_zones", str, "zen.spamhaus.org",
            "Zones whose listing alone rejects the message with `550 5.7.1` (unless an "
            "allow list vouches for the client); other listings only add points. Spamhaus "
            "ZEN is built to be used that way on an MX; empty rejects on none.",
            optional=True, validate=_dnsbl_zone_names,
            accepted_text="comma-separated zone names"),
    Setting("dnsbl", "timeout_ms", int, 2000,
            "Milliseconds all DNS list lookups of one message may take (they run at once); "
            "a list that has not answered by then adds nothing (fail open): lists only add "
            "spam points, and the client waits at the end of DATA.", 100, 30_000),
    Setting("dnsbl", "max_uri_domains", int, 10,
            "Distinct URL domains of one message looked up (the first ones found): bounds "
            "the queries a message full of links can cause.", 0, 100),
    Setting("dnsbl", "max_scan_bytes", int, 256 * KIB,
            "Bytes at the start of a message searched for URLs: links sit near the top, "
            "and parsing a whole 50 MB message for them would cost more than it finds.",
            4 * KIB, 16 * MIB),
    Setting("dnsbl", "cache_entries", int, 10_000,
            "DNS list answers kept in memory (per process) for the TTL the list gave.",
            100, 1_000_000),
    Setting("greylist", "enabled", bool, True,
            "Greylist the MX (decided at the end of DATA, after SPF/DKIM): a message from "
            "an unknown (client network, sender, recipient) gets `451 4.7.1` and passes when "
            "the client retries after `greylist.delay`. On by default because most spam "
            "software never retries; the cost is a first message from a new sender held "
            "for a few minutes. Senders authenticated by SPF or DKIM whose mail we accepted "
            "before skip it; turn it off if first-contact mail must arrive at once."),
    Setting("greylist", "delay", int, 300,
            "Seconds a retry must wait after the first attempt to pass (5 minutes, as "
            "postgrey: longer than a bot's retry, shorter than most MTAs' first retry).",
            1, 86_400),
    Setting("greylist", "expire", int, 2 * 86_400,
            "Seconds after the first attempt within which a retry must come; a later one "
            "starts over (2 days, postgrey's retry window).", 60, 30 * 86_400),
    Setting("greylist", "allow_days", int, 35,
            "Days a (client network, sender domain) that passed a retry, and an "
            "authenticated sender domain we accepted, skip greylisting (refreshed by each "
            "message; 35 covers monthly senders, as postgrey).", 1, 365),
    Setting("client_limits", "connections_per_minute", int, 60,
            "New MX connections one client address (an IPv6 /64) may open per minute per "
            "engine process; more get `421 4.7.0` at connect. 60 is far above what a "
            "legitimate MTA opens to one MX; 0 turns the limit off.", 0, 1_000_000),
    Setting("client_limits", "messages_per_minute", int, 120,
            "Messages (MAIL FROM) one client address (an IPv6 /64) may start per minute per "
            "engine process on the MX; more get `450 4.7.1` and are retried later. 0 turns "
            "the limit off.", 0, 1_000_000),
    Setting("client_limits", "exempt_networks", str, "127.0.0.0/8, ::1",
            "Client networks the per-minute limits never apply to (local relays and "
            "monitoring); add a trusted backup MX here.", optional=True,
            validate=_client_networks,
            accepted_text="comma-separated addresses or networks (e.g. `192.0.2.0/24`)"),
    # -- the spam score and the learning classifier (checks/spam.py, appliance/spam/) -----
    Setting("spam", "enabled", bool, True,
            "Score every message received on the MX (other checks' points plus the learning "
            "classifier's), add `X-Spam-Score`/`X-Spam-Status`, and file or refuse spam; "
            "on by default because an unfiltered inbox fills with spam."),
    Setting("spam", "junk_threshold", str, "5.0",
            "Score from which a message is delivered into the Junk folder (SpamAssassin's "
            "default `required_score`, which its rule weights are tuned for).",
            validate=_spam_score,
            accepted_text="a number such as 5.0 (quoted in mailstead.toml)"),
    Setting("spam", "reject_threshold", str, "15.0",
            "Score from which a message is refused at SMTP time with `550 5.7.1` (the "
            "sender learns it was not delivered; nothing is dropped silently); high by "
            "default so that only unmistakable spam is refused rather than filed.",
            validate=_spam_score,
            accepted_text="a number such as 15.0 (quoted in mailstead.toml)"),
    Setting("spam", "min_spam", int, 50,
            "Spam messages a model (an account's or the global one) must have learned "
            "before it scores mail; fewer make its guesses noise.", 1, 1_000_000),
    Setting("spam", "min_ham", int, 50,
            "Non-spam messages a model must have learned before it scores mail.",
            1, 1_000_000),
    Setting("spam", "max_text", int, 64 * KIB,
            "Characters of decoded text per message the classifier reads (the rest is "
            "ignored): spam shows itself early, and this bounds the work per message.",
            1 * KIB, 16 * MIB),
    Setting("spam", "max_tokens", int, 2000,
            "Most distinct tokens taken from one message (bounds the work and the "
            "database reads per message; typical mail has a few hundred).", 50, 100_000),
    Setting("spam", "train_queue", int, 1000,
            "Junk-folder moves waiting to be learned; beyond this, moves are not learned "
            "(logged) rather than slowing down IMAP.", 1, 1_000_000),
    # -- DMARC aggregate and TLS-RPT report intake (appliance/reports/) -------------------
    Setting("reports", "send_aggregate", bool, False,
            "Record the DMARC evaluations of inbound mail whose sender domain asks for "
            "aggregate reports (rua=mailto:), and send those domains one report a day "
            "(RFC 7489 7.2; `mailstead reports send-aggregate` sends at once). Many sites "
            "turn this on to help senders find forgeries; off by default because a report "
            "tells the domain owner (and any external address its record names) which IP "
            "addresses sent mail as them to us and how much: the privacy-conservative "
            "choice."),
    Setting("reports", "org_name", str, "",
            "The organisation named in the aggregate reports we send (org_name); empty "
            "means server.hostname, which identifies the reporting server without saying "
            "more.", optional=True),
    Setting("reports", "addresses", str, "postmaster",
            "Where DMARC aggregate and TLS-RPT reports arrive: comma-separated local parts "
            "(on every local domain) or full addresses. Mail delivered to them is also "
            "parsed for reports, which are stored for the console. The default is the "
            "`rua=mailto:postmaster@<domain>` that `mailstead dns records` publishes; empty "
            "turns report intake off.", optional=True, validate=parse_report_addresses,
            accepted_text="local parts or addresses separated by commas, or empty"),
    Setting("reports", "retention_days", int, 180,
            "Days a stored report is kept after it arrived, then pruned; 180 covers two "
            "quarters to compare, while the mails themselves stay in the mailbox.", 1, 3650),
    Setting("reports", "max_size", int, 20 * MIB,
            "Largest report after decompression, in bytes; larger ones (zip bombs among "
            "them) are refused and logged. The biggest senders' daily reports stay far "
            "below 20 MiB.", 64 * KIB, 512 * MIB),
    # -- the console's DNS page (webui/dns_records.py, dns_check.py) ----------------------
    Setting("dns", "public_ipv4", str, "",
            "This server's public IPv4 address: the A record of `server.hostname` the DNS "
            "page asks for, and the address whose reverse DNS and blocklist listings it "
            "checks. Empty: the page asks for an address without comparing it.",
            optional=True, validate=_public_ipv4, accepted_text="an IPv4 address or empty"),
    Setting("dns", "public_ipv6", str, "",
            "This server's public IPv6 address (its AAAA record); empty when it has none.",
            optional=True, validate=_public_ipv6, accepted_text="an IPv6 address or empty"),
    Setting("dns", "mta_sts_mode", str, "testing",
            "Mode of the MTA-STS policy the console serves at `mta-sts.<domain>` (RFC 8461 "
            "5): `testing` only asks senders to report TLS failures; switch to `enforce` "
            "once the TLS-RPT reports show no failures.",
            choices=("enforce", "testing", "none")),
    Setting("dns", "mta_sts_max_age", int, 604_800,
            "Seconds senders may cache the MTA-STS policy (RFC 8461 3.2; one week; RFC 8461 "
            "suggests weeks or more once in `enforce`).", 86_400, 31_557_600),
    Setting("dns", "blocklists", str, "zen.spamhaus.org, bl.spamcop.net, psbl.surriel.com",
            "DNS blocklists (RFC 5782) the DNS page looks this server's public address up "
            "in: a listing means other servers refuse our mail. Empty turns it off.",
            optional=True, validate=_dnsbl_zone_names,
            accepted_text="comma-separated zone names"),
    Setting("dns", "port25_target", str, "gmail-smtp-in.l.google.com:25",
            "`HOST:PORT` the DNS page opens a TCP connection to (and closes at once) to see "
            "whether outbound port 25 is open: many access providers block it. Empty turns "
            "the test off.", optional=True, validate=_host_port,
            accepted_text="`HOST:PORT` (`[v6]:PORT` for IPv6) or empty"),
    Setting("dns", "check_timeout", int, 5,
            "Seconds each DNS page check (one lookup, the port 25 connection) may take; the "
            "lookups ask `outbound.resolver`.", 1, 60),
    # -- the disk, RAID and space monitor (appliance/hardware/, mailstead-monitor) --------
    Setting("monitor", "poll_interval", int, 300,
            "Seconds between two full readings of SMART, RAID, space and temperatures. Disk "
            "hot-plug events are handled at once when udev events can be received; a faulty "
            "RAID member or a filling disk is noticed within this time. smartctl wakes no "
            "spun-down disk more often than this.", 30, 86_400),
    Setting("monitor", "admin_address", str, "",
            "Where alert mail goes; empty means `postmaster@<primary domain>` (RFC 5321 "
            "4.5.1 requires that mailbox). Alerts are delivered by Mailstead itself (a local "
            "mailbox, or the outbound queue), so no outside service is needed.",
            optional=True, validate=_admin_address,
            accepted_text="a mail address, or empty"),
    Setting("monitor", "space_warning_percent", int, 85,
            "Used share of the mail data's file system (bytes or inodes, as `df` counts "
            "them) from which a warning is sent: time to add disk or prune mail.", 1, 100),
    Setting("monitor", "space_critical_percent", int, 95,
            "Used share from which the state is critical and the engine answers `452 4.3.1` "
            "to new mail (RFC 3463: mail is refused for now, never lost), in addition to "
            "`limits.min_free_space`; SQLite and the queue need room to work.", 1, 100),
    Setting("monitor", "hdd_temperature_warning", int, 50,
            "Hard disk temperature (°C) that warns. Most 3.5\" drives are specified for "
            "0-60 °C; Google's 2007 disk study (Pinheiro et al.) saw failure rates rise "
            "above 45-50 °C for drives three years and older.", 30, 100),
    Setting("monitor", "hdd_temperature_critical", int, 60,
            "Hard disk temperature (°C) that is critical: the usual specified maximum.",
            30, 100),
    Setting("monitor", "ssd_temperature_warning", int, 60,
            "SATA/SAS SSD temperature (°C) that warns; they are commonly specified for "
            "0-70 °C and slow themselves down near it.", 30, 120),
    Setting("monitor", "ssd_temperature_critical", int, 70,
            "SATA/SAS SSD temperature (°C) that is critical.", 30, 120),
    Setting("monitor", "nvme_temperature_warning", int, 70,
            "NVMe temperature (°C) that warns; controllers run hotter, and most throttle "
            "at their own warning threshold (WCTEMP, typically 70-85 °C). The drive's own "
            "critical-warning temperature bit is always an alert.", 30, 120),
    Setting("monitor", "nvme_temperature_critical", int, 80,
            "NVMe temperature (°C) that is critical.", 30, 120),
    Setting("monitor", "bad_sectors_failing", int, 100,
            "Reallocated + pending + offline-uncorrectable sectors (SMART 5 + 197 + 198; "
            "SAS grown defects) from which a disk counts as failing. Any nonzero count "
            "already warns: Backblaze's drive statistics found these raw counts, with 187 "
            "and 188, the best predictors of failure; a large count means the disk is "
            "running out of spare sectors.", 1, 1_000_000),
    Setting("monitor", "nvme_wear_warning", int, 90,
            "NVMe `percentage used` (the vendor's estimate of rated endurance used; it may "
            "exceed 100) from which a warning is sent: plan the replacement.", 1, 255),
    Setting("monitor", "short_test_hours", int, 24,
            "Hours between SMART short self-tests of every disk (`smartctl -t short`, about "
            "two minutes, run in the background by the drive); 0 turns them off.", 0, 8760),
    Setting("monitor", "long_test_days", int, 7,
            "Days between SMART extended self-tests (a full surface read, hours on a large "
            "disk: it finds sectors that would fail a RAID rebuild); 0 turns them off.",
            0, 365),
    Setting("monitor", "reminder_hours", int, 24,
            "A problem that stays is mailed again at most this often; each change of state "
            "(new, worse, better, cleared) is mailed at once.", 1, 720),
    Setting("monitor", "history_days", int, 400,
            "Days of temperature, space and sector-count history kept for charts and trend "
            "rules.", 2, 3650),
    # -- ssh: key-only SSH from the LAN, off by default (appliance/net/ssh_access.py) -----
    Setting("ssh", "enabled", bool, False,
            "Run the SSH server (root logins with the keys below only; no passwords; the "
            "firewall lets only console.allowed_networks reach port 22). Applied by "
            "`mailstead ssh apply` within seconds of a change, and at every boot."),
    Setting("ssh", "authorized_keys", str, "",
            "Public keys allowed to log in as root, one OpenSSH authorized_keys line each "
            "(`TYPE KEY [COMMENT]`, no options): ssh-ed25519, ecdsa-sha2-nistp256/384/521, "
            "their FIDO (sk-) forms, or ssh-rsa of at least 3072 bits; at most 20. SSH "
            "stays off while this is empty.",
            optional=True, validate=_ssh_keys,
            accepted_text="OpenSSH public key lines (at most 20), or empty"),
    # -- firmware hooks (appliance/update/hooks.py, firmware-hooks/README.md) -------------
    Setting("hooks", "image_dir", str, "/usr/lib/mailstead/firmware-hooks",
            "The image's hook directory: `<stage>.d/` folders of executables run at each "
            "stage (updates, first boot, disk-added, disk-failed; see "
            "firmware-hooks/README.md). Empty leaves the image's hooks out.",
            path=True, optional=True),
    Setting("hooks", "admin_dir", str, "",
            "The admin's hook directory, run after (and overriding by name) the image's; "
            "empty means `<data_dir>/hooks`. It and its parent must be writable by root "
            "(or the runner's user) only, or its hooks are refused.",
            path=True, optional=True),
    Setting("hooks", "timeout", int, 300,
            "Seconds each hook may run; then its whole process group is killed and the "
            "hook counts as failed.", 1, 86_400),
    # -- update: the TUF client (appliance/update/trust.py) --
    Setting("update", "url", str, "",
            "Base URL of the signed release repository (`metadata/` and `targets/` below "
            "it, published with `mailstead release`); empty turns updates off.",
            optional=True, validate=_update_url,
            accepted_text="an https:// URL, or empty"),
    Setting("update", "channel", str, "stable",
            "Release channel followed: `stable`, or `beta` for pre-releases.",
            choices=("stable", "beta")),
    Setting("update", "trusted_root", str, "/usr/share/mailstead/update/root.json",
            "The TUF root metadata shipped in the image: the root of trust every release "
            "is verified against (later roots are followed from it, signed by it).",
            path=True),
    Setting("update", "ca_file", str, "",
            "CA certificates (PEM) the update server's HTTPS certificate must chain to; "
            "empty uses the system's store.", path=True, optional=True),
    Setting("update", "max_bundle_size", int, 4 * 1024 * MIB,
            "Largest release bundle downloaded, in bytes (the signed length bounds it too).",
            1 * MIB, 64 * 1024 * MIB),
    Setting("update", "connect_timeout", int, 30,
            "Seconds to connect to the update server, and the longest silence while "
            "reading from it.", 1, 600),
    Setting("update", "download_timeout", int, 3600,
            "Seconds one download (metadata or bundle) may take in all before it is cut "
            "off (a mirror that trickles data forever).", 10, 86_400),
    Setting("update", "maintenance_window", str, "03:00-05:00",
            "When an installed update may reboot the appliance: `now`, or `HH:MM-HH:MM` in "
            "local time (may span midnight). Outside it the reboot waits for its start.",
            validate=_update_window, accepted_text="'now' or HH:MM-HH:MM"),
    Setting("update", "boot_attempts", int, 3,
            "Boots a newly installed slot gets to pass its health check (systemd-boot boot "
            "counting) before the loader falls back to the previous slot.", 1, 9),
    Setting("update", "state_dir", str, "",
            "Where the updater keeps state.json, the verified TUF metadata and downloads. "
            "The updater runs as root, so on the appliance this is root's "
            "`/var/lib/mailstead/.system/update`, outside the `mailstead` user's data "
            "directory; empty means `<data_dir>/update` (dev mode).",
            path=True, optional=True),
    Setting("update", "health_wait", int, 120,
            "Seconds the health check after an update waits for the engine and console to "
            "answer before it judges the new slot bad.", 10, 3600),
)

SETTINGS_BY_NAME: dict[str, Setting] = {s.name: s for s in SCHEMA}
# Settings that were removed: old name -> what replaced it (named in the error).
RETIRED: dict[str, str] = {
    "monitor.hooks_dir": "hooks.image_dir and hooks.admin_dir (`<stage>.d/` folders)",
    "monitor.hook_timeout": "hooks.timeout"}
SECTIONS: tuple[str, ...] = tuple(dict.fromkeys(s.section for s in SCHEMA))

# -- what an admin edits in the console (stored in mailstead.db) --------------------------
# Editable: the policy of a mail server that its admin expects to tune in a UI and can judge
# from the help text: sizes and counts (limits, pop3, imap), how strict the inbound checks
# are (antivirus, checks, dnsbl, greylist, client_limits, spam), the login guard's lockout
# policy, submission rate limits, queue retries, reports, the DNS page's facts, the
# console's own session and network options, the log level, hostname and time zone.
_CONSOLE_SECTIONS = frozenset({
    "console", "limits", "pop3", "imap", "submission", "queue", "antivirus", "checks",
    "dnsbl", "greylist", "client_limits", "spam", "reports", "dns", "auth"})
_CONSOLE_KEYS = frozenset({"server.hostname", "server.timezone", "log.level",
                           "outbound.mta_sts",
                           # the wizard's TLS step turns ACME on (appliance/tls/acme_client)
                           "tls.acme_enabled", "tls.acme_directory", "tls.acme_email",
                           # where and when updates come from: every release is still
                           # verified against the root of trust in the image (a wrong URL
                           # can stop updates, never install one), so the admin sets them
                           "update.url", "update.channel", "update.maintenance_window",
                           # SSH for the admin: off until switched on, keys only, from the
                           # LAN only (the firewall's lan_ports)
                           "ssh.enabled", "ssh.authorized_keys"})
# Boot-level (mailstead.toml only), besides every path and the sections not named above:
# what must be known before mailstead.db can be read or binds the box to its machine
# (paths, listen, tls files, dev_mode, log file, engine processes); capacity tuned to the
# hardware, where a wrong value exhausts memory or stalls every login (argon2 costs,
# verification slots); where the image's own services are (the clamd socket; the resolver
# and CA file under outbound, whose RFC 5321 4.5.3.2 timeouts are not a site's choice
# either); and monitor.*, which mailstead-monitor reads from mailstead.toml only.
_BOOT_ONLY = frozenset({
    "auth.argon2_time_cost", "auth.argon2_memory_kib", "auth.argon2_parallelism",
    "auth.max_concurrent_verifications", "auth.max_pending_verifications",
    "antivirus.clamd_socket"})


def _console_editable(setting: Setting) -> bool:
    if setting.path or setting.name in _BOOT_ONLY:
        return False
    return setting.section in _CONSOLE_SECTIONS or setting.name in _CONSOLE_KEYS


@dataclass(frozen=True)
class Settings:
    """Effective settings: values by `section.key`, plus where relative paths start."""

    values: Mapping[str, Any]
    base_dir: Path = field(default_factory=Path.cwd)
    source: Path | None = None
    # where each value came from: "file", "database" or "environment" (absent: "default")
    origins: Mapping[str, str] = field(default_factory=dict)

    def origin(self, name: str) -> str:
        return self.origins.get(name, "default")

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def get_int(self, name: str) -> int:
        value = self.values[name]
        assert isinstance(value, int)
        return value

    def get_str(self, name: str) -> str:
        value = self.values[name]
        assert isinstance(value, str)
        return value

    def get_bool(self, name: str) -> bool:
        value = self.values[name]
        assert isinstance(value, bool)
        return value

    @property
    def data_dir(self) -> Path:
        return (self.base_dir / self.get_str("paths.data_dir")).resolve()

    def data_path(self, name: str) -> Path:
        """A path setting resolved against data_dir (absolute values stay as they are)."""
        return self.data_dir / self.get_str(name)

    def redacted(self) -> dict[str, Any]:
        """Values with secrets masked, for display."""
        return {
            n: ("********" if SETTINGS_BY_NAME[n].secret and v else v)
            for n, v in self.values.items()
        }


def check(setting: Setting, value: Any) -> Any:
    """Return `value` if it is a valid value of `setting`.

    Raises:
        SettingsError: naming the setting, the value and what is accepted.
    """
    return _check(setting, value)


def parse_text(setting: Setting, text: str) -> Any:
    """A value typed as text (a form, the CLI, a mailstead.db row) in the setting's type,
    checked. Booleans are `true`/`false` (also 1/0, yes/no, on/off), integers decimal.

    Raises:
        SettingsError: naming the setting, the text and what is accepted.
    """
    return _check(setting, _parse_env(setting, text))


def _check(setting: Setting, value: Any) -> Any:
    """Return `value` if it fits `setting`, else raise a SettingsError naming both."""
    if setting.kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise _error(setting, value)
    if setting.kind is not int and not isinstance(value, setting.kind):
        raise _error(setting, value)
    if setting.kind is int and not (setting.minimum or 0) <= value <= (setting.maximum or 0):
        raise _error(setting, value)
    if setting.kind is str and ((not value and not setting.optional) or "\x00" in value):
        raise _error(setting, value)
    if setting.choices and value not in setting.choices:
        raise _error(setting, value)
    if setting.validate is not None:
        try:
            setting.validate(value)
        except ValueError as exc:
            raise _error(setting, value) from exc
    return value


def _error(setting: Setting, value: Any) -> SettingsError:
    return SettingsError(f"setting {setting.name} = {value!r} is invalid: expected "
                         f"{setting.accepted()}")


def _parse_env(setting: Setting, raw: str) -> Any:
    """Turn an environment string into the setting's type."""
    if setting.kind is bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        return raw
    if setting.kind is int:
        try:
            return int(raw.strip())
        except ValueError:
            return raw
    return raw


def _flatten_toml(document: Mapping[str, Any], origin: str) -> dict[str, Any]:
    """`{section: {key: value}}` to `{"section.key": value}`, refusing unknown names."""
    flat: dict[str, Any] = {}
    for section, table in document.items():
        if not isinstance(table, dict):
            raise SettingsError(f"{origin}: {section} = {table!r} is outside any section: "
                                "expected a key under one of " + ", ".join(
                                    f"[{name}]" for name in SECTIONS))
        if section not in SECTIONS:
            raise SettingsError(f"{origin}: unknown section [{section}]: expected one of "
                                + ", ".join(SECTIONS))
        for key, value in table.items():
            name = f"{section}.{key}"
            if name in RETIRED:
                raise SettingsError(f"{origin}: setting {name} was replaced by "
                                    f"{RETIRED[name]}")
            if name not in SETTINGS_BY_NAME:
                raise SettingsError(f"{origin}: unknown setting {name}: known keys in "
                                    f"[{section}] are " + ", ".join(
                                        s.key for s in SCHEMA if s.section == section))
            flat[name] = value
    return flat


def _env_values(environ: Mapping[str, str]) -> dict[str, Any]:
    """Pick `MAILSTEAD_SECTION__KEY` variables, refusing unknown ones."""
    found: dict[str, Any] = {}
    for variable, raw in environ.items():
        if not variable.startswith(ENV_PREFIX) or "__" not in variable:
            continue
        section, _, key = variable[len(ENV_PREFIX):].lower().partition("__")
        setting = SETTINGS_BY_NAME.get(f"{section}.{key}")
        if setting is None:
            raise SettingsError(f"environment variable {variable} names no setting: "
                                f"expected {ENV_PREFIX}SECTION__KEY for a known key")
        found[setting.name] = _parse_env(setting, raw)
    return found


def load_settings(
    config_file: Path | None,
    environ: Mapping[str, str] | None = None,
    reader: Callable[[Path], bytes] = Path.read_bytes,
) -> Settings:
    """Build the effective settings: defaults, then the TOML file, then the environment.

    Raises:
        SettingsError: with one line naming the key, the value and what is accepted.
    """
    values: dict[str, Any] = {s.name: s.default for s in SCHEMA}
    origins: dict[str, str] = {}
    base_dir = Path.cwd()
    if config_file is not None:
        try:
            document = tomllib.loads(reader(config_file).decode("utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"cannot read config file {config_file}: {exc}") from exc
        from_file = _flatten_toml(document, str(config_file))
        values.update(from_file)
        origins.update(dict.fromkeys(from_file, "file"))
        base_dir = config_file.resolve().parent
    from_env = _env_values(os.environ if environ is None else environ)
    values.update(from_env)
    origins.update(dict.fromkeys(from_env, "environment"))
    for name, value in values.items():
        _check(SETTINGS_BY_NAME[name], value)
    return Settings(values=values, base_dir=base_dir, source=config_file, origins=origins)


def render_toml(values: Mapping[str, Any], notes: Mapping[str, str] | None = None) -> str:
    """Write settings as TOML (only simple scalar types occur in the schema), each value
    followed by its note, if any, as a comment (`config show` says where values came from)."""
    lines: list[str] = []
    for section in SECTIONS:
        keys = [(n, v) for n, v in values.items() if n.split(".")[0] == section]
        if not keys:
            continue
        lines.append(f"[{section}]")
        for name, value in keys:
            note = (notes or {}).get(name)
            comment = f"  # {note}" if note else ""
            lines.append(f"{name.split('.', 1)[1]} = {_toml_scalar(value)}{comment}")
        lines.append("")
    return "\n".join(lines)


def _toml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return '"' + "".join(_toml_char(c) for c in str(value)) + '"'


def _toml_char(char: str) -> str:
    """One character of a TOML basic string: control characters (but tab) must be escaped."""
    if char in '\\"':
        return "\\" + char
    if (ord(char) < 32 and char != "\t") or ord(char) == 127:
        return f"\\u{ord(char):04X}"
    return char


def reference_table() -> str:
    """The settings reference as a Markdown table (for the README); "set in" says whether
    the console (and `mailstead config set`) may change it, or only mailstead.toml."""
    rows = ["| setting | default | accepted | set in | what it does |", "|---|---|---|---|---|"]
    for s in SCHEMA:
        where = "console or file" if s.editable else "file"
        rows.append(f"| `{s.name}` | `{_toml_scalar(s.default)}` | {s.accepted()} | {where} "
                    f"| {s.help} |")
    return "\n".join(rows)
