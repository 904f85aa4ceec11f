"""What a message check knows about the message besides its bytes: the SMTP envelope and
session, and what earlier checks found out.

Checks run one after another (`pipeline.run_checks`), so a later check may read what an
earlier one left here: the authentication check (SPF, DKIM, ARC, DMARC) sets `auth`, which
greylisting (its bypass for authenticated senders) and the spam score read; lookups that only
add to the spam score (DNSBL/DNSWL hits, DMARC failures, ...) append their points to
`score_parts`, which the spam check sums.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from appliance.checks.result import Verdict


@dataclass(frozen=True)
class AuthOutcome:
    """The authentication check's findings (RFC 7208, RFC 6376, RFC 8617, RFC 7489).

    Attributes:
        from_domain: the RFC5322.From domain DMARC aligns with ("" if none could be parsed).
        spf: the SPF result for the MAIL FROM identity (or HELO for the null sender):
            pass, fail, softfail, neutral, none, temperror, permerror.
        spf_domain: the domain SPF evaluated.
        dkim_pass: the d= domains of the DKIM signatures that verified.
        arc: the ARC chain validation result (RFC 8617 cv): none, pass, fail.
        arc_sealers: the d= domains of the ARC-Seal headers of a chain that passed, oldest
            first.
        dmarc: pass, fail, none, temperror, permerror.
        dmarc_policy: the policy applied to a failure: none, quarantine, reject ("" when
            there is no DMARC record).
    """

    from_domain: str = ""
    spf: str = "none"
    spf_domain: str = ""
    dkim_pass: tuple[str, ...] = ()
    arc: str = "none"
    arc_sealers: tuple[str, ...] = ()
    dmarc: str = "none"
    dmarc_policy: str = ""

    @property
    def authenticated_domains(self) -> frozenset[str]:
        """Domains the message is proven to come from: SPF-passed and DKIM-passed ones."""
        found = set(self.dkim_pass)
        if self.spf == "pass" and self.spf_domain:
            found.add(self.spf_domain)
        return frozenset(d.lower() for d in found)


@dataclass
class MessageContext:
    """One message's envelope and session for the checks, and the notes checks leave.

    Attributes:
        queue_id: the message's queue id (for log lines).
        client_ip: the SMTP client's address.
        helo: the name the client gave in HELO/EHLO.
        mail_from: the envelope sender; "" for the null reverse-path.
        recipients: the accepted envelope recipients.
        mailboxes: the local accounts the message is delivered to (aliases expanded).
        tls: whether the session was encrypted.
        authenticated_as: the submission login; None on the MX.
        auth: set by the authentication check.
        score_parts: (rule, points) pairs for the spam score, in the order found.
        after_decision: called with the merged verdict once every check ran (e.g. to
            count a DMARC evaluation only for a message that is not deferred: a deferred
            one comes again and is counted then).
    """

    queue_id: str
    client_ip: str
    helo: str = ""
    mail_from: str = ""
    recipients: tuple[str, ...] = ()
    mailboxes: tuple[str, ...] = ()
    tls: bool = False
    authenticated_as: str | None = None
    auth: AuthOutcome | None = None
    score_parts: list[tuple[str, float]] = field(default_factory=list)
    after_decision: list[Callable[[Verdict], None]] = field(default_factory=list)
