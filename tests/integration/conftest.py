"""The module-scoped MX engine: one engine per test module, settings from `MX_SETTINGS`.

A module that needs other limits declares `MX_SETTINGS = {"limits__idle_timeout": 5}`; the
engine has domain example.test with accounts alice and bob. Tests that count messages use
their own accounts (`new_account`) so that modules can share one engine.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest

from harness.engine import EngineProcess

DOMAIN = "example.test"
_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def mx(request: pytest.FixtureRequest,
       tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    """A running engine shared by the tests of one module; it must stop cleanly (status 0)."""
    settings = getattr(request.module, "MX_SETTINGS", {})
    proc = EngineProcess(tmp_path_factory.mktemp("mx") / "data", **settings)
    proc.start()
    proc.add_domain(DOMAIN)
    proc.add_account(f"alice@{DOMAIN}")
    proc.add_account(f"bob@{DOMAIN}")
    try:
        yield proc
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            status = proc.stop()
            assert status == 0, f"engine exited with {status}:\n{proc.log_text()[-3000:]}"


@pytest.fixture
def new_account(mx: EngineProcess) -> Callable[[str], str]:
    """Make a fresh account `<stem>N@example.test` (empty Maildir) and return its address."""

    def make(stem: str) -> str:
        address = f"{stem}{next(_numbers)}@{DOMAIN}"
        mx.add_account(address)
        return address

    return make
