"""Smoke check of the private Postfix helper: `python tests/peers/smoke_postfix.py`.

Starts two instances on free loopback ports, sends 3 messages to two mailboxes of the first,
waits for Maildir delivery, checks that relaying to a foreign domain is refused with 5xx,
prints the counts and the log tail, and stops both. Exits non-zero on any failure.
"""

from __future__ import annotations

import smtplib
import socket
import sys
import tempfile
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, as pytest would

from peers.postfix import PostfixInstance

MAILBOXES = ["alice@peer.test", "bob@peer.test"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def message(to: str, n: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "sender@client.test"
    msg["To"] = to
    msg["Subject"] = f"smoke {n}"
    msg.set_content(f"smoke message {n}\n")
    return msg


def relay_refused(port: int) -> str:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.ehlo("client.test")
        smtp.mail("sender@client.test")
        code, text = smtp.rcpt("victim@elsewhere.example")
    if not 500 <= code < 600:
        raise SystemExit(f"relay not refused: {code} {text!r}")
    return f"{code} {text.decode()}"


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="pf-smoke-") as tmp:
        first = PostfixInstance(Path(tmp, "a"), free_port(), ["peer.test"], MAILBOXES)
        second = PostfixInstance(Path(tmp, "b"), free_port(), ["other.test"], ["carol@other.test"])
        with first, second:
            with smtplib.SMTP("127.0.0.1", first.port, timeout=10) as smtp:
                for n, to in enumerate([MAILBOXES[0], MAILBOXES[1], MAILBOXES[0]]):
                    smtp.send_message(message(to, n))
            with smtplib.SMTP("127.0.0.1", second.port, timeout=10) as smtp:
                smtp.send_message(message("carol@other.test", 9))
            ok = first.wait_delivered(3, timeout=30) and second.wait_delivered(1, timeout=30)
            refusal = relay_refused(first.port)
            for address in MAILBOXES:
                print(f"{address}: {first.count_delivered(address)} in {first.maildir_of(address)}")
            print(f"carol@other.test: {second.count_delivered('carol@other.test')}")
            print(f"relay refused: {refusal}")
            print("--- log tail ---")
            print(first.log_tail(12))
        stopped = first.master_pid() is None and second.master_pid() is None
        print(f"delivered: {ok}, stopped: {stopped}")
        return 0 if ok and stopped else 1


if __name__ == "__main__":
    sys.exit(main())
