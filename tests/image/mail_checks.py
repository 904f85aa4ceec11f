"""image-test: mail through the booted appliance from the host, over the loopback forwards.

Owns the mail clients of the image test: SMTP to the MX (25), submission with STARTTLS (587)
and implicit TLS (465) with AUTH PLAIN, reading back over IMAPS (993), and finding the
monitor's alert mail in postmaster's INBOX. TLS is verified against the certificate the
guest serves (pinned on first use), and that certificate must name the wizard's hostname.
Standard library only (runs under the host's python3).
"""

from __future__ import annotations

import imaplib
import smtplib
import socket
import ssl
import time
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import default

TIMEOUT = 180.0      # one SMTP/IMAP exchange: the MX's DNS checks time out offline


@dataclass(frozen=True)
class Ports:
    """Host ports forwarded to the guest's 25, 587, 465 and 993."""

    smtp: int
    submission: int
    submissions: int
    imaps: int


def pinned_context(port: int, hostname: str) -> ssl.SSLContext:
    """A context that trusts only the certificate the guest serves on `port` now.

    The appliance's certificate is self-signed and made inside the guest by the wizard's
    TLS step; the host has no other copy, so it is taken on first use over the loopback
    forward of the VM this test started (nothing can sit in between) and every later
    connection must present the same one. Hostname checks are done by `check_names`
    (the clients connect to 127.0.0.1, not to the hostname)."""
    pem = ssl.get_server_certificate(("127.0.0.1", port), timeout=60)
    context = ssl.create_default_context(cadata=pem)
    context.check_hostname = False
    return context


def check_names(sock: ssl.SSLSocket | socket.socket | None, hostname: str) -> None:
    """The verified peer certificate's subjectAltName includes `hostname`."""
    assert isinstance(sock, ssl.SSLSocket), "not a TLS connection"
    cert = sock.getpeercert()
    assert cert, "no verified peer certificate"
    names = [str(pair[1]) for pair in cert.get("subjectAltName", ()) if pair[0] == "DNS"]
    assert hostname in names, f"certificate names {names}, not {hostname}"


def make_message(sender: str, to: str, what: str) -> tuple[EmailMessage, str]:
    """A message with a unique subject (returned) to find it again over IMAP."""
    tag = uuid.uuid4().hex[:12]
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = f"image-test {what} {tag}"
    message["Message-ID"] = f"<{tag}@image-test.example.org>"
    message.set_content(f"Sent by ./build.sh image-test ({what}), token {tag}.\n")
    return message, message["Subject"]


def send_mx(ports: Ports, helo: str, message: EmailMessage) -> str:
    """Plain SMTP to the MX on 25, as another mail server would (no AUTH)."""
    with smtplib.SMTP("127.0.0.1", ports.smtp, local_hostname=helo, timeout=TIMEOUT) as c:
        refused = c.send_message(message)
        assert not refused, refused
        return "accepted on 25"


def send_submission(ports: Ports, context: ssl.SSLContext, hostname: str, user: str,
                    password: str, message: EmailMessage, implicit_tls: bool) -> str:
    """Submission as `user` with AUTH PLAIN (RFC 4954, RFC 4616): STARTTLS on 587
    (RFC 3207) or TLS from the first byte on 465 (RFC 8314 3.3)."""
    client: smtplib.SMTP
    if implicit_tls:
        client = smtplib.SMTP_SSL("127.0.0.1", ports.submissions, context=context,
                                  timeout=TIMEOUT)
    else:
        client = smtplib.SMTP("127.0.0.1", ports.submission, timeout=TIMEOUT)
    with client:
        client.ehlo("client.example.org")
        if not implicit_tls:
            assert not client.has_extn("auth"), "AUTH offered before STARTTLS"
            client.starttls(context=context)
            client.ehlo("client.example.org")
        check_names(client.sock, hostname)
        assert "PLAIN" in client.esmtp_features.get("auth", "").upper().split(), \
            client.esmtp_features.get("auth")
        client.user, client.password = user, password
        code, reply = client.auth("PLAIN", client.auth_plain)
        assert code == 235, (code, reply)
        refused = client.send_message(message)
        assert not refused, refused
    return f"AUTH PLAIN as {user} (235), accepted on {465 if implicit_tls else 587}"


class Imaps(imaplib.IMAP4_SSL):
    """IMAP over TLS to the forwarded 993 (RFC 8314), verified with the pinned context."""

    def __init__(self, port: int, context: ssl.SSLContext) -> None:
        super().__init__("127.0.0.1", port, ssl_context=context, timeout=TIMEOUT)


def find_subject(ports: Ports, context: ssl.SSLContext, hostname: str, user: str,
                 password: str, needle: str, budget: float) -> list[str]:
    """Subjects in `user`'s INBOX that contain `needle`, polled until one arrives or the
    budget runs out (then AssertionError naming what the INBOX held)."""
    deadline = time.monotonic() + budget
    while True:
        with Imaps(ports.imaps, context) as imap:
            check_names(imap.sock, hostname)
            imap.login(user, password)
            subjects = inbox_subjects(imap)
            imap.logout()
        hits = [s for s in subjects if needle.lower() in s.lower()]
        if hits:
            return hits
        if time.monotonic() > deadline:
            raise AssertionError(f"no mail with {needle!r} in {user}'s INBOX after "
                                 f"{budget:.0f} s; it holds {subjects[-5:]}")
        time.sleep(5)


def inbox_subjects(imap: imaplib.IMAP4) -> list[str]:
    """Every Subject in INBOX (read-only: EXAMINE, BODY.PEEK)."""
    status, _ = imap.select("INBOX", readonly=True)
    assert status == "OK", status
    status, data = imap.uid("SEARCH", "ALL")
    assert status == "OK", status
    uids = data[0].split() if data and data[0] else []
    if not uids:
        return []
    status, rows = imap.uid("FETCH", b",".join(uids).decode(),
                            "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert status == "OK", status
    parser = BytesHeaderParser(policy=default)
    return [str(parser.parsebytes(row[1]).get("Subject", "")) for row in rows
            if isinstance(row, tuple)]
