"""SMTP client commands (pure): MAIL/RCPT with their ESMTP parameters, and the DATA body.

Builds the exact bytes we send; refuses anything that could inject a command (CR, LF, NUL
in an address or parameter). The body is normalised to CRLF line ends and dot-stuffed here,
whatever line ends the queue file used (RFC 5321 2.3.8 and 4.5.2).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from appliance.outbound.smtp_client_protocol import Capabilities
from appliance.outbound.types import OutboundEnvelope, OutboundRecipient

_NOTIFY_WORDS = frozenset({"SUCCESS", "FAILURE", "DELAY", "NEVER"})
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f]")      # nothing that could end the command line
_LINE_ENDS = re.compile(rb"\r\n|\r|\n")
_ADDR_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")


class CommandError(ValueError):
    """An envelope value cannot be sent safely (it would break the command line)."""


def xtext(text: str) -> str:
    """RFC 3461 4: xtext = *( xchar / hexchar ); "+", "=" and non-printables become +XX."""
    out: list[str] = []
    for byte in text.encode("utf-8"):
        plain = 0x21 <= byte <= 0x7E and byte not in (0x2B, 0x3D)
        out.append(chr(byte) if plain else f"+{byte:02X}")
    return "".join(out)


def _path(address: str) -> str:
    """`<address>` for MAIL/RCPT; "" is the null reverse-path `<>` (RFC 5321 4.1.2)."""
    if _FORBIDDEN.search(address):
        raise CommandError(f"address {address!r} contains a character that cannot be sent")
    return f"<{address}>"


def needs_smtputf8(envelope: OutboundEnvelope, message: bytes) -> bool:
    """Whether the message can only be sent with SMTPUTF8 (RFC 6531 3.2).

    Non-ASCII addresses always need it; non-ASCII headers need it when the client that
    submitted the message asked for SMTPUTF8 (without it they are legacy 8-bit headers that
    peers have always taken).
    """
    addresses = [envelope.sender, *(r.address for r in envelope.recipients)]
    if any(not address.isascii() for address in addresses):
        return True
    if not envelope.smtputf8:
        return False
    return not header_block(message).isascii()


def header_block(message: bytes) -> bytes:
    """The header section: everything before the first empty line (LF or CRLF ends)."""
    if message.startswith((b"\n", b"\r\n")):
        return b""
    match = re.search(rb"\r?\n\r?\n", message)
    return message if match is None else message[:match.start()]


def is_8bit(envelope: OutboundEnvelope, message: bytes) -> bool:
    """Whether the body carries octets above 127 (then BODY=8BITMIME, RFC 6152)."""
    return envelope.body_8bit or not message.isascii()


def mail_command(envelope: OutboundEnvelope, caps: Capabilities, *, size: int,
                 smtputf8: bool, eightbit: bool) -> bytes:
    """`MAIL FROM:<sender>` with SIZE, BODY, SMTPUTF8, RET and ENVID where the peer has them.

    Raises:
        CommandError: the sender or ENVID cannot be sent safely.
    """
    words = [f"MAIL FROM:{_path(envelope.sender)}"]
    if caps.has("SIZE"):
        words.append(f"SIZE={size}")
    if eightbit and caps.has("8BITMIME"):
        words.append("BODY=8BITMIME")
    if smtputf8:
        words.append("SMTPUTF8")
    if caps.has("DSN"):
        if envelope.ret and envelope.ret.upper() in ("FULL", "HDRS"):
            words.append(f"RET={envelope.ret.upper()}")
        if envelope.envid:
            words.append(f"ENVID={xtext(envelope.envid)}")
    return _line(words)


def rcpt_command(recipient: OutboundRecipient, caps: Capabilities) -> bytes:
    """`RCPT TO:<address>` with RFC 3461 NOTIFY and ORCPT when the peer offers DSN.

    Raises:
        CommandError: the address or ORCPT cannot be sent safely.
    """
    words = [f"RCPT TO:{_path(recipient.address)}"]
    if caps.has("DSN"):
        notify = [word.upper() for word in recipient.notify]
        if notify and set(notify) <= _NOTIFY_WORDS:
            words.append("NOTIFY=" + ",".join(notify))
        orcpt = _orcpt(recipient.orcpt)
        if orcpt:
            words.append(orcpt)
    return _line(words)


def _orcpt(value: str | None) -> str | None:
    """`ORCPT=type;xtext` from a decoded "rfc822;user@example.org" (None if unusable)."""
    if not value:
        return None
    addr_type, sep, address = value.partition(";")
    if not sep or not address or not _ADDR_TYPE.fullmatch(addr_type):
        return None
    if not address.isascii():
        return None     # would need RFC 6533 utf-8-addr-xtext; ORCPT is optional, so leave it
    return f"ORCPT={addr_type.lower()};{xtext(address)}"


def _line(words: Sequence[str]) -> bytes:
    line = " ".join(words)
    if "\r" in line or "\n" in line or "\x00" in line:
        raise CommandError("command would contain a line break")
    return line.encode("utf-8") + b"\r\n"


def crlf_message(message: bytes) -> bytes:
    """The message with every line ending in CRLF (bare LF and bare CR included)."""
    normalised = _LINE_ENDS.sub(b"\r\n", message)
    if normalised and not normalised.endswith(b"\r\n"):
        normalised += b"\r\n"
    return normalised


def data_payload(message: bytes) -> bytes:
    """The DATA body: CRLF lines, leading dots doubled, then the `.` terminator line."""
    normalised = crlf_message(message)
    stuffed = normalised.replace(b"\r\n.", b"\r\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    return stuffed + b".\r\n"
