"""Mail addresses: validation and normalisation (RFC 5321 section 4.1.2, RFC 6531, IDNA 2008).

Domains are compared and stored as lower-case A-labels; local parts are kept as the user
gave them, and matched case-insensitively through `Address.key`.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import idna

# RFC 5321 4.1.2:  Dot-string = Atom *("."  Atom);  Atom = 1*atext
# atext (RFC 5322 3.2.3) plus UTF-8 non-ASCII (RFC 6531 3.3, UTF8-non-ascii).
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\ud7ff\ue000-\U0010ffff]"
_DOT_STRING = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*")
# Quoted-string = DQUOTE *QcontentSMTP DQUOTE; qtextSMTP = %d32-33 / %d35-91 / %d93-126
_QUOTED_STRING = re.compile(
    r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e\u0080-\ud7ff\ue000-\U0010ffff]|\\[\x20-\x7e])*"')
_MAX_LOCAL = 64      # RFC 5321 4.5.3.1.1
_MAX_DOMAIN = 255    # RFC 5321 4.5.3.1.2
_MAX_PATH = 256      # RFC 5321 4.5.3.1.3


class AddressError(ValueError):
    """The text is not a valid mail address or domain."""


@dataclass(frozen=True)
class Address:
    """A validated address: `local` as given, `domain` as a lower-case A-label."""

    local: str
    domain: str

    def __str__(self) -> str:
        return f"{self.local}@{self.domain}"

    @property
    def key(self) -> str:
        """The case-insensitive form used to look an address up."""
        return f"{self.local.casefold()}@{self.domain}"

    @property
    def local_key(self) -> str:
        return self.local.casefold()


# IDNA (UTS 46 mapping and label checks) costs ~25 us a call, paid at every MAIL and RCPT;
# the result depends on the text alone, so a bounded cache keeps the common domains cheap.
@functools.lru_cache(maxsize=4096)
def normalise_domain(text: str) -> str:
    """Return `text` as a lower-case IDNA 2008 A-label domain, or raise AddressError."""
    candidate = text.strip().rstrip(".")
    if not candidate or len(candidate) > _MAX_DOMAIN:
        raise AddressError(f"invalid domain {text!r}: empty or longer than {_MAX_DOMAIN}")
    try:
        ascii_form = idna.encode(candidate, uts46=True).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError) as exc:
        raise AddressError(f"invalid domain {text!r}: {exc}") from exc
    labels = ascii_form.split(".")
    if len(labels) < 1 or any(not _valid_label(label) for label in labels):
        raise AddressError(f"invalid domain {text!r}")
    return ascii_form


def _valid_label(label: str) -> bool:
    return (0 < len(label) <= 63 and label[0] != "-" and label[-1] != "-"
            and all(c.isalnum() or c == "-" for c in label) and label.isascii())


def parse_address(text: str) -> Address:
    """Parse `local@domain` (no angle brackets), validating both parts.

    Raises:
        AddressError: the address is malformed, too long or its domain is not valid IDNA.
    """
    local, sep, domain = text.rpartition("@")
    if not sep or not local:
        raise AddressError(f"invalid address {text!r}: expected local@domain")
    # Syntax first: it refuses lone surrogates (aiosmtpd decodes with surrogateescape),
    # which the UTF-8 length check could not encode.
    if not (_DOT_STRING.fullmatch(local) or _QUOTED_STRING.fullmatch(local)):
        raise AddressError(f"invalid address {text!r}: malformed local part")
    if len(local.encode("utf-8")) > _MAX_LOCAL:
        raise AddressError(f"invalid address {text!r}: local part longer than {_MAX_LOCAL}")
    address = Address(local, normalise_domain(domain))
    if len(str(address).encode("utf-8")) > _MAX_PATH - 2:
        raise AddressError(f"invalid address {text!r}: longer than {_MAX_PATH - 2}")
    return address


def domain_of(address: str) -> str:
    """The domain part of an already validated address, lower-cased (queue grouping key)."""
    return address.rpartition("@")[2].lower()


def primary_domain(hostname: str, domains: list[str]) -> str | None:
    """The domain the server's own mail (reports, alerts) comes from: the host name's own
    (or a parent of it) when it is local, else the first local domain by name; None without
    local domains."""
    labels = hostname.lower().rstrip(".").split(".")
    for start in range(len(labels) - 1):
        if ".".join(labels[start:]) in domains:
            return ".".join(labels[start:])
    return sorted(domains)[0] if domains else None
