"""ARC end to end, with the real engine, Knot DNS and a real Postfix peer (tests/peers/
mail_world.py):

- mailing-list style forwarding: origin.example publishes DMARC p=reject and DKIM-signs; a
  list rewrites the Subject and body (DKIM breaks) and ARC-seals; our MX accepts it when
  the list is in `checks.arc_trusted_sealers` and refuses it with 550 5.7.1 when an
  untrusted list does the same;
- sealing: mail for our alias fwd@alias.test, which forwards to carol@peer.test, leaves
  with our ARC set (d=alias.test, the alias's domain); the copy Postfix stored validates
  with dkimpy's `arc_verify` and with our verifier, keys from Knot, DKIM-broken or not.
"""

from __future__ import annotations

import json
import re
import smtplib
import subprocess
import sys
from collections.abc import Iterator

import dkim  # type: ignore[import-untyped]  # dkimpy ships no type hints
import pytest

from appliance.checks.arc import verify_chain
from appliance.checks.auth_dns import TxtLookup
from harness.arc_chain import Signer, list_rewrite, plain_message, zone_lines
from harness.e2e import queue_empty, wait_until
from harness.engine import EngineProcess
from peers.dns import zone_text
from peers.mail_world import ZONE_RECORDS, MailWorld, mail_world, maildir_messages

pytestmark = pytest.mark.timeout(240)
BOB = "bob@example.test"
ALIAS, TARGET = "fwd@alias.test", "carol@peer.test"
TRUSTED, UNTRUSTED = "lists.example", "other-list.example"


@pytest.fixture(scope="module")
def signers() -> dict[str, Signer]:
    return {"author": Signer("origin.example"), "trusted": Signer(TRUSTED),
            "untrusted": Signer(UNTRUSTED), "plain": Signer("plain.example")}


@pytest.fixture(scope="module")
def world() -> Iterator[MailWorld]:
    with mail_world("e2e-arc") as started:
        yield started


def cli(engine: EngineProcess, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "appliance", "--config", str(engine.config_file), *args],
        capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    return proc.stdout


@pytest.fixture(scope="module")
def engine(world: MailWorld, signers: dict[str, Signer],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    settings = world.engine_settings(checks__authentication=True,
                                     checks__arc_trusted_sealers=TRUSTED,
                                     checks__dns_timeout=2, queue__max_retry=1)
    proc = EngineProcess(tmp_path_factory.mktemp("e2e-arc") / "data", **settings)
    proc.start()
    try:
        for domain in ("example.test", "alias.test"):
            cli(proc, "domain", "add", domain)          # as an admin would: keys too
        proc.add_account(BOB)
        proc.directory.add_alias(ALIAS, TARGET)
        publish(world, proc, signers)
        yield proc
    finally:
        assert proc.stop() == 0, proc.log_text()[-3000:]


def publish(world: MailWorld, engine: EngineProcess, signers: dict[str, Signer]) -> None:
    """Knot serves the world's `test.` zone, our alias.test records as `mailstead dns
    records` prints them, and the outside domains: keys, SPF for the lists, DMARC."""
    example = [
        *zone_lines("example", *signers.values()),
        '_dmarc.origin TXT "v=DMARC1; p=reject"',
        'origin TXT "v=spf1 -all"',
        *(f'{name} TXT "v=spf1 ip4:127.0.0.0/8 -all"'
          for name in ("lists", "other-list", "plain")),
    ]
    world.dns.stop()
    world.dns.zones = {
        "test": zone_text("test", ZONE_RECORDS),
        "alias.test": zone_text("alias.test",
                                cli(engine, "dns", "records", "alias.test").splitlines()),
        "example": zone_text("example", example),
    }
    world.dns.start()


def to_mx(engine: EngineProcess, sender: str, recipient: str, message: bytes
          ) -> tuple[int, str]:
    """One SMTP transaction with our MX; the reply to DATA (or to the refused command)."""
    with smtplib.SMTP("127.0.0.1", engine.smtp_port, timeout=30) as client:
        client.ehlo("mail.lists.example")
        client.mail(sender)
        code, text = client.rcpt(recipient)
        if code != 250:
            return code, text.decode()
        try:
            code, text = client.data(message)
        except smtplib.SMTPDataError as exc:
            error = exc.smtp_error
            return exc.smtp_code, error.decode() if isinstance(error, bytes) else error
        return code, text.decode()


def list_copy(signers: dict[str, Signer], which: str, subject: str) -> bytes:
    """The author's signed message as list `which` sends it on: rewritten, then sealed."""
    signed = signers["author"].dkim_sign(plain_message(subject=subject))
    return signers[which].seal(list_rewrite(signed), "none")


def test_list_forwarding_with_trusted_arc_is_accepted(
        engine: EngineProcess, signers: dict[str, Signer]) -> None:
    message = list_copy(signers, "trusted", "arc: trusted list")
    code, text = to_mx(engine, f"bounces@{TRUSTED}", BOB, message)
    assert code == 250, text
    wait_until(lambda: bool(auth_lines(engine, "ARC sealed by")), 10, "the auth log line")
    [entry] = auth_lines(engine, "ARC sealed by lists.example")
    assert (entry["dmarc"], entry["arc"], entry["verdict"]) == ("fail", "pass", "accept")


def auth_lines(engine: EngineProcess, reason_part: str) -> list[dict[str, str]]:
    """The engine's `auth.checked` log entries whose reason contains `reason_part`."""
    entries = [json.loads(line) for line in engine.log_text().splitlines()
               if line.startswith("{") and '"auth.checked"' in line]
    return [e for e in entries if reason_part in e.get("reason", "")]


def test_same_list_untrusted_is_rejected(engine: EngineProcess,
                                         signers: dict[str, Signer]) -> None:
    message = list_copy(signers, "untrusted", "arc: untrusted list")
    code, text = to_mx(engine, f"bounces@{UNTRUSTED}", BOB, message)
    assert (code, text) == (550, "5.7.1 Message rejected by policy")
    [entry] = [e for e in auth_lines(engine, "p=reject") if e["verdict"] == "reject"]
    assert (entry["dmarc"], entry["arc"]) == ("fail", "pass")    # a valid chain, untrusted


def forward(world: MailWorld, engine: EngineProcess, sender: str, message: bytes) -> bytes:
    """Send `message` to our alias; the copy Postfix stored for its target (the new one:
    Postfix's Maildir names sort by inode within one second, not by arrival)."""
    before = world.peer.count_delivered(TARGET)
    earlier = set(maildir_messages(world.peer, TARGET))
    code, text = to_mx(engine, sender, ALIAS, message)
    assert code == 250, text
    wait_until(lambda: world.peer.count_delivered(TARGET) > before, 60, "Postfix delivery")
    wait_until(lambda: queue_empty(engine), 10, "an empty queue")
    [new] = [m for m in maildir_messages(world.peer, TARGET) if m not in earlier]
    return new


def seals(message: bytes) -> list[tuple[str, str, str]]:
    """(i, cv, d) of each ARC-Seal, in header order."""
    head = message.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].decode()
    fields = re.findall(r"^ARC-Seal:((?:.*)(?:\n[ \t].*)*)", head, re.M)
    found = []
    for field in fields:
        tags = dict(re.findall(r"\b(i|cv|d)=([^;\s]+)", field))
        found.append((tags["i"], tags["cv"], tags["d"]))
    return found


def test_forwarded_list_mail_is_sealed_and_validates(
        world: MailWorld, engine: EngineProcess, signers: dict[str, Signer]) -> None:
    message = list_copy(signers, "trusted", "arc: forwarded list mail")
    stored = forward(world, engine, f"bounces@{TRUSTED}", message)
    assert seals(stored) == [("2", "pass", "alias.test"), ("1", "none", TRUSTED)]
    assert b"ARC-Authentication-Results: i=2; mx.mailstead.test;" in stored
    lookup = TxtLookup(world.dns.resolver_spec, 3).blocking()
    assert dkim.verify(stored, dnsfunc=lookup) is False        # the list broke DKIM
    cv, _, why = dkim.arc_verify(stored, dnsfunc=lookup)
    assert cv == dkim.CV_Pass, why
    outcome = verify_chain(stored, lookup)
    assert (outcome.cv, outcome.sealers) == ("pass", (TRUSTED, "alias.test"))
    assert "arc.sealed" in engine.log_text()


def test_first_hop_seal_validates(world: MailWorld, engine: EngineProcess,
                                  signers: dict[str, Signer]) -> None:
    signed = signers["plain"].dkim_sign(
        plain_message("carol@plain.example", "arc: first hop").replace(
            b"origin.example", b"plain.example"))
    stored = forward(world, engine, "carol@plain.example", signed)
    assert seals(stored) == [("1", "none", "alias.test")]
    lookup = TxtLookup(world.dns.resolver_spec, 3).blocking()
    assert dkim.verify(stored, dnsfunc=lookup) is True         # nothing broke DKIM
    assert dkim.arc_verify(stored, dnsfunc=lookup)[0] == dkim.CV_Pass
    assert verify_chain(stored, lookup).sealers == ("alias.test",)


def test_broken_chain_is_forwarded_sealed_as_failed(
        world: MailWorld, engine: EngineProcess, signers: dict[str, Signer]) -> None:
    # No DMARC at plain.example: the message is accepted, but the list's chain broke on the
    # way (a body changed after sealing), so our MX records arc=fail and our seal says
    # cv=fail, covering only our own set (RFC 8617 5.1.2).
    signed = signers["plain"].dkim_sign(plain_message("dave@plain.example", "arc: broken"))
    broken = signers["trusted"].seal(list_rewrite(signed), "none") + b"added later\r\n"
    stored = forward(world, engine, f"bounces@{TRUSTED}", broken)
    assert seals(stored) == [("2", "fail", "alias.test"), ("1", "none", TRUSTED)]
    assert re.search(rb"^Authentication-Results: mx\.mailstead\.test;.*?arc=fail",
                     stored, re.M | re.S)
    lookup = TxtLookup(world.dns.resolver_spec, 3).blocking()
    assert verify_chain(stored, lookup).cv == "fail"
    assert dkim.arc_verify(stored, dnsfunc=lookup)[0] != dkim.CV_Pass


def test_sixty_junk_sets_give_arc_fail_not_a_crash(engine: EngineProcess) -> None:
    # Hostile input through the MX: 60 ARC sets of garbage (RFC 8617 4.2.1 allows 50).
    junk = b"".join(
        f"ARC-Seal: i={n}; cv=pass; a=rsa-sha256; d=junk.example; s=s; b=AAAA\r\n"
        f"ARC-Message-Signature: i={n}; a=rsa-sha256; d=junk.example; s=s; h=from; "
        f"bh=AAAA; b=AAAA\r\nARC-Authentication-Results: i={n}; junk.example; spf=pass\r\n"
        .encode() for n in range(60, 0, -1))
    message = junk + plain_message("eve@plain.example", "arc: sixty junk sets")
    code, text = to_mx(engine, "eve@plain.example", BOB, message)
    assert code == 250, text
    wait_until(lambda: any(b"sixty junk sets" in m for m in engine.messages(BOB)), 10,
               "delivery to bob")
    stored = next(m for m in engine.messages(BOB) if b"sixty junk sets" in m)
    assert re.search(rb"^Authentication-Results: mx\.mailstead\.test;.*?\barc=fail\b",
                     stored, re.M | re.S)
