"""One message's FETCH response (RFC 9051 7.5.2): the data items asked for, in order.

Items that need only the index (UID, FLAGS, INTERNALDATE, RFC822.SIZE, MODSEQ) never open
the message; the rest read it once and parse it once per message. ENVELOPE and
BODYSTRUCTURE are cached in the store (`put_cached`) because clients ask for them again
and again on every resync.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from appliance.imap import mime_render, wire
from appliance.imap import sections as sec
from appliance.imap.bodystructure import structure
from appliance.imap.envelope import envelope_from_fields
from appliance.imap.fetch_items import FetchAttribute, FetchKind, Section
from appliance.imap.formats import internal_date, render_flags
from appliance.imap.mime import Part, parse_message
from appliance.storage.mailbox_api import MessageMeta

_INDEX_ONLY = frozenset({FetchKind.UID, FetchKind.FLAGS, FetchKind.INTERNALDATE,
                         FetchKind.RFC822_SIZE, FetchKind.MODSEQ})
CACHE_KEYS = {FetchKind.ENVELOPE: "imap:envelope", FetchKind.BODYSTRUCTURE: "imap:bodystructure",
              FetchKind.BODY: "imap:body"}


class FetchItemError(Exception):
    """An item cannot be answered for this message (e.g. UNKNOWN-CTE); `code` for the NO."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code


@dataclass
class MessageSource:
    """Lazy access to one message's content and derived values (cache in the store)."""

    read: Callable[[], bytes]
    get_cached: Callable[[str], str | None]
    put_cached: Callable[[str, str], None]
    _content: bytes | None = None
    _root: Part | None = None

    @property
    def content(self) -> bytes:
        if self._content is None:
            self._content = self.read()
        return self._content

    @property
    def root(self) -> Part:
        if self._root is None:
            self._root = parse_message(self.content)
        return self._root


def needs_content(attributes: Sequence[FetchAttribute]) -> bool:
    return any(a.kind not in _INDEX_ONLY for a in attributes)


# `whole_message_names` per parsed item list: FETCH parses each item text once and shares
# the frozen tuple (`commands.messages._ITEMS`), so a client asking `(BODY.PEEK[])` for each
# message finds its answer here by identity. Bounded; emptied when full.
_NAMES: dict[int, tuple[tuple[FetchAttribute, ...], tuple[bytes | None, ...] | None]] = {}
_NAMES_MAX = 256


def whole_message_names(attributes: Sequence[FetchAttribute]
                        ) -> tuple[bytes | None, ...] | None:
    """For a FETCH that needs no more of a message than its whole text (BODY[], BODY.PEEK[],
    RFC822 besides index items, what clients ask to download mail): per item, the start of
    its response (`BODY[] {`) or None for an index item. None when some item needs more
    (a section, a partial, a parse), which `fetch_line` answers."""
    known = _NAMES.get(id(attributes))
    if known is not None and known[0] is attributes:
        return known[1]
    names = _whole_message_names(attributes)
    if isinstance(attributes, tuple):       # immutable: kept (with it, so its id stays)
        if len(_NAMES) >= _NAMES_MAX:
            _NAMES.clear()
        _NAMES[id(attributes)] = (attributes, names)
    return names


def _whole_message_names(attributes: Sequence[FetchAttribute]
                         ) -> tuple[bytes | None, ...] | None:
    names: list[bytes | None] = []
    for attribute in attributes:
        kind, section = attribute.kind, attribute.section
        if kind in _INDEX_ONLY:
            names.append(None)
        elif kind is FetchKind.RFC822 or (
                kind is FetchKind.BODY_SECTION and attribute.partial is None
                and (section is None or (not section.part and section.text is None))):
            names.append(attribute.response_name().encode() + b" {")
        else:
            return None
    return tuple(names)


def whole_message_pieces(seq: int, meta: MessageMeta, attributes: Sequence[FetchAttribute],
                         names: Sequence[bytes | None], content: bytes, *, recent: bool,
                         include_uid: bool, include_modseq: bool) -> list[bytes]:
    """`fetch_line` for `whole_message_names` items, as pieces to join: the message text
    is one piece of its own (each literal, RFC 9051 4.3), copied once, when the batch is
    joined."""
    if len(names) == 1 and names[0] is not None and not include_modseq:   # BODY.PEEK[] alone
        uid = b"UID %d " % meta.uid if include_uid else b""
        return [b"* %d FETCH (%b%b%d}\r\n" % (seq, uid, names[0], len(content)), content,
                b")\r\n"]
    head = b"* %d FETCH (" % seq
    kinds = {a.kind for a in attributes}
    if include_uid and FetchKind.UID not in kinds:
        head += b"UID %d " % meta.uid
    pieces: list[bytes] = []
    for attribute, name in zip(attributes, names, strict=True):
        if name is None:
            head += _item(attribute, meta, None, recent, False) + b" "
        else:
            pieces += (head + name + b"%d}\r\n" % len(content), content)
            head = b" "
    if include_modseq and FetchKind.MODSEQ not in kinds:
        head += b"MODSEQ (%d) " % meta.modseq
    pieces.append(head.rstrip(b" ") + b")\r\n")
    return pieces


def fetch_line(seq: int, meta: MessageMeta, attributes: Sequence[FetchAttribute],
               source: MessageSource | None, *, recent: bool, include_uid: bool,
               include_modseq: bool, utf8: bool) -> bytes:
    """`* seq FETCH (...)` with CRLF. Raises FetchItemError for an item it cannot answer."""
    parts: list[bytes] = []
    kinds = {a.kind for a in attributes}
    if include_uid and FetchKind.UID not in kinds:
        parts.append(b"UID %d" % meta.uid)
    for attribute in attributes:
        parts.append(_item(attribute, meta, source, recent, utf8))
    if include_modseq and FetchKind.MODSEQ not in kinds:
        parts.append(b"MODSEQ (%d)" % meta.modseq)
    return b"* %d FETCH (" % seq + b" ".join(parts) + b")\r\n"


def _item(attribute: FetchAttribute, meta: MessageMeta, source: MessageSource | None,
          recent: bool, utf8: bool) -> bytes:
    kind = attribute.kind
    if kind is FetchKind.UID:
        return b"UID %d" % meta.uid
    if kind is FetchKind.FLAGS:
        return b"FLAGS (" + render_flags(meta.flags, recent).encode() + b")"
    if kind is FetchKind.RFC822_SIZE:
        return b"RFC822.SIZE %d" % meta.size
    if kind is FetchKind.INTERNALDATE:
        return b"INTERNALDATE " + internal_date(meta.internal_date).encode()
    if kind is FetchKind.MODSEQ:
        return b"MODSEQ (%d)" % meta.modseq
    assert source is not None, "content items need a source"
    if kind in CACHE_KEYS:
        return kind.value.encode() + b" " + _cached_structure(kind, source)
    if kind is FetchKind.RFC822:
        return b"RFC822 " + wire.literal(source.content)
    if kind is FetchKind.RFC822_HEADER:
        return b"RFC822.HEADER " + wire.literal(source.root.header)
    if kind is FetchKind.RFC822_TEXT:
        return b"RFC822.TEXT " + wire.literal(source.root.body)
    if kind is FetchKind.BODY_SECTION:
        return _body_section(attribute, source)
    if kind is FetchKind.BINARY:
        return _binary(attribute, source)
    if kind is FetchKind.BINARY_SIZE:
        return _binary_size(attribute, source)
    raise FetchItemError("CANNOT", f"unknown item {kind.value}")


def _cached_structure(kind: FetchKind, source: MessageSource) -> bytes:
    key = CACHE_KEYS[kind]
    cached = source.get_cached(key)
    if cached is not None:
        return cached.encode("utf-8", "surrogateescape")
    if kind is FetchKind.ENVELOPE:
        value: wire.Value = envelope_from_fields(source.root.fields)
    else:
        value = structure(source.root, extended=kind is FetchKind.BODYSTRUCTURE)
    rendered = mime_render.render(value)      # no space between adjacent addresses/parts
    source.put_cached(key, rendered.decode("utf-8", "surrogateescape"))
    return rendered


def _section(section: Section | None) -> sec.Section:
    if section is None:
        return sec.Section()
    return sec.Section(section.part, section.text,
                       tuple(f.encode("utf-8") for f in section.fields))


def _body_section(attribute: FetchAttribute, source: MessageSource) -> bytes:
    section = attribute.section
    if section is None or (not section.part and section.text is None):
        data: bytes | None = source.content          # BODY[]: no need to parse it
    else:
        data = sec.section_bytes(source.root, _section(section))
    name = attribute.response_name().encode()
    if data is None:
        data = b""          # RFC 9051 6.4.5: a section that does not exist is empty
    if attribute.partial is not None:
        data = sec.partial(data, attribute.partial.start, attribute.partial.length)
    return name + b" " + wire.literal(data)


def _binary(attribute: FetchAttribute, source: MessageSource) -> bytes:
    part = attribute.section.part if attribute.section else ()
    try:
        data = sec.binary(source.root, part)
    except sec.SectionError as err:
        raise FetchItemError(err.code, str(err)) from err
    if data is None:
        raise FetchItemError("NONEXISTENT", "no such section")
    if attribute.partial is not None:
        data = sec.partial(data, attribute.partial.start, attribute.partial.length)
    return attribute.response_name().encode() + b" " + wire.literal(data, binary=b"\0" in data)


def _binary_size(attribute: FetchAttribute, source: MessageSource) -> bytes:
    part = attribute.section.part if attribute.section else ()
    try:
        size = sec.binary_size(source.root, part)
    except sec.SectionError as err:
        raise FetchItemError(err.code, str(err)) from err
    if size is None:
        raise FetchItemError("NONEXISTENT", "no such section")
    return attribute.response_name().encode() + b" %d" % size
