"""The console under real gunicorn (`mailstead console serve`), fetched with urllib and curl:
first boot with the setup code, security headers, and an access log without query strings."""

from __future__ import annotations

import http.client
import http.cookiejar
import os
import re
import runpy
import shutil
import signal
import ssl
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import webui
from appliance.settings import Settings
from appliance.tls.certs import make_self_signed
from harness.engine import free_port, wait_for_port
from harness.processes import stop_process
from webui import setup_code

from .conftest import console_settings


@dataclass
class Console:
    url: str
    settings: Settings
    log: Path
    proc: subprocess.Popen[bytes]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    settings = console_settings(tmp_path / "data")
    port = free_port()
    log = tmp_path / "console.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSTEAD_")}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "appliance", "--config", str(settings.source), "console",
             "serve", "--bind", f"127.0.0.1:{port}"],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        wait_for_port(port, 30, proc)
        yield Console(f"http://127.0.0.1:{port}", settings, log, proc)
    finally:
        stop_process(proc)


def opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), NoRedirect())


def fetch(browser: urllib.request.OpenerDirector, url: str,
          form: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    try:
        with browser.open(url, data=data, timeout=30) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found
    return found.group(1)


def test_first_boot_under_gunicorn(console: Console) -> None:
    browser = opener()
    status, headers, _ = fetch(browser, console.url + "/")
    assert status == 302
    assert headers["Location"].endswith("/setup")
    status, headers, html = fetch(browser, console.url + "/setup")
    assert status == 200
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    assert "HttpOnly" in headers["Set-Cookie"]
    assert "SameSite=Strict" in headers["Set-Cookie"]
    wrong, _, _ = fetch(browser, console.url + "/setup/code",
                        {"csrf_token": token(html), "code": "WRNG-WRNG-WRNG"})
    assert wrong == 401
    code = setup_code.read(console.settings.data_dir)
    assert code is not None
    status, headers, _ = fetch(browser, console.url + "/setup/code",
                               {"csrf_token": token(html), "code": code})
    assert status == 302
    assert headers["Location"].endswith("/setup/admin")
    status, _, html = fetch(browser, console.url + "/setup/admin")
    assert status == 200
    assert "Create the administrator" in html
    password = "Gunicorn-Strong-Pass-9"
    status, headers, _ = fetch(browser, console.url + "/setup/admin",
                               {"csrf_token": token(html), "username": "admin",
                                "password": password, "password2": password})
    assert status == 302
    assert headers["Location"].endswith("/setup/totp")
    status, _, html = fetch(browser, console.url + "/setup/totp")
    assert status == 200
    assert "data:image/svg+xml;base64," in html
    # a second browser now meets the login page, not the wizard
    status, headers, _ = fetch(opener(), console.url + "/")
    assert status == 302
    assert headers["Location"].endswith("/login")


def test_curl_and_access_log(console: Console) -> None:
    curl = shutil.which("curl")
    assert curl is not None, "curl is missing: build.sh test installs it (TEST_DEBS)"
    done = subprocess.run([curl, "-sS", "-D", "-", "-o", "/dev/null",
                           console.url + "/static/console.css?token=s3cret-query"],
                          capture_output=True, text=True, timeout=30, check=True)
    assert done.stdout.startswith("HTTP/1.1 200")
    assert "x-content-type-options: nosniff" in done.stdout.lower()
    css = subprocess.run([curl, "-sS", console.url + "/static/console.css"],
                         capture_output=True, text=True, timeout=30, check=True)
    assert ".topbar" in css.stdout
    console.proc.send_signal(signal.SIGTERM)
    console.proc.wait(15)
    log = console.log.read_text()
    assert "GET /static/console.css HTTP/1.1" in log
    assert "s3cret-query" not in log


def conf_values(config: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    monkeypatch.setenv("MAILSTEAD_CONFIG", str(config))
    monkeypatch.delenv("MAILSTEAD_CONSOLE_BIND", raising=False)
    return runpy.run_path(str(Path(webui.__file__).parent / "gunicorn.conf.py"))


def test_gunicorn_conf_follows_the_settings(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    dev = console_settings(tmp_path / "dev", listen__console_port=8080)
    values = conf_values(Path(str(dev.source)), monkeypatch)
    assert values["bind"] == ["127.0.0.1:8080"]
    assert "certfile" not in values                          # dev: plain HTTP
    assert values["workers"] == 1                             # one login throttle
    assert "%(U)s" in str(values["access_log_format"])
    assert "%(r)s" not in str(values["access_log_format"])
    appliance_mode = console_settings(tmp_path / "box", server__dev_mode=False)
    values = conf_values(Path(str(appliance_mode.source)), monkeypatch)
    assert values["bind"] == ["127.0.0.1:443"]
    assert values["certfile"] == str(appliance_mode.data_path("tls.cert_file"))
    assert values["keyfile"] == str(appliance_mode.data_path("tls.key_file"))


def test_https_with_the_appliance_certificate(tmp_path: Path) -> None:
    """Outside dev mode gunicorn serves TLS with tls.cert_file; pages carry HSTS and the
    session cookie is Secure."""
    settings = console_settings(tmp_path / "data", server__dev_mode=False,
                                server__hostname="localhost")
    cert = settings.data_path("tls.cert_file")
    make_self_signed("localhost", cert, settings.data_path("tls.key_file"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSTEAD_")}
    log = tmp_path / "console.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "appliance", "--config", str(settings.source), "console",
             "serve", "--bind", f"127.0.0.1:{port}"],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        wait_for_port(port, 30, proc)
        context = ssl.create_default_context(cafile=str(cert))
        request = urllib.request.Request(f"https://localhost:{port}/setup")
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            assert response.status == 200
            assert response.headers["Strict-Transport-Security"].startswith("max-age=")
            assert "; Secure" in response.headers["Set-Cookie"]
        plain = urllib.request.Request(f"http://127.0.0.1:{port}/setup")
        with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
            urllib.request.urlopen(plain, timeout=10)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
