"""Small wire formats shared by the IMAP handlers: flag lists, INTERNALDATE, mailbox names."""

from __future__ import annotations

import time
from collections.abc import Iterable

from appliance.imap import mutf7, wire

SYSTEM_ORDER = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
           "Dec")


_RENDERED: dict[tuple[frozenset[str], bool], str] = {}


def render_flags(flags: frozenset[str], recent: bool = False) -> str:
    """The inside of a flag list: system flags first in a fixed order, then keywords.

    A mailbox has few distinct flag sets, so each is rendered once (bounded memo).
    """
    key = (flags, recent)
    found = _RENDERED.get(key)
    if found is None:
        if len(_RENDERED) > 4096:
            _RENDERED.clear()
        found = _RENDERED[key] = _render_flags(flags, recent)
    return found


def _render_flags(flags: Iterable[str], recent: bool) -> str:
    present = set(flags)
    ordered = [f for f in SYSTEM_ORDER if f in present]
    ordered += sorted(f for f in present if not f.startswith("\\"))
    ordered += sorted(f for f in present if f.startswith("\\") and f not in SYSTEM_ORDER)
    if recent:
        ordered.append("\\Recent")
    return " ".join(ordered)


def internal_date(timestamp: float) -> str:
    """date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE
    (RFC 9051 9), in UTC."""
    t = time.gmtime(timestamp)
    return (f'"{t.tm_mday:2d}-{_MONTHS[t.tm_mon - 1]}-{t.tm_year:04d} '
            f'{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"')


def mailbox_name(name: str, utf8: bool) -> bytes:
    """A mailbox name on the wire: UTF-8 once enabled (RFC 9051 5.1, RFC 6855), else modified
    UTF-7 (RFC 3501 5.1.3); an atom when it can be, else a string."""
    if utf8:
        return wire.astring(name, utf8=True)
    return wire.astring(mutf7.encode(name))
