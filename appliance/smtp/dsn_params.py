"""RFC 3461 DSN parameters (pure): RET and ENVID on MAIL, NOTIFY and ORCPT on RCPT, and xtext.

aiosmtpd upper-cases every MAIL/RCPT parameter and refuses unknown ones with 555, which
would corrupt ENVID and ORCPT (both case-sensitive). So the session takes the DSN keywords
out of the command argument first (`split_params`), validates them here, and passes the rest
on to aiosmtpd unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from appliance.smtp import replies

MAIL_KEYWORDS = frozenset({"RET", "ENVID"})
RCPT_KEYWORDS = frozenset({"NOTIFY", "ORCPT"})
NOTIFY_VALUES = frozenset({"SUCCESS", "FAILURE", "DELAY"})
MAX_ENVID = 100         # RFC 3461 4.4: "the ENVID ... MUST NOT exceed 100 characters"
MAX_ORCPT = 500         # RFC 3461 4.2: the ORCPT parameter, at most 500 characters
MAIL_EXTRA_LENGTH = 100   # RFC 3461 5: MAIL command lines may grow by 100 (RET, ENVID)
RCPT_EXTRA_LENGTH = 500   # and RCPT command lines by 500 (NOTIFY, ORCPT)

# RFC 3461 4:  xtext = *( xchar / hexchar )
#   xchar = any ASCII CHAR between "!" (33) and "~" (126) inclusive, except "+" and "="
#   hexchar = ASCII "+" immediately followed by two upper case hexadecimal digits
_XTEXT = re.compile(r"(?:[!-*,-<>-~]|\+[0-9A-F]{2})*")
_HEXCHAR = re.compile(r"\+([0-9A-F]{2})")
# RFC 3461 4.2: addr-type = atom (RFC 822), e.g. "rfc822", "utf-8" (RFC 6533)
_ADDR_TYPE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+")
# RFC 6533 3: utf-8-addr-xtext encodes characters as \x{HEXPOINT}
_UNITEXT = re.compile(r"\\x\{([0-9A-F]{2,6})\}")


class DsnError(ValueError):
    """A DSN parameter is malformed; `reply` is what the client gets."""

    def __init__(self, keyword: str, reason: str) -> None:
        super().__init__(f"{keyword}: {reason}")
        self.reply = replies.BAD_DSN_PARAMETER
        self.keyword = keyword


@dataclass(frozen=True)
class MailDsn:
    """RET and ENVID from MAIL FROM."""

    ret: str | None = None       # "FULL" or "HDRS"
    envid: str | None = None     # decoded


@dataclass(frozen=True)
class RcptDsn:
    """NOTIFY and ORCPT from one RCPT TO."""

    notify: tuple[str, ...] = ()     # () = not given; ("NEVER",) or a subset of NOTIFY_VALUES
    orcpt: str | None = None         # decoded, "addr-type;address"


@dataclass
class EnvelopeDsn:
    """What one transaction's MAIL and RCPT commands said about DSNs."""

    mail: MailDsn = field(default_factory=MailDsn)
    recipients: dict[str, RcptDsn] = field(default_factory=dict)   # by rcpt_tos entry


def xtext_decode(text: str) -> str:
    """Decode RFC 3461 xtext; raise ValueError if `text` is not xtext."""
    if not _XTEXT.fullmatch(text):
        raise ValueError(f"not xtext: {text!r}")
    return _HEXCHAR.sub(lambda m: chr(int(m.group(1), 16)), text)


def xtext_encode(text: str) -> str:
    """Encode printable ASCII (and anything else, as UTF-8 octets) as RFC 3461 xtext."""
    out: list[str] = []
    for char in text:
        if "!" <= char <= "~" and char not in "+=":
            out.append(char)
        else:
            out.extend(f"+{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
    return "".join(out)


def split_params(arg: str, keywords: frozenset[str]) -> tuple[str, dict[str, str]]:
    """Take the `keywords` parameters out of a MAIL/RCPT argument (after `FROM:`/`TO:`).

    Returns:
        The argument without them (for aiosmtpd), and {KEYWORD: raw value}.

    Raises:
        DsnError: a keyword is repeated or has no value.
    """
    end = _path_end(arg)
    kept: list[str] = []
    found: dict[str, str] = {}
    for param in arg[end:].split():
        name, eq, value = param.partition("=")
        keyword = name.upper()
        if keyword not in keywords:
            kept.append(param)
            continue
        if keyword in found or not eq or not value:
            raise DsnError(keyword, "repeated or empty")
        found[keyword] = value
    rest = arg[:end].rstrip()
    return (" ".join([rest, *kept]) if kept else rest), found


def _path_end(arg: str) -> int:
    """Where the path of `arg` (`FROM:<path>`, `TO:<path>`) ends: after its `>` (outside
    quotes), or at the first space if it has no angle brackets."""
    keyword = re.match(r"\s*(?:FROM|TO):\s*", arg, re.IGNORECASE)
    stripped = keyword.end() if keyword else len(arg) - len(arg.lstrip())
    if not arg[stripped:].startswith("<"):
        match = re.search(r"\s", arg[stripped:])
        return stripped + match.start() if match else len(arg)
    quoted = escaped = False
    for index in range(stripped, len(arg)):
        char = arg[index]
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ">" and not quoted:
            return index + 1
    return len(arg)


def parse_mail(params: dict[str, str]) -> MailDsn:
    """Validate RET and ENVID (RFC 3461 4.3, 4.4)."""
    ret = params.get("RET")
    if ret is not None and ret.upper() not in ("FULL", "HDRS"):
        raise DsnError("RET", "expected FULL or HDRS")
    envid = params.get("ENVID")
    if envid is not None:
        envid = _decoded("ENVID", envid, MAX_ENVID)
    return MailDsn(ret.upper() if ret else None, envid)


def parse_rcpt(params: dict[str, str]) -> RcptDsn:
    """Validate NOTIFY and ORCPT (RFC 3461 4.1, 4.2)."""
    notify: tuple[str, ...] = ()
    if "NOTIFY" in params:
        notify = _notify(params["NOTIFY"])
    orcpt = params.get("ORCPT")
    if orcpt is not None:
        orcpt = _orcpt(orcpt)
    return RcptDsn(notify, orcpt)


def _notify(value: str) -> tuple[str, ...]:
    """`NEVER`, or a comma-separated list of SUCCESS, FAILURE and DELAY."""
    items = value.upper().split(",")
    if items == ["NEVER"]:
        return ("NEVER",)
    if not items or any(item not in NOTIFY_VALUES for item in items):
        raise DsnError("NOTIFY", "expected NEVER or SUCCESS, FAILURE, DELAY")
    return tuple(sorted(set(items), key=("SUCCESS", "FAILURE", "DELAY").index))


def _orcpt(value: str) -> str:
    """`addr-type ";" xtext`; the address part decoded (also RFC 6533 `\\x{..}` for utf-8)."""
    addr_type, sep, encoded = value.partition(";")
    if not sep or not _ADDR_TYPE.fullmatch(addr_type) or not encoded:
        raise DsnError("ORCPT", "expected addr-type;address")
    address = _decoded("ORCPT", encoded, MAX_ORCPT)
    if addr_type.lower() == "utf-8":
        address = _UNITEXT.sub(lambda m: _codepoint(m.group(1)), address)
    return f"{addr_type};{address}"


def _codepoint(hexdigits: str) -> str:
    value = int(hexdigits, 16)
    if value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
        raise DsnError("ORCPT", "invalid code point")
    return chr(value)


def _decoded(keyword: str, value: str, limit: int) -> str:
    if len(value) > limit:
        raise DsnError(keyword, f"longer than {limit}")
    try:
        decoded = xtext_decode(value)
    except ValueError as exc:
        raise DsnError(keyword, "not xtext") from exc
    if not decoded or not all(" " <= c <= "~" for c in decoded):
        raise DsnError(keyword, "must be printable ASCII")
    return decoded
