"""Sizes in settings, and the free-space floor."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.core.errors import MailError
from appliance.core.sizes import SpaceAmount, parse_space
from appliance.pipeline.space import SpaceGuard
from appliance.settings import SettingsError, load_settings
from appliance.smtp import replies


@pytest.mark.parametrize(("text", "amount"), [
    ("0", SpaceAmount(0)), ("1048576", SpaceAmount(1048576)), ("500K", SpaceAmount(512000)),
    ("512MiB", SpaceAmount(512 * 1024**2)), ("2GB", SpaceAmount(2 * 1024**3)),
    ("1t", SpaceAmount(1024**4)), ("5%", SpaceAmount(percent=5.0)),
    ("0.5 %", SpaceAmount(percent=0.5)), ("100%", SpaceAmount(percent=100.0))])
def test_parse_space(text: str, amount: SpaceAmount) -> None:
    assert parse_space(text) == amount


@pytest.mark.parametrize("text", ["", "-1", "5 apples", "101%", "1.5G", "%"])
def test_parse_space_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"percentage|expected"):
        parse_space(text)


def test_setting_is_validated() -> None:
    assert load_settings(None, {"MAILSTEAD_LIMITS__MIN_FREE_SPACE": "5%"})[
        "limits.min_free_space"] == "5%"
    with pytest.raises(SettingsError, match=r"limits\.min_free_space"):
        load_settings(None, {"MAILSTEAD_LIMITS__MIN_FREE_SPACE": "lots"})


def fake_disk(free: int, total: int = 1000) -> SpaceGuard:
    return SpaceGuard(Path("/"), SpaceAmount(100), lambda _p: (free, total))


def test_guard_bytes_floor() -> None:
    assert fake_disk(200).has_room(100)
    assert not fake_disk(200).has_room(101)
    assert not fake_disk(99).has_room()
    with pytest.raises(MailError) as caught:
        fake_disk(50).check(1)
    assert caught.value.reply == replies.INSUFFICIENT_STORAGE
    assert caught.value.temporary


def test_guard_percent_and_off() -> None:
    guard = SpaceGuard(Path("/"), SpaceAmount(percent=10), lambda _p: (150, 1000))
    assert guard.has_room(50)
    assert not guard.has_room(51)
    assert SpaceGuard(Path("/"), SpaceAmount(0), lambda _p: (0, 1000)).has_room(10**9)


def test_guard_on_a_real_directory(tmp_path: Path) -> None:
    assert SpaceGuard(tmp_path, SpaceAmount(0)).has_room()
    assert not SpaceGuard(tmp_path, SpaceAmount(percent=100)).has_room()
    assert not SpaceGuard(tmp_path, parse_space("1000000T")).has_room()


def test_guard_reuses_a_reading_for_a_moment() -> None:
    readings = iter([(200, 1000), (50, 1000)])
    now = [0.0]
    guard = SpaceGuard(Path("/"), SpaceAmount(100), lambda _p: next(readings),
                       interval=0.1, clock=lambda: now[0])
    assert guard.has_room(100)
    now[0] = 0.09
    assert guard.has_room(100)      # the same reading: the file system was not asked again
    assert not guard.has_room(101)
    now[0] = 0.1
    assert not guard.has_room()     # a new reading: the disk has filled up
