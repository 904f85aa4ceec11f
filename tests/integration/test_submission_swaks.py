"""A real third-party client, swaks, on the submission listeners: STARTTLS + AUTH PLAIN and
LOGIN on 587-style, implicit TLS on 465-style, and the refusals it shows to a user.

swaks and libnet-ssleay-perl are test dependencies (`build.sh test` installs them).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

import pytest

from appliance.smtp import replies
from harness.engine import EngineProcess
from harness.submission import PASSWORD

NewAccount = Callable[[str], str]      # the `new_account` fixture
MX_SETTINGS = {"auth__failure_delay_ms": 0, "auth__max_failures_per_ip": 1000}


def swaks(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("swaks")
    assert binary is not None, "swaks is not installed (build.sh test installs it)"
    return subprocess.run(
        [binary, "--server", "127.0.0.1", "--port", str(port), "--helo", "laptop.example.org",
         "--timeout", "20", *args],
        capture_output=True, text=True, timeout=60, check=False)


def submit(mx: EngineProcess, user: str, to: str, *extra: str,
           password: str = PASSWORD) -> subprocess.CompletedProcess[str]:
    return swaks(mx.submission_port, "--tls", "--auth-user", user, "--auth-password", password,
                 "--from", user, "--to", to, *extra)


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_swaks_starttls_auth_delivers(mx: EngineProcess,
                                      new_account: NewAccount, mechanism: str) -> None:
    user, rcpt = new_account("swaks"), new_account("rcpt")
    result = submit(mx, user, rcpt, "--auth", mechanism, "--header", "Subject: via swaks")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"~> AUTH {mechanism}" in result.stdout
    assert "<~  235 2.7.0 Authentication successful" in result.stdout
    (data,) = mx.messages(rcpt)
    assert b"Subject: via swaks" in data
    assert b" with ESMTPSA id " in data


def test_swaks_implicit_tls_auth_delivers(mx: EngineProcess, new_account: NewAccount) -> None:
    user, rcpt = new_account("swakstls"), new_account("rcpt")
    result = swaks(mx.submissions_port, "--tls-on-connect", "--auth", "PLAIN",
                   "--auth-user", user, "--auth-password", PASSWORD, "--from", user,
                   "--to", rcpt)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(mx.messages(rcpt)) == 1


def test_swaks_without_tls_gets_no_auth(mx: EngineProcess, new_account: NewAccount) -> None:
    user, rcpt = new_account("plain"), new_account("rcpt")
    result = swaks(mx.submission_port, "--auth", "PLAIN", "--auth-user", user,
                   "--auth-password", PASSWORD, "--from", user, "--to", rcpt)
    assert result.returncode != 0
    assert "AUTH PLAIN" not in result.stdout.replace("--auth", "")    # never sent
    assert PASSWORD not in result.stdout
    assert mx.messages(rcpt) == []


def test_swaks_wrong_password_sees_535(mx: EngineProcess, new_account: NewAccount) -> None:
    user, rcpt = new_account("wrongpw"), new_account("rcpt")
    result = submit(mx, user, rcpt, "--auth", "PLAIN", password="not the password")
    assert result.returncode == 28, result.stdout + result.stderr    # 28: AUTH failed
    assert f"<~* {replies.AUTH_FAILED}" in result.stdout
    assert mx.messages(rcpt) == []


def test_swaks_forged_sender_sees_553(mx: EngineProcess, new_account: NewAccount) -> None:
    user, other = new_account("swforge"), new_account("other")
    result = swaks(mx.submission_port, "--tls", "--auth", "LOGIN", "--auth-user", user,
                   "--auth-password", PASSWORD, "--from", other, "--to", other)
    assert result.returncode == 23, result.stdout + result.stderr    # 23: MAIL refused
    assert f"<~* {replies.SENDER_NOT_OWNED}" in result.stdout
    assert mx.messages(other) == []


def test_swaks_forged_from_header_sees_553(mx: EngineProcess, new_account: NewAccount) -> None:
    user, other = new_account("swhdr"), new_account("other")
    result = submit(mx, user, other, "--auth", "PLAIN", "--header", f"From: <{other}>")
    assert result.returncode == 26, result.stdout + result.stderr    # 26: message refused
    assert f"<~* {replies.FROM_NOT_OWNED}" in result.stdout
    assert mx.messages(other) == []
