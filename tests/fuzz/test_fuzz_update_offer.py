"""Fuzz the update client's choice among signed targets (appliance/update/trust.py): the
custom metadata of a target is the publisher's JSON; whatever it holds, the choice never
raises, never offers a version at or below the running one, and respects min_version."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from packaging.version import Version
from tuf.api._payload import TargetFile

from appliance.update.repository import target_path
from appliance.update.trust import choose_offer

GOOD_VERSIONS = st.sampled_from(["0", "1.0", "1.1", "1.10", "1.2rc1", "2.0b1", "2!0.1",
                                 "1.0.post1", "v1.3", "1.0+local"])
VERSIONS = GOOD_VERSIONS | st.sampled_from(["", "x", "1.0-", " 1.4 ", "1..2"])
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=6)
WELL_FORMED = st.fixed_dictionaries({"version": GOOD_VERSIONS,
                                     "min_version": st.just("0") | GOOD_VERSIONS,
                                     "data_schema": st.integers(0, 9)})
ODD = st.fixed_dictionaries({"version": VERSIONS, "min_version": VERSIONS,
                             "data_schema": st.integers(-2, 9) | st.booleans() | JSON})
CUSTOM = st.one_of(WELL_FORMED, WELL_FORMED, ODD, JSON)


@st.composite
def targets(draw: st.DrawFn) -> TargetFile:
    custom: Any = draw(CUSTOM)
    named = isinstance(custom, dict) and isinstance(custom.get("version"), str)
    path = (target_path(draw(st.sampled_from(["stable", "stable", "beta"])), custom["version"])
            if named and draw(st.integers(0, 3)) else draw(st.text(max_size=30)))
    hashes = draw(st.sampled_from([{"sha256": "ab" * 32}] * 3 + [{"sha512": "cd" * 64}]))
    return TargetFile(draw(st.integers(0, 10**12)), hashes, path, {"custom": custom})


@given(st.lists(targets(), max_size=6), st.sampled_from(["1.0", "1.1", "0", "2.0"]))
def test_choice_is_newer_allowed_and_never_raises(found: list[TargetFile],
                                                  current: str) -> None:
    offer = choose_offer("stable", found, Version(current))
    if offer is None:
        return
    assert Version(offer.version) > Version(current)
    assert Version(offer.min_version) <= Version(current)
    assert offer.target_path == target_path("stable", offer.version)
    assert isinstance(offer.data_schema, int)
    assert not isinstance(offer.data_schema, bool)
    newer = [t for t in found if t.path.startswith("stable/")
             and isinstance(t.custom, dict) and t.custom.get("version") == offer.version]
    assert newer
