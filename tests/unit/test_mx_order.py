"""MX ordering (RFC 5321 5.1), null MX detection (RFC 7505) and the resolver setting."""

from __future__ import annotations

import collections
import random

import pytest

from appliance.outbound.mx import MxHost, is_null_mx, order_mx, parse_resolver


def test_lowest_preference_first() -> None:
    hosts = order_mx([(20, "b.peer.test."), (10, "a.peer.test."), (30, "c.peer.test.")],
                     random.Random(1))
    assert hosts == [MxHost("a.peer.test", 10), MxHost("b.peer.test", 20),
                     MxHost("c.peer.test", 30)]


def test_names_are_lower_case_without_the_root_dot() -> None:
    assert order_mx([(5, "MX.Peer.TEST.")], random.Random(0)) == [MxHost("mx.peer.test", 5)]


def test_a_host_listed_twice_keeps_its_best_preference() -> None:
    hosts = order_mx([(30, "a.test."), (10, "a.test."), (20, "b.test.")], random.Random(0))
    assert hosts == [MxHost("a.test", 10), MxHost("b.test", 20)]


def test_null_targets_are_dropped_among_real_ones() -> None:
    assert order_mx([(0, "."), (10, "mx.test.")], random.Random(0)) == [MxHost("mx.test", 10)]


def test_equal_preferences_are_shuffled_but_stay_behind_better_ones() -> None:
    records = [(10, "a."), (10, "b."), (10, "c."), (5, "first."), (20, "last.")]
    rng = random.Random(7)
    firsts: collections.Counter[str] = collections.Counter()
    for _ in range(600):
        hosts = order_mx(records, rng)
        assert hosts[0].name == "first"
        assert hosts[-1].name == "last"
        assert sorted(h.name for h in hosts[1:4]) == ["a", "b", "c"]
        firsts[hosts[1].name] += 1
    # each of the three equals leads about a third of the time
    assert all(150 < firsts[name] < 250 for name in "abc"), firsts


def test_ordering_is_reproducible_with_a_seeded_generator() -> None:
    records = [(10, f"h{i}.") for i in range(8)]
    assert order_mx(records, random.Random(3)) == order_mx(records, random.Random(3))


@pytest.mark.parametrize(("records", "null"), [
    ([(0, ".")], True), ([(0, "")], True), ([(0, "."), (10, "mx.test.")], False),
    ([(10, "mx.test.")], False), ([], False),
])
def test_null_mx(records: list[tuple[int, str]], null: bool) -> None:
    assert is_null_mx(records) is null


@pytest.mark.parametrize(("spec", "parsed"), [
    ("", None), ("  ", None), ("127.0.0.1", ("127.0.0.1", 53)),
    ("127.0.0.1:5353", ("127.0.0.1", 5353)), ("::1", ("::1", 53)),
    ("[::1]:5353", ("::1", 5353)), ("[::1]", ("::1", 53)),
])
def test_parse_resolver(spec: str, parsed: tuple[str, int] | None) -> None:
    assert parse_resolver(spec) == parsed


@pytest.mark.parametrize("spec", ["localhost", "127.0.0.1:0", "127.0.0.1:70000",
                                  "127.0.0.1:x", "[::1]:", "1.2.3"])
def test_bad_resolver_specs(spec: str) -> None:
    with pytest.raises(ValueError, match=r".+"):
        parse_resolver(spec)
