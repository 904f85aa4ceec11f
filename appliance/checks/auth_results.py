"""The one `Authentication-Results` header field we add (RFC 8601), and removing forged ones.

Every check that authenticates something (SPF, DKIM, ARC, DMARC) returns its RFC 8601
`resinfo` pieces (e.g. `spf=pass smtp.mailfrom=example.org`) in `CheckResult.auth_results`;
the pipeline writes them as a single field under our authserv-id (the host name). RFC 8601
section 5: a field that claims our authserv-id but arrived from outside is a forgery meant to
fool the recipient's mail client, so it is removed before the message is stored. So are
the `X-Spam-*` fields our spam check writes (`SPAM_FIELDS`): a sender must not be able to
pass its message off as judged clean by us to the user's mail client or filter rules.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from appliance.smtp.submission_policy import split_header

FIELD = b"authentication-results"
SPAM_FIELDS = frozenset({b"x-spam-score", b"x-spam-status", b"x-spam-report", b"x-spam-flag"})
_COMMENT = re.compile(rb"\((?:[^()\\]|\\.)*\)")
_FIRST_TOKEN = re.compile(rb'\s*("(?:[^"\\]|\\.)*"|[^\s;]+)')


def results_header(authserv_id: str, resinfo: Sequence[str]) -> str:
    """The header line (no CRLF; folded with CRLF TAB between results) for `resinfo`;
    `none` when no check found anything to report (RFC 8601 2.2)."""
    if not resinfo:
        return f"Authentication-Results: {authserv_id}; none"
    return "Authentication-Results: " + authserv_id + ";\r\n\t" + ";\r\n\t".join(resinfo)


def claimed_authserv_id(value: bytes) -> str:
    """The authserv-id an `Authentication-Results` field body names ("" if none), lowered."""
    previous = None
    while previous != value:        # comments may nest; strip innermost first
        previous, value = value, _COMMENT.sub(b" ", value)
    match = _FIRST_TOKEN.match(value)
    if match is None:
        return ""
    token = match.group(1).strip(b'"')
    return token.decode("utf-8", "replace").lower()


def remove_forged(message: bytes, authserv_id: str) -> tuple[bytes, int]:
    """`message` without the `Authentication-Results` fields that claim `authserv_id` and
    without `SPAM_FIELDS`, and how many fields were removed. Only the header block is looked
    at; the body is left as it is."""
    end = len(split_header(message)[0])
    header = message[:end]
    lowered = header.lower()
    if FIELD not in lowered and b"x-spam-" not in lowered:
        return message, 0
    ours = authserv_id.lower()
    kept: list[bytes] = []
    removed = 0
    for field in _fields(header):
        name, _, value = field.partition(b":")
        name = name.strip().lower()
        if name in SPAM_FIELDS or (name == FIELD and claimed_authserv_id(value) == ours):
            removed += 1
            continue
        kept.append(field)
    if not removed:
        return message, 0
    return b"".join(kept) + message[end:], removed


def _fields(header: bytes) -> list[bytes]:
    """The header block split into fields, each with its continuation lines and line ends."""
    fields: list[bytes] = []
    for line in header.splitlines(keepends=True):
        if fields and line[:1] in (b" ", b"\t"):
            fields[-1] += line
        else:
            fields.append(line)
    return fields
