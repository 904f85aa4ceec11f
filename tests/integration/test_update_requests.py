"""`mailstead update requests` (the root side of the console's update buttons) on a real data
directory: a check against a real TUF repository served over HTTPS on loopback, an install
and a reboot into it on file-backed slots, a rollback on a tmp ESP, and hostile request
files (symlink, hard link, FIFO, directory, oversize, unknown action, bad JSON, a path in a
field) refused and removed without acting."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.cli.update_cmds import running_version
from appliance.update import bundle, requests, slots, state
from appliance.update.repository import ReleaseRepository
from harness import update_image
from harness.release_mirror import release_mirror

IMAGE_BOOT = update_image.REPO / "image" / "boot"
CMDLINE = "root=PARTLABEL=root-{0} ro rootwait mailstead.slot={0} quiet\n"
SLOT_SIZE = 8 * 1024 * 1024


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[ReleaseRepository, str, Path]]:
    """A release repository served over HTTPS on loopback (harness/release_mirror.py)."""
    with release_mirror(tmp_path, "Update requests test CA") as served:
        yield served


class Box:
    """An appliance on plain files: data dir, ESP with both slots' entries, slot images,
    the kernel command line, and mailstead.toml."""

    def __init__(self, tmp_path: Path, booted: str, url: str = "", ca: Path | None = None,
                 trusted_root: Path | None = None) -> None:
        self.tmp = tmp_path
        self.data = tmp_path / "data"
        self.data.mkdir()
        self.esp = tmp_path / "esp"
        (self.esp / "loader" / "entries").mkdir(parents=True)
        shutil.copy(IMAGE_BOOT / "loader.conf", self.esp / "loader" / "loader.conf")
        template = (IMAGE_BOOT / "entry.conf.in").read_text()
        for slot in slots.SLOTS:
            self.entry(f"root-{slot}.conf").write_text(
                template.replace("@SLOT@", slot).replace("@VERSION@", running_version()))
            with (tmp_path / f"slot-{slot}.img").open("wb") as device:
                device.truncate(SLOT_SIZE)
        self.cmdline = tmp_path / "cmdline"
        self.cmdline.write_text(CMDLINE.format(booted))
        self.config = tmp_path / "mailstead.toml"
        lines = [f'[paths]\ndata_dir = "{self.data}"\n',
                 f'[hooks]\nimage_dir = ""\nadmin_dir = "{tmp_path}/hooks-admin"\n',
                 f'[update]\nurl = "{url}"\nmaintenance_window = "now"\nconnect_timeout = 5\n']
        if ca is not None and trusted_root is not None:
            lines.append(f'ca_file = "{ca}"\ntrusted_root = "{trusted_root}"\n')
        self.config.write_text("".join(lines))
        self.requests = requests.request_dir(self.data)

    def entry(self, name: str) -> Path:
        return self.esp / "loader" / "entries" / name

    def entries(self) -> list[str]:
        return sorted(p.name for p in (self.esp / "loader" / "entries").iterdir())

    def ask(self, *actions: str) -> None:
        for action in actions:
            requests.submit(self.requests, action, "admin")

    def run(self) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("MAILSTEAD_")}
        argv = [sys.executable, "-m", "appliance", "--config", str(self.config), "update",
                "requests", "--no-reboot", "--esp", str(self.esp), "--cmdline",
                str(self.cmdline)]
        for slot in slots.SLOTS:
            argv += ["--device", f"{slot}={self.tmp / f'slot-{slot}.img'}"]
        return subprocess.run(argv, capture_output=True, text=True, timeout=180, env=clean,
                              check=False)

    def state(self) -> state.UpdateState:
        return state.load(self.data / state.UPDATE_DIR)

    def esp_files(self) -> dict[str, bytes]:
        return {str(p.relative_to(self.esp)): p.read_bytes()
                for p in sorted(self.esp.rglob("*")) if p.is_file()}


def _publish(repo: ReleaseRepository, tmp_path: Path, version: str) -> None:
    data = tmp_path / f"{version}.bundle"
    data.write_bytes(f"bundle {version} ".encode() * 1000)
    repo.add_release("stable", data, version=version, min_version="0", data_schema=1)


# -- check -----------------------------------------------------------------------------------

def test_check_request_asks_the_repository_over_https_and_records_the_answer(
        tmp_path: Path, mirror: tuple[ReleaseRepository, str, Path]) -> None:
    repo, url, ca = mirror
    _publish(repo, tmp_path, "99.0.0")
    box = Box(tmp_path, "a", url, ca, repo.metadata_dir / "1.root.json")
    box.ask("check", "check")                  # asked twice: checked once
    done = box.run()
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("check: offered 99.0.0") == 1
    last = box.state().last_check
    assert last is not None
    assert (last.channel, last.result, last.detail) == ("stable", "offered 99.0.0", "")
    assert list(box.requests.iterdir()) == []
    seen = box.state().esp
    assert seen is not None
    assert seen.entries == {"a": ["root-a.conf"], "b": ["root-b.conf"]}
    assert box.state().pending is None         # a check installs nothing


def test_check_request_records_a_refusal(tmp_path: Path) -> None:
    box = Box(tmp_path, "a", "https://127.0.0.1:9/")     # nothing listens on discard
    (tmp_path / "root.json").write_text("{}")
    box.config.write_text(box.config.read_text() + f'trusted_root = "{tmp_path}/root.json"\n')
    box.ask("check")
    done = box.run()
    assert done.returncode == 1
    last = box.state().last_check
    assert last is not None
    assert last.result.startswith("refused: ")
    assert last.detail
    assert list(box.requests.iterdir()) == []


# -- install and reboot ----------------------------------------------------------------------

def test_install_then_reboot_requests_install_into_the_other_slot(
        tmp_path: Path, mirror: tuple[ReleaseRepository, str, Path]) -> None:
    update_image.ensure_tools()
    repo, url, ca = mirror
    newer = update_image.make_bundle(tmp_path / "release", "99.0.0", "0")
    repo.add_release("stable", newer, version="99.0.0", min_version="0",
                     data_schema=bundle.current_data_schema())
    box = Box(tmp_path, "a", url, ca, repo.metadata_dir / "1.root.json")
    box.ask("install", "reboot")
    done = box.run()
    assert done.returncode == 0, done.stderr
    assert "installed 99.0.0 into slot b" in done.stdout
    assert "reboot: into 99.0.0 (slot b)" in done.stdout
    found = box.state()
    assert found.pending == slots.Pending("99.0.0", "a", "b", running_version())
    assert found.last_check is not None
    assert found.last_check.result == "offered 99.0.0"
    assert found.esp is not None
    assert found.esp.entries == {"a": ["root-a.conf"], "b": ["root-b+3.conf"]}
    manifest = bundle.read_manifest(newer)
    on_disk = (tmp_path / "slot-b.img").read_bytes()[:manifest.root.size]
    assert hashlib.sha256(on_disk).hexdigest() == manifest.root.sha256
    box.ask("rollback")                     # an install is pending: its commit decides
    done = box.run()
    assert done.returncode == 1
    assert "rollback: refused, version 99.0.0 is installed and not committed" in done.stderr
    assert box.entries() == ["root-a.conf", "root-b+3.conf"]


def test_reboot_request_without_a_pending_install_is_refused(tmp_path: Path) -> None:
    box = Box(tmp_path, "a")
    box.ask("reboot")
    done = box.run()
    assert done.returncode == 1
    assert "reboot: refused, no installed update waits for a reboot" in done.stderr


# -- rollback --------------------------------------------------------------------------------

def test_rollback_request_marks_this_slot_bad_and_records_it(tmp_path: Path) -> None:
    box = Box(tmp_path, "b")
    box.ask("rollback", "check")                 # after the rollback, the rest waits
    done = box.run()
    assert done.returncode == 0, done.stderr
    assert "rollback: this slot is marked bad" in done.stdout
    assert "check: skipped, the appliance reboots" in done.stdout
    assert box.entries() == ["root-a.conf", "root-b+0-0.conf"]
    assert "default root-*" in (box.esp / "loader" / "loader.conf").read_text()
    found = box.state()
    assert found.last is not None
    assert (found.last.version, found.last.outcome) == (running_version(), "rolled back")
    assert found.last.reason == "rolled back by the admin: slot b marked bad, booting slot a"
    assert found.failed_versions == [running_version()]
    assert found.last_check is None
    assert found.esp is not None
    assert found.esp.entries == {"a": ["root-a.conf"], "b": ["root-b+0-0.conf"]}


def test_rollback_is_refused_when_the_previous_slot_cannot_boot(tmp_path: Path) -> None:
    box = Box(tmp_path, "a")
    box.entry("root-b.conf").rename(box.entry("root-b+0-3.conf"))
    before = box.esp_files()
    box.ask("rollback")
    done = box.run()
    assert done.returncode == 1
    assert "rollback: refused, slot b is marked bad" in done.stderr
    box.entry("root-b+0-3.conf").unlink()
    before = box.esp_files()
    box.ask("rollback")
    done = box.run()
    assert "rollback: refused, slot b has no bootable system" in done.stderr
    assert box.esp_files() == before
    assert box.state().history == []


# -- hostile request files -------------------------------------------------------------------

def _valid(action: str = "rollback") -> bytes:
    return requests.encode(requests.Request(action, 1_700_000_000.0, "admin"))


def test_hostile_request_files_are_refused_and_removed_without_acting(
        tmp_path: Path) -> None:
    box = Box(tmp_path, "b")                     # a valid rollback would mark b bad
    folder = box.requests
    folder.mkdir()
    outside = tmp_path / "outside.json"
    outside.write_bytes(_valid())
    (folder / "10-link.json").symlink_to(outside)
    os.link(outside, folder / "11-hardlink.json")
    (folder / "12-big.json").write_bytes(_valid()[:-2] + b" " * 5000 + b"}\n")
    (folder / "13-unknown.json").write_text(json.dumps(
        {"action": "shutdown", "requested_at": 1, "by": "admin"}))
    (folder / "14-bad.json").write_bytes(b"{not json")
    (folder / "15-path.json").write_text(json.dumps(
        {"action": "rollback", "requested_at": 1, "by": "../../etc/shadow"}))
    (folder / "16-extra.json").write_text(json.dumps(
        {"action": "install", "requested_at": 1, "by": "admin", "bundle": "/tmp/evil"}))
    os.mkfifo(folder / "17-fifo.json")
    (folder / "18-dir.json").mkdir()
    (folder / "19-utf16.json").write_bytes(_valid().decode().encode("utf-16"))
    (folder / "20-array.json").write_text(json.dumps(["rollback"]))
    (folder / "21-time.json").write_text(
        '{"action": "rollback", "requested_at": NaN, "by": "admin"}')
    before = box.esp_files()
    done = box.run()
    assert done.returncode == 0, done.stderr
    refused = [line for line in done.stderr.splitlines() if line.startswith("refused request")]
    assert len(refused) == 12, done.stderr
    for reason in ("not a regular file", "hard link", "longer than 4096 bytes",
                   "action is not one of", "not UTF-8 JSON", "by is not a user name",
                   "not an object of exactly the keys", "requested_at is not a time"):
        assert reason in done.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["18-dir.json.refused"]
    assert outside.read_bytes() == _valid()            # the link's target is untouched
    assert box.esp_files() == before
    assert box.state().history == []
    assert box.state().last_check is None
    assert "update.request_refused" in done.stderr      # and logged


def test_a_request_directory_that_is_a_link_is_not_followed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "1.json").write_bytes(_valid())
    data = tmp_path / "data"
    data.mkdir()
    requests.request_dir(data).symlink_to(elsewhere)
    assert requests.take(requests.request_dir(data)) == []
    assert (elsewhere / "1.json").read_bytes() == _valid()


def test_path_unit_watches_where_the_console_writes() -> None:
    """The .path unit's glob is the image's data_dir/update-requests/*.json, and it starts
    the service that runs `update requests`."""
    systemd = update_image.REPO / "image" / "systemd"
    toml = update_image.REPO / "image" / "overlay" / "etc" / "mailstead" / "mailstead.toml"
    data_dir = Path(tomllib.loads(toml.read_text())["paths"]["data_dir"])
    path_unit = (systemd / "mailstead-update-request.path").read_text().splitlines()
    assert f"PathExistsGlob={requests.request_dir(data_dir)}/*{requests.SUFFIX}" in path_unit
    assert "Unit=mailstead-update-request.service" in path_unit
    service = (systemd / "mailstead-update-request.service").read_text()
    assert " update requests\n" in service
