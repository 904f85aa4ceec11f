"""The SMTP reply catalogue (RFC 5321 codes with RFC 3463 enhanced status codes).

Every reply our code sends comes from here; tests import these names instead of literals.
`translate` maps aiosmtpd's own built-in replies onto catalogue replies so that clients always
get enhanced status codes.
"""

from __future__ import annotations

import re

GREETING_IDENT = "ESMTP Mailstead"

OK = "250 2.0.0 OK"
SENDER_OK = "250 2.1.0 Sender OK"
RECIPIENT_OK = "250 2.1.5 Recipient OK"
QUEUED = "250 2.0.0 OK: queued as {queue_id}"
BYE = "221 2.0.0 Bye"
READY_FOR_TLS = "220 2.0.0 Ready to start TLS"
CANNOT_VRFY = "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery"

BAD_SENDER_SYNTAX = "553 5.1.7 Bad sender address syntax"
BAD_RECIPIENT_SYNTAX = "553 5.1.3 Bad recipient address syntax"
UNKNOWN_USER = "550 5.1.1 Recipient address rejected: user unknown"
MAILBOX_DISABLED = "550 5.2.1 Recipient address rejected: mailbox disabled"
RELAY_DENIED = "554 5.7.1 Relay access denied"
DESTINATION_REFUSED = ("550 5.1.2 Recipient address rejected: mail to localhost or an IP "
                       "address is not relayed")
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
MESSAGE_TOO_BIG = "552 5.3.4 Message size exceeds fixed maximum message size"
LINE_TOO_LONG = "500 5.5.2 Line too long"
SYNTAX_ERROR = "500 5.5.2 Syntax error, command unrecognized"
BAD_SEQUENCE_HELO = "503 5.5.1 Error: send HELO/EHLO first"
BAD_SEQUENCE_NESTED_MAIL = "503 5.5.1 Error: nested MAIL command"
BAD_SEQUENCE_NEED_MAIL = "503 5.5.1 Error: need MAIL command"
BAD_SEQUENCE_NEED_RCPT = "503 5.5.1 Error: need RCPT command"
AUTH_NOT_ENABLED = "503 5.5.1 Error: authentication not enabled"
NOT_IMPLEMENTED = "502 5.5.1 Command not implemented"
PARAMETERS_NOT_RECOGNISED = "555 5.5.4 Parameters not recognized or not implemented"
NEED_STARTTLS = "530 5.7.0 Must issue a STARTTLS command first"
TLS_REFUSED = "554 5.7.0 Command refused due to lack of security"
TLS_UNAVAILABLE = "454 4.7.0 TLS not available"
TLS_ALREADY_ACTIVE = "503 5.5.1 Error: TLS already active"
TEMPORARY_FAILURE = "451 4.3.0 Temporary failure, please retry"
INSUFFICIENT_STORAGE = "452 4.3.1 Insufficient system storage, please retry later"
# A local mailbox over its quota (RFC 3463 X.2.2), temporary so that the sender retries
# while its owner makes room (Postfix and Dovecot's LMTP answer 452 or 552); a message larger
# than the whole quota can never fit (X.2.3).
MAILBOX_FULL = "452 4.2.2 Mailbox full, please retry later"
LARGER_THAN_QUOTA = "552 5.2.3 Message larger than the recipient's mailbox quota"
BAD_DSN_PARAMETER = "501 5.5.4 Syntax error in DSN parameters (RFC 3461)"
TIMEOUT = "421 4.4.2 {hostname} Error: timeout exceeded"
TOO_MANY_CONNECTIONS = "421 4.3.2 {hostname} Too many connections, try again later"
TOO_MANY_FROM_YOU = "421 4.7.0 {hostname} Too many connections from your address"
SHUTTING_DOWN = "421 4.3.2 {hostname} Service shutting down, try again later"
# Per-client-address rate limits on the MX (checks/ratelimit_clients.py): new connections
# per minute (421 at the greeting, RFC 5321 3.8) and messages per minute (450 to MAIL).
CONNECTION_RATE_EXCEEDED = "421 4.7.0 {hostname} Connection rate limit exceeded, try again later"
MESSAGE_RATE_EXCEEDED = "450 4.7.1 Message rate limit exceeded, try again later"

# The message itself (smtp/data_reader.py, smtp/chunking.py) and the greeting (RFC 5321 3.1).
BARE_LINE_END = "550 5.5.2 Error: bare <CR> or <LF> received"
NUL_IN_MESSAGE = "554 5.6.0 Error: NUL character in message data"
CHUNK_RECEIVED = "250 2.0.0 OK: {octets} octets received"
BDAT_SYNTAX = "501 5.5.4 Syntax: BDAT chunk-size [LAST]"
DATA_SYNTAX = "501 5.5.4 Syntax: DATA"
DATA_AFTER_BDAT = "503 5.5.1 Error: DATA after BDAT"
RCPT_AFTER_BDAT = "503 5.5.1 Error: RCPT after BDAT"
EARLY_TALKER = "554 5.5.1 {hostname} Error: client sent data before the greeting"

# Submission (RFC 6409) and SMTP AUTH (RFC 4954 6, RFC 5248 for the X.7.N codes).
AUTH_SUCCESSFUL = "235 2.7.0 Authentication successful"
AUTH_REQUIRED = "530 5.7.0 Authentication required"
AUTH_NEEDS_TLS = "538 5.7.11 Encryption required for requested authentication mechanism"
AUTH_FAILED = "535 5.7.8 Authentication credentials invalid"
AUTH_TEMPORARY = "454 4.7.0 Temporary authentication failure"
AUTH_LOCKED = "454 4.7.0 Too many failed authentication attempts, try again later"
AUTH_UNKNOWN_MECHANISM = "504 5.5.4 Unrecognized authentication type"
AUTH_ABORTED = "501 5.7.0 Auth aborted"
AUTH_BAD_BASE64 = "501 5.5.2 Can't decode base64"
AUTH_MALFORMED = "501 5.5.2 Malformed authentication response"
AUTH_ALREADY = "503 5.5.1 Error: already authenticated"
SENDER_NOT_OWNED = "553 5.7.1 Sender address rejected: not owned by the authenticated user"
FROM_NOT_OWNED = "553 5.7.1 From header rejected: address not owned by the authenticated user"
FROM_HEADER_INVALID = "550 5.6.0 Message needs exactly one well-formed From header"
SENDING_RATE_EXCEEDED = "450 4.7.1 Sending rate limit exceeded, try again later"

# Message checks (appliance/checks/): the client learns only that policy decided (RFC 3463
# X.7.1 "delivery not authorized, message refused"); the log names the check and the reason.
POLICY_REJECTED = "554 5.7.1 Message rejected by policy"
POLICY_DEFERRED = "451 4.7.1 Message deferred by policy, please retry later"
SPAM_REJECTED = "550 5.7.1 Message rejected by policy"     # spam score over the reject line
# A listing in a DNS blocklist marked reject-worthy (checks/dnsbl.py): 550 as Postfix and
# Spamhaus advise for blocklisted clients; which list matched goes to the log only.
POLICY_BLOCKED = "550 5.7.1 Message rejected by policy"
# A DMARC failure under the sender domain's p=reject (checks/authentication.py, RFC 7489
# 6.6.4 and 7.3: 550 5.7.1); "DMARC" and the domain go to the log only.
DMARC_REJECTED = "550 5.7.1 Message rejected by policy"

# aiosmtpd's built-in replies, by prefix, and what we send instead. Prefixes ending in ":"
# keep the rest of the original text (it carries the command's syntax help).
_AIOSMTPD_REPLIES: tuple[tuple[str, str], ...] = (
    ("250 OK", OK),
    ("221 Bye", BYE),
    ("220 Ready to start TLS", READY_FOR_TLS),
    ("252 Cannot VRFY", CANNOT_VRFY),
    ("500 Command line too long", LINE_TOO_LONG),
    ("500 Line too long", LINE_TOO_LONG),
    ("500 Error: bad syntax", SYNTAX_ERROR),
    ("500 Error: strict ASCII mode", SYNTAX_ERROR),
    ("500 Error: command", SYNTAX_ERROR),
    ("502 EXPN not implemented", NOT_IMPLEMENTED),
    ("502 Could not VRFY", "502 5.5.4 Could not VRFY the address"),
    ("503 Error: send", BAD_SEQUENCE_HELO),
    ("503 Error: nested MAIL", BAD_SEQUENCE_NESTED_MAIL),
    ("503 Error: need MAIL", BAD_SEQUENCE_NEED_MAIL),
    ("503 Error: need RCPT", BAD_SEQUENCE_NEED_RCPT),
    ("552 Error: message size exceeds", MESSAGE_TOO_BIG),
    ("552 Error: Too much mail data", MESSAGE_TOO_BIG),
    ("555 ", PARAMETERS_NOT_RECOGNISED),
    ("554 Command refused due to lack of security", TLS_REFUSED),
    ("530 Must issue a STARTTLS", NEED_STARTTLS),
    ("454 TLS not available", TLS_UNAVAILABLE),
    ("501 Syntax:", "501 5.5.4 Syntax:"),
    ("501 Error:", "501 5.5.4 Error:"),
    ("250 Syntax:", "250 2.0.0 Syntax:"),                           # HELP command
    ("250 Supported commands:", "250 2.0.0 Supported commands:"),
    ("501 Supported commands:", "501 5.5.4 Supported commands:"),
    ("501 Not enough value", "501 5.5.4 Syntax: AUTH mechanism [initial-response]"),
    ("501 Too many values", "501 5.5.4 Syntax: AUTH mechanism [initial-response]"),
    ("503 Already authenticated", AUTH_ALREADY),
    # An exception escaped handle_exception: unknown errors are temporary (STYLE.md 7),
    # and the exception text is for the log, not for the client.
    ("500 Error: (", TEMPORARY_FAILURE),
    ("500 Error: Cannot describe error", TEMPORARY_FAILURE),
)


_PREFIXES = tuple(prefix for prefix, _ in _AIOSMTPD_REPLIES)   # one C-level test for all

# RFC 3463 2 after the reply code: status-code = class "." subject "." detail
_ENHANCED = re.compile(r"\d{3}[ -]([245])\.\d{1,3}\.\d{1,3}(?: |$)")


def translate(reply: str) -> str:
    """Give an aiosmtpd built-in reply its catalogue form; other replies pass unchanged."""
    enhanced = _ENHANCED.match(reply)
    if enhanced is not None and enhanced[1] == reply[0]:
        return reply      # a catalogue reply (every reply we send passes here: keep it cheap)
    if not reply.startswith(_PREFIXES):
        return reply      # e.g. the greeting, 354 and the HELO reply: ours, without a code
    for prefix, replacement in _AIOSMTPD_REPLIES:
        if reply.startswith(prefix):
            if prefix.endswith(":"):
                return replacement + reply[len(prefix):]
            return replacement
    return reply
