"""The replies the transport writes itself, when no peer answered or a rule decided first.

They stand where a peer's reply would (in `RecipientResult.reply`, the log and DSNs), so they
look like SMTP replies with RFC 3463 enhanced codes; the first digit is the outcome (4 is
retried, 5 is bounced). Tests import these names instead of spelling the texts out.
"""

from __future__ import annotations

import re

# Decided by DNS (RFC 5321 5.1, RFC 7505)
NULL_MX = "556 5.1.10 Domain {domain} accepts no mail (null MX, RFC 7505)"
NO_SUCH_DOMAIN = "550 5.1.2 Domain {domain} does not exist"
NO_ROUTE = "550 5.4.4 Domain {domain} has no MX and no address record"
DNS_TEMPORARY = "451 4.4.3 DNS lookup for {domain} failed: {reason}"
NO_MX_ADDRESS = "451 4.4.4 No address found for the mail hosts of {domain}"

# Decided before talking (RFC 6531 3.5, RFC 1870 6)
SMTPUTF8_REQUIRED = "553 5.6.7 {remote} does not support SMTPUTF8, which this message needs"
NO_8BITMIME = ("554 5.6.3 {remote} does not support 8BITMIME and the message cannot be "
               "converted to 7 bits")
MESSAGE_TOO_BIG = "552 5.3.4 Message too big for {remote} (its limit is {limit} octets)"
BAD_SENDER = "553 5.1.7 The sender address cannot be sent over SMTP"
BAD_RECIPIENT = "553 5.1.3 The recipient address cannot be sent over SMTP"
MAIL_LOOP = "554 5.4.6 Mail for {domain} loops back to myself ({remote})"

# The connection or the peer failed (all temporary: unknown = temporary, practice 7)
CONNECT_FAILED = "451 4.4.1 Cannot connect to {remote}: {reason}"
GREETING_REFUSED = "451 4.4.0 {remote} refused the session: {reply}"
TIMEOUT = "451 4.4.2 Timed out waiting for {remote} ({stage})"
CONNECTION_LOST = "451 4.4.2 Lost connection with {remote} ({stage})"
PROTOCOL_ERROR = "451 4.5.0 {remote} broke the SMTP protocol ({stage}): {reason}"
UNEXPECTED_REPLY = "451 4.5.0 Unexpected reply from {remote} ({stage}): {reply}"
TLS_FAILED = "451 4.7.5 TLS with {remote} failed: {reason}"
INTERNAL_ERROR = "451 4.3.0 Internal error during delivery; it will be retried"

# MTA-STS (RFC 8461 5): a policy failure defers, it never bounces
STS_NO_MATCHING_MX = "451 4.7.5 MTA-STS policy of {domain}: no MX host matches ({hosts})"
STS_NO_STARTTLS = "451 4.7.4 MTA-STS policy of {domain}: {remote} does not offer STARTTLS"
STS_TLS_FAILED = "451 4.7.5 MTA-STS policy of {domain}: TLS with {remote} failed: {reason}"

_UNSAFE = re.compile(r"[\x00-\x1f\x7f]+")


def render(template: str, **fields: object) -> str:
    """Fill a template; every field is squeezed onto one line (results end up in DSNs)."""
    return template.format(**{k: _UNSAFE.sub(" ", str(v)).strip() for k, v in fields.items()})
