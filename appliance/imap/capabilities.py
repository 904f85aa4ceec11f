"""The CAPABILITY list: what the server offers in each state (RFC 9051 7.2.2).

Before TLS (and outside dev mode on loopback) LOGIN and AUTHENTICATE are refused, so the
list says LOGINDISABLED and offers STARTTLS instead of AUTH= mechanisms (RFC 9051 6.2.3).
After authentication the mechanisms and STARTTLS are no longer listed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from appliance.imap.session import ImapSession

EXTENSIONS = (
    "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE", "NAMESPACE", "UIDPLUS", "MOVE",
    "UNSELECT", "CHILDREN", "LIST-EXTENDED", "LIST-STATUS", "SPECIAL-USE",
    "CREATE-SPECIAL-USE", "CONDSTORE", "QRESYNC", "ESEARCH", "SEARCHRES", "BINARY",
    "QUOTA", "QUOTA=RES-STORAGE", "QUOTA=RES-MESSAGE", "STATUS=SIZE", "UTF8=ACCEPT",
)


def capabilities(session: ImapSession) -> list[str]:
    caps = ["IMAP4rev1", "IMAP4rev2"]
    if session.account is None:
        if not session.secure:
            caps.append("STARTTLS")
        if session.login_allowed:
            caps += ["AUTH=PLAIN", "AUTH=LOGIN"]
        else:
            caps.append("LOGINDISABLED")
    caps += EXTENSIONS
    caps.append(f"APPENDLIMIT={session.config.max_append}")
    return caps
