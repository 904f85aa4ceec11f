"""Fuzz the settings file writer: whatever values the schema accepts, render_toml round-trips."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from appliance.settings import SCHEMA, Setting, load_settings, render_toml

TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=40)


def values_for(setting: Setting) -> st.SearchStrategy[Any]:
    if setting.choices:
        return st.sampled_from(setting.choices)
    if setting.kind is bool:
        return st.booleans()
    if setting.kind is int:
        return st.integers(setting.minimum, setting.maximum)
    if setting.validate is not None:     # sizes ("512MiB", "5%"), clamd addresses, or
        if _accepted(setting, "512MiB") and not _accepted(setting, "zone.example"):
            return SIZES                     # lists (zones, domains) and scores: their own
        # tests cover them; here the default
        if _accepted(setting, "127.0.0.1:3310") and not _accepted(setting, "zone.example"):
            return ADDRESSES if _accepted(setting, "/run/clamd.ctl") else HOST_PORTS
        return st.just(setting.default)
    return TEXT


SIZES = st.one_of(
    st.builds(lambda n, u: f"{n}{u}", st.integers(0, 10**6),
              st.sampled_from(["", "K", "MiB", "G", "TB"])),
    st.builds(lambda p: f"{p}%", st.integers(0, 100)))
HOST_PORTS = st.builds(lambda h, p: f"{h}:{p}", st.sampled_from(["127.0.0.1", "[::1]", "av"]),
                       st.integers(1, 65535))
ADDRESSES = st.one_of(HOST_PORTS, TEXT.map(lambda t: "/" + t))     # clamd: TCP or a socket


def _accepted(setting: Setting, value: str) -> bool:
    assert setting.validate is not None
    try:
        setting.validate(value)
    except ValueError:
        return False
    return True


ALL_VALUES = st.fixed_dictionaries({s.name: values_for(s) for s in SCHEMA})


@given(ALL_VALUES)
def test_render_toml_round_trips_every_valid_value(values: dict[str, Any]) -> None:
    text = render_toml(values)
    loaded = load_settings(Path("/nonexistent/mailstead.toml"), {},
                           reader=lambda _path: text.encode("utf-8"))
    assert dict(loaded.values) == values
