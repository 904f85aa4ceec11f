"""The image's firewall with the real web services behind it, in network namespaces: the
appliance's console (443), public HTTPS listener (8443) and plain HTTP listener (80) run
under gunicorn in namespace A with /etc/nftables.conf loaded; a client namespace B has a
LAN address (10.9.0.2) and an internet address (192.0.2.2). From the LAN, 443 is the whole
console; from the internet, 443 reaches only the public paths (the nat redirect to 8443),
port 80 answers the ACME challenge, and 8443 cannot be dialled directly (reset: the
client sees ConnectionRefusedError)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.auth.passwords import Passwords
from appliance.settings import Settings, load_settings, render_toml
from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory
from appliance.tls import acme_client
from appliance.tls.certs import make_self_signed
from harness.netns import tool, veth_pair
from webui import admins, setup_state

IMAGE = Path(__file__).resolve().parents[2] / "image"
RULESET = IMAGE / "overlay" / "etc" / "nftables.conf"
TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
KEY_AUTHORIZATION = TOKEN + ".9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"
SERVER_LAN, SERVER_NET = "10.9.0.1", "192.0.2.1"
CLIENT_LAN, CLIENT_NET = "10.9.0.2", "192.0.2.2"


def appliance_settings(data_dir: Path) -> Settings:
    """The image's mailstead.toml (real ports, not dev mode) on a temporary data dir."""
    data_dir.mkdir(parents=True)
    values = {"server.hostname": "mail.example.test", "paths.data_dir": ".",
              "listen.console_address": "0.0.0.0", "listen.console_port": 443,
              "auth.argon2_time_cost": 1, "auth.argon2_memory_kib": 8192,
              "auth.argon2_parallelism": 1}
    (data_dir / "mailstead.toml").write_text(render_toml(values), encoding="utf-8")
    settings = load_settings(data_dir / "mailstead.toml", environ={})
    make_self_signed("mail.example.test", settings.data_path("tls.cert_file"),
                     settings.data_path("tls.key_file"))
    conn = open_database(settings.data_dir)
    try:
        passwords = Passwords.from_settings(settings)
        admins.create(conn, "admin", passwords.hash("Correct-Horse-42-battery"))
        for step in setup_state.STEPS:
            setup_state.mark_done(conn, step)
        directory = SqliteDirectory(conn)
        directory.add_domain("example.test")
        directory.add_account("alice@example.test", passwords.hash("alice pw 1 long"))
    finally:
        conn.close()
    path = acme_client.challenge_path(settings.data_dir, TOKEN)
    assert path is not None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(KEY_AUTHORIZATION)
    return settings


def netns_file_setting() -> int:
    """The ruleset's `define public_tls_port`."""
    found = re.search(r"^define public_tls_port = (\d+)$", RULESET.read_text(), re.M)
    assert found is not None
    return int(found.group(1))


def test_ruleset_port_is_the_settings_default_and_the_image_keeps_it() -> None:
    """nft redirects to a fixed port: it must be where `--public` listens on the image."""
    from appliance.settings import SETTINGS_BY_NAME

    assert netns_file_setting() == SETTINGS_BY_NAME["listen.public_tls_port"].default
    assert SETTINGS_BY_NAME["listen.public_web_port"].default == 80
    image_toml = (IMAGE / "overlay/etc/mailstead/mailstead.toml").read_text()
    assert "public_tls_port" not in image_toml
    assert "public_web_port" not in image_toml


@pytest.fixture
def namespaces() -> Iterator[tuple[str, str]]:
    """A (the appliance: 10.9.0.1 and 192.0.2.1) and B (the clients: 10.9.0.2, 192.0.2.2)."""
    with veth_pair("mspub", [f"{SERVER_LAN}/24", f"{SERVER_NET}/24"],
                   [f"{CLIENT_LAN}/24", f"{CLIENT_NET}/24"]) as pair:
        yield pair


WAIT = """
import socket, sys, time
deadline = time.monotonic() + 90
for port in map(int, sys.argv[1:]):
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                sys.exit(f"nothing on {port}")
            time.sleep(0.2)
"""

# Each probe: (name, source address, scheme, server address, port, Host, path)
PROBES = [
    ("lan-console", CLIENT_LAN, "https", SERVER_LAN, 443, "mail.example.test", "/login"),
    ("lan-policy", CLIENT_LAN, "https", SERVER_LAN, 443, "mta-sts.example.test",
     "/.well-known/mta-sts.txt"),
    ("lan-direct-public", CLIENT_LAN, "https", SERVER_LAN, 8443, "mail.example.test",
     "/login"),
    ("net-console", CLIENT_NET, "https", SERVER_NET, 443, "mail.example.test", "/login"),
    ("net-admin", CLIENT_NET, "https", SERVER_NET, 443, "mail.example.test",
     "/admin/accounts/"),
    ("net-policy", CLIENT_NET, "https", SERVER_NET, 443, "mta-sts.example.test",
     "/.well-known/mta-sts.txt"),
    ("net-acme", CLIENT_NET, "http", SERVER_NET, 80, "mail.example.test",
     f"/.well-known/acme-challenge/{TOKEN}"),
    ("net-http-login", CLIENT_NET, "http", SERVER_NET, 80, "mail.example.test", "/login"),
    ("net-direct-public", CLIENT_NET, "https", SERVER_NET, 8443, "mail.example.test",
     "/.well-known/mta-sts.txt"),
]

CLIENT = """
import http.client, json, ssl, sys
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE     # the self-signed test certificate; routing is tested
results = {}
for name, source, scheme, server, port, host, path in json.loads(sys.argv[1]):
    cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
    extra = {"context": context} if scheme == "https" else {}
    conn = cls(server, port, source_address=(source, 0), timeout=10, **extra)
    try:
        conn.request("GET", path, headers={"Host": host})
        reply = conn.getresponse()
        body = reply.read()[:200].decode(errors="replace")
        results[name] = [reply.status, body, reply.getheader("Location", "")]
    except OSError as exc:
        results[name] = [type(exc).__name__, "", ""]
    finally:
        conn.close()
print(json.dumps(results))
"""


def _serve(netns: str, settings: Settings, flag: str | None,
           log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSTEAD_")}
    command = [tool("ip"), "netns", "exec", netns, sys.executable, "-m", "appliance",
               "--config", str(settings.source), "console", "serve"]
    with open(log, "wb") as out:
        return subprocess.Popen(command + ([flag] if flag else []), stdout=out,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)


def test_lan_gets_the_console_and_the_internet_only_the_public_paths(
        namespaces: tuple[str, str], tmp_path: Path) -> None:
    ip, nft = tool("ip"), tool("nft")
    a, b = namespaces
    settings = appliance_settings(tmp_path / "data")
    procs = [_serve(a, settings, flag, tmp_path / f"serve{n}.log")
             for n, flag in enumerate((None, "--public", "--public-http"))]
    try:
        subprocess.run([ip, "netns", "exec", a, sys.executable, "-c", WAIT, "443", "8443",
                        "80"], check=True, capture_output=True, timeout=120)
        subprocess.run([ip, "netns", "exec", a, nft, "-f", str(RULESET)], check=True,
                       capture_output=True, timeout=30)
        done = subprocess.run([ip, "netns", "exec", b, sys.executable, "-c", CLIENT,
                               json.dumps(PROBES)], capture_output=True, text=True,
                              timeout=120, check=True)
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    results = json.loads(done.stdout)
    # the LAN: the whole console on 443 (its login page), the policy too; 8443 is closed
    assert results["lan-console"][0] == 200
    assert results["lan-console"][1].startswith("<!doctype html>")
    assert results["lan-policy"][0] == 200
    assert results["lan-direct-public"][0] == "ConnectionRefusedError"
    # the internet: 443 leads to the public listener, which has no console pages
    assert results["net-console"][:2] == [404, "404 Not Found\n"]
    assert results["net-admin"][:2] == [404, "404 Not Found\n"]
    assert results["net-policy"][0] == 200
    assert results["net-policy"][1].startswith("version: STSv1")
    assert results["net-acme"][:2] == [200, KEY_AUTHORIZATION]
    assert results["net-http-login"][0] == 308
    assert results["net-http-login"][2] == "https://mail.example.test/login"
    assert results["net-direct-public"][0] == "ConnectionRefusedError"


def _unit(name: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in (IMAGE / "systemd" / name).read_text().splitlines():
        if line.startswith(("#", "[")) or "=" not in line:
            continue
        key, value = line.split("=", 1)
        settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_public_units_run_the_public_listeners_with_least_privilege() -> None:
    """HTTPS on 8443 needs no capability at all; plain HTTP binds 80 and nothing more.
    (Their sandbox scores are checked with every unit in test_definition.py.)"""
    public = _unit("mailstead-console-public.service")
    assert public["ExecStart"][0].endswith(" console serve --public")
    assert public["CapabilityBoundingSet"] == [""]
    assert "AmbientCapabilities" not in public
    plain = _unit("mailstead-console-http.service")
    assert plain["ExecStart"][0].endswith(" console serve --public-http")
    assert plain["AmbientCapabilities"] == plain["CapabilityBoundingSet"] == [
        "CAP_NET_BIND_SERVICE"]
    for unit in (public, plain):
        assert unit["User"] == ["mailstead"]
        assert unit["MemoryMax"] == ["256M"]
    seal = (IMAGE / "seal-root.sh").read_text()
    assert "mailstead-console-public.service" in seal
    assert "mailstead-console-http.service" in seal
