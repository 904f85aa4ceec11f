"""image-test: drives the booted appliance's web console from the host, as an admin would.

Owns the HTTPS form client (session cookie, CSRF token read from each form page) and the
whole first-boot set-up: setup code, admin, host name and primary domain, time zone, TLS
(self-signed), DKIM, then the admin pages' accounts and the two settings an offline
appliance needs (see `offline_settings`). Standard library only (runs under the host's
python3, as vm_checks.py does).
"""

from __future__ import annotations

import http.cookiejar
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
TIMEOUT = 120.0      # one request; argon2 hashing under TCG takes seconds


@dataclass(frozen=True)
class Site:
    """What the test sets up: the names and passwords it reads mail with afterwards."""

    hostname: str = "mail.example.test"
    domain: str = "example.test"
    timezone: str = "Europe/Berlin"
    admin: str = "admin"
    admin_password: str = "Image-Test-Root-77"
    mail_password: str = "image test mail pass 42"     # alice's and postmaster's
    user: str = "alice"

    @property
    def alice(self) -> str:
        return f"{self.user}@{self.domain}"

    @property
    def postmaster(self) -> str:
        # the monitor mails monitor.admin_address, by default postmaster@<primary domain>
        return f"postmaster@{self.domain}"


def unverified_context() -> ssl.SSLContext:
    """For the console before and during set-up only: its first-boot certificate is
    self-signed for `mailstead.invalid` and made inside the guest, so the host has no
    copy to trust; the connection is to a loopback forward of a VM this test started,
    so nothing can sit in between. Mail connections are verified (mail_checks.py)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are returned, not followed: each step checks where the wizard sends it."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class Console:
    """One browser-like session (cookie jar) against the console at `base`."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=unverified_context()),
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), NoRedirect())

    def fetch(self, path: str, form: dict[str, str] | None = None) -> tuple[int, str, str]:
        """(status, Location, body) of a GET, or of a POST when `form` is given."""
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        try:
            with self.opener.open(self.base + path, data=data, timeout=TIMEOUT) as reply:
                return reply.status, reply.headers.get("Location", ""), reply.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get("Location", ""), exc.read().decode(errors="replace")

    def wait_up(self, budget: float = 300.0) -> str:
        """The set-up page, retried while gunicorn starts (under TCG on a busy host its
        start after the setup code took 120-200 s, beside the engine, the monitor and
        the two public web listeners)."""
        deadline = time.monotonic() + budget
        while True:
            try:
                status, _, page = self.fetch("/setup")
                if status == 200:
                    return page
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the console did not answer /setup within {budget:.0f} s")
            time.sleep(2)

    def token(self, path: str) -> str:
        status, _, page = self.fetch(path)
        assert status == 200, f"GET {path}: {status}"
        found = TOKEN.search(page)
        assert found is not None, f"no CSRF token on {path}"
        return found.group(1)

    def submit(self, path: str, form: dict[str, str], expect: str,
               page: str | None = None) -> str:
        """POST `form` with the CSRF token of `page` (default: `path`) and check that the
        console redirects to a URL ending in `expect`; returns that URL."""
        full = {**form, "csrf_token": self.token(page or path)}
        status, location, body = self.fetch(path, full)
        assert status in (302, 303), f"POST {path}: {status} {_flashes(body)}"
        assert urllib.parse.urlsplit(location).path.endswith(expect), \
            f"POST {path} went to {location}, not {expect}"
        return location


def _flashes(page: str) -> str:
    """The error messages of a refused form (for the failure line)."""
    return " | ".join(m.strip() for m in re.findall(r'class="[^"]*(?:flash|error)[^"]*"[^>]*>'
                                                   r'([^<]{1,200})', page))[:300]


def enter_code(console: Console, code: str) -> str:
    """The gate: a wrong code is refused (401), the one on the serial console accepted."""
    token = TOKEN.search(console.wait_up())
    assert token is not None, "no CSRF token on the setup page"
    wrong, _, _ = console.fetch("/setup/code", {"code": "WRONG-CODE-0000",
                                                "csrf_token": token.group(1)})
    assert wrong == 401, f"a wrong code got {wrong}"
    status, location, _ = console.fetch("/setup/code", {"code": code,
                                                        "csrf_token": token.group(1)})
    assert status == 302, status
    assert location.endswith("/setup/admin"), location
    return "HTTPS wizard refused a wrong code and accepted the one on the console"


def run_wizard(console: Console, site: Site) -> str:
    """The wizard's steps after the code, in the order /setup leads through them."""
    console.submit("/setup/admin", {"username": site.admin, "password": site.admin_password,
                                    "password2": site.admin_password}, "/setup/totp")
    console.submit("/setup/totp", {"action": "skip"}, "/setup")
    console.submit("/setup/host", {"hostname": site.hostname, "domain": site.domain},
                   "/setup")
    console.submit("/setup/timezone", {"timezone": site.timezone}, "/setup")
    console.submit("/setup/tls", {"mode": "self-signed"}, "/setup")
    console.submit("/setup/dkim", {}, "/setup")
    status, location, _ = console.fetch("/setup")
    assert status == 302, status
    assert location.endswith("/setup/done"), location
    status, _, page = console.fetch("/setup/done")
    assert status == 200, status
    assert site.domain in page, "the done page does not name the primary domain"
    return f"admin, {site.hostname} / {site.domain}, {site.timezone}, self-signed TLS, DKIM"


def add_accounts(console: Console, site: Site) -> str:
    """alice and postmaster in the primary domain, through /admin/accounts/."""
    for local in (site.user, "postmaster"):
        console.submit("/admin/accounts/", {
            "local": local, "domain": site.domain, "password": site.mail_password,
            "password2": site.mail_password, "quota_mib": "0"}, "", page="/admin/accounts/")
    status, _, page = console.fetch("/admin/accounts/")
    assert status == 200, status
    missing = [a for a in (site.alice, site.postmaster) if a not in page]
    assert not missing, f"not listed on /admin/accounts/: {missing}"
    return f"{site.alice} and {site.postmaster} created and listed"


def offline_settings(console: Console) -> str:
    """Greylisting off and the virus scan failing open, in /admin/settings.

    Why: the test VM has no network, so freshclam never fetches signatures and clamd never
    starts (the virus check then defers with 451), and greylisting defers a first message
    for 5 minutes (451). Both are the documented defaults for a box on the internet; an
    admin of an offline box changes them here, as this does. The greylist section is saved
    last: guest_probe.sh waits for its row in mailstead.db to know set-up is complete.
    """
    # a checkbox left out of the form means false (admin_system._submitted)
    console.submit("/admin/settings", {"section": "antivirus", "antivirus.enabled": "on",
                                       "antivirus.fail_open": "on"}, "/admin/settings")
    console.submit("/admin/settings", {"section": "greylist"}, "/admin/settings")
    return "greylist.enabled=false, antivirus.fail_open=true"
