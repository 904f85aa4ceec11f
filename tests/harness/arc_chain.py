"""Building real DKIM-signed and ARC-sealed messages for the ARC tests (dkimpy does the
signing, as a real forwarder would): keys with their DNS records, signers that play the
author's domain and the mailing lists that forward its mail."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import dkim  # type: ignore[import-untyped]  # dkimpy ships no type hints
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from appliance.checks.auth_dns import DnsFunc

SIGNED = [b"from", b"to", b"subject", b"date", b"message-id"]


@dataclass(frozen=True)
class Key:
    """An RSA key: the PEM dkimpy signs with and the TXT record that publishes it."""

    private_pem: bytes
    record: bytes

    @classmethod
    def generate(cls, bits: int = 1024) -> Key:
        """A new key (1024 bits by default: fast to make, the least RFC 8301 accepts)."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
        der = key.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
        return cls(pem, b"v=DKIM1; k=rsa; p=" + base64.b64encode(der))


@dataclass
class Signer:
    """A domain with a selector and key that DKIM-signs and ARC-seals."""

    domain: str
    selector: str = "s1"
    key: Key = field(default_factory=Key.generate)

    @property
    def record_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"

    def dkim_sign(self, message: bytes) -> bytes:
        """`message` with this domain's DKIM-Signature in front."""
        field = dkim.sign(message, self.selector.encode(), self.domain.encode(),
                          self.key.private_pem, include_headers=SIGNED,
                          canonicalize=(b"relaxed", b"relaxed"))
        return bytes(field) + message

    def seal(self, message: bytes, arc_result: str, results: str = "dkim=pass") -> bytes:
        """`message` as this domain forwards it: an Authentication-Results field of its own
        (with `arc=<arc_result>`, the chain status it found) and then its ARC set."""
        authres = (f"Authentication-Results: {self.domain}; {results}; "
                   f"arc={arc_result}\r\n").encode()
        with_ar = authres + message
        fields = dkim.arc_sign(with_ar, self.selector.encode(), self.domain.encode(),
                               self.key.private_pem, self.domain.encode(),
                               include_headers=SIGNED)
        if not fields:
            raise AssertionError(f"dkimpy would not seal for {self.domain}")
        return b"".join(fields) + with_ar


def records(*signers: Signer) -> dict[bytes, bytes]:
    """The signers' key records by DNS name as dkimpy asks for them (bytes, final dot)."""
    return {f"{s.record_name}.".encode(): s.key.record for s in signers}


def dict_dns(table: dict[bytes, bytes]) -> DnsFunc:
    """A dkimpy dnsfunc answering from `table` (unit tests; integration tests use Knot)."""

    def lookup(name: bytes, timeout: float = 5.0) -> bytes | None:
        return table.get(name)

    return lookup


def plain_message(sender: str = "alice@origin.example", subject: str = "Hello") -> bytes:
    """A small message from `sender` to a mailing list."""
    return (f"From: Alice <{sender}>\r\n"
            "To: list@lists.example.net\r\n"
            f"Subject: {subject}\r\n"
            "Date: Fri, 27 Nov 2026 12:00:00 +0000\r\n"
            "Message-ID: <arc-test-1@origin.example>\r\n"
            "\r\n"
            "Hello list.\r\n").encode()


def list_rewrite(message: bytes, tag: str = "[list]") -> bytes:
    """What a mailing list does that breaks DKIM: a Subject tag and a footer."""
    head, _, body = message.partition(b"\r\n\r\n")
    head = head.replace(b"\r\nSubject: ", f"\r\nSubject: {tag} ".encode(), 1)
    return head + b"\r\n\r\n" + body + b"-- \r\nlist footer\r\n"


def two_hop_chain(author: Signer, hop1: Signer, hop2: Signer) -> bytes:
    """The classic case: the author signs, hop 1 seals (cv=none), hop 2 rewrites the
    Subject and body like a list and seals (cv=pass): DKIM now fails, ARC passes."""
    signed = author.dkim_sign(plain_message())
    first = hop1.seal(signed, "none")
    return hop2.seal(list_rewrite(first), "pass", results="dkim=pass")


def txt_zone_line(owner: str, record: bytes) -> str:
    """A zone-file TXT line for `record`, split into character-strings of at most 200
    bytes (one string holds at most 255, RFC 1035 3.3.14; a 2048-bit key needs two)."""
    text = record.decode("ascii")
    strings = " ".join(f'"{text[i:i + 200]}"' for i in range(0, len(text), 200))
    return f"{owner} TXT {strings}"


def zone_lines(origin: str, *signers: Signer) -> list[str]:
    """Key record lines, relative to zone `origin`, for the signers whose domain is in it."""
    suffix = "." + origin
    return [txt_zone_line(s.record_name.removesuffix(suffix), s.key.record)
            for s in signers if s.record_name.endswith(suffix)]
