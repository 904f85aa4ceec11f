"""The TXT lookups of the DKIM and DMARC checks keep answers for their TTL and share a
lookup under way (appliance/checks/auth_dns.py), against a real Knot DNS."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from appliance.checks.auth_dns import DnsTempError, TxtLookup
from peers.dns import KnotDns, zone_text


def test_answers_are_kept_errors_are_not(tmp_path: Path) -> None:
    knot = KnotDns(tmp_path / "knot", {"example.org": zone_text("example.org", [
        '_dmarc TXT "v=DMARC1; p=reject"'])})
    with knot:
        lookup = TxtLookup(knot.resolver_spec, 1.0)

        async def burst() -> list[tuple[bytes, ...]]:
            return list(await asyncio.gather(*(lookup.txt("_dmarc.Example.ORG.")
                                               for _ in range(40))))

        assert set(asyncio.run(burst())) == {(b"v=DMARC1; p=reject",)}
        assert asyncio.run(lookup.txt("_dmarc.none.example.org")) == ()     # NXDOMAIN
        knot.stop()
        # kept: the record for its TTL (60 s), "no record" for a minute
        assert asyncio.run(lookup.txt("_dmarc.example.org")) == (b"v=DMARC1; p=reject",)
        assert asyncio.run(lookup.txt("_dmarc.none.example.org")) == ()
        with pytest.raises(DnsTempError):       # never asked before: the server is gone
            asyncio.run(lookup.txt("_dmarc.other.example.org"))
        with pytest.raises(DnsTempError):       # and the error was not kept as an answer
            asyncio.run(lookup.txt("_dmarc.other.example.org"))
