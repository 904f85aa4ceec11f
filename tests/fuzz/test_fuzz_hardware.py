"""Fuzz the hardware parsers: /proc/mdstat, mdadm --detail --export and smartctl JSON never
raise on any input (only SmartParseError for non-objects), and mutated real fixtures keep
their structure."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from appliance.hardware.readers import mdadm, mdstat, smart
from appliance.hardware.rules import evaluate
from appliance.hardware.rules.base import Disk, Snapshot, Thresholds

FIXTURES = Path(__file__).parent.parent / "fixtures" / "hardware"
MDSTATS = [p.read_text() for p in sorted((FIXTURES / "mdstat").glob("*.txt"))]
SMART = [json.loads(p.read_text()) for p in sorted((FIXTURES / "smartctl").glob("*.json"))]
MDSTAT_WORDS = st.sampled_from(["md0", ":", "active", "inactive", "raid1", "raid5", "sda1[0]",
                                "sdb1[1](F)", "sdc[2](S)", "[2/1]", "[U_]", "blocks", "super",
                                "1.2", "recovery", "=", "12.5%", "(1/2)", "finish=1.0min",
                                "speed=10K/sec", "bitmap:", "0/1", "pages", "[0KB],",
                                "65536KB", "chunk", "resync=DELAYED", "\n", "  ", "\t"])
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                    | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=5)
                    | st.dictionaries(st.text(max_size=12), inner, max_size=5), max_leaves=40)


@given(st.text(max_size=2000))
def test_mdstat_any_text(text: str) -> None:
    parsed = mdstat.parse_mdstat(text)
    for array in parsed.arrays:
        assert array.missing >= 0


@given(st.lists(MDSTAT_WORDS, max_size=80).map(" ".join))
def test_mdstat_shaped_text(text: str) -> None:
    for array in mdstat.parse_mdstat("Personalities : [raid1]\n" + text).arrays:
        assert isinstance(array.degraded, bool)


@given(st.sampled_from(MDSTATS), st.integers(0, 2000), st.text(max_size=20))
def test_mdstat_fixture_with_an_insertion(text: str, at: int, insert: str) -> None:
    mdstat.parse_mdstat(text[:at] + insert + text[at:])


@given(st.text(max_size=1000))
def test_mdadm_export_any_text(text: str) -> None:
    detail = mdadm.parse_detail_export(text)
    assert detail.raid_devices is None or detail.raid_devices >= 0


@given(st.binary(max_size=500))
def test_smartctl_any_bytes(data: bytes) -> None:
    with contextlib.suppress(smart.SmartParseError):
        smart.parse_smartctl(data)


@given(st.dictionaries(st.text(max_size=30), JSON, max_size=10))
def test_smartctl_any_object(doc: Any) -> None:
    report = smart.parse_smartctl(json.dumps(doc))
    assert report.kind in ("nvme", "ssd", "hdd", "unknown")


def _mutate(doc: Any, path: list[int], value: Any) -> Any:
    """Replace one node of `doc` chosen by `path` with `value`."""
    if not path or not isinstance(doc, (dict, list)) or not doc:
        return value
    keys = list(doc) if isinstance(doc, dict) else list(range(len(doc)))
    key = keys[path[0] % len(keys)]
    copy = dict(doc) if isinstance(doc, dict) else list(doc)
    copy[key] = _mutate(doc[key], path[1:], value)
    return copy


@given(st.sampled_from(SMART), st.lists(st.integers(0, 100), max_size=6), JSON)
def test_mutated_real_smartctl_reports_are_judged(doc: Any, path: list[int], value: Any) -> None:
    try:
        report = smart.parse_smartctl(json.dumps(_mutate(doc, path, value)))
    except smart.SmartParseError:
        assert not isinstance(_mutate(doc, path, value), dict)
        return
    evaluate(Snapshot(0.0, (Disk("sda", None, report),)), Thresholds())
