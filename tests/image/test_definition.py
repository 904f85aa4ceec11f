"""The image definition in image/, checked on the host without building or booting it:
unit sandboxing scores, the firewall ruleset, the partition layout, the host-sources
reader and the first-boot welcome text. (`./build.sh image-test` boots the real image.)"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from harness.netns import tool, veth_pair

IMAGE = Path(__file__).resolve().parents[2] / "image"
UNITS = sorted((IMAGE / "systemd").glob("*.service"))
MAX_EXPOSURE = 2.0          # issue 8: every Mailstead unit at most 2.0


def load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def unit_settings(path: Path) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if line.startswith(("#", "[")) or "=" not in line:
            continue
        key, value = line.split("=", 1)
        settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_the_expected_units_are_defined() -> None:
    names = {unit.name for unit in UNITS}
    assert {"mailstead-engine.service", "mailstead-console.service",
            "mailstead-monitor.service", "mailstead-firstboot.service",
            "mailstead-welcome.service"} <= names


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_unit_exposure_is_at_most_two(unit: Path) -> None:
    done = subprocess.run([tool("systemd-analyze"), "security", "--offline=yes", "--no-pager",
                           str(unit)], capture_output=True, text=True, timeout=60, check=False)
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout)
    assert found is not None, done.stdout + done.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE, done.stdout


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_unit_is_sandboxed(unit: Path) -> None:
    settings = unit_settings(unit)
    for key, value in [("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                       ("PrivateTmp", "yes"), ("ProtectHome", "yes")]:
        assert settings.get(key) == [value], key
    assert "@system-service" in settings["SystemCallFilter"]
    assert "CapabilityBoundingSet" in settings
    assert settings["ExecStart"][0].lstrip("-").startswith("/")   # "-": failure ignored
    if unit.name == "mailstead-firstboot.service":     # root, and no network at all
        assert "User" not in settings
        assert settings["PrivateNetwork"] == ["yes"]
    elif unit.name in ROOT_UNITS:
        assert "User" not in settings
    else:
        assert settings["User"] == ["mailstead"]


# The units that must run as root, and why: the updater writes the free root slot's block
# device and the ESP; the commit step renames loader entries on the ESP; the console's
# requests (check, install, reboot, roll back) are acted on by the updater; the firewall
# unit loads the admin's LAN into nft (CAP_NET_ADMIN); the SSH unit writes root's
# authorized_keys and starts or stops sshd.
ROOT_UNITS = {"mailstead-firewall.service", "mailstead-firstboot.service",
              "mailstead-ssh.service",
              "mailstead-update.service", "mailstead-update-commit.service",
              "mailstead-update-request.service"}


def test_engine_and_console_may_bind_low_ports_and_nothing_else() -> None:
    for name in ("mailstead-engine.service", "mailstead-console.service"):
        settings = unit_settings(IMAGE / "systemd" / name)
        assert settings["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"]
        assert settings["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]


def test_firewall_ruleset_is_valid_and_opens_the_mail_ports() -> None:
    nft = tool("nft")
    ruleset = IMAGE / "overlay" / "etc" / "nftables.conf"
    # -c: parse and check without loading; in a private network namespace all the same
    done = subprocess.run(["unshare", "-n", nft, "-c", "-f", str(ruleset)],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    text = ruleset.read_text()
    assert "policy drop" in text
    assert "elements = { 25, 465, 587, 143, 993, 110, 995 }" in text
    assert "ip saddr @lan4 tcp dport @lan_ports accept" in text


PROBE_CLIENT = """
import socket, sys
for port in map(int, sys.argv[1:]):
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect(("192.0.2.1", port))
        print(port, "open")
    except ConnectionRefusedError:
        print(port, "refused")
    except OSError as exc:
        print(port, type(exc).__name__)
    finally:
        s.close()
"""

PROBE_SERVER = """
import socket, time
socks = []
for port in (25, 993, 443, 8081, 8443):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("192.0.2.1", port))
    s.listen()
    socks.append(s)
print("listening", flush=True)
time.sleep(20)
"""


@pytest.fixture
def two_namespaces() -> Iterator[tuple[str, str]]:
    """Two network namespaces joined by a veth pair: A 192.0.2.1, B 192.0.2.2."""
    with veth_pair("msimg", ["192.0.2.1/24"], ["192.0.2.2/24"]) as pair:
        yield pair


def test_firewall_refuses_what_is_not_open(two_namespaces: tuple[str, str]) -> None:
    """The ruleset loaded in namespace A: from B (not a LAN address) a mail port is open,
    443 leads to the public web listener (redirected to 8443, which cannot be dialled
    directly), an unlisted port is reset, and the refusals are counted.
    (test_public_web_firewall.py shows what the LAN and the internet get on 443.)"""
    ip, nft = tool("ip"), tool("nft")
    a, b = two_namespaces
    ruleset = IMAGE / "overlay" / "etc" / "nftables.conf"
    subprocess.run([ip, "netns", "exec", a, nft, "-f", str(ruleset)], check=True,
                   capture_output=True, timeout=30)
    server = subprocess.Popen([ip, "netns", "exec", a, sys.executable, "-c", PROBE_SERVER],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "listening"
        done = subprocess.run([ip, "netns", "exec", b, sys.executable, "-c", PROBE_CLIENT,
                               "25", "993", "443", "8081", "8443"], capture_output=True,
                              text=True, timeout=60, check=True)
    finally:
        server.kill()
        server.wait()
    assert done.stdout.split("\n")[:5] == ["25 open", "993 open", "443 open",
                                            "8081 refused", "8443 refused"]
    listed = subprocess.run([ip, "netns", "exec", a, nft, "--json", "list", "counter", "inet",
                             "mailstead", "refused"], capture_output=True, text=True,
                            check=True, timeout=30)
    counter = json.loads(listed.stdout)["nftables"][1]["counter"]
    assert counter["packets"] >= 2


def test_partition_layout(tmp_path: Path) -> None:
    sfdisk = tool("sfdisk")
    disk = tmp_path / "disk.img"
    with disk.open("wb") as out:
        out.truncate(4 * 1024**3)
    script = "".join(line for line in (IMAGE / "layout.sfdisk").read_text().splitlines(True)
                     if not line.startswith("#"))
    subprocess.run([sfdisk, "-q", str(disk)], input=script, text=True, check=True,
                   capture_output=True, timeout=30)
    table = json.loads(subprocess.run([sfdisk, "-J", str(disk)], capture_output=True,
                                      text=True, check=True, timeout=30).stdout)
    parts = table["partitiontable"]["partitions"]
    assert [p["name"] for p in parts] == ["esp", "root-a", "root-b", "data"]
    assert parts[0]["type"] == "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
    assert parts[1]["type"] == parts[2]["type"] == "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
    assert parts[1]["size"] == parts[2]["size"]
    assert parts[3]["type"] == "0FC63DAF-8483-4772-8E79-3D69D8477DE4"


def test_fstab_has_no_root_line_and_mounts_the_data_partition() -> None:
    lines = [line.split() for line in (IMAGE / "overlay/etc/fstab").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert all(fields[1] != "/" for fields in lines)
    data = [fields for fields in lines if fields[0] == "PARTLABEL=data"]
    assert data
    assert data[0][1] == "/var/lib/mailstead"
    assert "x-systemd.growfs" in data[0][3]


def test_loader_entries_name_their_slot() -> None:
    entry = (IMAGE / "boot" / "entry.conf.in").read_text()
    assert "root=PARTLABEL=root-@SLOT@ ro " in entry
    assert "console=ttyS0" in entry
    loader = (IMAGE / "boot" / "loader.conf").read_text()
    assert "editor no" in loader


HOST_SOURCES = load(IMAGE / "host_sources.py", "host_sources")


def test_host_sources_reads_deb822_and_one_line_files(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(
        "# comment\n"
        "deb [signed-by=/k.gpg arch=amd64] http://m.example/debian bookworm main contrib\n"
        "deb-src http://m.example/debian bookworm main\n"
        "deb http://m.example/debian trixie main\n")
    (tmp_path / "sources.list.d" / "d.sources").write_text(
        "Types: deb\nURIs: http://s.example/debian-security\nSuites: bookworm-security\n"
        "Components: main\n\nTypes: deb\nURIs: http://x.example/d\nSuites: bookworm-updates\n"
        "Components: main\nEnabled: no\n\nTypes: deb-src\nURIs: http://y.example/d\n"
        "Suites: bookworm\nComponents: main\n")
    assert HOST_SOURCES.lines_for("bookworm", tmp_path) == [
        "deb http://m.example/debian bookworm main",
        "deb http://s.example/debian-security bookworm-security main",
    ]


def test_host_sources_finds_nothing_in_an_empty_apt(tmp_path: Path) -> None:
    assert HOST_SOURCES.lines_for("bookworm", tmp_path) == []


WELCOME = load(IMAGE / "overlay/usr/lib/mailstead/welcome.py", "welcome")


def test_welcome_lists_global_addresses_ipv4_first() -> None:
    addresses = WELCOME.global_addresses(["127.0.0.1", "::1", "fe80::1%enp0s2", "fd00::5",
                                          "10.0.2.15", "not an address", "10.0.2.15"])
    assert addresses == ["10.0.2.15", "fd00::5"]
    assert WELCOME.console_urls(addresses, 443) == ["https://10.0.2.15/", "https://[fd00::5]/"]
    assert WELCOME.console_urls(["10.0.0.1"], 8443) == ["https://10.0.0.1:8443/"]


def test_welcome_shows_the_code_on_its_own_line_with_a_qr_code() -> None:
    text = WELCOME.welcome_text("abcd-efgh", ["https://10.0.2.15/"], "mail.example.test")
    assert "\nMailstead setup code: abcd-efgh\n" in text
    assert "https://10.0.2.15/" in text
    assert "█" in text or "▀" in text or "▄" in text       # the QR code's blocks


def test_welcome_without_code_says_an_admin_exists() -> None:
    text = WELCOME.welcome_text(None, [], "mail.example.test")
    assert "setup code" not in text
    assert "no network address yet" in text


def test_issue_text_escapes_agetty_backslashes() -> None:
    assert WELCOME.issue_text("a\\4b", 443) == "a\\\\4b"


def test_issue_text_without_an_address_uses_agettys_live_address() -> None:
    """A lease that comes after the welcome ran still reaches the login prompt: agetty
    expands \\4 to the current IPv4 address and redraws on network changes."""
    text = WELCOME.welcome_text("abcd-efgh", [], "mail.example.test")
    assert WELCOME.issue_text(text, 443).count("Web console: https://\\4/\n") == 1
    assert "https://\\4:8443/" in WELCOME.issue_text(text, 8443)
    shown = WELCOME.welcome_text("abcd-efgh", ["https://10.0.2.15/"], "mail.example.test")
    assert "\\4" not in WELCOME.issue_text(shown, 443)


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_lock_pins_every_dependency_of_pyproject() -> None:
    """A dependency added to pyproject.toml without running image/lock.sh would be missing
    from the image's venv (the image then fails at first boot)."""
    import tomllib

    project = tomllib.loads((IMAGE.parent / "pyproject.toml").read_text())["project"]
    wanted = set()
    for requirement in project["dependencies"]:
        found = re.match(r"[A-Za-z0-9._-]+", requirement)
        assert found is not None
        wanted.add(_norm(found.group(0)))
    lock = (IMAGE / "requirements.lock").read_text()
    locked = {_norm(m.group(1)) for m in re.finditer(r"^([A-Za-z0-9._-]+)==", lock, re.M)}
    assert wanted - locked == set(), "run image/lock.sh"
    assert lock.count("--hash=sha256:") == len(locked)


def test_daily_housekeeping_timer_runs_the_dns_check_and_renewal() -> None:
    timer = unit_settings(IMAGE / "systemd" / "mailstead-daily.timer")
    assert timer["OnCalendar"] == ["daily"]
    assert timer["Persistent"] == ["yes"]
    steps = unit_settings(IMAGE / "systemd" / "mailstead-daily.service")["ExecStart"]
    assert [s.split("--config /etc/mailstead/mailstead.toml ")[1] for s in steps] == [
        "dns check --daily", "tls renew"]
    assert all(s.startswith("-/opt/mailstead/venv/bin/mailstead") for s in steps)
    assert "mailstead-daily.timer" in (IMAGE / "seal-root.sh").read_text()
    done = subprocess.run([tool("systemd-analyze"), "verify", "--man=no",
                           str(IMAGE / "systemd" / "mailstead-daily.timer")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert "mailstead-daily" not in done.stderr, done.stderr
