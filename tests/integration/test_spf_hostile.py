"""SPF against DNS that misbehaves in time: a server that never answers, a server that was
stopped, the overall time limit, and several checkers with different resolvers running at
once (pyspf's DNS hook is a module global: each evaluation must still ask its own server).

Loops, lookup limits, huge records and SERVFAIL are scenarios in tests/data/spf/hostile.yml,
run by test_spf_rfc7208.py through a real Knot DNS.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.resolver
import pytest

from appliance.checks.spf import SharedLookup, SpfChecker, SpfOutcome
from peers.dns import KnotDns, zone_text

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A DNS "server" on a loopback UDP port that receives questions and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def check(checker: SpfChecker, ip: str = "192.0.2.1", helo: str = "mail.example.org",
          mail_from: str = "a@example.org") -> tuple[SpfOutcome, float]:
    started = time.monotonic()
    outcome = asyncio.run(checker.check(ip, helo, mail_from))
    return outcome, time.monotonic() - started


def test_a_server_that_never_answers_is_temperror_within_the_timeout(black_hole: str) -> None:
    checker = SpfChecker(black_hole, 1.0)
    try:
        outcome, elapsed = check(checker)
    finally:
        checker.close()
    assert outcome.result == "temperror"
    assert "timeout" in outcome.explanation.lower()
    assert outcome.resinfo == "spf=temperror smtp.mailfrom=a@example.org"
    assert 0.9 <= elapsed < 3.0


def test_the_time_limit_bounds_the_whole_evaluation(black_hole: str) -> None:
    """Lookups may take 10 s each, but the evaluation only 1 s (RFC 7208 4.6.4)."""
    checker = SpfChecker(black_hole, 10.0, time_limit=1.0)
    try:
        outcome, elapsed = check(checker)
    finally:
        checker.close()
    assert outcome.result == "temperror"
    assert elapsed < 3.0


def test_a_stopped_server_is_temperror_and_answers_seen_are_kept(tmp_path: Path) -> None:
    dns = KnotDns(tmp_path / "knot", {"example.org": zone_text("example.org", [
        '@ TXT "v=spf1 ip4:192.0.2.1 -all"', 'other TXT "v=spf1 -all"'])})
    with dns:
        checker = SpfChecker(dns.resolver_spec, 1.0)
        try:
            assert check(checker)[0].result == "pass"
            dns.stop()
            kept, _ = check(checker)            # the record is kept for its TTL (60 s)
            outcome, elapsed = check(checker, mail_from="a@other.example.org")
        finally:
            checker.close()
    assert kept.result == "pass"
    assert outcome.result == "temperror"
    assert elapsed < 3.0


def test_a_burst_from_one_domain_asks_the_server_once(tmp_path: Path) -> None:
    """40 checks at once for one domain all get the answer (this machine's own resolver
    drops identical queries arriving together: without the shared lookup they time out)."""
    dns = KnotDns(tmp_path / "knot", {"example.org": zone_text("example.org", [
        '@ TXT "v=spf1 a:mx.example.org -all"', "mx A 192.0.2.1"])})
    with dns:
        checker = SpfChecker(dns.resolver_spec, 2.0)

        async def burst() -> list[SpfOutcome]:
            return list(await asyncio.gather(*(
                checker.check("192.0.2.1", "h.example.org", f"u{n}@example.org")
                for n in range(40))))

        try:
            outcomes = asyncio.run(burst())
        finally:
            checker.close()
    assert {o.result for o in outcomes} == {"pass"}


def test_checkers_with_different_resolvers_run_side_by_side(tmp_path: Path) -> None:
    """Two servers give example.org opposite records; 40 evaluations interleaved on two
    checkers each see their own server's answer."""
    def zone(qualifier: str) -> dict[str, str]:
        return {"example.org": zone_text("example.org", [
            f'@ TXT "v=spf1 include:inc.example.org {qualifier}all"',
            '@ A 192.0.2.200', 'inc TXT "v=spf1 a:example.org"'])}

    with KnotDns(tmp_path / "one", zone("+")) as one, KnotDns(tmp_path / "two", zone("-")) as two:
        checkers = (SpfChecker(one.resolver_spec, 2.0), SpfChecker(two.resolver_spec, 2.0))

        async def run_all() -> list[SpfOutcome]:
            return await asyncio.gather(*(checkers[i % 2].check("192.0.2.1", "h.example.org",
                                                                "a@example.org")
                                          for i in range(40)))
        try:
            outcomes = asyncio.run(run_all())
        finally:
            for checker in checkers:
                checker.close()
    assert [o.result for o in outcomes] == ["pass", "fail"] * 20


class CountingResolver(dns.resolver.Resolver):
    """A real resolver that counts the queries it sends."""

    def __init__(self, spec: str) -> None:
        super().__init__(configure=False)
        host, _, port = spec.rpartition(":")
        self.nameservers, self.port = [host], int(port)
        self.sent: list[tuple[str, str]] = []
        self._count_lock = threading.Lock()

    def resolve(self, qname: Any, rdtype: Any = "A", *args: Any,
                **kwargs: Any) -> dns.resolver.Answer:
        with self._count_lock:
            self.sent.append((str(qname), str(rdtype)))
        time.sleep(0.05)                        # let the other threads pile up behind it
        return super().resolve(qname, rdtype, *args, **kwargs)


def test_shared_lookup_sends_one_query_for_many_threads_and_keeps_it(tmp_path: Path) -> None:
    with KnotDns(tmp_path / "knot", {"example.org": zone_text("example.org", [
            '@ TXT "v=spf1 -all"'])}) as dns_server:
        resolver = CountingResolver(dns_server.resolver_spec)
        lookup = SharedLookup(resolver)
        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(lambda _: lookup("example.org", "TXT", 2.0), range(20)))
        assert all(a == answers[0] and a for a in answers)
        assert lookup("example.org", "TXT", 2.0) == answers[0]       # kept (TTL 60)
        assert lookup("nothing.example.org", "TXT", 2.0) == []       # NXDOMAIN, kept too
        assert lookup("nothing.example.org", "TXT", 2.0) == []
    assert resolver.sent == [("example.org.", "TXT"), ("nothing.example.org.", "TXT")]
