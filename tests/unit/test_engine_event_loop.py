"""`engine.event_loop`: the engine runs on uvloop unless the stock loop is chosen (issue 4,
fifth pass, tests/bench/README.md)."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

import pytest

from appliance import workers
from appliance.settings import Settings, SettingsError, load_settings, render_toml


def _settings(tmp_path: Path, loop: str | None) -> Settings:
    config = tmp_path / "mailstead.toml"
    config.write_text(render_toml({} if loop is None else {"engine.event_loop": loop}))
    return load_settings(config, environ={})


async def _loop_type() -> str:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop()).__module__


def test_the_default_is_uvloop(tmp_path: Path) -> None:
    assert _settings(tmp_path, None)["engine.event_loop"] == "uvloop"


def test_the_stock_loop_when_chosen(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "asyncio")
    assert workers.run_loop(settings, _loop_type()).startswith("asyncio")


def test_other_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"engine\.event_loop"):
        _settings(tmp_path, "trio")


def test_uvloop_when_chosen(tmp_path: Path) -> None:
    assert importlib.util.find_spec("uvloop") is not None, "uvloop is a dependency"
    assert workers.run_loop(_settings(tmp_path, "uvloop"), _loop_type()) == "uvloop"


def test_uvloop_chosen_but_missing_names_the_setting(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)     # what an import of a missing one does
    with pytest.raises(RuntimeError, match=r"engine\.event_loop"):
        workers.loop_factory(_settings(tmp_path, "uvloop"))
