"""Open-relay attempts: nothing is relayed without authentication, ever.

Classic tricks against the MX and against unauthenticated submission. Each is refused, or,
where the address really is local, delivered locally; nothing reaches the outbound queue.
`user%host@ourdomain` (the "percent hack") is an unknown local user, not a route: 550.
"""

from __future__ import annotations

import pytest

from appliance.outbound.spool import Spool
from appliance.smtp import replies
from harness.engine import EngineProcess
from harness.smtp_wire import SMTPWire, greeted
from harness.submission import auth_plain, implicit_tls_wire, logged_in, starttls_wire

MX_SETTINGS = {"auth__failure_delay_ms": 0, "auth__max_failures": 1000,
               "auth__max_failures_per_ip": 10_000,
               "outbound__resolver": "127.0.0.1:9", "outbound__dns_timeout": 1}
MALFORMED = "553 5.1.3 Error: malformed address"      # aiosmtpd's path parser refused it

# (recipient as sent inside <...>, what the MX answers)
TRICKS = [
    ("user%remote.example@example.test", replies.UNKNOWN_USER),          # percent hack
    ("USER%REMOTE.EXAMPLE@EXAMPLE.TEST", replies.UNKNOWN_USER),
    ("user%example.test@remote.example", replies.RELAY_DENIED),
    ("user@remote.example%example.test", replies.BAD_RECIPIENT_SYNTAX),
    ("user@remote.example@example.test", MALFORMED),                     # two at-signs
    ("@example.test:user@remote.example", replies.RELAY_DENIED),         # source route
    ("@example.test,@mx.example.test:user@remote.example", replies.RELAY_DENIED),
    ('"user@remote.example"@example.test', replies.UNKNOWN_USER),        # quoted local part
    ('"user%remote.example"@example.test', replies.UNKNOWN_USER),
    ("user!remote.example@example.test", replies.UNKNOWN_USER),           # UUCP bang path
    ("remote.example!user@example.test", replies.UNKNOWN_USER),
    ("alice@exаmple.test", replies.RELAY_DENIED),                         # Cyrillic "а"
    ("alice@xn--exmple-4nf.test", replies.RELAY_DENIED),                  # its A-label
    ("alice@example.test.remote.example", replies.RELAY_DENIED),
    ("alice@example.test.", MALFORMED),                                   # trailing dot
    ("user@remote.example.", MALFORMED),
    ("alice@[127.0.0.1]", replies.BAD_RECIPIENT_SYNTAX),                  # address literal
    ("user@[IPv6:::1]", replies.BAD_RECIPIENT_SYNTAX),
    ("user@127.0.0.1", replies.RELAY_DENIED),
    ("user@localhost", replies.RELAY_DENIED),
    ("user@remote.example (comment)", replies.RELAY_DENIED),
    ("alice@example.test\x00@remote.example", MALFORMED),                 # NUL inside
    ("REMOTE@REMOTE.EXAMPLE", replies.RELAY_DENIED),
]
# Spellings that really are alice@example.test: delivered to her, and only to her.
LOCAL_SPELLINGS = ["ALICE@EXAMPLE.TEST", "Alice@Example.Test", '"alice"@example.test',
                   "alice+relay@example.test"]


def assert_nothing_queued(mx: EngineProcess) -> None:
    assert Spool(mx.data_dir / "queue").messages() == []


@pytest.mark.parametrize(("recipient", "expected"), TRICKS, ids=[t for t, _ in TRICKS])
def test_mx_refuses_relay_trick(mx: EngineProcess, recipient: str, expected: str) -> None:
    with greeted(mx.smtp_port) as wire:
        assert wire.command("MAIL FROM:<sender@remote.example>").code == 250
        assert str(wire.command(f"RCPT TO:<{recipient}>")) == expected
        # Nothing was accepted, so there is nothing to send data for.
        assert wire.command("DATA").code == 503
    assert_nothing_queued(mx)


def test_mx_delivers_real_local_spellings_locally(mx: EngineProcess) -> None:
    before = len(mx.messages("alice@example.test"))
    with greeted(mx.smtp_port) as wire:
        assert wire.command("MAIL FROM:<sender@remote.example>").code == 250
        for spelling in LOCAL_SPELLINGS:
            assert str(wire.command(f"RCPT TO:<{spelling}>")) == replies.RECIPIENT_OK
        assert wire.command("DATA").code == 354
        wire.send(b"Subject: spellings\r\n\r\nx\r\n.\r\n")
        assert wire.read_reply().code == 250
    assert len(mx.messages("alice@example.test")) == before + 1      # one copy
    assert_nothing_queued(mx)


def unauthenticated_sessions(mx: EngineProcess) -> list[SMTPWire]:
    failed = starttls_wire(mx)
    assert auth_plain(failed, "alice@example.test", "wrong password").code == 535
    return [greeted(mx.submission_port), starttls_wire(mx), implicit_tls_wire(mx), failed]


@pytest.mark.parametrize("recipient", [t for t, _ in TRICKS] + ["friend@remote.example"])
def test_unauthenticated_submission_relays_nothing(mx: EngineProcess, recipient: str) -> None:
    for wire in unauthenticated_sessions(mx):
        with wire:
            assert str(wire.command("MAIL FROM:<alice@example.test>")) == (
                replies.AUTH_REQUIRED)
            assert str(wire.command(f"RCPT TO:<{recipient}>")) == replies.AUTH_REQUIRED
    assert_nothing_queued(mx)


def test_authenticated_tricks_on_our_domain_stay_local(mx: EngineProcess) -> None:
    """After AUTH, remote recipients are allowed; a trick naming our domain is still a
    local address, so it is an unknown user, not a route elsewhere."""
    with logged_in(mx, "alice@example.test") as wire:
        assert wire.command("MAIL FROM:<alice@example.test>").code == 250
        for recipient, expected in TRICKS:
            if expected == replies.UNKNOWN_USER:
                assert str(wire.command(f"RCPT TO:<{recipient}>")) == expected, recipient
    assert_nothing_queued(mx)
