"""Vacation replies (RFC 3834): after a local mailbox got a message, answer its sender once
per `REPLY_INTERVAL_DAYS` with the text the user set in the console.

`should_reply` and `build_reply` are pure; `VacationResponder.offer` is the Deliverer's
`on_local_delivery` hook: it never blocks the event loop, never raises into delivery, and
queues each reply through the same `Deliverer.accept` the DSNs use, with the null
reverse-path, so a reply to a reply bounces nowhere.
"""

from __future__ import annotations

import asyncio
import datetime
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, make_msgid
from zoneinfo import ZoneInfo

from appliance.core import log
from appliance.core.addresses import AddressError, parse_address
from appliance.pipeline.deliver import Deliverer
from appliance.pipeline.route import Accepted
from appliance.settings import Settings
from appliance.smtp.submission_policy import parse_header, split_header
from appliance.storage.account_settings import AccountSettings, Vacation
from appliance.storage.db import open_database
from appliance.storage.interfaces import Directory, RecipientStatus

MAX_HEADER = 256 * 1024      # header bytes read from a message (more is not ours to parse)
MAX_REFERENCES = 20          # message ids carried into References
ACTIVE_TTL = 10.0            # seconds the set of accounts with a vacation on is trusted
# RFC 5230 4.6 (Sieve vacation): no replies to these senders' local parts.
_SYSTEM_SENDERS = re.compile(r"^(mailer-daemon|listserv|majordomo|owner-.*|.*-request)$")
_BULK_PRECEDENCE = frozenset({"bulk", "list", "junk"})
# RFC 2369 and RFC 2919: a message carrying any of these came through a mailing list.
_LIST_FIELDS = ("list-id", "list-unsubscribe", "list-post", "list-help", "list-owner")
_RECIPIENT_FIELDS = ("to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc")
_MSG_ID = re.compile(r"<[^<>\s]{1,250}>")


def envelope_sender(message: bytes) -> str | None:
    """The reverse-path in the `Return-Path` line the MX put on top (RFC 5321 4.4), "" for
    the null sender, or None when the message does not start with one."""
    first = message[:600].split(b"\n", 1)[0].rstrip(b"\r")
    found = re.fullmatch(rb"Return-Path:\s*<([^<>]*)>\s*", first, re.IGNORECASE)
    return found.group(1).decode("utf-8", "surrogateescape") if found else None


def should_reply(sender: str, header: EmailMessage, addressed_to: Sequence[str],
                 account: str, folder: str) -> str | None:
    """Why no reply may go (a short reason for the log), or None when one may.

    Args:
        sender: the envelope sender ("" for the null reverse-path).
        header: the message's header section.
        addressed_to: the account's own address and the envelope recipients that led to it.
        account: the account whose vacation it is.
        folder: where the message was filed ("Junk": judged spam).
    """
    # RFC 3834 section 2: never to the null reverse-path (nor to what cannot be an address).
    try:
        address = parse_address(sender) if sender else None
    except AddressError:
        address = None
    if address is None:
        return "no sender address"
    if address.key == parse_address(account).key:
        return "own message"
    if _SYSTEM_SENDERS.match(address.local_key):
        return "system or list sender"
    if folder == "Junk":
        return "spam"
    return _header_refusal(header, addressed_to)


def _header_refusal(header: EmailMessage, addressed_to: Sequence[str]) -> str | None:
    # RFC 3834 section 2: no response to anything marked Auto-Submitted other than "no".
    auto = str(header.get("Auto-Submitted", "no")).split(";", 1)[0].strip().lower()
    if auto != "no":
        return "auto-submitted"
    if str(header.get("Precedence", "")).strip().lower() in _BULK_PRECEDENCE:
        return "bulk"
    if any(name in header for name in _LIST_FIELDS):
        return "mailing list"
    # RFC 3834 section 2: a personal responder answers only when the recipient's address
    # is in a recipient field (not for Bcc'd copies from lists and aliases it cannot see).
    wanted = {_key(a) for a in addressed_to} - {None}
    # The raw values: the structured parse of `policy.default` raises IndexError on some
    # malformed address lists (CPython's _header_value_parser, e.g. "To: 0@").
    fields = {f.lower() for f in _RECIPIENT_FIELDS}
    named = {_key(a) for name, value in header.raw_items() if name.lower() in fields
             for _, a in getaddresses([str(value)])}
    if not wanted & named:
        return "not addressed by name"
    return None


def _key(text: str) -> str | None:
    try:
        return parse_address(text).key
    except AddressError:
        return None


def build_reply(account: str, sender: str, header: EmailMessage, vacation: Vacation,
                hostname: str, now: datetime.datetime) -> bytes:
    """The reply message (CRLF line ends) from `account` to `sender` (RFC 3834 section 3)."""
    reply = EmailMessage()
    reply["From"] = str(parse_address(account))
    reply["To"] = sender
    reply["Subject"] = vacation.subject
    reply["Date"] = format_datetime(now)
    reply["Message-ID"] = make_msgid(domain=hostname)
    original = _MSG_ID.search(str(header.get("Message-ID", "")))
    if original is not None:     # RFC 3834 section 3: thread the reply to the message
        reply["In-Reply-To"] = original.group(0)
        earlier = _MSG_ID.findall(str(header.get("References", "")))[-MAX_REFERENCES + 1:]
        reply["References"] = " ".join([*earlier, original.group(0)])
    reply["Auto-Submitted"] = "auto-replied"          # RFC 3834 section 5
    # Quoted-printable: 7-bit, so the reply needs no 8BITMIME from the next hop.
    reply.set_content(vacation.body + "\n", charset="utf-8", cte="quoted-printable")
    return reply.as_bytes(policy=reply.policy.clone(linesep="\r\n", max_line_length=998))


class VacationResponder:
    """Sends the vacation replies of the accounts that get mail in this process."""

    def __init__(self, deliverer: Deliverer, directory: Directory, executor: Executor,
                 open_settings: Callable[[], AccountSettings], hostname: str,
                 clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(
                     datetime.UTC)) -> None:
        self._deliverer = deliverer
        self._directory = directory
        self._executor = executor
        self._open_settings = open_settings
        self._settings: AccountSettings | None = None
        self._lock = threading.Lock()       # one connection, used from executor threads
        self._hostname = hostname
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()
        self._active: frozenset[str] = frozenset()
        self._active_at = -ACTIVE_TTL

    def offer(self, queue_id: str, message: bytes, recipients: Sequence[Accepted],
              folder: str) -> None:
        """The Deliverer's `on_local_delivery`: start the replies; never raises or waits."""
        try:
            sender = envelope_sender(message)
            accounts = _accounts(recipients)
            if not sender or not accounts:
                return
            if time.monotonic() - self._active_at < ACTIVE_TTL and \
                    not any(_key(a) in self._active for a in accounts):
                return           # the common case: nobody here is away (no thread, no query)
            task = asyncio.get_running_loop().create_task(
                self._respond(queue_id, message, sender, accounts, folder))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        except Exception as exc:      # the mail is delivered: this must not become a 451
            log.error("vacation.failed", exc, queue_id=queue_id)

    async def _respond(self, queue_id: str, message: bytes, sender: str,
                       accounts: dict[str, list[str]], folder: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            header = parse_header(split_header(message[:MAX_HEADER])[0])
            for account, addressed in accounts.items():
                reply = await loop.run_in_executor(self._executor, self._decide, account,
                                                   addressed, sender, header, folder)
                if reply is not None:
                    await self._send(queue_id, account, sender, reply)
        except Exception as exc:
            log.error("vacation.failed", exc, queue_id=queue_id)

    def _decide(self, account: str, addressed: list[str], sender: str,
                header: EmailMessage, folder: str) -> bytes | None:
        """In a worker thread: the reply to send, or None (claimed once per sender)."""
        with self._lock:
            if self._settings is None:
                self._settings = self._open_settings()
            if time.monotonic() - self._active_at >= ACTIVE_TTL:
                self._active = self._settings.accounts_with_vacation()
                self._active_at = time.monotonic()
            if _key(account) not in self._active:
                return None
            return self._decide_locked(self._settings, account, addressed, sender, header,
                                       folder)

    def _decide_locked(self, settings: AccountSettings, account: str, addressed: list[str],
                       sender: str, header: EmailMessage, folder: str) -> bytes | None:
        vacation = settings.vacation(account)
        now = self._clock()
        if not vacation.active_on(now.date()):
            return None
        reason = should_reply(sender, header, [account, *addressed], account, folder)
        if reason is not None:
            log.event("vacation.skipped", account=account, reason=reason)
            return None
        try:
            if not settings.claim_reply(account, sender):
                log.event("vacation.skipped", account=account, reason="answered recently")
                return None
        except sqlite3.Error as exc:
            log.error("vacation.claim_failed", exc, account=account)
            return None
        return build_reply(account, sender, header, vacation, self._hostname, now)

    async def _send(self, queue_id: str, account: str, sender: str, reply: bytes) -> None:
        resolution = self._directory.resolve(parse_address(sender))
        if resolution.status in (RecipientStatus.UNKNOWN, RecipientStatus.DISABLED):
            return
        target = Accepted(sender, resolution, ("NEVER",))
        if resolution.status is RecipientStatus.DELIVER:      # a local sender: final delivery
            reply = b"Return-Path: <>\r\n" + reply
        # RFC 3834 section 3: the reply goes out with the null reverse-path.
        reply_id = await self._deliverer.accept(reply, "", [target], enforce_floor=False,
                                                smtputf8=not sender.isascii(),
                                                body_8bit=not reply.isascii())
        log.event("vacation.sent", queue_id=reply_id, about=queue_id, account=account)


def _accounts(recipients: Sequence[Accepted]) -> dict[str, list[str]]:
    """Each local mailbox's address -> the envelope recipients that reached it."""
    found: dict[str, list[str]] = {}
    for recipient in recipients:
        for mailbox in recipient.resolution.mailboxes:
            found.setdefault(mailbox.address, []).append(recipient.address)
    return found


def zone_clock(zone: str) -> Callable[[], datetime.datetime]:
    """Now in the box's time zone (`server.timezone`, set in the setup wizard): a vacation's
    first and last day are the user's calendar days, not UTC's."""
    tzinfo = ZoneInfo(zone)
    return lambda: datetime.datetime.now(tzinfo)


def attach_vacation(settings: Settings, deliverer: Deliverer, executor: Executor,
                    directory: Directory) -> Deliverer:
    """`deliverer` that also sends vacation replies (after any `on_local_delivery` it had).
    `directory` is used in the event loop only."""
    data_dir = settings.data_dir
    responder = VacationResponder(deliverer, directory, executor,
                                  lambda: AccountSettings(open_database(data_dir)),
                                  settings.get_str("server.hostname"),
                                  zone_clock(settings.get_str("server.timezone")))
    previous = deliverer.on_local_delivery

    def both(queue_id: str, message: bytes, recipients: Sequence[Accepted],
             folder: str) -> None:
        if previous is not None:
            previous(queue_id, message, recipients, folder)
        responder.offer(queue_id, message, recipients, folder)

    deliverer.on_local_delivery = both
    return deliverer
