"""FETCH ENVELOPE (RFC 9051 7.5.2 / RFC 3501 7.4.2): the envelope of a header, with the
address lists parsed as RFC 5322 3.4 says and groups shown as RFC 9051 describes.

Values are `wire.Value`s; render them with `mime_render.render` (address lists are
`Adjacent` runs). Header values are unfolded and RFC 2047 encoded-words are left as they
are (IMAP clients decode them; Dovecot does the same). Like Dovecot: the last of repeated
Date/Subject/In-Reply-To/Message-ID fields wins while repeated address fields add up; the
subject and display names have runs of white space collapsed. Address lists are parsed
by `address_list` (placeholders for broken addresses as Dovecot writes them).
"""

from __future__ import annotations

from collections.abc import Sequence

from appliance.imap import wire
from appliance.imap.address_list import Address, parse_addresses
from appliance.imap.mime import Field, parse_header_fields
from appliance.imap.mime_render import Adjacent


def _address(address: Address) -> wire.Value:
    """RFC 9051 7.5.2 address: (name adl mailbox host); names as Dovecot writes them."""
    name = None if address.name is None else _collapse(address.name)
    return [name, address.route, address.mailbox, address.host]


def _collapse(text: bytes) -> bytes:
    """Dovecot's "string for humans" (subject, display names): line breaks dropped, runs of
    white space made one space, leading and trailing white space removed, NUL as 0x80."""
    out = text.replace(b"\r", b"").replace(b"\n", b"").replace(b"\0", b"\x80")
    return b" ".join(word for word in out.replace(b"\t", b" ").split(b" ") if word)


# -- the envelope ------------------------------------------------------------------------

_ENVELOPE_FIELDS = frozenset({b"date", b"subject", b"in-reply-to", b"message-id"})
_ADDRESS_FIELDS = frozenset({b"from", b"sender", b"reply-to", b"to", b"cc", b"bcc"})


def envelope_from_fields(fields: Sequence[Field]) -> wire.Value:
    """The ENVELOPE of a header given as parsed fields (last occurrence wins)."""
    last: dict[bytes, bytes] = {}
    addresses: dict[bytes, list[Address]] = {}
    for item in fields:
        lname = item.name.lower()
        if lname in _ADDRESS_FIELDS:   # Dovecot: repeated address fields add up
            addresses.setdefault(lname, []).extend(parse_addresses(item.value))
        elif lname in _ENVELOPE_FIELDS:
            last[lname] = item.value

    def address_list(name: bytes) -> wire.Value:
        found = addresses.get(name)
        # RFC 9051 9: "(" 1*address ")" -- the addresses follow each other without spaces
        return Adjacent(_address(address) for address in found) if found else None

    from_ = address_list(b"from")
    sender = address_list(b"sender")
    reply_to = address_list(b"reply-to")
    subject = last.get(b"subject")
    return [
        _unfold(last.get(b"date")),
        None if subject is None else _collapse(subject),
        from_,
        sender if sender is not None else from_,
        reply_to if reply_to is not None else from_,
        address_list(b"to"),
        address_list(b"cc"),
        address_list(b"bcc"),
        _unfold(last.get(b"in-reply-to")),
        _unfold(last.get(b"message-id")),
    ]


def _unfold(value: bytes | None) -> bytes | None:
    return None if value is None else value.replace(b"\n", b"")


def envelope(message: bytes) -> wire.Value:
    """FETCH ENVELOPE of a whole message (CRLF line ends)."""
    return envelope_from_fields(parse_header_fields(message))
