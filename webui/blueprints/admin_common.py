"""What every administration page shares: the admin guard, bounded form fields, paging,
the strong-password rule for accounts, and display filters (times, sizes).

Form errors are `FormError`s whose text names the field; views answer them with the page
again (status 400) so the admin sees what to mend.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from flask import Blueprint, request
from flask.typing import ResponseReturnValue

from appliance.auth.passwords import WeakPasswordError, check_password_rules
from appliance.core.addresses import Address
from webui.access import admin_required

T = TypeVar("T")

PER_PAGE = 100               # rows per page of the account and alias lists
MAX_SEARCH_LENGTH = 254      # a filter box: at most one address long (RFC 5321 4.5.3.1.3)
MIN_DISTINCT_CHARACTERS = 6
# Passwords that pass the length rule yet are the first ones any guesser tries.
COMMON_PASSWORDS = frozenset({
    "1234567890", "12345678910", "0123456789", "1111111111", "password12", "password123",
    "password1234", "passwort123", "qwertyuiop", "qwertzuiop", "azertyuiop", "1q2w3e4r5t",
    "iloveyou12", "letmein123", "welcome123", "changeme123", "administrator", "mailstead123",
})


class FormError(ValueError):
    """A form field that is missing, too long or malformed; the text says which and why."""


def guard(blueprint: Blueprint) -> None:
    """Make every view of `blueprint` admin-only (403 for a user, login page for nobody)."""

    @admin_required
    def admin_only() -> ResponseReturnValue | None:
        return None

    blueprint.before_request(admin_only)


def form_text(name: str, label: str, max_length: int, required: bool = True) -> str:
    """The form field `name` stripped; FormError if too long, missing, or with control chars."""
    value = request.form.get(name, "")
    if len(value) > max_length:
        raise FormError(f"{label} is too long: at most {max_length} characters")
    value = value.strip()
    if required and not value:
        raise FormError(f"{label} is required")
    if any(ord(c) < 32 or ord(c) == 127 for c in value if c not in "\r\n\t"):
        raise FormError(f"{label} contains control characters")
    return value


def form_int(name: str, label: str, minimum: int, maximum: int) -> int:
    """The form field `name` as an integer within [minimum, maximum]."""
    text = form_text(name, label, 20)
    try:
        value = int(text)
    except ValueError:
        raise FormError(f"{label} must be a whole number") from None
    if not minimum <= value <= maximum:
        raise FormError(f"{label} must be from {minimum} to {maximum}")
    return value


def search_arg(name: str = "q") -> str:
    """A filter from the query string, cut to `MAX_SEARCH_LENGTH` characters."""
    return request.args.get(name, "").strip()[:MAX_SEARCH_LENGTH]


def check_strong_password(password: str, again: str, address: Address) -> None:
    """The account password rule: the basic rules (length 10 to 1024, no control
    characters), then none that repeats few characters, contains the address's local part
    or is a well-known password (NIST SP 800-63B 5.1.1.2: length and a blocklist, no
    composition rules).

    Raises:
        FormError: the two entries differ or the password is weak (the text says why).
    """
    if password != again:
        raise FormError("the two passwords differ")
    try:
        check_password_rules(password)
    except WeakPasswordError as exc:
        raise FormError(str(exc)) from None
    folded = password.casefold()
    if len(set(folded)) < MIN_DISTINCT_CHARACTERS:
        raise FormError(f"password too simple: use at least {MIN_DISTINCT_CHARACTERS} "
                        "different characters")
    if len(address.local) >= 3 and address.local_key in folded:
        raise FormError("password must not contain the account's name")
    if folded in COMMON_PASSWORDS:
        raise FormError("password is one of the most common ones: choose another")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list: its rows, its number (from 1), how many pages and rows in all."""

    items: Sequence[T]
    number: int
    pages: int
    total: int


def paginate(rows: Sequence[T], per_page: int = PER_PAGE) -> Page[T]:
    """The page of `rows` that the `page` query argument asks for (clamped to what exists)."""
    return paged(len(rows), lambda offset, limit: rows[offset:offset + limit], per_page)


def paged(total: int, fetch: Callable[[int, int], Sequence[T]],
          per_page: int = PER_PAGE) -> Page[T]:
    """The page the `page` query argument asks for (clamped to what exists) of a list of
    `total` rows, fetching only its own rows with `fetch(offset, limit)` (SQL paging)."""
    pages = max(1, math.ceil(total / per_page))
    try:
        number = int(request.args.get("page", "1")[:12])
    except ValueError:
        number = 1
    number = min(max(number, 1), pages)
    start = (number - 1) * per_page
    return Page(fetch(start, per_page) if total else [], number, pages, total)


def when(timestamp: float | None) -> str:
    """A POSIX time as `YYYY-MM-DD HH:MM:SS UTC`, or `-`."""
    if timestamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


def size(count: int | None) -> str:
    """A byte count for people: `0 B`, `12.3 KiB`, `4.0 GiB`."""
    if count is None:
        return "-"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
