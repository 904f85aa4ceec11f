"""The MIME structure of a message as IMAP sees it: header fields and the tree of parts with
exact octet offsets (RFC 2045/2046, RFC 9051 6.4.5 and 7.5.2).

`parse_message(data)` never raises and runs in time linear in the message (times the
bounded nesting depth). It follows Dovecot's message parser so that sizes, line counts and
part numbers agree with Dovecot's (our oracle, tests/integration/test_imap_mime_oracle.py):

- a header ends at the first empty line; without one, the whole part is header;
- a boundary line is `--boundary` at the start of a line; only a prefix has to match (RFC
  2046 5.1.1 allows trailing white space; Dovecot accepts anything), the longest active
  boundary wins, and an outer boundary also ends every inner part;
- the [CR]LF before a boundary line belongs to the boundary, not to the part (RFC 2046 5.1.1);
- a missing Content-Type is text/plain (message/rfc822 inside multipart/digest, RFC 2046
  5.1.5); Content-* fields count only in MIME parts (MIME-Version or Content-Type present,
  or inside a multipart);
- nesting is limited to `MAX_NESTING` levels and `MAX_PARTS` parts (Dovecot's
  max_nested_mime_parts and max_total_mime_parts): a multipart or message/rfc822 deeper
  than that is not opened and its body stays one leaf part, which BODYSTRUCTURE shows as
  application/octet-stream, as Dovecot does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from appliance.imap.mime_tokens import ContentType, parse_content_type, parse_encoding

MAX_NESTING = 100          # Dovecot MESSAGE_PARSER_DEFAULT_MAX_NESTED_MIME_PARTS
MAX_PARTS = 10000          # Dovecot MESSAGE_PARSER_DEFAULT_MAX_TOTAL_MIME_PARTS
MAX_BOUNDARY = 80          # longer boundaries are truncated (RFC 2046 allows 70)
_BOUNDARY_LINE_MAX = MAX_BOUNDARY + 4

TEXT, MULTIPART, MESSAGE, OTHER = "text", "multipart", "message", "other"


@dataclass(eq=False)
class Field:
    """One header field. `value` is what follows the colon with leading white space
    skipped and continuation lines joined by LF (their CRLFs dropped); `start`/`end`
    cover the raw field including its final line end."""

    name: bytes
    value: bytes
    start: int
    end: int

    def is_named(self, name: bytes) -> bool:
        return self.name.lower() == name.lower()

    @property
    def unfolded(self) -> bytes:
        """RFC 5322 2.2.3 unfolding: the value without its line breaks."""
        return self.value.replace(b"\n", b"")


@dataclass(eq=False)
class Part:
    """A MIME part: header at [offset, header_end), body at [body_offset, end)."""

    offset: int
    depth: int
    parent: Part | None = None
    in_multipart: bool = False
    header_end: int = 0
    body_offset: int = 0
    end: int = 0
    fields: list[Field] = field(default_factory=list)
    kind: str = TEXT
    is_mime: bool = False
    digest: bool = False
    too_deep: bool = False     # a multipart or message/rfc822 past MAX_NESTING, not opened
    cut: bool = False          # its header was ended by a boundary line: it has no body
    content_type: ContentType | None = None
    children: list[Part] = field(default_factory=list)
    source: bytes = field(default=b"", repr=False)   # the whole message

    def get(self, name: bytes) -> Field | None:
        """The first field called `name` (case-insensitive)."""
        lname = name.lower()
        for item in self.fields:
            if item.name.lower() == lname:
                return item
        return None

    def get_last(self, name: bytes) -> Field | None:
        lname = name.lower()
        for item in reversed(self.fields):
            if item.name.lower() == lname:
                return item
        return None

    def mime_field(self, name: bytes) -> Field | None:
        """A Content-* field as BODYSTRUCTURE sees it: first one wins, none if not MIME."""
        return self.get(name) if self.is_mime else None

    @property
    def transfer_encoding(self) -> bytes | None:
        """Content-Transfer-Encoding as written: the first field that parses (Dovecot skips
        malformed ones); None when there is none or the part is not MIME."""
        if not self.is_mime:
            return None
        for item in self.fields:
            if item.is_named(b"content-transfer-encoding"):
                token = parse_encoding(item.value)
                if token is not None:
                    return token
        return None

    @property
    def body_size(self) -> int:
        return self.end - self.body_offset

    @property
    def body_lines(self) -> int:
        """Line ends in the body (BODYSTRUCTURE body-fld-lines)."""
        return self.source.count(b"\n", self.body_offset, self.end)

    @property
    def header(self) -> bytes:
        return self.source[self.offset:self.header_end]

    @property
    def body(self) -> bytes:
        return self.source[self.body_offset:self.end]


@dataclass(eq=False)
class _Boundary:
    text: bytes
    part: Part


def parse_header_fields(data: bytes, start: int = 0, end: int | None = None) -> list[Field]:
    """Just the header fields of the header block at [start, end)."""
    part = Part(offset=start, depth=0)
    _Parser(data[:end] if end is not None else data).headers(part, start)
    return part.fields


def parse_message(data: bytes) -> Part:
    """The part tree of `data` (the root part is the whole message)."""
    root = Part(offset=0, depth=0, source=data)
    _Parser(data).run(root)
    return root


class _Parser:
    """Dovecot-compatible MIME parser over one message (see the module docstring)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.boundaries: list[_Boundary] = []
        self.total_parts = 0

    # -- headers ---------------------------------------------------------------------------

    def headers(self, part: Part, pos: int) -> tuple[int, bool]:
        """Parse the header of `part` from `pos`; return (body position, cut by boundary)."""
        data, size = self.data, len(self.data)
        fields = part.fields
        folded: list[bytes] = []     # continuation lines of the last field, joined once
        prev_newline = 0
        while pos < size:
            if data.startswith(b"--", pos) and self.boundaries and self._cuts(part, pos):
                end = pos - prev_newline   # the [CR]LF before belongs to the boundary
                part.header_end = part.body_offset = end
                if fields:
                    fields[-1].end = min(fields[-1].end, end)
                _unfold_into(fields, folded)
                part.cut = True   # its last [CR]LF goes to the parent's body
                return pos, True
            lf = data.find(b"\n", pos)
            nxt = size if lf < 0 else lf + 1
            content_end = lf - 1 if 0 <= pos < lf and data[lf - 1] == 0x0D else (
                size if lf < 0 else lf)
            if lf >= 0 and content_end == pos:  # the empty line ends the header
                _unfold_into(fields, folded)
                if self.boundaries and data.startswith(b"--", nxt) and self._eoh_cut(part, nxt):
                    # an enclosing boundary right after: the empty line is the CRLF that
                    # belongs to it (Dovecot), so the header ends before it
                    part.header_end = part.body_offset = pos
                    part.cut = True
                    return nxt, True
                part.header_end = part.body_offset = nxt
                return nxt, False
            line = data[pos:content_end]
            if line[:1] in (b" ", b"\t") and fields:
                folded.append(line)
                fields[-1].end = nxt
            else:
                _unfold_into(fields, folded)
                fields.append(_field(line, pos, nxt))
            prev_newline = nxt - content_end if lf >= 0 else 0
            pos = nxt
        part.header_end = part.body_offset = size
        _unfold_into(fields, folded)
        return size, False

    def _eoh_cut(self, part: Part, pos: int) -> bool:
        """Whether the boundary line right after the empty line is an enclosing one. The
        part's own boundary counts first (Dovecot pushes it at the end of the header)."""
        self._classify(part)
        own = self._own_boundary(part)
        if own is not None:
            self.boundaries.append(_Boundary(own, part))
        cuts = self._cuts(part, pos)
        if own is not None:
            self.boundaries.pop()
        return cuts

    def _cuts(self, part: Part, pos: int) -> bool:
        """Whether the line at `pos` is a boundary of an enclosing part."""
        found = self._match(pos)
        return found is not None and found.part is not part

    # -- boundaries ------------------------------------------------------------------------

    def _match(self, pos: int) -> _Boundary | None:
        """The boundary that the line at `pos` (starting with "--") opens, if any."""
        if self.total_parts >= MAX_PARTS:
            return None
        data = self.data
        lf = data.find(b"\n", pos + 2, pos + 2 + _BOUNDARY_LINE_MAX + 1)
        if lf >= 0:
            stop = lf - 1 if data[lf - 1] == 0x0D and lf - 1 >= pos + 2 else lf
            if stop - (pos + 2) > 2 and data[stop - 2:stop] == b"--":
                stop -= 2
        else:
            nl = data.find(b"\n", pos + 2)
            stop = len(data) if nl < 0 else nl
            stop = min(stop, pos + 2 + _BOUNDARY_LINE_MAX)
        line = data[pos + 2:stop]
        best: _Boundary | None = None
        for boundary in reversed(self.boundaries):
            length = len(boundary.text)
            if line.startswith(boundary.text) and (best is None or len(best.text) < length):
                best = boundary
                if length == len(line):
                    break
        return best

    def _find_boundary(self, pos: int) -> tuple[int, _Boundary] | None:
        """The first boundary line at or after `pos` (which starts a line)."""
        data = self.data
        line = pos
        while line < len(data):
            if data.startswith(b"--", line):
                found = self._match(line)
                if found is not None:
                    return line, found
            lf = data.find(b"\n--", line)
            if lf < 0:
                return None
            line = lf + 1
        return None

    # -- the walk --------------------------------------------------------------------------

    def run(self, root: Part) -> None:
        part: Part | None = root
        pos, in_header = 0, True
        while part is not None:
            if in_header:
                pos, cut = self.headers(part, pos)
                self._classify(part)
                child = self._open(part, pos, cut)
                if child is not None:
                    part, pos = child, child.offset
                    continue
            part, pos, in_header = self._body(part, pos)

    def _open(self, part: Part, pos: int, cut: bool) -> Part | None:
        """Start the body of `part`: push its boundary or enter its message/rfc822."""
        too_deep = part.depth + 1 >= MAX_NESTING
        if part.kind == MULTIPART:
            boundary = None if cut else self._own_boundary(part)
            if boundary is not None and not too_deep:
                self.boundaries.append(_Boundary(boundary, part))
            elif boundary is not None:
                part.kind, part.too_deep = OTHER, True   # the body is not split
            return None
        if part.kind == MESSAGE:
            if too_deep or self.total_parts >= MAX_PARTS:
                part.kind, part.too_deep = OTHER, True
                return None
            # a part cut short by a boundary has an empty body: the message is empty there
            return self._child(part, part.body_offset if part.cut else pos, in_multipart=False)
        return None

    @staticmethod
    def _own_boundary(part: Part) -> bytes | None:
        """The boundary a multipart part opens (RFC 2046 5.1.1), truncated like Dovecot."""
        if part.kind != MULTIPART or not part.is_mime or part.content_type is None:
            return None
        boundary = part.content_type.param(b"boundary")
        return None if boundary is None else boundary[:MAX_BOUNDARY]

    def _child(self, parent: Part, pos: int, in_multipart: bool) -> Part:
        child = Part(offset=pos, depth=parent.depth + 1, parent=parent,
                     in_multipart=in_multipart, source=self.data)
        parent.children.append(child)
        self.total_parts += 1
        return child

    def _body(self, part: Part, pos: int) -> tuple[Part | None, int, bool]:
        """Read a body up to the next boundary; return the part to go on with, where, and
        whether its header comes next (else its body, i.e. a multipart's epilogue)."""
        data = self.data
        found = self._find_boundary(pos) if self.boundaries else None
        if found is None:
            _close(part, len(data))
            return None, len(data), False
        line, boundary = found
        end = line
        if line > pos:
            end = line - 2 if data[line - 2:line] == b"\r\n" and line - 2 >= pos else line - 1
        owner = boundary.part
        while part is not owner:
            part.end = part.body_offset if part.cut else end
            assert part.parent is not None
            part = part.parent
        after = line + 2 + len(boundary.text)
        epilogue = data.startswith(b"--", after)
        index = self.boundaries.index(boundary)
        del self.boundaries[index + (0 if epilogue else 1):]
        lf = data.find(b"\n", after)
        if lf < 0:
            _close(owner, len(data))
            return None, len(data), False
        if epilogue:
            return owner, lf + 1, False  # the epilogue runs to an outer boundary or the end
        return self._child(owner, lf + 1, in_multipart=True), lf + 1, True

    # -- types -----------------------------------------------------------------------------

    def _classify(self, part: Part) -> None:
        ctype_field = part.get(b"content-type")
        part.is_mime = part.in_multipart or ctype_field is not None or (
            part.get(b"mime-version") is not None)
        if ctype_field is None:
            digest = part.parent is not None and part.parent.digest
            part.kind = MESSAGE if digest else TEXT
            return
        ctype = parse_content_type(ctype_field.value)
        part.content_type = ctype
        mime_type = ctype.mime_type.lower()
        if mime_type == b"message/rfc822":
            part.kind = MESSAGE
        elif mime_type[:4] == b"text" and mime_type[4:5] in (b"", b"/"):
            part.kind = TEXT
        elif mime_type.startswith(b"multipart/"):
            part.kind = MULTIPART
            part.digest = mime_type == b"multipart/digest"
        else:
            part.kind = OTHER


def _field(line: bytes, start: int, end: int) -> Field:
    """A field from its first line: name (white space before the colon dropped) and value
    (leading white space skipped; if only white space, just the first byte of it)."""
    colon = line.find(b":")
    if colon < 0:
        return Field(line, b"", start, end)
    name = line[:colon].rstrip(b" \t")
    value = line[colon + 1:]
    stripped = value.lstrip(b" \t")
    if not stripped and value:
        stripped = value[1:]
    return Field(name, stripped, start, end)


def _unfold_into(fields: list[Field], folded: list[bytes]) -> None:
    """Append the collected continuation lines to the last field (joined by LF)."""
    if folded:
        fields[-1].value = b"\n".join([fields[-1].value, *folded])
        folded.clear()


def _close(part: Part | None, end: int) -> None:
    while part is not None:
        part.end = end
        part = part.parent
