"""The RFC 7208 test suite (tests/data/spf/rfc7208-tests.yml) and our own hostile scenarios
(tests/data/spf/hostile.yml, same format) through `SpfChecker` over real DNS.

Every scenario's zone data is served by a real Knot DNS (one knotd per scenario, since the
scenarios reuse names with different records) and every case runs through
`SpfChecker.check` with its resolver pointed at that knotd: the whole real path (dnspython
over UDP, TCP for large answers, pyspf, our adapter). A case passes when the result is one
of the case's allowed results and, where the case names an explanation, ours is the same.

How the suite's zone data becomes zones (the suite's own driver, pyspf's test/testspf.py,
feeds it to pyspf's DNSLookup hook; we serve it instead):

- All records go into one root zone ".", so any name the data does not list is NXDOMAIN,
  as in the suite's driver (which answers "no records" for unlisted names).
- `SPF: ...` records are served as type SPF (99), and also as TXT when the name has no TXT
  entry: the suite relies on drivers duplicating them ("auto-magic duplication", see the
  YAML's header); `TXT: NONE` means no TXT record.
- `TIMEOUT`: the suite's driver times out a query for a type that has no record listed
  before the marker. Knot cannot time out for one name, but it answers SERVFAIL for a zone
  it is configured to serve and cannot load; to RFC 7208 5 a timeout and SERVFAIL are the
  same DNS error (temperror). So a name whose TXT query would time out becomes such a
  broken zone (every type fails there; names listed below it get zones of their own). The
  one name whose TIMEOUT only hits types we never ask (spftimeout.example.net: TXT listed
  first; only type SPF would time out, and RFC 7208 3.1 implementations query TXT only) is
  served normally. A real timeout (a server that never answers) is tested in
  test_spf_hostile.py.
- A TXT record with no strings (`SPF: []`, "illegal, but SPF should not crash") is served
  as one empty string: DNS cannot carry a TXT record with none.

No case uses pyspf's test-DNS hook; no case is skipped or expected to fail.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import spf  # type: ignore[import-untyped]
import yaml

from appliance.checks.spf import RESULTS, SpfChecker, clean_explanation
from peers.dns import KnotDns, zone_text

pytestmark = pytest.mark.timeout(600)
DATA = Path(__file__).resolve().parent.parent / "data" / "spf"
SUITES = ("rfc7208-tests.yml", "hostile.yml")
TXT_TYPES = ("TXT", "SPF")
DNS_TIMEOUT = 3.0


@dataclass(frozen=True)
class Scenario:
    key: str                       # "<file>#<number>"
    description: str
    zonedata: dict[str, list[Any]]


@dataclass(frozen=True)
class Case:
    scenario: Scenario
    name: str
    spec: dict[str, Any]

    @property
    def allowed(self) -> tuple[str, ...]:
        result = self.spec["result"]
        return tuple(result) if isinstance(result, list) else (result,)


def load_cases() -> list[Case]:
    cases: list[Case] = []
    for suite in SUITES:
        with open(DATA / suite, "rb") as stream:
            for number, data in enumerate(yaml.safe_load_all(stream)):
                scenario = Scenario(f"{suite}#{number}", data["description"],
                                    data["zonedata"])
                cases += [Case(scenario, name, spec) for name, spec in data["tests"].items()]
    return cases


CASES = load_cases()


# -- zone data -> zone files ----------------------------------------------------------------

def zone_name(name: str) -> str:
    """`name` as an absolute zone-file name; characters other than letters, digits, '-' and
    '_' are written as \\DDD (the suite has names like foo:bar/baz.example.com)."""
    labels = name.rstrip(".").split(".")
    if not name.rstrip(".") or any(not 0 < len(label) < 64 for label in labels):
        raise ValueError(f"not a DNS name: {name!r}")
    return ".".join("".join(c if c.isascii() and (c.isalnum() or c in "-_")
                            else "".join(f"\\{b:03d}" for b in c.encode())
                            for c in label) for label in labels) + "."


def character_strings(value: str | list[str]) -> str:
    """TXT/SPF rdata: each string UTF-8 encoded (as the suite's driver does), split into
    pieces of at most 255 octets, unprintable octets and quotes escaped."""
    strings = [value] if isinstance(value, str) else list(value)
    pieces: list[bytes] = []
    for text in strings:
        data = text.encode("utf-8")
        pieces += [data[i:i + 255] for i in range(0, len(data), 255)] or [b""]
    if not pieces:
        pieces = [b""]              # a TXT record with no strings cannot be served
    return " ".join('"' + "".join(chr(b) if 0x20 <= b < 0x7F and b not in b'"\\'
                                  else f"\\{b:03d}" for b in piece) + '"'
                    for piece in pieces)


def rdata(rtype: str, value: Any) -> str:
    if rtype in TXT_TYPES:
        return character_strings(value)
    if rtype == "MX":
        preference, host = value
        return f"{int(preference)} {zone_name(host) if host else '.'}"
    if rtype in ("PTR", "CNAME"):
        return zone_name(value)
    if rtype in ("A", "AAAA") and isinstance(value, str):
        return value
    raise ValueError(f"record type {rtype} {value!r} not handled")


def name_records(entries: list[Any]) -> tuple[list[tuple[str, Any]], bool]:
    """The records one name serves, and whether its TXT query must fail (see the module
    docstring: TIMEOUT with no TXT record listed before it)."""
    records: list[tuple[str, Any]] = []
    generated: list[tuple[str, Any]] = []
    has_txt = txt_before_timeout = timeout = False
    for entry in entries:
        if entry == "TIMEOUT":
            timeout = True
            continue
        ((rtype, value),) = entry.items()
        if rtype == "TXT":
            has_txt = True
        elif rtype == "SPF":
            generated.append(("TXT", value))
        if value != "NONE":
            records.append((rtype, value))
            txt_before_timeout |= rtype == "TXT" and not timeout
    if not has_txt:
        records += generated
    return records, timeout and not txt_before_timeout


def under(name: str, ancestor: str) -> bool:
    return name.lower().endswith("." + ancestor.lower())


def build_zones(zonedata: dict[str, list[Any]]) -> tuple[dict[str, str], list[str]]:
    """Zone texts by zone name ("." holds all but names below a broken zone), and the names
    of the broken zones (configured without a zone file: Knot answers SERVFAIL)."""
    parsed = {name.rstrip("."): name_records(entries) for name, entries in zonedata.items()}
    broken = [name for name, (_, fails) in parsed.items() if fails]
    root: list[str] = []
    zones: dict[str, str] = {}
    for name, (records, fails) in parsed.items():
        lines = [f"{zone_name(name)} {rtype} {rdata(rtype, value)}" for rtype, value in records]
        if fails:
            continue                # the whole name is a broken zone
        if any(under(name, b) for b in broken):
            if any(rtype == "CNAME" for rtype, _ in records):
                raise ValueError(f"{name}: a CNAME cannot be a zone apex")
            zones[name] = zone_text(zone_name(name), lines)
        else:
            root += lines
    zones["."] = zone_text(".", root)
    return zones, broken


class ScenarioDns(KnotDns):
    """KnotDns serving the root zone plus broken zones (configured, never loaded)."""

    def __init__(self, workdir: Path, zonedata: dict[str, list[Any]]) -> None:
        zones, self.broken = build_zones(zonedata)
        super().__init__(workdir, zones)

    def _write(self) -> None:
        super()._write()
        zones = self.workdir / "zones"
        (zones / "..zone").replace(zones / ".zone")   # knotd's "%s" is "" for the root

    def _config(self) -> str:
        return super()._config() + "".join(f"  - domain: {name}\n" for name in self.broken)


class Servers:
    """One knotd at a time: the one for the scenario the current case belongs to (the cases
    run in file order, so each scenario's server starts once)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.key = ""
        self.dns: ScenarioDns | None = None
        self.checker: SpfChecker | None = None

    def checker_for(self, scenario: Scenario) -> SpfChecker:
        if self.key != scenario.key or self.checker is None:
            self.close()
            self.dns = ScenarioDns(self.workdir / scenario.key.replace("#", "-"),
                                   scenario.zonedata)
            self.dns.start()
            self.key = scenario.key
            self.checker = SpfChecker(self.dns.resolver_spec, DNS_TIMEOUT,
                                      receiver="mx.example.net")
        return self.checker

    def close(self) -> None:
        if self.checker is not None:
            self.checker.close()
        if self.dns is not None:
            self.dns.stop()
        self.dns, self.checker = None, None


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    running = Servers(tmp_path_factory.mktemp("spf-suite"))
    try:
        yield running
    finally:
        running.close()


def expected_explanation(case: Case) -> str | None:
    """The case's explanation in our terms: the suite's driver sets the default explanation
    to "DEFAULT"; ours is pyspf's default text."""
    text = case.spec.get("explanation")
    if text is None:
        return None
    return spf.EXPLANATIONS["fail"] if text == "DEFAULT" else clean_explanation(str(text))


@pytest.mark.parametrize("case", CASES, ids=[f"{c.scenario.key}:{c.name}" for c in CASES])
def test_case(case: Case, servers: Servers) -> None:
    checker = servers.checker_for(case.scenario)
    spec = case.spec
    mail_from, helo = str(spec["mailfrom"]), str(spec["helo"])
    outcome = asyncio.run(checker.check(str(spec["host"]), helo, mail_from))
    assert outcome.result in RESULTS
    assert outcome.result in case.allowed, (
        f"{case.name} (RFC 7208 {spec['spec']}): got {outcome.result} "
        f"({outcome.explanation}), allowed {case.allowed}")
    explanation = expected_explanation(case)
    if explanation is not None:
        assert outcome.explanation == explanation
    assert outcome.scope == ("mailfrom" if mail_from else "helo")
    assert ";" not in outcome.resinfo
    assert outcome.resinfo.startswith(f"spf={outcome.result} ")


def test_the_whole_suite_is_here() -> None:
    """Every case of the published suite is run (203 in release 2014.04 + 2019.08)."""
    official = [c for c in CASES if c.scenario.key.startswith("rfc7208-tests.yml")]
    assert len(official) == 203
    assert len({(c.scenario.key, c.name) for c in CASES}) == len(CASES)


def test_zone_conversion_keeps_timeouts_and_generated_txt() -> None:
    zones, broken = build_zones({
        "spf.example.net": [{"SPF": "v=spf1 -all"}],
        "both.example.net": [{"TXT": "v=spf1 +all"}, {"SPF": "v=spf1 -all"}],
        "late.example.net": [{"SPF": "v=spf1 -all"}, "TIMEOUT"],
        "early.example.net": [{"TXT": "v=spf1 -all"}, "TIMEOUT"],
        "x.late.example.net": [{"A": "192.0.2.1"}],
        "odd:name/x.example.net": [{"TXT": ["v=spf1 ", "\x96" + "a" * 300]}],
    })
    assert broken == ["late.example.net"]
    root = zones["."]
    assert 'spf.example.net. SPF "v=spf1 -all"' in root
    assert 'spf.example.net. TXT "v=spf1 -all"' in root
    assert root.count("both.example.net. TXT") == 1          # TXT given: none generated
    assert 'early.example.net. TXT "v=spf1 -all"' in root
    assert "late.example.net" not in root.replace("x.late.example.net", "")
    assert "x.late.example.net. A 192.0.2.1" in zones["x.late.example.net"]
    assert 'odd\\058name\\047x.example.net. TXT "v=spf1 " "\\194\\150' + "a" * 253 + '" "' \
        + "a" * 47 + '"' in root
