"""The public listeners under real gunicorn (`mailstead console serve --public` and
`--public-http`), on the ports their settings name, fetched with http.client and curl: HTTPS
with the appliance certificate answers only the public paths, plain HTTP answers ACME and
autoconfig and redirects the rest there, the access log has no query strings, and the
switch `listen.public_web_enabled = false` starts nothing."""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.settings import Settings
from appliance.tls import acme_client
from appliance.tls.certs import make_self_signed
from harness.engine import free_ports, wait_for_port
from harness.processes import stop_process

from .conftest import USER, add_admin, add_user, console_settings
from .test_clients import protocols, request_xml, servers

TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
KEY_AUTHORIZATION = TOKEN + ".9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"
MTA_STS_HOST = "mta-sts.example.test"


@dataclass
class Public:
    settings: Settings
    https_port: int
    http_port: int
    cert: Path
    logs: list[Path]


def _serve(settings: Settings, flag: str, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSTEAD_")}
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "appliance", "--config", str(settings.source), "console",
             "serve", flag], stdout=out, stderr=subprocess.STDOUT, env=env,
            start_new_session=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    stop_process(proc)


@pytest.fixture
def public(tmp_path: Path) -> Iterator[Public]:
    https_port, http_port = free_ports(2)
    settings = console_settings(tmp_path / "data", listen__public_tls_port=https_port,
                                listen__public_web_port=http_port)
    # the certificate names the MTA-STS host, so curl checks it as a sender's MTA would
    make_self_signed(MTA_STS_HOST, settings.data_path("tls.cert_file"),
                     settings.data_path("tls.key_file"))
    add_admin(settings)
    add_user(settings)
    path = acme_client.challenge_path(settings.data_dir, TOKEN)
    assert path is not None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(KEY_AUTHORIZATION)
    logs = [tmp_path / "https.log", tmp_path / "http.log"]
    procs = [_serve(settings, "--public", logs[0]), _serve(settings, "--public-http", logs[1])]
    try:
        wait_for_port(https_port, 30, procs[0])
        wait_for_port(http_port, 30, procs[1])
        yield Public(settings, https_port, http_port, settings.data_path("tls.cert_file"), logs)
    finally:
        for proc in procs:
            _stop(proc)


def _https(public: Public, method: str, path: str, host: str = "mail.example.test",
           body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    context = ssl.create_default_context(cafile=str(public.cert))
    conn = http.client.HTTPSConnection("127.0.0.1", public.https_port, context=context,
                                       timeout=30)
    try:
        headers = {"Host": host}
        if body is not None:
            headers["Content-Type"] = "text/xml"
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def _http(public: Public, path: str, host: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", public.http_port, timeout=30)
    try:
        conn.request("GET", path, headers={"Host": host})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_https_listener_serves_only_the_public_paths(public: Public) -> None:
    status, headers, body = _https(public, "GET", "/.well-known/mta-sts.txt", MTA_STS_HOST)
    assert status == 200
    assert body.startswith(b"version: STSv1")
    assert headers["Strict-Transport-Security"].startswith("max-age=")
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    status, _, body = _https(public, "POST", "/autodiscover/autodiscover.xml",
                             body=request_xml(USER))
    assert status == 200
    assert protocols(body)["SMTP"]
    status, _, body = _https(public, "GET", f"/.well-known/acme-challenge/{TOKEN}")
    assert (status, body) == (200, KEY_AUTHORIZATION.encode())
    for path in ("/", "/login", "/setup", "/admin/accounts/", "/healthz"):
        status, headers, body = _https(public, "GET", path)
        assert (status, body) == (404, b"404 Not Found\n"), path
        assert "Set-Cookie" not in headers


def test_plain_http_listener_answers_acme_and_autoconfig(public: Public) -> None:
    status, headers, body = _http(public, f"/.well-known/acme-challenge/{TOKEN}",
                                  "mail.example.test")
    assert (status, body) == (200, KEY_AUTHORIZATION.encode())
    assert "Strict-Transport-Security" not in headers
    status, _, body = _http(public, "/mail/config-v1.1.xml", "autoconfig.example.test")
    assert status == 200
    assert servers(body)
    status, headers, _ = _http(public, "/login", "mail.example.test")
    assert status == 308
    assert headers["Location"] == f"https://mail.example.test:{public.https_port}/login"


def test_curl_follows_the_redirect_to_the_https_policy(public: Public) -> None:
    """A sender's MTA would fetch https:// itself; a browser typing http:// is sent on."""
    curl = shutil.which("curl")
    if curl is None:
        pytest.fail("curl is missing: ./build.sh test installs it")
    done = subprocess.run(
        [curl, "-sS", "-L", "--max-redirs", "1", "--cacert", str(public.cert),
         "--resolve", f"{MTA_STS_HOST}:{public.http_port}:127.0.0.1",
         "--resolve", f"{MTA_STS_HOST}:{public.https_port}:127.0.0.1",
         "-w", "\n%{http_code} %{url_effective}",
         f"http://{MTA_STS_HOST}:{public.http_port}/.well-known/mta-sts.txt"],
        capture_output=True, text=True, timeout=60, check=True)
    body, _, last = done.stdout.rpartition("\n")
    assert body.startswith("version: STSv1")
    assert last == f"200 https://{MTA_STS_HOST}:{public.https_port}/.well-known/mta-sts.txt"


def test_long_request_lines_are_refused_and_queries_stay_out_of_the_log(
        public: Public) -> None:
    with socket.create_connection(("127.0.0.1", public.http_port), timeout=30) as sock:
        sock.sendall(b"GET /" + b"a" * 4096 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = sock.recv(200)
    assert reply.split(b" ")[1] in (b"400", b"414"), reply
    status, _, _ = _https(public, "GET", f"/mail/config-v1.1.xml?emailaddress={USER}")
    assert status == 200
    deadline = time.monotonic() + 10        # gunicorn logs the request after answering it
    access_log = public.logs[0].read_text()
    while "/mail/config-v1.1.xml" not in access_log and time.monotonic() < deadline:
        time.sleep(0.1)
        access_log = public.logs[0].read_text()
    assert "/mail/config-v1.1.xml" in access_log
    assert USER not in access_log


def test_switched_off_nothing_listens(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    settings = console_settings(tmp_path / "data", listen__public_tls_port=port,
                                listen__public_web_enabled=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSTEAD_")}
    done = subprocess.run([sys.executable, "-m", "appliance", "--config",
                           str(settings.source), "console", "serve", "--public"],
                          capture_output=True, text=True, timeout=60, env=env, check=False)
    assert done.returncode == 0
    assert "listen.public_web_enabled = false" in done.stdout
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
