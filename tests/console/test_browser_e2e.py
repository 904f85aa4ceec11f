"""The console end to end in a real browser (headless chromium through selenium), served by
real gunicorn beside the real engine on one data directory, with Knot on loopback as the
world's DNS: first boot with the setup code, the admin (with TOTP), domain, account; that
account sends and reads mail over submission and IMAP; the DNS page shows each record's
state against Knot serving half of them right. Screenshots of every step at laptop and
phone size are saved (the path is printed). Then what only a browser can show: framing is
refused (clickjacking) and an injected `<script>` neither runs nor renders as markup.
"""

from __future__ import annotations

import email
import email.policy
import http.server
import imaplib
import re
import smtplib
import ssl
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest
from selenium.webdriver.common.by import By

from appliance.settings import Settings, load_settings, render_toml
from console.browser_support import Browser, ConsoleServer, browser, setup_code
from console.conftest import ADMIN, ADMIN_PASSWORD, add_admin, add_user, console_settings
from console.dns_world import DOMAIN, EXPECTED, HOST, publish_world, world_values
from harness.engine import EngineProcess, free_port
from peers.dns import KnotDns
from webui.dns_check import domain_records

pytestmark = pytest.mark.timeout(600)

ADMIN_PASS = "Browser-Root-Pass-77"
LOCAL = "alice"
ADDRESS = f"{LOCAL}@{DOMAIN}"
MAIL_PASSWORD = "four plain words typed here"
SECOND_DOMAIN = "second.test"
STATE_TEXT = {"ok": "✓ ok", "missing": "✗ missing", "wrong": "✗ wrong", "error": "? no answer"}


# -- the world: Knot, the engine and the console on one data directory ----------------------


def _rewrite_config(config: Path, extra: dict[str, Any]) -> None:
    """Add `extra` (`section.key`) to the engine's mailstead.toml."""
    raw = tomllib.loads(config.read_text(encoding="utf-8"))
    flat = {f"{section}.{key}": value for section, table in raw.items()
            for key, value in table.items()}
    config.write_text(render_toml({**flat, **extra}), encoding="utf-8")


class World:
    def __init__(self, root: Path) -> None:
        self.knot = KnotDns(root / "knot", {})        # zones come once DKIM keys exist
        self.engine = EngineProcess(root / "data", server__hostname=HOST)
        _rewrite_config(self.engine.config_file, world_values(
            self.knot.resolver_spec, f"127.0.0.1:{self.engine.smtp_port}"))
        self.console = ConsoleServer(self.engine.config_file, root / "console.log")

    def settings(self) -> Settings:
        return load_settings(self.engine.config_file, environ={})

    def tls_context(self) -> ssl.SSLContext:
        """Trusts the engine's certificate (made for HOST; clients dial 127.0.0.1)."""
        context = ssl.create_default_context(
            cafile=str(self.engine.data_dir / "tls" / "cert.pem"))
        context.check_hostname = False
        return context


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    found = World(tmp_path)
    found.engine.start()
    try:
        found.console.start()
        yield found
    finally:
        found.console.stop()
        found.knot.stop()
        found.engine.stop()


# -- the whole first boot ---------------------------------------------------------------------


def test_first_boot_to_mail_and_dns(world: World) -> None:
    with browser("first_boot") as web:
        _wizard(web, world)
        _domain_and_account(web, world)
        _send_and_read(world)
        publish_world(world.knot, world.settings())
        _dns_page(web, world)
        web.get(world.console.url + "/")
        assert web.heading() == "Dashboard"
        assert "Accounts\n1" in web.text()
        web.shoot("dashboard-after")
        _mail_user(web, world)
        assert len(web.shots) >= 2 * 20


def _mail_user(web: Browser, world: World) -> None:
    """The admin logs out; the new account logs in and sees its own pages, not the admin's."""
    base = world.console.url
    web.button("Log out")
    assert any("logged out" in f for f in web.flashes())
    web.type("username", ADDRESS)
    web.type("password", MAIL_PASSWORD)
    web.shoot("user-login")
    web.button("Log in")
    assert ADDRESS in web.text()
    web.shoot("user-home")
    web.get(base + "/clients")
    assert ADDRESS in web.text()
    web.shoot("user-mail-apps")
    web.get(base + "/me/")
    assert ADDRESS in web.text()
    web.shoot("user-self-service")
    web.get(base + "/admin/accounts/")
    assert web.heading().startswith("403"), web.text()
    assert web.driver.find_elements(By.CSS_SELECTOR, "main table") == []
    web.shoot("user-admin-forbidden")


def _wizard(web: Browser, world: World) -> None:
    base = world.console.url
    web.get(base + "/")
    assert web.url == base + "/setup"                     # nothing but the wizard
    assert web.heading() == "Welcome to Mailstead"
    web.shoot("setup-code")
    web.type("code", "AAAA-BBBB-CCCC")
    web.button("Start setup")
    assert any("not the setup code" in f for f in web.flashes())
    web.shoot("setup-code-wrong")
    web.type("code", setup_code(world.engine.config_file))
    web.button("Start setup")
    assert web.heading() == "Create the administrator"
    web.shoot("setup-admin")
    web.type("username", ADMIN)
    for password in (f"My-{ADMIN}-Pass-77", ADMIN_PASS):      # the first holds the name
        web.type("password", password)
        web.type("password2", password)
        web.button("Create administrator")
        if password != ADMIN_PASS:
            assert any("too easy to guess" in f for f in web.flashes()), web.text()
            web.shoot("setup-admin-refused")
    _totp(web)
    assert web.url.endswith("/setup/host")
    assert web.field("hostname").get_attribute("value") == HOST
    web.type("domain", DOMAIN)
    web.shoot("setup-host")
    web.button("Continue")
    assert web.url.endswith("/setup/timezone")
    web.choose("timezone", "Europe/Berlin")
    web.shoot("setup-timezone")
    web.button("Continue")
    assert web.url.endswith("/setup/tls")
    web.shoot("setup-tls")
    web.button("Continue")
    assert web.url.endswith("/setup/dkim")
    web.shoot("setup-dkim")
    web.button("Create keys and continue")
    assert web.url.endswith("/setup/done")
    assert DOMAIN in web.text()
    web.shoot("setup-done")


def _totp(web: Browser) -> None:
    """Turn on two-factor login with the key the page shows (as a phone app would)."""
    assert web.heading() == "Two-factor login (recommended)"
    qr = web.driver.find_element(By.CSS_SELECTOR, ".qr img").get_attribute("src")
    assert qr is not None
    assert qr.startswith("data:image/svg+xml;base64,")
    web.shoot("setup-totp")
    secret = web.driver.find_element(By.CSS_SELECTOR, "code.secret").text.strip()
    web.type("code", pyotp.TOTP(secret).now())
    web.button("Turn on two-factor login")
    assert any("Two-factor login is on" in f for f in web.flashes()), web.text()


def _domain_and_account(web: Browser, world: World) -> None:
    base = world.console.url
    web.get(base + "/admin/domains/")
    assert DOMAIN in web.text()                           # the wizard's primary domain
    web.type("domain", SECOND_DOMAIN)
    web.button("Add domain")
    assert SECOND_DOMAIN in web.text()
    web.shoot("admin-domains")
    web.get(base + "/admin/accounts/")
    assert web.driver.find_element(By.CSS_SELECTOR, "details").get_attribute("open")
    web.type("local", LOCAL)
    web.choose("domain", DOMAIN)
    web.type("password", MAIL_PASSWORD)
    web.type("password2", MAIL_PASSWORD)
    web.type("quota_mib", "512")
    web.shoot("admin-account-new")
    web.button("Create account")
    assert any(f"Created account {ADDRESS}" in f for f in web.flashes()), web.text()
    web.shoot("admin-account-created")
    web.get(base + "/admin/accounts/")
    assert ADDRESS in web.text()
    web.shoot("admin-accounts")


def _send_and_read(world: World) -> None:
    """The new account sends with smtplib (587-style STARTTLS, AUTH) and reads with imaplib
    (STARTTLS): what the console wrote is what the engine serves."""
    subject = f"From the browser test {time.time_ns()}"
    body = f"From: {ADDRESS}\r\nTo: {ADDRESS}\r\nSubject: {subject}\r\n\r\nIt works.\r\n"
    with smtplib.SMTP("127.0.0.1", world.engine.submission_port, timeout=30,
                      local_hostname="laptop.example.org") as client:
        client.starttls(context=world.tls_context())
        client.login(ADDRESS, MAIL_PASSWORD)
        refused = client.sendmail(ADDRESS, [ADDRESS], body.encode())
    assert refused == {}
    with imaplib.IMAP4("127.0.0.1", world.engine.imap_port, timeout=30) as imap:
        imap.starttls(ssl_context=world.tls_context())
        imap.login(ADDRESS, MAIL_PASSWORD)
        found = _wait_for_subject(imap, subject)
        imap.logout()
    message = email.message_from_bytes(found, policy=email.policy.default)
    assert message["Subject"] == subject
    assert message.get_content().strip() == "It works."


def _wait_for_subject(imap: imaplib.IMAP4, subject: str) -> bytes:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status, data = imap.select("INBOX")
        assert status == "OK", data
        status, data = imap.search(None, "SUBJECT", f'"{subject}"')
        assert status == "OK"
        numbers = data[0].split() if data and data[0] else []
        if numbers:
            status, parts = imap.fetch(numbers[-1].decode(), "(BODY.PEEK[])")
            assert status == "OK"
            first = parts[0]
            assert isinstance(first, tuple)
            return first[1]
        time.sleep(0.3)
    raise AssertionError(f"no message {subject!r} in INBOX within 30 s")


def _dns_page(web: Browser, world: World) -> None:
    base = world.console.url
    web.get(base + f"/dns?domain={DOMAIN}")
    assert "not checked" in web.text()
    web.shoot("dns-unchecked")
    web.button("Check now")
    assert any("DNS checked" in f for f in web.flashes()), web.text()
    web.shoot("dns-checked")
    shown = _record_states(web)
    records = domain_records(world.settings(), DOMAIN)
    dkim = [r for r in records if r.key.startswith("dkim:")]
    assert len(dkim) == 2                          # dns_world: the first right, one wrong
    for record in records:
        want = EXPECTED.get(record.key, "ok" if record is dkim[0] else "wrong")
        got = shown.get(f"{record.name} {record.rtype}")
        assert got == STATE_TEXT[want], (record.key, record.name, got)
    server = _server_states(web)
    assert server["in-addr.arpa"] == STATE_TEXT["ok"]
    assert server["ip6.arpa"] == STATE_TEXT["missing"]
    assert server["bl.test"] == STATE_TEXT["wrong"]
    assert server["clean.test"] == STATE_TEXT["ok"]
    assert server["dead.test"] == STATE_TEXT["error"]
    assert server[f"127.0.0.1:{world.engine.smtp_port}"] == STATE_TEXT["ok"]


def _record_states(web: Browser) -> dict[str, str]:
    """`name RTYPE` -> the state text shown, for the rows of the records table."""
    shown: dict[str, str] = {}
    for row in web.driver.find_elements(By.CSS_SELECTOR, "table.dns-records tbody tr"):
        state = row.find_element(By.CSS_SELECTOR, "td:first-child").text.strip()
        title = row.find_element(By.CSS_SELECTOR, "td:nth-child(2) strong").text.strip()
        name, _, rtype = title.rpartition(" ")
        assert f"{name} {rtype}" not in shown, f"two rows for {title}"
        shown[f"{name} {rtype}"] = state
    assert shown, "no records table"
    return shown


def _server_states(web: Browser) -> dict[str, str]:
    """The server's checks by a tell-tale part of their name -> the state text shown."""
    tells = ("in-addr.arpa", "ip6.arpa", ".bl.test", "clean.test", "dead.test", "127.0.0.1:")
    states: dict[str, str] = {}
    section = web.driver.find_element(
        By.XPATH, "//section[h2[normalize-space()='This server']]")
    for row in section.find_elements(By.CSS_SELECTOR, "tbody tr"):
        cells = row.find_elements(By.TAG_NAME, "td")
        name = cells[1].text + " " + cells[3].text
        for tell in tells:
            if tell in name:
                key = tell.lstrip(".") if tell != "127.0.0.1:" else \
                    re.search(r"127\.0\.0\.1:\d+", name).group(0)  # type: ignore[union-attr]
                states[key] = cells[0].text.strip()
    return states


# -- what only a browser shows: framing and scripts -------------------------------------------


@pytest.fixture
def admin_console(tmp_path: Path) -> Iterator[ConsoleServer]:
    """The console under gunicorn, set up (admin without TOTP, domain example.test)."""
    settings = console_settings(tmp_path / "data")
    add_admin(settings)
    add_user(settings)
    with ConsoleServer(Path(str(settings.source)), tmp_path / "console.log") as server:
        yield server


def _log_in(web: Browser, console: ConsoleServer) -> None:
    web.get(console.url + "/login")
    web.type("username", ADMIN)
    web.type("password", ADMIN_PASSWORD)
    web.button("Log in")
    assert web.heading() == "Dashboard", web.text()


class _FramingSite(http.server.ThreadingHTTPServer):
    """Another origin (127.0.0.2) whose page puts the console and itself in iframes."""

    def __init__(self, target: str) -> None:
        self.target = target
        super().__init__(("127.0.0.2", free_port()), _FramingPage)

    @property
    def url(self) -> str:
        return f"http://127.0.0.2:{self.server_address[1]}"


class _FramingPage(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        server = self.server
        assert isinstance(server, _FramingSite)
        if self.path == "/inner":
            body = "<p id=inner>framed fine</p>"
        else:
            body = (f'<iframe id=console src="{server.target}/login" width=600 height=400>'
                    '</iframe><iframe id=own src="/inner"></iframe>')
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def test_console_refuses_to_render_in_a_frame(admin_console: ConsoleServer) -> None:
    site = _FramingSite(admin_console.url)
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    try:
        with browser("clickjacking") as web:
            web.get(site.url + "/")
            refusals = _frame_refusals(web, admin_console.url)
            assert any("frame-ancestors" in m or "X-Frame-Options" in m for m in refusals)
            web.shoot("framed", layout="none")
            driver = web.driver
            driver.switch_to.frame(driver.find_element(By.ID, "own"))
            assert driver.find_element(By.ID, "inner").text == "framed fine"   # control
            driver.switch_to.default_content()
            driver.switch_to.frame(driver.find_element(By.ID, "console"))
            assert driver.find_elements(By.NAME, "password") == []
            assert not driver.execute_script("return location.href").startswith("http")
            driver.switch_to.default_content()
    finally:
        site.shutdown()
        site.server_close()


def _frame_refusals(web: Browser, console_url: str) -> list[str]:
    """The browser's console messages about refusing to frame the console (waits for one)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        found = [e["message"] for e in web.console_log()
                 if "frame" in e["message"] and console_url in e["message"]]
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError("the browser did not report refusing to frame the console")


def test_injected_script_is_text_and_inline_script_is_blocked(
        admin_console: ConsoleServer) -> None:
    evil_local = '"<script>document.title=1</script>"'
    evil_target = '"<img src=x onerror=document.title=2>"@elsewhere.test'
    with browser("xss") as web:
        _log_in(web, admin_console)
        web.get(admin_console.url + "/admin/accounts/")
        web.driver.find_element(By.CSS_SELECTOR, "details summary").click()   # "New account"
        web.type("local", evil_local)
        web.type("password", MAIL_PASSWORD)
        web.type("password2", MAIL_PASSWORD)
        web.button("Create account")
        web.get(admin_console.url + "/admin/accounts/")
        assert f"{evil_local}@{DOMAIN}" in web.text()          # shown as text
        web.shoot("account-script-name", layout="note")
        assert web.driver.find_elements(By.CSS_SELECTOR, "main script") == []
        web.get(admin_console.url + "/admin/aliases/")
        if not web.driver.find_element(By.CSS_SELECTOR, "details").get_attribute("open"):
            web.driver.find_element(By.CSS_SELECTOR, "details summary").click()
        web.type("source", f"team@{DOMAIN}")
        web.type("targets", evil_target)
        web.button("Add alias")
        assert evil_target in web.text()
        web.shoot("alias-script-target", layout="note")
        assert web.driver.find_elements(By.CSS_SELECTOR, "main img") == []
        assert web.driver.title.endswith("· Mailstead")       # no handler ran
        # Even markup that got in would not run: CSP has no 'unsafe-inline'.
        web.console_log()
        web.driver.execute_script(
            "var s = document.createElement('script');"
            "s.textContent = 'window.injectedRan = true';"
            "document.body.appendChild(s);")
        assert web.driver.execute_script("return window.injectedRan === true") is False
        blocked = [e["message"] for e in web.console_log()
                   if "Content Security Policy" in e["message"]]
        assert blocked, "no CSP report in the browser's console"
