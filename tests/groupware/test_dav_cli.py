"""`mailstead dav provision` and removing an account's collections, on a real data
directory: the defaults appear as Radicale collections with their props, the shared area
of the domain too, a second run creates nothing, and `remove_account` deletes one
account's tree and nothing else."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.groupware.provision import provision_account
from appliance.groupware.storage import (
    account_folder,
    collections_folder,
    open_storage,
    remove_account,
    remove_shared_area,
)

from .conftest import ALICE, BOB, dav_settings


def _mailstead(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSTEAD_")}
    return subprocess.run([sys.executable, "-m", "appliance", "--config", str(config), *args],
                          capture_output=True, text=True, env=env, timeout=60)


def test_provision_command_creates_the_defaults(tmp_path: Path) -> None:
    settings = dav_settings(tmp_path / "data")
    assert settings.source is not None
    first = _mailstead(settings.source, "dav", "provision", "Alice@EXAMPLE.test")
    assert first.returncode == 0, first.stderr
    root = collections_folder(settings.data_dir) / "collection-root"
    props = json.loads((root / ALICE / "calendar" / ".Radicale.props").read_text())
    assert props["tag"] == "VCALENDAR"
    assert props["C:supported-calendar-component-set"] == "VEVENT"
    tasks = json.loads((root / ALICE / "tasks" / ".Radicale.props").read_text())
    assert tasks["C:supported-calendar-component-set"] == "VTODO"
    contacts = json.loads((root / ALICE / "contacts" / ".Radicale.props").read_text())
    assert contacts["tag"] == "VADDRESSBOOK"
    for name in ("calendar", "contacts"):
        assert (root / "shared.example.test" / name / ".Radicale.props").is_file()
    mode = stat.S_IMODE(collections_folder(settings.data_dir).stat().st_mode)
    assert mode == 0o700
    again = _mailstead(settings.source, "dav", "provision", ALICE)
    assert again.returncode == 0
    assert "all default collections exist" in again.stdout
    bad = _mailstead(settings.source, "dav", "provision", "not an address")
    assert bad.returncode == 2
    assert "not an address" in bad.stderr


def test_provision_brings_back_a_deleted_default_only_on_request(tmp_path: Path) -> None:
    settings = dav_settings(tmp_path / "data")
    storage = open_storage(settings.data_dir)
    assert len(provision_account(storage, ALICE)) == 7       # 2 principals + 5 collections
    tasks = account_folder(settings.data_dir, ALICE) / "tasks"
    import shutil

    shutil.rmtree(tasks)
    assert provision_account(storage, ALICE) == []           # the principal exists: as is
    assert provision_account(storage, ALICE, force=True) == [f"/{ALICE}/tasks/"]


def test_remove_account_deletes_only_that_tree(tmp_path: Path) -> None:
    settings = dav_settings(tmp_path / "data")
    storage = open_storage(settings.data_dir)
    provision_account(storage, ALICE)
    provision_account(storage, BOB)
    assert remove_account(settings.data_dir, "ALICE@example.test")
    assert not account_folder(settings.data_dir, ALICE).exists()
    assert account_folder(settings.data_dir, BOB).is_dir()
    root = collections_folder(settings.data_dir) / "collection-root"
    assert (root / "shared.example.test").is_dir()
    assert not remove_account(settings.data_dir, ALICE)       # nothing left: False


@pytest.mark.parametrize("address", ["../etc", "alice@example.test/../../x", "", "shared.x"])
def test_remove_account_refuses_what_is_not_an_address(tmp_path: Path, address: str) -> None:
    with pytest.raises(ValueError, match="not an account address"):
        remove_account(tmp_path, address)


def test_remove_shared_area_of_a_domain(tmp_path: Path) -> None:
    settings = dav_settings(tmp_path / "data")
    provision_account(open_storage(settings.data_dir), ALICE)
    root = collections_folder(settings.data_dir) / "collection-root"
    assert remove_shared_area(settings.data_dir, "EXAMPLE.test")
    assert not (root / "shared.example.test").exists()
    assert account_folder(settings.data_dir, ALICE).is_dir()
    assert not remove_shared_area(settings.data_dir, "example.test")
    with pytest.raises(ValueError, match="not a domain"):
        remove_shared_area(settings.data_dir, "../x")
