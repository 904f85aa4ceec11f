"""What the transcript runners (tests/transcripts/test_*_transcripts.py) share: reading a
transcript file's lines, the `! setting` directive, client lines (`C:` with `{A*300}`
repeats, `C!` with Python escapes), reply catalogues as placeholders, playing a line-based
conversation (SMTP, submission, POP3) over a peer, and the diff a failure shows.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import re
import ssl
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Protocol

import pytest

from harness.smtp_wire import ConnectionClosed, SMTPWire

CLOSED = "<closed>"
READ_TIMEOUT = 5.0
_REPEAT = re.compile(r"\{(.)\*(\d+)\}")


class TranscriptError(ValueError):
    """The transcript file itself is malformed."""


@dataclass(frozen=True)
class Step:
    """One conversation line: its kind ("C", "C!", "S", "S~", "!") and the text after it."""

    kind: str
    text: str

    def render(self) -> str:
        """The line as written in the file."""
        if self.kind in ("C", "S"):
            return f"{self.kind}: {self.text}"
        return f"{self.kind} {self.text}"

    def payload(self) -> bytes:
        """The bytes a `C:` or `C!` line sends (CRLF added)."""
        return client_bytes(self.kind, self.text)


@dataclass
class Transcript:
    """A parsed transcript: its name (the file's stem), `! setting` values as
    `EngineProcess` keywords, the other set-up directives, and the conversation."""

    name: str
    settings: dict[str, object] = field(default_factory=dict)
    setup: list[tuple[str, ...]] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)


def step_of(raw: str, kinds: tuple[str, ...]) -> Step | None:
    """The conversation line `raw` ("C: …", "S: …", "C! …", "S~ …"; a bare "C:" or "S:" is
    an empty line) if its kind is one of `kinds`, else None."""
    for kind in kinds:
        marker = kind + ":" if len(kind) == 1 else kind
        if raw.startswith(marker + " ") or raw == marker:
            return Step(kind, raw[3:])
    return None


def client_bytes(kind: str, text: str) -> bytes:
    """`C!`: the text read as a Python bytes literal; `C:`: UTF-8 with `{A*300}` expanded."""
    if kind == "C!":
        raw = ast.literal_eval("b'" + text.replace("'", "\\'") + "'")
        assert isinstance(raw, bytes)
        return raw + b"\r\n"
    return expand_repeats(text).encode("utf-8") + b"\r\n"


def expand_repeats(text: str) -> str:
    """`{A*3}` → "AAA"."""
    return _REPEAT.sub(lambda m: m.group(1) * int(m.group(2)), text)


def catalogue(module: ModuleType) -> dict[str, str]:
    """A reply catalogue's texts by name (the module's upper-case string constants)."""
    return {name: value for name, value in vars(module).items()
            if name.isupper() and isinstance(value, str)}


def lines(path: Path) -> Iterator[tuple[str, str]]:
    """The file's lines that say something (not blank, not `#`), each after its "file:line"."""
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if raw.strip() and not raw.startswith("#"):
            yield f"{path.name}:{number}", raw


def setting(words: list[str]) -> tuple[str, object] | None:
    """`setting limits.x = 4` as an `EngineProcess` keyword and value (true/false, numbers,
    text); None when `words` is not a setting directive."""
    if words[:1] != ["setting"] or len(words) != 4 or words[2] != "=":
        return None
    value: object = {"true": True, "false": False}.get(words[3], words[3])
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    return words[1].replace(".", "__"), value


# -- playing a line-based conversation ---------------------------------------------------------

class Peer(Protocol):
    def send(self, data: bytes) -> None: ...

    def read_line(self, timeout: float = READ_TIMEOUT) -> str: ...


class WirePeer:
    """A raw socket (`SMTPWire`) as a peer: each server line as text, or `<closed>`, or
    `<nothing within …>` / `<connection failed: …>`."""

    def __init__(self, wire: SMTPWire) -> None:
        self.wire = wire

    def send(self, data: bytes) -> None:
        self.wire.send(data)

    def read_line(self, timeout: float = READ_TIMEOUT) -> str:
        try:
            line = self.wire.read_line(timeout)
        except TimeoutError:
            return f"<nothing within {timeout:.1f}s>"
        except (ConnectionClosed, OSError) as exc:
            return f"<connection failed: {exc}>"
        return CLOSED if line is None else line

    def start_tls(self, context: ssl.SSLContext, hostname: str | None = None) -> None:
        self.wire.sock = context.wrap_socket(self.wire.sock, server_hostname=hostname)

    def close(self) -> None:
        self.wire.close()


class QuietWirePeer(WirePeer):
    """A `WirePeer` whose sends never fail: when the server has closed, reads show it."""

    def send(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            super().send(data)


def matches(pattern: Callable[[str], re.Pattern[str]], expected: str, got: str) -> bool:
    """Whether the server's line `got` is what the `S:` text `expected` stands for."""
    if CLOSED in (expected, got):
        return expected == got
    return pattern(expected).fullmatch(got) is not None


def play(steps: Sequence[Step], peer: Peer, pattern: Callable[[str], re.Pattern[str]],
             on_line: Callable[[str], None] | None = None) -> list[str]:
    """Play `C:`/`C!`/`S:` steps: consecutive client lines go out in one write (pipelining),
    then each `S:` line is read and matched; `on_line` sees every matched server line.

    Returns what happened in the transcript's notation: matched lines as written, so a diff
    against the file shows only the differences; after a mismatch, what else the server sent.
    """
    seen: list[str] = []
    index = 0
    while index < len(steps):
        if steps[index].kind != "S":
            batch = []
            while index < len(steps) and steps[index].kind != "S":
                batch.append(steps[index])
                index += 1
            try:
                peer.send(b"".join(step.payload() for step in batch))
            except OSError as exc:
                return [*seen, f"!! sending failed: {exc}"]
            seen.extend(step.render() for step in batch)
            continue
        got = peer.read_line()
        if not matches(pattern, steps[index].text, got):
            return [*seen, f"S: {got}", *drain(peer)]
        seen.append(steps[index].render())
        index += 1
        if on_line is not None:
            on_line(got)
    if steps and steps[-1].text != CLOSED:
        seen.extend(drain(peer, timeout=0.1))
    return seen


def drain(peer: Peer, timeout: float = 0.3) -> list[str]:
    """Whatever else the server sends within `timeout` per line (and its closing)."""
    extra: list[str] = []
    while True:
        got = peer.read_line(timeout)
        if got.startswith("<"):
            return [*extra, f"S: {got}"] if got == CLOSED else extra
        extra.append(f"S: {got}")


def assert_conversation(path: Path, expected: list[str], got: list[str],
                        how: str | None = None) -> None:
    """Fail with a unified diff when a conversation differs from its transcript."""
    if got != expected:
        diff = "\n".join(difflib.unified_diff(expected, got, "expected", "got", lineterm=""))
        run = f" ({how})" if how else ""
        pytest.fail(f"transcript {path.name}{run} differs (- expected, + got):\n{diff}",
                    pytrace=False)
