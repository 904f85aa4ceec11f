"""Requests from the console to the root updater: the console (user `mailstead`) writes one
small JSON file per request into `<data_dir>/update-requests/`; the root unit
mailstead-update-request.path starts `mailstead update requests`, which takes every file
(read with a size bound, never following a link, removed whatever it held) and acts on the
valid ones. Also the admin's rollback, the one action that is not an install or a check.

Nothing from a request file is used as a path or an argument: it names one of `ACTIONS`,
and the rest (who asked, when) is only logged and shown.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from appliance.core import fsio, log
from appliance.update import slots, state
from appliance.update.bootenv import BootEnv

REQUEST_DIR = "update-requests"
ACTIONS: tuple[str, ...] = ("check", "install", "reboot", "rollback")
SUFFIX = ".json"
MAX_REQUEST = 4096          # bytes of one request file; a longer one is refused unread
MAX_BATCH = 32              # files taken per run; more wait for the next start of the unit
MAX_BY = 254                # characters of the requester's name (an address at most)
_BY = re.compile(rf"[A-Za-z0-9._@+-]{{1,{MAX_BY}}}")     # no "/", no spaces, no controls
_KEYS = frozenset({"action", "requested_at", "by"})
ADMIN_ROLLBACK = "rolled back by the admin"


class BadRequestError(ValueError):
    """A request file that is not one of ours; the text says why (never its content)."""


@dataclass(frozen=True)
class Request:
    """One request: what to do, when it was asked for, and by which console admin."""

    action: str
    requested_at: float
    by: str


@dataclass(frozen=True)
class Taken:
    """One file taken from the request directory: its request, or why it was refused."""

    name: str
    request: Request | None
    refused: str = ""


def request_dir(data_dir: Path) -> Path:
    return data_dir / REQUEST_DIR


# -- the format (pure) -----------------------------------------------------------------------

def parse(data: bytes) -> Request:
    """A request from a file's bytes: a JSON object of exactly `action` (one of ACTIONS),
    `requested_at` (POSIX time) and `by` (a user name or address).

    Raises:
        BadRequestError: too long, not UTF-8 JSON, other keys, or a value out of bounds.
    """
    if len(data) > MAX_REQUEST:
        raise BadRequestError(f"longer than {MAX_REQUEST} bytes")
    try:
        found = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BadRequestError("not UTF-8 JSON") from None
    if not isinstance(found, dict) or set(found) != _KEYS:
        raise BadRequestError(f"not an object of exactly the keys {sorted(_KEYS)}")
    action, at, by = found["action"], found["requested_at"], found["by"]
    if not isinstance(action, str) or action not in ACTIONS:
        raise BadRequestError(f"action is not one of {', '.join(ACTIONS)}")
    if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at) \
            or at < 0:
        raise BadRequestError("requested_at is not a time")
    if not isinstance(by, str) or not _BY.fullmatch(by):
        raise BadRequestError("by is not a user name")
    return Request(action, float(at), by)


def encode(request: Request) -> bytes:
    return json.dumps({"action": request.action, "requested_at": request.requested_at,
                       "by": request.by}, sort_keys=True).encode() + b"\n"


# -- the console's side ----------------------------------------------------------------------

def submit(folder: Path, action: str, by: str, now: float | None = None) -> Path:
    """Write one request file (atomically: the unit never sees half a file; the temp name
    ends in .tmp, outside the path unit's `*.json`).

    Raises:
        BadRequestError: an unknown action or a requester name the root side would refuse.
    """
    request = Request(action, time.time() if now is None else now, by)
    parse(encode(request))                 # what the root side would refuse is not written
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / f"{time.time_ns()}-{secrets.token_hex(4)}{SUFFIX}"
    fsio.atomic_write(path, encode(request), 0o600)
    return path


def queued(folder: Path) -> list[Request]:
    """The valid requests waiting in `folder`, oldest first (for the page)."""
    found = []
    for name in _names(folder):
        try:
            found.append(parse(_read(os.open(folder / name, _OPEN))))
        except (OSError, BadRequestError):
            continue
    return sorted(found, key=lambda r: r.requested_at)


def _names(folder: Path) -> list[str]:
    try:
        return sorted(n for n in os.listdir(folder) if n.endswith(SUFFIX))[:MAX_BATCH]
    except OSError:
        return []


# -- the root side ---------------------------------------------------------------------------

_OPEN = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC     # a FIFO never blocks


def take(folder: Path) -> list[Taken]:
    """Read and remove up to MAX_BATCH `*.json` entries of `folder`, oldest name first.

    The directory belongs to the console's user, so root trusts nothing in it: the
    directory itself is opened without following a link and every entry through it
    (openat, O_NOFOLLOW); an entry that is not a regular file with one link, or is longer
    than MAX_REQUEST, is refused unread. Every entry is removed (a directory is renamed out
    of the unit's glob) so the path unit does not start again for it.
    """
    try:
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return []
    except OSError as exc:
        log.event("update.requests_unreadable", folder=str(folder), error=exc.strerror)
        return []
    try:
        names = sorted(n for n in os.listdir(dir_fd) if n.endswith(SUFFIX))[:MAX_BATCH]
        return [_take_one(dir_fd, name) for name in names]
    finally:
        os.close(dir_fd)


def _take_one(dir_fd: int, name: str) -> Taken:
    try:
        request = parse(_read(os.open(name, _OPEN, dir_fd=dir_fd)))
        taken = Taken(name, request)
    except OSError as exc:
        taken = Taken(name, None, f"cannot open: {exc.strerror or exc}")
    except BadRequestError as exc:
        taken = Taken(name, None, str(exc))
    _remove(dir_fd, name)
    if taken.request is None:
        log.event("update.request_refused", file=name[:80], reason=taken.refused)
    else:
        log.event("update.request", file=name[:80], action=taken.request.action,
                  by=taken.request.by, requested_at=taken.request.requested_at)
    return taken


def _read(fd: int) -> bytes:
    """At most MAX_REQUEST + 1 bytes of a regular file with one link (then closed)."""
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise BadRequestError("not a regular file")
        if info.st_nlink != 1:
            raise BadRequestError("a hard link to another file")
        if info.st_size > MAX_REQUEST:
            raise BadRequestError(f"longer than {MAX_REQUEST} bytes")
        data = os.read(fd, MAX_REQUEST + 1)
    finally:
        os.close(fd)
    return data


def _remove(dir_fd: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)          # a symlink itself, never its target
    except IsADirectoryError:
        os.rename(name, f"{name}.refused", src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except FileNotFoundError:
        pass


# -- the admin's rollback ----------------------------------------------------------------------

def rollback_refusal(booted: str | None, pending: slots.Pending | None,
                     booted_entries: list[str], other_entries: list[str]) -> str:
    """Why the previous slot cannot be booted now, or "" when it can (pure; the console
    asks it with state.json's EspView, the root side with the ESP itself).

    It can when this boot's slot is known, no install is pending (the commit step decides
    those), this slot has its one entry to mark bad, and the other slot has one entry that
    is not marked bad (an install removes a slot's entries before it writes the slot, so an
    entry means a whole system).
    """
    if booted is None:
        return "the booted slot is unknown (no mailstead.slot= on the kernel command line)"
    if pending is not None:
        return (f"version {pending.version} is installed and not committed yet: its reboot "
                "and health check decide which slot stays")
    if len(booted_entries) != 1:
        return f"slot {booted} has {len(booted_entries)} loader entries, not one"
    names = [slots.parse_entry_name(name) for name in other_entries]
    if len(names) != 1 or names[0] is None:
        return f"slot {slots.other(booted)} has no bootable system (no loader entry)"
    if names[0].bad:
        return f"slot {slots.other(booted)} is marked bad (its system failed before)"
    return ""


def roll_back(esp: Path, update_dir: Path, booted: str | None, running_version: str) -> str:
    """Mark this boot's loader entry bad so that the next boot takes the other slot (the
    loader sorts entries with no tries left last), record it in the history, and keep the
    timer from installing this version again (failed_versions). The caller reboots.

    Returns:
        "" when done, else why not (nothing changed then).
    """
    boot, current = BootEnv(esp), state.load(update_dir)
    if booted is None:
        return rollback_refusal(None, current.pending, [], [])
    other = slots.other(booted)
    why = rollback_refusal(booted, current.pending,
                           [p.name for p, _ in boot.entries(booted)],
                           [p.name for p, _ in boot.entries(other)])
    if why:
        return why
    boot.mark_bad(booted)
    boot.set_default_pattern()       # an image's exact `default root-a.conf` would still match
    current.failed_versions = sorted({*current.failed_versions, running_version})
    current.record(state.Outcome(running_version, "rolled back",
                                 f"{ADMIN_ROLLBACK}: slot {booted} marked bad, booting slot "
                                 f"{other}", running_version))
    current.esp = esp_view(esp)           # saved before the reboot begins
    state.save(update_dir, current)
    log.event("update.admin_rollback", version=running_version, slot=booted, to_slot=other)
    return ""


def esp_view(esp: Path) -> state.EspView:
    """The loader entries of each slot on the ESP now (for state.json's `esp`)."""
    boot = BootEnv(esp)
    return state.EspView({slot: [p.name for p, _ in boot.entries(slot)]
                          for slot in slots.SLOTS})
