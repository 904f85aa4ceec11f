"""IMAP with real command-line clients against the real engine: curl (`imap://` with STARTTLS
and `imaps://`: list mailboxes, fetch a message by UID) and mbsync (isync) doing a full
two-way sync: new mail down, flag changes and deletions up, a folder created on each side."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.debian import ensure_package
from harness.engine import EngineProcess
from harness.imap import HOSTNAME, PASSWORD, deliver, ssl_client

MX_SETTINGS = {"server__dev_mode": False, "auth__failure_delay_ms": 0}

needs_curl = pytest.mark.usefixtures("curl")
needs_mbsync = pytest.mark.usefixtures("mbsync")


@pytest.fixture(scope="module")
def curl() -> str:
    """curl from Debian, installed when missing (never skipped)."""
    return ensure_package("curl", "curl")


@pytest.fixture(scope="module")
def mbsync() -> str:
    """mbsync from Debian's isync, installed when missing (never skipped)."""
    return ensure_package("mbsync", "isync")


def _message(number: int) -> bytes:
    return (f"From: a@example.org\r\nTo: b@example.test\r\nSubject: message {number}\r\n"
            f"Message-ID: <m{number}@example.org>\r\n\r\nbody of message {number}\r\n").encode()


def _curl(mx: EngineProcess, user: str, url_path: str, implicit: bool,
          *extra: str) -> subprocess.CompletedProcess[str]:
    port = mx.imaps_port if implicit else mx.imap_port
    scheme = "imaps" if implicit else "imap"
    command = ["curl", "--silent", "--show-error", "--max-time", "20",
               "--cacert", str(mx.data_dir / "tls" / "cert.pem"),
               "--resolve", f"{HOSTNAME}:{port}:127.0.0.1", "--user", f"{user}:{PASSWORD}",
               *([] if implicit else ["--ssl-reqd"]), *extra,
               f"{scheme}://{HOSTNAME}:{port}/{url_path}"]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


@needs_curl
@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "imaps"])
def test_curl_lists_and_fetches_by_uid(mx: EngineProcess, new_account: Callable[[str], str],
                                       implicit: bool) -> None:
    address = new_account("curl")
    client = ssl_client(mx, address)
    for number in (1, 2):
        client.append("INBOX", None, None, _message(number))
    client.logout()
    listed = _curl(mx, address, "", implicit)
    assert listed.returncode == 0, listed.stderr
    assert '"/" INBOX' in listed.stdout
    assert '"/" Sent' in listed.stdout
    fetched = _curl(mx, address, "INBOX;UID=2", implicit)
    assert fetched.returncode == 0, fetched.stderr
    assert fetched.stdout.replace("\r\n", "\n") == _message(2).decode().replace("\r\n", "\n")
    examined = _curl(mx, address, "INBOX", implicit, "--request", "EXAMINE INBOX")
    assert examined.returncode == 0, examined.stderr
    assert "2 EXISTS" in examined.stdout, examined.stdout


def _mbsync_config(mx: EngineProcess, address: str, local: Path) -> Path:
    config = local / "mbsyncrc"
    config.write_text(
        f"IMAPAccount far\nHost 127.0.0.1\nPort {mx.imaps_port}\nUser {address}\n"
        f'Pass "{PASSWORD}"\nSSLType IMAPS\n'
        f"CertificateFile {mx.data_dir / 'tls' / 'cert.pem'}\n\n"
        "IMAPStore far\nAccount far\n\n"
        f"MaildirStore near\nPath {local}/mail/\nInbox {local}/mail/INBOX\n"
        "SubFolders Verbatim\n\n"
        "Channel all\nFar :far:\nNear :near:\nPatterns *\nCreate Both\nExpunge Both\n"
        f"Sync All\nSyncState {local}/state/\n", encoding="utf-8")
    (local / "state").mkdir(parents=True)
    (local / "mail").mkdir()
    return config


def _sync(config: Path) -> None:
    done = subprocess.run(["mbsync", "-c", str(config), "-a"], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, f"mbsync failed:\n{done.stdout}\n{done.stderr}"


def _subject(path: Path) -> bytes:
    return path.read_bytes().split(b"Subject: ")[1].split(b"\n")[0].rstrip(b"\r")


def _files(folder: Path) -> list[Path]:
    return sorted([*(folder / "cur").iterdir(), *(folder / "new").iterdir()])


@needs_mbsync
def test_mbsync_two_way_sync(mx: EngineProcess, new_account: Callable[[str], str],
                             tmp_path: Path) -> None:
    address = new_account("mbsync")
    client = ssl_client(mx, address)
    for number in (1, 2, 3):
        client.append("INBOX", None, None, _message(number))
    client.create("Server-Made")
    client.append("Server-Made", None, None, _message(10))
    client.logout()
    config = _mbsync_config(mx, address, tmp_path)
    mail = tmp_path / "mail"

    _sync(config)
    inbox = _files(mail / "INBOX")
    assert len(inbox) == 3
    assert len(_files(mail / "Server-Made")) == 1
    # Near side: read message 1 (flag S), delete message 2, make a folder with one message.
    by_subject = {_subject(f): f for f in inbox}
    first = by_subject[b"message 1"]
    first.rename(first.parent.parent / "cur" / (first.name.split(":2,")[0] + ":2,S"))
    by_subject[b"message 2"].unlink()
    made = mail / "Near-Made"
    for sub in ("cur", "new", "tmp"):
        (made / sub).mkdir(parents=True)
    (made / "new" / "1.local").write_bytes(_message(20))
    # Far side: new mail arrives over SMTP.
    deliver(mx, address, "arrived later")

    _sync(config)
    subjects = sorted(_subject(f) for f in _files(mail / "INBOX"))
    assert subjects == [b"arrived later", b"message 1", b"message 3"]
    client = ssl_client(mx, address)
    try:
        client.select("INBOX")
        status, data = client.uid("SEARCH", "SEEN")
        seen = data[0].split()
        assert status == "OK"
        assert len(seen) == 1
        _, fetched = client.uid("FETCH", seen[0].decode(), "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert b"message 1" in fetched[0][1]
        assert client.search(None, "SUBJECT", '"message 2"') == ("OK", [b""])
        assert client.status("Near-Made", "(MESSAGES)")[1][0].endswith(b"(MESSAGES 1)")
    finally:
        client.logout()
