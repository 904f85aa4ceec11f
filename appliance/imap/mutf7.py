"""Modified UTF-7 (RFC 3501 5.1.3): mailbox names for IMAP4rev1 clients and Maildir++ folders.

Printable US-ASCII stands for itself except `&`, which is `&-`; any other run of characters is
`&` + modified BASE64 (`,` for `/`, no padding) of its UTF-16BE form + `-`. `decode` in strict
mode accepts only what `encode` produces, so every name has one spelling.
"""

from __future__ import annotations

import base64
import binascii
import re

_B64_CHARS = re.compile(r"[A-Za-z0-9+,]*")


class MUTF7Error(ValueError):
    """Text that is not (canonical) modified UTF-7."""


def _direct(char: str) -> bool:
    """Characters that RFC 3501 5.1.3 has represent themselves (`&` is handled apart)."""
    return "\x20" <= char <= "\x7e"


def encode(text: str) -> str:
    """Encode `text` as modified UTF-7.

    Raises:
        MUTF7Error: `text` holds a lone surrogate (not a Unicode string UTF-16 can carry).
    """
    out: list[str] = []
    run: list[str] = []
    for char in text:
        if _direct(char):
            if run:
                out.append(_encode_run("".join(run)))
                run.clear()
            out.append("&-" if char == "&" else char)
        else:
            run.append(char)
    if run:
        out.append(_encode_run("".join(run)))
    return "".join(out)


def _encode_run(run: str) -> str:
    try:
        raw = run.encode("utf-16-be")
    except UnicodeEncodeError as exc:
        raise MUTF7Error(f"cannot encode {run!r}: {exc.reason}") from exc
    return "&" + base64.b64encode(raw).decode("ascii").rstrip("=").replace("/", ",") + "-"


def decode(text: str, strict: bool = True) -> str:
    """Decode modified UTF-7.

    With `strict`, refuse non-canonical forms: an encoded run of characters that should be
    direct, two encoded runs in a row, non-zero padding bits or surplus BASE64 characters.

    Raises:
        MUTF7Error: malformed (or, when strict, non-canonical) input.
    """
    out: list[str] = []
    index = 0
    previous_run_end = -1
    while index < len(text):
        char = text[index]
        if not _direct(char):
            raise MUTF7Error(f"character {char!r} at {index} must be encoded")
        if char != "&":
            out.append(char)
            index += 1
            continue
        match = _B64_CHARS.match(text, index + 1)
        assert match is not None     # the pattern matches the empty string
        end = match.end()
        if end >= len(text) or text[end] != "-":
            raise MUTF7Error(f"unterminated encoded run at {index}")
        if end == index + 1:
            out.append("&")
        else:
            if strict and previous_run_end == index:
                raise MUTF7Error(f"adjacent encoded runs at {index}")
            out.append(_decode_run(match.group(), strict))
            previous_run_end = end + 1
        index = end + 1
    return "".join(out)


def _decode_run(chars: str, strict: bool) -> str:
    length = len(chars) * 6 // 8 // 2 * 2           # whole UTF-16 code units only
    if strict and len(chars) != -(-length * 8 // 6):
        raise MUTF7Error(f"surplus BASE64 characters in {chars!r}")
    padded = chars.replace(",", "/") + "=" * (-len(chars) % 4)
    try:
        raw = base64.b64decode(padded, validate=True)
    except binascii.Error as exc:
        raise MUTF7Error(f"bad BASE64 in {chars!r}") from exc
    if strict and (len(raw) != length or base64.b64encode(raw[:length]).decode("ascii")
                   .rstrip("=").replace("/", ",") != chars):
        raise MUTF7Error(f"non-zero padding bits in {chars!r}")
    try:
        decoded = raw[:length].decode("utf-16-be")
    except UnicodeDecodeError as exc:
        raise MUTF7Error(f"bad UTF-16 in {chars!r}: {exc.reason}") from exc
    if not decoded or (strict and any(_direct(c) for c in decoded)):
        raise MUTF7Error(f"encoded run {chars!r} holds characters that stand for themselves")
    return decoded
