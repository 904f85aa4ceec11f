"""The IMAP reply catalogue: response texts and codes, and the lines that carry them.

Every human-readable text the server sends is named here (STYLE.md practice 6); tests import
the names. Response codes are those of RFC 9051 7.1 and RFC 5530, plus the extensions'
(APPENDUID/COPYUID RFC 4315, HIGHESTMODSEQ/MODIFIED RFC 7162, OVERQUOTA RFC 9208).
"""

from __future__ import annotations

# -- texts -----------------------------------------------------------------------------------
LOGIN_DISABLED = "Log in only after STARTTLS (or on the TLS port)"
NO_MECHANISM = "Unsupported authentication mechanism"
TLS_ALREADY = "TLS is already active"
TLS_GO = "Begin TLS negotiation now"
IDLING = "idling"
IDLE_DONE = "IDLE terminated"
IDLE_BAD = "Expected DONE"
LOGGING_OUT = "Logging out"
LOGOUT_OK = "LOGOUT completed"
LOGGED_IN = "Logged in"
AUTH_FAILED = "Authentication failed"
AUTH_UNAVAILABLE = "Temporary authentication failure, try again later"
DONE = "completed"
SELECTED_RW = "[READ-WRITE] SELECT completed"
SELECTED_RO = "[READ-ONLY] EXAMINE completed"
NO_SUCH_MAILBOX = "No such mailbox"
MAILBOX_EXISTS = "Mailbox already exists"
CANNOT = "Cannot do that to this mailbox"
OVER_QUOTA = "Quota exceeded"
IN_USE = "Mailbox in use"
BAD_NAME = "Invalid mailbox name"
TRY_CREATE = "Mailbox does not exist; create it first"
NO_MESSAGES = "No matching messages"
EXPUNGE_ISSUED = "Some of the requested messages no longer exist"
MODIFIED = "Some messages were modified since UNCHANGEDSINCE"
READ_ONLY = "Mailbox is read-only"
TOO_BIG = "Message is too large"
SERVER_BUG = "Internal server error; the command was not completed"
NO_QUOTA_ROOT = "No such quota root"
SETQUOTA_REFUSED = "Quotas are set by the administrator"
UNKNOWN_CTE = "Unknown Content-Transfer-Encoding"
NO_SECTION = "No such section"
UNSUPPORTED_EXT = "Unsupported extension"
NOT_SELECTED = "No mailbox selected"
PROTOCOL_ERROR = "Protocol error: cannot find the next command"
BAD_SEQUENCE = "Invalid message sequence number"


# -- lines -----------------------------------------------------------------------------------

def _line(prefix: str, status: str, text: str, code: str | None) -> bytes:
    code_part = f"[{code}] " if code else ""
    return f"{prefix} {status} {code_part}{text}\r\n".encode()


def tagged_ok(tag: str, text: str, code: str | None = None) -> bytes:
    return _line(tag, "OK", text, code)


def tagged_no(tag: str, text: str, code: str | None = None) -> bytes:
    return _line(tag, "NO", text, code)


def tagged_bad(tag: str, text: str, code: str | None = None) -> bytes:
    return _line(tag, "BAD", text, code)


def untagged_ok(text: str, code: str | None = None) -> bytes:
    return _line("*", "OK", text, code)


def untagged_no(text: str, code: str | None = None) -> bytes:
    return _line("*", "NO", text, code)


def untagged_bye(text: str) -> bytes:
    return f"* BYE {text}\r\n".encode()


def continuation(text: str = "") -> bytes:
    return f"+ {text}\r\n".encode()


def untagged(text: str) -> bytes:
    """`* <text>` for data responses built from already-rendered parts."""
    return b"* " + text.encode() + b"\r\n"
