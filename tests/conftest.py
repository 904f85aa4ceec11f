"""Shared fixtures: a real engine subprocess on free loopback ports with a temp data dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.engine import EngineProcess


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[EngineProcess]:
    """A running engine with domain example.test and accounts alice and bob."""
    proc = EngineProcess(tmp_path / "data")
    proc.start()
    proc.add_domain("example.test")
    proc.add_account("alice@example.test")
    proc.add_account("bob@example.test")
    try:
        yield proc
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.stop()
