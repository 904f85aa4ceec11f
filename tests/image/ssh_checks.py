"""image-test: SSH, off until the admin turns it on in the console, then key-only.

Owns the image test's SSH client: before set-up the forward of port 22 gets no SSH server
(sshd is not running; the firewall would let the LAN in); the console's settings page
(section `ssh`) takes a key made here with ssh-keygen; then root logs in with that key and
runs a command, and a password login is refused by the server (keys only). The guest's host
key is taken on first use over the loopback forward of the VM this test started (nothing can
sit in between; the same reasoning as the pinned TLS certificate in mail_checks.py).
Debian's openssh-client (build.sh's IMAGE_TEST_DEBS).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from console_driver import Console

SSH_BUDGET = 180.0      # seconds from the console's save to a login (path unit, sshd start)


class Results(Protocol):
    def check(self, name: str, test: Callable[[], str]) -> None: ...


def make_key(work: Path) -> tuple[Path, str]:
    """An ed25519 key pair for the test: the private key's path and the public line."""
    key = work / "ssh-test-key"
    key.unlink(missing_ok=True)
    subprocess.run([_tool("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C",
                    "image-test", "-f", str(key)], check=True, timeout=60)
    return key, key.with_suffix(".pub").read_text().strip()


def enable_ssh(console: Console, public_key: str) -> str:
    """The console's settings page, section ssh: on, with the test's key."""
    console.submit("/admin/settings", {"section": "ssh", "ssh.enabled": "on",
                                       "ssh.authorized_keys": public_key}, "/admin/settings")
    return "ssh.enabled=true with one ed25519 key"


def no_sshd(port: int) -> str:
    """Before the admin enables it: the connection gets no SSH banner."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.settimeout(15)
        try:
            data = sock.recv(100)
        except (ConnectionResetError, TimeoutError):
            data = b""
    assert not data.startswith(b"SSH-"), data
    return "no SSH server answers before it is enabled"


def ssh_checks(port: int, key: Path, work: Path, results: Results) -> None:
    """After the console saved the key: root logs in with it; passwords are refused."""
    known = work / "ssh-known-hosts"
    base = [_tool("ssh"), "-p", str(port), "-o", f"UserKnownHostsFile={known}",
            "-o", "StrictHostKeyChecking=accept-new", "-o", "ConnectTimeout=30",
            "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"]

    def key_login() -> str:
        deadline = time.monotonic() + SSH_BUDGET
        while True:
            done = subprocess.run([*base, "-i", str(key), "root@127.0.0.1", "id -u; hostname"],
                                  capture_output=True, text=True, timeout=90, check=False)
            if done.returncode == 0:
                assert done.stdout.split()[0] == "0", done.stdout
                return f"root over SSH with the console's key: {' '.join(done.stdout.split())}"
            if time.monotonic() > deadline:
                raise AssertionError(f"no SSH login within {SSH_BUDGET:.0f} s: "
                                     f"{done.stderr.strip()[-300:]}")
            time.sleep(5)

    def password_refused() -> str:
        done = subprocess.run([*base, "-o", "PreferredAuthentications=password,"
                               "keyboard-interactive", "-o", "PubkeyAuthentication=no",
                               "root@127.0.0.1", "true"],
                              capture_output=True, text=True, timeout=90, check=False)
        assert done.returncode != 0, done.stdout
        assert "Permission denied (publickey)" in done.stderr, done.stderr[-300:]
        return "the server offers public keys only"

    results.check("SSH: root logs in with the key saved in the console", key_login)
    results.check("SSH: password logins refused (keys only)", password_refused)


def _tool(name: str) -> str:
    found = shutil.which(name)
    assert found is not None, f"{name} is missing: build.sh image-test installs openssh-client"
    return found
