"""FETCH BODY and BODYSTRUCTURE (RFC 9051 7.5.2 / RFC 3501 7.4.2) from a parsed part tree.

Built as `wire.Value`s; render with `mime_render.render` (the parts of a multipart are an
`Adjacent` run). Where the RFC leaves room, we write what Dovecot writes (compared in
tests/integration/test_imap_mime_oracle.py):

- text parts without a charset get `("charset" "us-ascii")` (RFC 2045 5.2 default);
- a missing Content-Transfer-Encoding is "7bit" (RFC 2045 6.1);
- RFC 2231 parameters are merged but not decoded (`mime_tokens.merge_rfc2231`);
- of repeated Content-* fields the first counts (for Transfer-Encoding and Language the
  first that parses; a Disposition without parameters gives way to a later one);
- a broken Content-Type shows as "" "" (a lone "text" as "text" ""), a part nested too
  deep as application/octet-stream;
- a multipart without any part (no boundary, or a boundary never found) shows one empty
  text/plain part, since the grammar needs at least one (RFC 9051 9 "body-type-mpart");
- sizes are octets of the body with CRLF line ends; lines count line ends in the body.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.imap import wire
from appliance.imap.envelope import envelope_from_fields
from appliance.imap.mime import MESSAGE, MULTIPART, TEXT, Part, parse_message
from appliance.imap.mime_render import Adjacent
from appliance.imap.mime_tokens import (
    parse_content_type,
    parse_disposition,
    parse_language,
)

_Params = tuple[tuple[bytes, bytes], ...]
_EMPTY_TEXT: list[wire.Value] = [b"text", b"plain", [b"charset", b"us-ascii"], None, None,
                                 b"7bit", 0, 0]


@dataclass(frozen=True)
class PartData:
    """The Content-* facts of one part, as BODYSTRUCTURE shows them."""

    mime_type: bytes | None          # None: no (usable) Content-Type
    subtype: bytes | None
    params: _Params
    content_id: bytes | None
    description: bytes | None
    encoding: bytes | None
    md5: bytes | None
    disposition: tuple[bytes, _Params] | None
    language: list[bytes] | None
    location: bytes | None


def _value(part: Part, name: bytes) -> bytes | None:
    item = part.mime_field(name)
    return None if item is None else item.value


def _values(part: Part, name: bytes) -> list[bytes]:
    """Every value of a Content-* field, in order (none unless the part is MIME)."""
    if not part.is_mime:
        return []
    return [item.value for item in part.fields if item.is_named(name)]


def _language(part: Part) -> list[bytes] | None:
    """The first Content-Language that has any tag (Dovecot skips empty ones)."""
    for value in _values(part, b"content-language"):
        tags = parse_language(value)
        if tags:
            return tags
    return None


def _disposition(part: Part) -> tuple[bytes, _Params] | None:
    """Content-Disposition; like Dovecot, a later field replaces one without parameters."""
    found: tuple[bytes, _Params] | None = None
    for value in _values(part, b"content-disposition"):
        found = parse_disposition(value)
        if found[1]:
            break
    return found


def part_data(part: Part) -> PartData:
    """The Content-* fields of `part` (first of each wins; none unless it is MIME)."""
    mime_type = subtype = None
    params: _Params = ()
    ctype_value = _value(part, b"content-type")
    if ctype_value is not None:
        ctype = parse_content_type(ctype_value)
        mime_type, subtype = ctype.main, ctype.sub
        params = ctype.params
    return PartData(
        mime_type=mime_type, subtype=subtype, params=params,
        content_id=_nolf(_value(part, b"content-id")),
        description=_nolf(_value(part, b"content-description")),
        encoding=part.transfer_encoding,
        md5=_nolf(_value(part, b"content-md5")),
        disposition=_disposition(part),
        language=_language(part),
        location=_nolf(_value(part, b"content-location")),
    )


def _nolf(value: bytes | None) -> bytes | None:
    return None if value is None else value.replace(b"\r", b"").replace(b"\n", b"")


def _params(params: _Params, default_charset: bool) -> wire.Value:
    """A parameter list; text parts get charset us-ascii when they name none."""
    if not params and not default_charset:
        return None
    out: list[wire.Value] = []
    for key, value in params:
        out += [key, value]
    if default_charset and not any(key.lower() == b"charset" for key, _ in params):
        out += [b"charset", b"us-ascii"]
    return out


def _extension(data: PartData) -> list[wire.Value]:
    """body-fld-dsp, body-fld-lang, body-fld-loc (RFC 9051 9)."""
    disposition: wire.Value = None
    if data.disposition is not None:
        disposition = [data.disposition[0], _params(data.disposition[1], False)]
    language: wire.Value = None if data.language is None else list(data.language)
    return [disposition, language, data.location]


def _multipart(part: Part, data: PartData, extended: bool) -> list[wire.Value]:
    # RFC 9051 9: body-type-mpart = 1*body SP media-subtype (no space between bodies)
    bodies = [structure(child, extended) for child in part.children]
    if not bodies:
        bodies.append(_EMPTY_TEXT + ([None, None, None, None] if extended else []))
    out = Adjacent(bodies, run=len(bodies))
    out.append(data.subtype if data.subtype is not None else b"x-unknown")
    if extended:
        out.append(_params(data.params, False))
        out += _extension(data)
    return out


def _type_of(part: Part, data: PartData) -> tuple[bytes, bytes, bool]:
    """(type, subtype, is text) as written for a non-multipart part."""
    if part.kind == MESSAGE:
        return b"message", b"rfc822", False
    if part.too_deep:
        return b"application", b"octet-stream", False   # what Dovecot shows
    if data.mime_type is None or (part.kind == TEXT and not data.mime_type):
        return b"text", b"plain", True
    text = data.mime_type.lower() == b"text"
    return data.mime_type, data.subtype if data.subtype is not None else b"", text


def _single(part: Part, data: PartData, extended: bool) -> list[wire.Value]:
    mime_type, subtype, text = _type_of(part, data)
    out: list[wire.Value] = [
        mime_type, subtype, _params(data.params, text), data.content_id, data.description,
        data.encoding if data.encoding is not None else b"7bit", part.body_size]
    if text:
        out.append(part.body_lines)
    elif part.kind == MESSAGE and part.children:
        child = part.children[0]
        out += [envelope_from_fields(child.fields), structure(child, extended), part.body_lines]
    if extended:
        out.append(data.md5)
        out += _extension(data)
    return out


def structure(part: Part, extended: bool = True) -> wire.Value:
    """BODYSTRUCTURE (`extended`) or BODY of `part` and everything below it."""
    data = part_data(part)
    if part.kind == MULTIPART:
        return _multipart(part, data, extended)
    return _single(part, data, extended)


def bodystructure(message: bytes, extended: bool = True) -> wire.Value:
    """FETCH BODYSTRUCTURE (or BODY with `extended=False`) of a whole message."""
    return structure(parse_message(message), extended)
