"""Rendering of ENVELOPE and BODY/BODYSTRUCTURE values, whose grammar juxtaposes some
list items without a space (RFC 9051 9: `"(" 1*address ")"` and `body-type-mpart =
1*body SP media-subtype`).

`Adjacent` is a list whose first `run` items follow each other with nothing between them;
everything else, and all quoting, is `wire.render`'s. `Adjacent` is still a plain list, so
`wire.render` writes the same structure with spaces (which lenient clients accept); FETCH
should use `render` here for the exact RFC form.
"""

from __future__ import annotations

from collections.abc import Iterable

from appliance.imap import wire


class Adjacent(list[wire.Value]):
    """A parenthesised list whose first `run` items (all, by default) are juxtaposed."""

    def __init__(self, items: Iterable[wire.Value] = (), run: int | None = None) -> None:
        super().__init__(items)
        self.run = len(self) if run is None else run


def render(value: wire.Value, utf8: bool = False) -> bytes:
    """`wire.render`, except that the runs of `Adjacent` lists get no separators."""
    out: list[bytes] = []
    _render(value, utf8, out)
    return b"".join(out)


def _render(value: wire.Value, utf8: bool, out: list[bytes]) -> None:
    if not isinstance(value, list | tuple):
        out.append(wire.render(value, utf8))
        return
    run = value.run if isinstance(value, Adjacent) else 0
    out.append(b"(")
    for index, item in enumerate(value):
        if index and index >= run:
            out.append(b" ")
        _render(item, utf8, out)
    out.append(b")")
