"""Run every `imap/*.txt` transcript over a real socket against the real engine: the driver's
side of the IMAP transcripts (framing, TLS, login, limits; the core's own are in imap_core/).

The notation:

    # comment
    ! setting server.dev_mode = false     an engine setting (true/false, numbers, text);
                                          transcripts with the same settings share an engine
    ! account alice                       a fresh account, written {alice} in C:/S: lines
                                          (its address is unique to this run of this file)
    ! message alice hello                 put messages/hello.eml into {alice}'s INBOX
    C: a1 LOGIN {alice} {password}        a line the client sends (CRLF added)
    C! a1 LOGIN \\x00 junk                 the same, with Python escapes for raw bytes
    S: a1 OK LOGIN completed              a line the server must send, exactly
    S~ \\* OK \\[UIDVALIDITY \\d+\\] .*       a line the server must send, as a regular expression
    S: <closed>                           the server closes the connection
    ! starttls                            start TLS on the connection here (after STARTTLS's OK)

In `C:` lines `{A*300}` stands for 300 "A"s. In `C:`, `S:` and `S~` lines `{NAME}` is a text
of `appliance.imap.responses` (written this way so that rewording a reply changes one place),
`{alice}` an account's address and `{password}` every account's password as a quoted
string. `S:` lines match
physical lines: a literal's data is matched line by line like any other. Consecutive `C:`
lines go out in one write (pipelining). The file name picks the port: `plain_*` the STARTTLS
port, `tls_*` the implicit-TLS port. The harness engine runs in dev mode (LOGIN without TLS
from loopback) unless a transcript sets `server.dev_mode = false`.
"""

from __future__ import annotations

import difflib
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from appliance.imap import responses
from harness.engine import EngineProcess
from harness.imap import PASSWORD, ImapWire, loopback_context
from harness.pop3 import put_message
from harness.transcripts import (
    CLOSED,
    READ_TIMEOUT,
    Step,
    TranscriptError,
    catalogue,
    client_bytes,
    expand_repeats,
    lines,
    setting,
    step_of,
)

HERE = Path(__file__).parent / "imap"
MESSAGES = HERE / "messages"
TRANSCRIPTS = sorted(HERE.glob("*.txt"))
DOMAIN = "example.test"
CATALOGUE = catalogue(responses)
_NAME = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
BASE_SETTINGS: dict[str, object] = {"auth__failure_delay_ms": 0}
_numbers = itertools.count(1)


@dataclass
class Transcript:
    name: str
    settings: dict[str, object] = field(default_factory=dict)
    accounts: list[str] = field(default_factory=list)
    messages: list[tuple[str, str]] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)

    @property
    def key(self) -> tuple[tuple[str, str], ...]:
        return tuple(sorted((k, repr(v)) for k, v in self.settings.items()))


def parse(path: Path) -> Transcript:
    transcript = Transcript(path.stem)
    for where, raw in lines(path):
        if (step := step_of(raw, ("C", "C!", "S", "S~"))) is not None:
            transcript.steps.append(step)
        elif raw == "! starttls":
            transcript.steps.append(Step("!", "starttls"))
        elif raw.startswith("! ") and not transcript.steps:
            _directive(transcript, raw[2:].split(), where)
        else:
            raise TranscriptError(f"{where}: expected 'C: ', 'C! ', 'S: ', 'S~ ', '! ' or '#'")
    if not transcript.steps:
        raise TranscriptError(f"{path.name}: no conversation")
    return transcript


def _directive(transcript: Transcript, words: list[str], where: str) -> None:
    if (value := setting(words)) is not None:
        transcript.settings[value[0]] = value[1]
    elif words[:1] == ["account"] and len(words) == 2:
        transcript.accounts.append(words[1])
    elif words[:1] == ["message"] and len(words) == 3:
        if words[1] not in transcript.accounts:
            raise TranscriptError(f"{where}: no account {words[1]!r} declared before")
        transcript.messages.append((words[1], words[2]))
    else:
        raise TranscriptError(f"{where}: unknown directive {' '.join(words)!r}")


class Names:
    """What `{name}` placeholders stand for in one run of one transcript."""

    def __init__(self, accounts: dict[str, str]) -> None:
        self.values = {**CATALOGUE, **accounts, "password": f'"{PASSWORD}"'}

    def text(self, line: str, where: str) -> str:
        return _NAME.sub(lambda m: self._value(m.group(1), where), expand_repeats(line))

    def regex(self, line: str, where: str) -> re.Pattern[str]:
        return re.compile(_NAME.sub(lambda m: re.escape(self._value(m.group(1), where)), line))

    def _value(self, name: str, where: str) -> str:
        if name not in self.values:
            raise TranscriptError(f"{where}: unknown placeholder {{{name}}}")
        return self.values[name]


# -- running -----------------------------------------------------------------------------------

class Engines:
    """One engine per distinct set of transcript settings, started on first use."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.running: dict[tuple[tuple[str, str], ...], EngineProcess] = {}

    def get(self, transcript: Transcript) -> EngineProcess:
        engine = self.running.get(transcript.key)
        if engine is None:
            engine = EngineProcess(self.root / f"engine{len(self.running)}",
                                   **{**BASE_SETTINGS, **transcript.settings})
            engine.start()
            engine.add_domain(DOMAIN)
            self.running[transcript.key] = engine
        return engine

    def stop(self) -> None:
        for engine in self.running.values():
            if engine.proc is not None and engine.proc.poll() is None:
                assert engine.stop() == 0, engine.log_text()[-3000:]


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engines]:
    running = Engines(tmp_path_factory.mktemp("imap-transcripts"))
    try:
        yield running
    finally:
        running.stop()


def _prepare(engine: EngineProcess, transcript: Transcript) -> Names:
    accounts = {}
    for name in transcript.accounts:
        address = f"{name}{next(_numbers)}@{DOMAIN}"
        engine.add_account(address)
        accounts[name] = address
    for name, message in transcript.messages:
        content = (MESSAGES / f"{message}.eml").read_bytes()
        put_message(engine.maildir(accounts[name]), content)
    return Names(accounts)


def _connect(engine: EngineProcess, transcript: Transcript) -> ImapWire:
    if transcript.name.startswith("plain_"):
        return ImapWire(engine.imap_port, timeout=READ_TIMEOUT)
    if transcript.name.startswith("tls_"):
        return ImapWire(engine.imaps_port, timeout=READ_TIMEOUT, tls=loopback_context(engine))
    raise TranscriptError(f"{transcript.name}: the name must start with plain_ or tls_")


def _payload(step: Step, names: Names, where: str) -> bytes:
    if step.kind == "C!":
        return client_bytes("C!", step.text)
    return names.text(step.text, where).encode("utf-8") + b"\r\n"


def _matches(step: Step, got: str, names: Names, where: str) -> bool:
    if step.kind == "S~":
        return got != CLOSED and names.regex(step.text, where).fullmatch(got) is not None
    return names.text(step.text, where) == got


def run(transcript: Transcript, engine: EngineProcess) -> None:
    """Play `transcript` against `engine`; fail with a diff at the first differing line."""
    names = _prepare(engine, transcript)
    seen: list[str] = []
    with _connect(engine, transcript) as wire:
        pending = b""
        for number, step in enumerate(transcript.steps, 1):
            where = f"{transcript.name} step {number}"
            if step.kind in ("C", "C!"):
                pending += _payload(step, names, where)
                seen.append(step.render())
                continue
            if pending:
                wire.send(pending)
                pending = b""
            seen.append(step.render())
            if step.kind == "!":
                wire.start_tls(loopback_context(engine))
                continue
            try:
                raw = wire.read_raw_line(READ_TIMEOUT)
            except TimeoutError:
                raw = b"<nothing within the timeout>"
            got = CLOSED if raw is None else raw.decode("utf-8", errors="replace")
            if not _matches(step, got, names, where):
                diff = "\n".join(difflib.unified_diff(
                    seen, [*seen[:-1], f"S: {got}"], "transcript", "server", lineterm=""))
                pytest.fail(f"{where}: the server's line differs\n{diff}")
        if pending:
            wire.send(pending)


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=[p.stem for p in TRANSCRIPTS])
def test_transcript(path: Path, engines: Engines) -> None:
    transcript = parse(path)
    run(transcript, engines.get(transcript))


def test_every_transcript_parses() -> None:
    assert len(TRANSCRIPTS) >= 5
    for path in TRANSCRIPTS:
        transcript = parse(path)
        assert transcript.name.startswith(("plain_", "tls_")), path.name
