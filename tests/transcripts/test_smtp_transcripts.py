"""Run every `smtp/*.txt` transcript against a real engine over a raw loopback socket.

A transcript is a header of setup directives, then the conversation:

    # comment (anywhere)
    ! setting limits.max_message_size = 4096   engine setting (one engine per distinct set)
    ! domain example.test                      a local domain
    ! account alice@example.test               an account (its domain is added if needed)
    ! disabled carol@example.test              an account that is disabled
    ! alias list@example.test bob@example.test an alias (source `@domain` is the catch-all)
    C: EHLO client.example.org                 a line the client sends (CRLF added)
    S: 250-{hostname}                          a line the server must send

Consecutive `C:` lines are sent in one write (pipelining), then the `S:` lines after them are
read one by one. In `S:` lines, `{NAME}` is the reply `NAME` from `appliance.smtp.replies` (the
catalogue: a catalogue reply must be written this way, never spelled out), `{hostname}` the
server's name, `{queue_id}` any queue id, and a trailing `*` matches any rest of the line.
`S: <closed>` expects the server to close the connection. Transcripts sharing settings share
an engine; the directory is emptied before each one.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.smtp import replies
from appliance.storage.directory import DirectoryError
from harness.engine import EngineProcess
from harness.smtp_wire import SMTPWire
from harness.transcripts import (
    READ_TIMEOUT,
    Transcript,
    TranscriptError,
    WirePeer,
    assert_conversation,
    catalogue,
    lines,
    play,
    setting,
    step_of,
)

HERE = Path(__file__).parent / "smtp"
HOSTNAME = "mx.transcripts.test"
CATALOGUE = catalogue(replies)
_PLACEHOLDER = re.compile(r"(\{[A-Za-z_]+\})")
_FIELDS = {"{hostname}": re.escape(HOSTNAME), "{queue_id}": "[0-9A-Z]{8,20}"}


def parse(path: Path) -> Transcript:
    """Read a transcript file; raise TranscriptError naming the line for a bad one."""
    transcript = Transcript(path.stem)
    for where, raw in lines(path):
        if (step := step_of(raw, ("C", "S"))) is not None:
            if step.kind == "S":
                _check_expectation(step.text, where)
            transcript.steps.append(step)
        elif raw.startswith("! "):
            _directive(transcript, raw[2:].split(), where)
        else:
            raise TranscriptError(f"{where}: expected 'C: ', 'S: ', '! ' or '#': {raw!r}")
    if not transcript.steps:
        raise TranscriptError(f"{path.name}: no conversation")
    return transcript


def _directive(transcript: Transcript, words: list[str], where: str) -> None:
    if transcript.steps:
        raise TranscriptError(f"{where}: setup directives belong before the conversation")
    if (value := setting(words)) is not None:
        transcript.settings[value[0]] = value[1]
    elif (words[:1] in (["domain"], ["account"], ["disabled"]) and len(words) == 2) or (
            words[:1] == ["alias"] and len(words) == 3):
        transcript.setup.append(tuple(words))
    else:
        raise TranscriptError(f"{where}: unknown directive {' '.join(words)!r}")


def _check_expectation(text: str, where: str) -> None:
    """Placeholders must be known, and catalogue replies must be named, not spelled out."""
    for token in _PLACEHOLDER.findall(text):
        if token not in _FIELDS and token[1:-1] not in CATALOGUE:
            raise TranscriptError(f"{where}: unknown placeholder {token}")
    for name, value in CATALOGUE.items():
        if text == value.replace("{hostname}", HOSTNAME):
            raise TranscriptError(f"{where}: write {{{name}}} instead of the catalogue text")


def pattern(text: str) -> re.Pattern[str]:
    """The regular expression an `S:` line stands for."""
    wildcard = text.endswith("*")
    body = text[:-1] if wildcard else text
    parts: list[str] = []
    for token in _PLACEHOLDER.split(body):
        if token in _FIELDS:
            parts.append(_FIELDS[token])
        elif token.startswith("{") and token[1:-1] in CATALOGUE:
            parts.append(pattern(CATALOGUE[token[1:-1]]).pattern)
        else:
            parts.append(re.escape(token))
    return re.compile("".join(parts) + (".*" if wildcard else ""))


def converse(transcript: Transcript, port: int) -> list[str]:
    """Play the transcript over a raw socket to `port` (see `harness.transcripts.converse`)."""
    with SMTPWire(port, timeout=READ_TIMEOUT) as wire:
        return play(transcript.steps, WirePeer(wire), pattern)


# -- engines and directory set-up -----------------------------------------------------------

class Engines:
    """One engine per distinct settings, started on first use, stopped at module end."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._running: dict[tuple[tuple[str, str], ...], EngineProcess] = {}

    def for_transcript(self, transcript: Transcript) -> EngineProcess:
        key = tuple(sorted((k, repr(v)) for k, v in transcript.settings.items()))
        engine = self._running.get(key)
        if engine is None:
            engine = EngineProcess(self._root / f"engine{len(self._running)}",
                                   server__hostname=HOSTNAME, **transcript.settings)
            engine.start()
            self._running[key] = engine
        _reset_directory(engine)
        _apply_setup(engine, transcript.setup)
        return engine

    def stop_all(self) -> list[int]:
        return [engine.stop() for engine in self._running.values()]


def _reset_directory(engine: EngineProcess) -> None:
    directory = engine.directory
    for source in {alias.source for alias in directory.list_aliases()}:
        directory.remove_alias(source)  # every target of the source at once
    for account in directory.list_accounts():
        directory.remove_account(account.address)
    for domain in directory.list_domains():
        directory.remove_domain(domain)


def _apply_setup(engine: EngineProcess, setup: list[tuple[str, ...]]) -> None:
    directory = engine.directory

    def ensure_domain(domain: str) -> None:
        if domain not in directory.list_domains():
            directory.add_domain(domain)

    for directive, *args in setup:
        if directive == "domain":
            ensure_domain(args[0])
        elif directive in ("account", "disabled"):
            ensure_domain(args[0].rpartition("@")[2])
            engine.add_account(args[0])
            if directive == "disabled":
                directory.set_enabled(args[0], False)
        else:
            ensure_domain(args[0].rpartition("@")[2])
            with contextlib.suppress(DirectoryError):    # a target given twice: once is enough
                directory.add_alias(args[0], args[1])


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engines]:
    pool = Engines(tmp_path_factory.mktemp("transcripts"))
    try:
        yield pool
    finally:
        statuses = pool.stop_all()
        assert all(status == 0 for status in statuses), statuses


TRANSCRIPTS = sorted(HERE.glob("*.txt"))


def test_transcripts_exist() -> None:
    assert len(TRANSCRIPTS) >= 10, f"expected the SMTP transcripts in {HERE}"


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=[p.stem for p in TRANSCRIPTS])
def test_transcript(path: Path, engines: Engines) -> None:
    transcript = parse(path)
    engine = engines.for_transcript(transcript)
    expected = [step.render() for step in transcript.steps]
    got = converse(transcript, engine.smtp_port)
    assert_conversation(path, expected, got)


# -- the runner's own checks (so a broken runner cannot pass every transcript) ---------------

def test_pattern_expands_catalogue_and_fields() -> None:
    assert pattern("{QUEUED}").fullmatch("250 2.0.0 OK: queued as 38D32DCB8PJ7G")
    assert not pattern("{QUEUED}").fullmatch("250 2.0.0 OK: queued as ")
    assert pattern("250-{hostname}").fullmatch(f"250-{HOSTNAME}")
    assert not pattern("250-{hostname}").fullmatch("250-elsewhere.test")
    assert pattern("250 Supported*").fullmatch("250 Supported commands: NOOP")
    assert not pattern("250 2.0.0 OK").fullmatch("250 2.0.0 OK!")


def test_spelled_out_catalogue_reply_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text(f"C: NOOP\nS: {replies.OK}\n", encoding="utf-8")
    with pytest.raises(TranscriptError, match=r"\{OK\}"):
        parse(bad)


def test_mismatch_is_reported_with_the_server_line(engines: Engines, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("S: 220 {hostname} *\nC: NOOP\nS: {UNKNOWN_USER}\n", encoding="utf-8")
    transcript = parse(wrong)
    got = converse(transcript, engines.for_transcript(transcript).smtp_port)
    assert got[-1] == f"S: {replies.OK}"
