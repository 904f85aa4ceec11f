"""A real third-party client, swaks, against the MX: a large message lands whole, byte for
byte (after the CRLF -> LF of Maildir), and a refused recipient shows the catalogue reply.

swaks is a test dependency (`build.sh test` installs it): without it these tests fail.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from appliance.smtp import replies
from harness.engine import EngineProcess


def swaks(mx: EngineProcess, *args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("swaks")
    assert binary is not None, "swaks is not installed (build.sh test installs it)"
    return subprocess.run(
        [binary, "--server", "127.0.0.1", "--port", str(mx.smtp_port),
         "--helo", "swaks.example.org", "--timeout", "20", *args],
        capture_output=True, text=True, timeout=60, check=False)


def awkward_body() -> bytes:
    """~200 KB of lines that stress transparency and 8-bit handling."""
    lines = [b".", b"..", b". leading dot", b"...three", b"", b" ", b"\t tab",
             "8-bit: h\u00e9las, \u65e5\u672c\u8a9e, \u0440\u0443\u0441\u0441\u043a\u0438\u0439"
             .encode(),
             b"x" * 998, b"." + b"y" * 997, b"From the start of a line", b"end."]
    body = []
    for number in range(1500):
        body.append(f"line {number:05d} ".encode() + b"=" * (number % 70))
        body.append(lines[number % len(lines)])
    return b"\r\n".join(body) + b"\r\n"


def test_large_message_from_swaks_lands_whole(mx: EngineProcess, tmp_path: Path) -> None:
    mx.add_account("swaks@example.test")
    body = awkward_body()
    message = (b"From: <sender@example.org>\r\nTo: <swaks@example.test>\r\n"
               b"Subject: from swaks\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body)
    message_file = tmp_path / "message.eml"
    # swaks sends --data as it is and then CRLF "." CRLF, so the file has no final line end.
    message_file.write_bytes(message.removesuffix(b"\r\n"))
    result = swaks(mx, "--from", "sender@example.org", "--to", "swaks@example.test",
                   "--pipeline", "--data", f"@{message_file}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "<** " not in result.stdout           # swaks marks refusals with <**
    (data,) = mx.messages("swaks@example.test")
    assert data.startswith(b"Return-Path: <sender@example.org>\nReceived: from "
                           b"swaks.example.org ([127.0.0.1])")
    head, _, stored = data.partition(b"\n\n")
    assert head.endswith(b"\nSubject: from swaks\nContent-Type: text/plain; charset=utf-8")
    assert stored == body.replace(b"\r\n", b"\n")


def test_swaks_to_an_unknown_user_sees_550(mx: EngineProcess) -> None:
    result = swaks(mx, "--from", "sender@example.org", "--to", "nobody@example.test")
    assert result.returncode == 24, result.stdout + result.stderr   # 24: no RCPT accepted
    assert f"<** {replies.UNKNOWN_USER}" in result.stdout
