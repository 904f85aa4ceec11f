"""Shared fixtures: a real engine subprocess on free loopback ports with a temp data dir."""

from __future__ import annotations

import os
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


@pytest.fixture(autouse=True)
def _keep_the_umask() -> Iterator[None]:
    """`appliance.cli.main` sets the process umask to 077 (right for a command); tests that
    call it in-process must not leave it so, or later peers' files (Postfix's queue) become
    unreadable to their own unprivileged users."""
    mask = os.umask(0o022)
    os.umask(mask)
    yield
    os.umask(mask)
