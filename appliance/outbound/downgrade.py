"""8BITMIME downgrade: re-encode 8-bit body parts as quoted-printable for a 7-bit peer.

RFC 6152 3: a client with an 8-bit message for a server that does not announce 8BITMIME
must either convert it to 7 bits (RFC 2045 encodings) or return it as undeliverable. Like
Postfix (`disable_mime_output_conversion = no`) we convert: every leaf part whose body has
octets above 127 gets `Content-Transfer-Encoding: quoted-printable`; multiparts and
message/rfc822 parts are walked recursively (RFC 2046 5.2.1: their own encoding must be 7bit
then); everything else is left byte for byte. A message with 8-bit octets in a header cannot
be converted (that needs SMTPUTF8): the caller bounces it; mail that is not MIME at all is
sent as it is (Postfix does the same: there is nothing to declare an encoding in).
Converting changes the body, so a DKIM signature over it no longer verifies; peers without
8BITMIME are rare.
"""

from __future__ import annotations

import binascii
import re

from appliance.outbound.smtp_client_commands import crlf_message

MAX_DEPTH = 50          # nesting beyond this is left as it is (and then refused)
_BOUNDARY = re.compile(rb'boundary\s*=\s*(?:"([^"]+)"|([^\s;]+))', re.IGNORECASE)
_CTE_LINE = re.compile(rb"content-transfer-encoding\s*:", re.IGNORECASE)


def to_7bit(message: bytes) -> bytes | None:
    """`message` (any line ends) with its 8-bit parts re-encoded, CRLF line ends out.

    None when it cannot be converted: 8-bit octets in a header. A message that is not MIME
    (no MIME-Version field) is returned unchanged: there is no encoding to declare, and
    Postfix sends such mail as it is too.
    """
    message = crlf_message(message)
    header = _split(message)[0]
    if not header.isascii():
        return None
    if not _field(header, b"mime-version"):
        return message
    converted = _entity(message, depth=0)
    if converted is None or not converted.isascii():
        return None
    return converted


def _entity(entity: bytes, depth: int) -> bytes | None:
    header, separator, body = _split(entity)
    if not header.isascii():
        return None
    if body.isascii() or depth > MAX_DEPTH:
        return entity
    content_type = _field(header, b"content-type").lower()
    if content_type.startswith(b"multipart/"):
        found = _BOUNDARY.search(_field(header, b"content-type"))
        if found is None:
            return _as_quoted_printable(header, separator, body)
        boundary = found.group(1) or found.group(2)
        inner = _multipart(body, boundary, depth)
        return None if inner is None else _set_encoding(header, b"7bit") + separator + inner
    if content_type.startswith(b"message/rfc822"):
        inner = _entity(body, depth + 1)
        return None if inner is None else _set_encoding(header, b"7bit") + separator + inner
    return _as_quoted_printable(header, separator, body)


def _multipart(body: bytes, boundary: bytes, depth: int) -> bytes | None:
    """Each part between `--boundary` lines converted; preamble and epilogue kept."""
    delimiter = b"--" + boundary
    lines = body.split(b"\r\n")
    out: list[bytes] = []
    part: list[bytes] | None = None     # None: in the preamble or epilogue
    for line in lines:
        stripped = line.rstrip(b" \t")
        if stripped in (delimiter, delimiter + b"--"):
            if part is not None:
                converted = _entity(b"\r\n".join(part), depth + 1)
                if converted is None:
                    return None
                out.append(converted)
            out.append(line)
            part = [] if stripped == delimiter else None
        elif part is not None:
            part.append(line)
        else:
            out.append(_ascii_only(line))
    if part is not None:                # no closing delimiter: the last part ends the body
        converted = _entity(b"\r\n".join(part), depth + 1)
        if converted is None:
            return None
        out.append(converted)
    return b"\r\n".join(out)


def _as_quoted_printable(header: bytes, separator: bytes, body: bytes) -> bytes:
    lines = body.split(b"\r\n")
    encoded = [binascii.b2a_qp(line, quotetabs=False, istext=False, header=False)
               .replace(b"=\n", b"=\r\n") for line in lines]
    return _set_encoding(header, b"quoted-printable") + separator + b"\r\n".join(encoded)


def _set_encoding(header: bytes, encoding: bytes) -> bytes:
    """`header` with its Content-Transfer-Encoding field (folded lines too) replaced."""
    kept: list[bytes] = []
    skipping = False
    for line in header.split(b"\r\n") if header else []:
        if skipping and line[:1] in (b" ", b"\t"):
            continue
        skipping = bool(_CTE_LINE.match(line))
        if not skipping:
            kept.append(line)
    kept.append(b"Content-Transfer-Encoding: " + encoding)
    return b"\r\n".join(kept)


def _split(entity: bytes) -> tuple[bytes, bytes, bytes]:
    """(header without its last CRLF, the CRLF CRLF separator, body)."""
    if entity.startswith(b"\r\n"):        # no header: a rebuilt one needs the blank line
        return b"", b"\r\n\r\n", entity[2:]
    end = entity.find(b"\r\n\r\n")
    if end < 0:
        return entity, b"", b""
    return entity[:end], b"\r\n\r\n", entity[end + 4:]


def _field(header: bytes, name: bytes) -> bytes:
    """The unfolded value of the first field `name` (lower-case), or b""."""
    lines = header.split(b"\r\n")
    for index, line in enumerate(lines):
        field, colon, value = line.partition(b":")
        if colon and field.strip().lower() == name:
            for more in lines[index + 1:]:
                if more[:1] not in (b" ", b"\t"):
                    break
                value += b" " + more.strip()
            return value.strip()
    return b""


def _ascii_only(line: bytes) -> bytes:
    """Preamble and epilogue are not shown to readers (RFC 2046 5.1.1): 8-bit octets → '?'."""
    return line if line.isascii() else bytes(b if b < 128 else 0x3F for b in line)
