"""The POP3 reply catalogue (RFC 1939 status indicators, RFC 2449/3206 response codes).

Every status line the POP3 session sends comes from here; transcripts name them as
`{NAME}`. Lines with `{fields}` are filled with `str.format`. Extended response codes in
brackets (RFC 2449 8, RFC 3206) tell a client whether retrying or asking for a new password
makes sense: [AUTH] credentials or policy, [SYS/TEMP] try later, [SYS/PERM] ask the admin,
[IN-USE] another session holds the maildrop, [LOGIN-DELAY] wait before logging in again.
"""

from __future__ import annotations

GREETING = "+OK Mailstead POP3 server ready"
OK = "+OK"
BYE = "+OK Logging out"
BYE_UPDATED = "+OK Logging out, {count} messages left"
CAPA_FOLLOWS = "+OK Capability list follows"
STLS_BEGIN = "+OK Begin TLS negotiation"
USER_OK = "+OK Send your password"
LOGGED_IN = "+OK Logged in, {count} messages ({size} octets)"
MECHANISMS_FOLLOW = "+OK Supported SASL mechanisms follow"
SASL_CONTINUE = "+ "            # RFC 5034 4: "+" SP [base64], PLAIN's challenge is empty
MAILDROP = "+OK {count} messages ({size} octets)"
STAT = "+OK {count} {size}"     # RFC 1939 5: exactly "+OK nn mm", clients parse it
SCAN_LISTING = "+OK {number} {size}"
RETR_FOLLOWS = "+OK {size} octets"
TOP_FOLLOWS = "+OK Top of message follows"
DELETED = "+OK Message {number} deleted"
UIDL_FOLLOWS = "+OK Unique-ID listing follows"
UIDL_LISTING = "+OK {number} {uid}"
END = "."

# -- errors a client may make -----------------------------------------------------------
UNKNOWN_COMMAND = "-ERR Unknown command"
WRONG_STATE = "-ERR Command not valid in this state"
SYNTAX_ERROR = "-ERR Syntax error in arguments"
LINE_TOO_LONG = "-ERR Line too long"
TOO_MANY_BAD_COMMANDS = "-ERR Too many bad commands, closing connection"
NO_SUCH_MESSAGE = "-ERR No such message"
ALREADY_DELETED = "-ERR Message {number} already deleted"
MESSAGE_GONE = "-ERR Message was removed by another client"
TLS_ALREADY_ACTIVE = "-ERR TLS already active"
USER_FIRST = "-ERR Send USER first"
UNKNOWN_MECHANISM = "-ERR Unsupported authentication mechanism"
AUTH_CANCELLED = "-ERR Authentication cancelled"
AUTH_MALFORMED = "-ERR [AUTH] Malformed authentication response"

# -- login (RFC 3206 3: [AUTH] is a credentials or policy problem; retry with others) ----
TLS_REQUIRED = "-ERR [AUTH] Plaintext authentication disallowed without TLS, use STLS"
AUTH_FAILED = "-ERR [AUTH] Authentication failed"
AUTH_LOCKED = "-ERR [LOGIN-DELAY] Too many failed logins, try again later"
AUTH_TEMPORARY = "-ERR [SYS/TEMP] Authentication temporarily unavailable, try again later"

# -- the maildrop ------------------------------------------------------------------------
IN_USE = "-ERR [IN-USE] Mailbox is locked by another POP3 session"
MAILDROP_TEMPORARY = "-ERR [SYS/TEMP] Mailbox unavailable, try again later"
MAILDROP_PERMANENT = "-ERR [SYS/PERM] Mailbox cannot be opened, contact your administrator"
READ_FAILED = "-ERR [SYS/TEMP] Message cannot be read now, try again later"
UPDATE_FAILED = "-ERR [SYS/TEMP] Some deleted messages were not removed"

# -- sent by the driver --------------------------------------------------------------------
IDLE_TIMEOUT = "-ERR Disconnected for inactivity"
SHUTTING_DOWN = "-ERR [SYS/TEMP] Server shutting down, try again later"
TOO_MANY_CONNECTIONS = "-ERR [SYS/TEMP] Too many connections, try again later"
TOO_MANY_FROM_YOU = "-ERR [SYS/TEMP] Too many connections from your address"

# RFC 2449 6: the capabilities, in the order CAPA lists them. USER and SASL only where a
# password may be sent (RFC 2595 4: not before STLS), STLS only before TLS.
CAPA_ALWAYS = ("TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING")
CAPA_LOGIN = ("USER", "SASL PLAIN")
CAPA_STLS = "STLS"
CAPA_IMPLEMENTATION = "IMPLEMENTATION Mailstead"
MECHANISMS = ("PLAIN",)
