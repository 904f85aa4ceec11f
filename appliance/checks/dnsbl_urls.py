"""The domains of the URLs in a message's text (pure), for URI blocklists (RFC 5782 2.2
domain lists such as Spamhaus DBL and SURBL).

Bounded on purpose: only the first `max_bytes` of the message are parsed, only text/* parts
are decoded (quoted-printable and base64, so encoded links are found too), and at most
`max_domains` distinct registered domains are returned, in the order they first appear.
Hosts are reduced to their registered domain with the public suffix list (what SURBL
requires and DBL lists), and IP-literal hosts are skipped (they are not domains).
"""

from __future__ import annotations

import email
import email.message
import email.policy
import functools
import ipaddress
import re
from collections.abc import Iterator

import idna
from publicsuffixlist import PublicSuffixList

# RFC 3986 3.2.2: a host after "scheme://" and optional userinfo; plus bare "www." links
# that mail clients turn into links. Percent-encoding and HTML entities in hosts are rare
# tricks that a DNSBL would not list anyway.
_URL = re.compile(
    r"(?:\b(?:https?|ftp)://(?:[^\s/?#@<>\"']{0,64}@)?|\bwww\.)"
    r"(?P<host>[^\s/?#:<>\"'\[\]()\\,;]{1,253})",
    re.IGNORECASE)
_WWW = re.compile(r"\bwww\.", re.IGNORECASE)


@functools.cache
def _suffix_list() -> PublicSuffixList:
    """The public suffix list shipped with `publicsuffixlist`, parsed on first use."""
    return PublicSuffixList()


def url_domains(message: bytes, max_domains: int, max_bytes: int) -> tuple[str, ...]:
    """The registered domains (A-labels, lower case) of URLs in the message's text parts."""
    found: dict[str, None] = {}
    for text in _texts(message[:max_bytes], max_bytes):
        for match in _URL.finditer(text):
            host = match.group("host")
            if _WWW.match(match.group(0)):
                host = "www." + host
            domain = registered_domain(host)
            if domain is not None:
                found.setdefault(domain)
                if len(found) >= max_domains:
                    return tuple(found)
    return tuple(found)


def registered_domain(host: str) -> str | None:
    """`host`'s registered domain ("a.b.example.co.uk" -> "example.co.uk") as an A-label,
    or None for an IP literal, an invalid name or a bare public suffix."""
    name = host.strip().rstrip(".").lower()
    if not name or "." not in name:
        return None
    try:
        ipaddress.ip_address(name)
        return None
    except ValueError:
        pass
    ascii_name = _a_label(name)
    if ascii_name is None:
        return None
    domain = _suffix_list().privatesuffix(ascii_name)
    return domain if isinstance(domain, str) else None


def _a_label(name: str) -> str | None:
    if name.isascii():
        labels = name.split(".")
        ok = all(0 < len(x) <= 63 and re.fullmatch(r"[a-z0-9_-]+", x) for x in labels)
        return name if ok and len(name) <= 253 else None
    try:
        return idna.encode(name, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError):
        return None


def _texts(raw: bytes, budget: int) -> Iterator[str]:
    """The decoded text/* parts of `raw`, at most `budget` characters in all."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    for part in message.walk():
        if budget <= 0:
            return
        if part.is_multipart() or part.get_content_maintype() != "text":
            continue
        text = _decoded(part)[:budget]
        budget -= len(text)
        yield text


def _decoded(part: email.message.Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:        # an unknown charset name: most links are ASCII anyway
        return payload.decode("utf-8", errors="replace")
