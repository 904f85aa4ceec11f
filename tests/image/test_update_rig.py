"""The host-side pieces of `vm_checks.py --update` that run without a VM: the version
counting, the [update] section written into the test images' mailstead.toml, the test
update server over real HTTPS (files, the probe's one-shot instructions, nothing outside
its directory) and guest_relay.py relaying a real connection."""

from __future__ import annotations

import importlib.util
import re
import socket
import ssl
import subprocess
import sys
import threading
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from peers.ca import TestCA

HERE = Path(__file__).resolve().parent


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module            # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


rig = _load("update_rig")
Served = tuple[Any, ssl.SSLContext]      # (update_rig.ProbeServer, a client context)
SHIPPED = (Path(__file__).resolve().parents[2] / "image" / "overlay" / "etc" / "mailstead"
           / "mailstead.toml").read_text()


@pytest.mark.parametrize(("base", "plus1", "plus2"), [
    ("0.1.0", "0.1.1", "0.1.2"), ("1.9", "1.10", "1.11"), ("7", "8", "9")])
def test_next_versions_count_up_the_last_number(base: str, plus1: str, plus2: str) -> None:
    assert rig.next_versions(base) == (plus1, plus2)


def test_next_versions_refuses_a_version_it_cannot_count() -> None:
    with pytest.raises(ValueError, match="cannot count up"):
        rig.next_versions("1.0rc1")


def test_update_section_added_to_the_shipped_file_keeping_the_rest() -> None:
    text = rig.with_update_section(SHIPPED, "https://10.0.2.100/")
    settings = tomllib.loads(text)
    assert settings["update"] == {"url": "https://10.0.2.100/", "ca_file": rig.GUEST_CA,
                                  "maintenance_window": "now",
                                  "state_dir": "/var/lib/mailstead/.system/update"}
    shipped = tomllib.loads(SHIPPED)
    assert {k: v for k, v in settings.items() if k != "update"} == \
        {k: v for k, v in shipped.items() if k != "update"}


def test_update_section_made_when_the_file_has_none() -> None:
    text = rig.with_update_section('[server]\nhostname = "x.test"\n', "https://h/")
    assert tomllib.loads(text) == {"server": {"hostname": "x.test"},
                                   "update": {"url": "https://h/", "ca_file": rig.GUEST_CA,
                                              "maintenance_window": "now"}}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    public = tmp_path / "public"
    (public / "metadata").mkdir(parents=True)
    (public / "metadata" / "timestamp.json").write_bytes(b'{"signed": 1}')
    (tmp_path / "secret").write_text("not served")
    authority = TestCA("update rig test CA")
    cert, key = authority.issue(["127.0.0.1"], tmp_path, "server")
    server = rig.ProbeServer(public, cert, key)
    context = ssl.create_default_context(cafile=str(authority.write_cert(tmp_path / "ca.pem")))
    yield server, context
    server.close()


def _get(server: Any, context: ssl.SSLContext, path: str) -> tuple[int, bytes]:
    url = f"https://127.0.0.1:{server.port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=10, context=context) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def test_server_serves_the_repository_and_nothing_outside_it(served: Served) -> None:
    server, context = served
    assert _get(server, context, "/metadata/timestamp.json") == (200, b'{"signed": 1}')
    assert _get(server, context, "/../secret")[0] == 404
    assert _get(server, context, "/metadata/missing.json")[0] == 404


def test_probe_instruction_update_is_given_once_end_stays(served: Served) -> None:
    server, context = served
    ask = "/probe/next?slot=a&version=0.1.0"
    assert _get(server, context, ask) == (200, b"wait")
    server.set_action("a", "0.1.0", "update")
    assert _get(server, context, "/probe/next?slot=b&version=0.1.0") == (200, b"wait")
    assert _get(server, context, ask) == (200, b"update")
    assert _get(server, context, ask) == (200, b"wait")
    server.end_all()
    assert _get(server, context, ask) == (200, b"end")
    assert _get(server, context, ask) == (200, b"end")


def test_relay_carries_a_connection_both_ways() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def echo_upper() -> None:
            conn, _ = listener.accept()
            with conn:
                data = b""
                while chunk := conn.recv(65536):
                    data += chunk
                conn.sendall(data.upper())

        thread = threading.Thread(target=echo_upper, daemon=True)
        thread.start()
        payload = b"hello relay " * 20000          # more than one read either way
        done = subprocess.run([sys.executable, str(HERE / "guest_relay.py"), str(port)],
                              input=payload, capture_output=True, timeout=30, check=True)
        thread.join(5)
    assert done.stdout == payload.upper()


def test_inject_twice_into_root_a_keeps_the_shipped_settings(tmp_path: Path) -> None:
    """inject() on a small real GPT image (root-a made by mkfs.ext4 -d), run twice as on
    a reused N+1 image: the shipped mailstead.toml is kept aside, the [update] keys are
    there once, and the files and the failing hook are in place, root-owned."""
    from harness import update_image as harness
    from harness.debian import ensure_package

    harness.ensure_tools()
    ensure_package("debugfs", "e2fsprogs")
    image = harness.make_image(tmp_path / "build", "0.1.1")
    offset = rig.partition_offset(image, 1)
    folders = ["/etc/mailstead", "/etc/systemd", "/etc/systemd/system",
               "/etc/systemd/system/multi-user.target.wants", "/usr", "/usr/share", "/usr/lib",
               "/usr/lib/mailstead", "/usr/lib/mailstead/firmware-hooks",
               "/usr/lib/mailstead/firmware-hooks/health-check.d"]
    rig.debugfs(image, offset, [f"mkdir {folder}" for folder in folders] + [
                                f"write {_shipped_copy(tmp_path)} /etc/mailstead/mailstead.toml"])
    setup = rig.UpdateRig(tmp_path / "vm", image, tmp_path / "images")
    (setup.repo / "public" / "metadata").mkdir(parents=True)
    (setup.repo / "public" / "metadata" / "1.root.json").write_text('{"signed": {}}')
    (setup.dir / "ca.pem").write_text("CA")
    setup.inject(image, failing_hook=True)
    setup.inject(image, failing_hook=True)
    settings = tomllib.loads(rig.read_file(image, offset, "/etc/mailstead/mailstead.toml"))
    assert settings["update"]["url"] == "https://10.0.2.100/"
    assert settings["paths"] == tomllib.loads(SHIPPED)["paths"]
    assert rig.read_file(image, offset, rig.ORIGINAL_TOML) == SHIPPED
    assert rig.read_file(image, offset, rig.FAILING_HOOK_PATH) == rig.FAILING_HOOK
    listing = rig.debugfs(image, offset, [f"stat {rig.FAILING_HOOK_PATH}"], writable=False)
    assert re.search(r"Mode:\s+0755", listing), listing
    assert re.search(r"User:\s+0\s+Group:\s+0", listing), listing


def _shipped_copy(tmp_path: Path) -> Path:
    path = tmp_path / "shipped.toml"
    path.write_text(SHIPPED)
    return path


def test_probe_reader_loses_no_line_read_with_the_one_it_waited_for(tmp_path: Path) -> None:
    """A boot's lines arrive together; waiting for the first must keep the others (the
    status after a rollback was once lost that way and an older one was checked)."""
    sys.path.insert(0, str(HERE))       # update_checks imports its neighbours by name
    checks = _load("update_checks")
    log = tmp_path / "probe.log"
    log.write_text("PROBE ok md0 before\nPROBE-END\n"
                   "PROBE-STEP update-boot b 0.1.1\n"
                   'PROBE ok update-status-b-0.1.1 {"last": {"outcome": "committed"}}\n'
                   "PROBE ok commit-unit-b-0.1.1 committed\n"
                   "PROBE-STEP update-boot b 0.1.1\n"
                   'PROBE ok update-status-b-0.1.1 {"last": {"outcome": "rolled back"}}\n'
                   "PROBE ok commit-unit-b-0.1.1 rolled back\n")

    class Results:
        def __init__(self) -> None:
            self.failed: list[str] = []

        def check(self, name: str, test: Any) -> None: ...

        def record(self, name: str, ok: bool, detail: str) -> None:
            self.failed.append(name)

    reader = checks.ProbeReader(log, lambda: False, Results())
    assert reader.boot("b", "0.1.1", 5)["last"] == {"outcome": "committed"}
    assert reader.boot("b", "0.1.1", 5)["last"] == {"outcome": "rolled back"}
    assert "md0" not in reader.facts            # guest_probe.sh's lines are not the update's
    with pytest.raises(RuntimeError, match="qemu exited"):
        reader.until(lambda line: False, 5)
