"""Run every `pop3/*.txt` transcript twice: against the sans-IO core, then over a real socket.

The notation follows `test_smtp_transcripts.py`:

    # comment
    ! setting server.dev_mode = false         an engine setting (true/false, numbers, text)
    ! account alice@example.test              an account (its domain is added if needed)
    ! disabled carol@example.test             an account that is disabled
    ! message alice@example.test dots         put messages/dots.eml into the account's INBOX
    C: USER alice@example.test                a line the client sends (CRLF added)
    C! \\x00\\xff junk                          the same, with Python escapes for raw bytes
    S: +OK 2 320                              a line the server must send

In `C:` lines `{A*300}` stands for 300 "A"s. In `S:` lines `{NAME}` is a reply from
`appliance.pop3.replies` (a fixed catalogue line must be written this way; its `{fields}`
match any word), a trailing `*` matches any rest of the line, `<closed>` the end of the
connection. Consecutive `C:` lines go out in one write (pipelining). The file name picks the
connection: `plain_*` the POP3 port without TLS, `stls_*` the same port with TLS started after
`{STLS_BEGIN}`, `tls_*` the implicit-TLS port. The socket run connects over loopback, so
the harness engine's dev mode allows passwords without TLS unless a transcript turns it off;
the core run is given the same facts.

The core run uses the real backend (login guard, Maildir store) in this process, on a data
directory of its own; the socket run uses a real engine on another.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from appliance.pop3 import replies
from appliance.pop3.actions import StartTls
from appliance.pop3.backend import Pop3Backend, SessionBackend
from appliance.pop3.context import SessionConfig
from appliance.pop3.core import Pop3Session
from appliance.pop3.server import build_backend, build_stores, limits
from appliance.settings import load_settings
from appliance.smtp.submission_server import build_login_guard
from harness.engine import EngineProcess
from harness.pop3 import HOSTNAME, client_context, put_message
from harness.smtp_wire import SMTPWire
from harness.transcripts import (
    CLOSED,
    READ_TIMEOUT,
    QuietWirePeer,
    Step,
    Transcript,
    TranscriptError,
    assert_conversation,
    catalogue,
    lines,
    play,
    setting,
    step_of,
)

HERE = Path(__file__).parent / "pop3"
MESSAGES = HERE / "messages"
TRANSCRIPTS = sorted(HERE.glob("*.txt"))
CATALOGUE = catalogue(replies)
_PLACEHOLDER = re.compile(r"(\{[A-Za-z_]+\})")
_FIELD = re.compile(r"(\{[a-z_]+\})")
# Transcripts must not wait out the guard's one-second failure delay.
BASE_SETTINGS: dict[str, object] = {"auth__failure_delay_ms": 0}


def parse(path: Path) -> Transcript:
    transcript = Transcript(path.stem)
    for where, raw in lines(path):
        if (step := step_of(raw, ("C", "C!", "S"))) is not None:
            if step.kind == "S":
                _check_expectation(step.text, where)
            transcript.steps.append(step)
        elif raw.startswith("! ") and not transcript.steps:
            _directive(transcript, raw[2:].split(), where)
        else:
            raise TranscriptError(f"{where}: expected 'C: ', 'C! ', 'S: ', '! ' or '#'")
    if not transcript.steps:
        raise TranscriptError(f"{path.name}: no conversation")
    return transcript


def _directive(transcript: Transcript, words: list[str], where: str) -> None:
    if (value := setting(words)) is not None:
        transcript.settings[value[0]] = value[1]
    elif (words[:1] in (["account"], ["disabled"]) and len(words) == 2) or (
            words[:1] == ["message"] and len(words) == 3):
        transcript.setup.append(tuple(words))
    else:
        raise TranscriptError(f"{where}: unknown directive {' '.join(words)!r}")


def _check_expectation(text: str, where: str) -> None:
    for token in _PLACEHOLDER.findall(text):
        if token[1:-1] not in CATALOGUE:
            raise TranscriptError(f"{where}: unknown placeholder {token}")
    for name, value in CATALOGUE.items():
        status_line = value.startswith(("+OK ", "-ERR", "+ "))    # not "+OK", ".", CAPA
        if text == value and status_line and "{" not in value:
            raise TranscriptError(f"{where}: write {{{name}}} instead of the catalogue text")


def pattern(text: str) -> re.Pattern[str]:
    """The regular expression an `S:` line stands for."""
    wildcard = text.endswith("*") and not text.endswith("\\*")
    body = text[:-1] if wildcard else text
    parts: list[str] = []
    for token in _PLACEHOLDER.split(body):
        if token.startswith("{") and token[1:-1] in CATALOGUE:
            parts.extend(r"\S+" if _FIELD.fullmatch(piece) else re.escape(piece)
                         for piece in _FIELD.split(CATALOGUE[token[1:-1]]))
        else:
            parts.append(re.escape(token))
    return re.compile("".join(parts) + (".*" if wildcard else ""))


# -- the two peers ---------------------------------------------------------------------------

class CorePeer:
    """The core and the real backend in this process; "TLS" starts when the core asks."""

    def __init__(self, backend: Pop3Backend, config: SessionConfig) -> None:
        self._runner = asyncio.Runner()
        self._session = Pop3Session(config)
        self._backend: SessionBackend = backend.session("127.0.0.1")
        self._lines: list[str] = []
        self._closed = False
        self._take(self._session.greeting().output)

    def send(self, data: bytes) -> None:
        self._runner.run(self._play(data))

    async def _play(self, data: bytes) -> None:
        self._session.feed(data)
        while not self._closed and (step := self._session.next_step()) is not None:
            while step is not None:
                self._take(b"".join(step.chunks()))
                if step.close:
                    self._closed = True
                    self._backend.close()
                    step = None
                elif isinstance(step.action, StartTls):
                    self._session.tls_started()
                    step = None
                elif step.action is not None:
                    step = self._session.resume(await self._backend.perform(step.action))
                else:
                    step = None

    def _take(self, output: bytes) -> None:
        text = output.decode("utf-8", errors="replace")
        self._lines.extend(text.split("\r\n")[:-1])

    def read_line(self, timeout: float = READ_TIMEOUT) -> str:
        if self._lines:
            return self._lines.pop(0)
        return CLOSED if self._closed else f"<nothing within {timeout:.1f}s>"

    def start_tls(self) -> None:
        """Nothing to do: the core peer reacted to the StartTls action already."""

    def close(self) -> None:
        self._backend.close()
        self._runner.close()


class SocketPeer(QuietWirePeer):
    """A real connection to the engine."""

    def __init__(self, engine: EngineProcess, name: str) -> None:
        implicit = name.startswith("tls_")
        super().__init__(SMTPWire(engine.pop3s_port if implicit else engine.pop3_port,
                                  timeout=READ_TIMEOUT))
        self._context = client_context(engine)
        if implicit:
            self.start_tls()

    def start_tls(self, context: ssl.SSLContext | None = None,
                  hostname: str | None = HOSTNAME) -> None:
        super().start_tls(context or self._context, hostname)


Peer = CorePeer | SocketPeer


def converse(transcript: Transcript, peer: Peer, tls_after_stls: bool) -> list[str]:
    """Play the transcript (see `harness.transcripts.play`), starting TLS on the socket
    after `{STLS_BEGIN}` when `tls_after_stls`."""

    def on_line(got: str) -> None:
        if tls_after_stls and got == replies.STLS_BEGIN:
            peer.start_tls()

    return play(transcript.steps, peer, pattern, on_line)


# -- set-up ----------------------------------------------------------------------------------

def prepare(transcript: Transcript, data_dir: Path) -> EngineProcess:
    """A data directory with the transcript's settings, accounts and messages."""
    engine = EngineProcess(data_dir, server__hostname=HOSTNAME,
                           **{**BASE_SETTINGS, **transcript.settings})
    directory = engine.directory
    for directive, *args in transcript.setup:
        domain = args[0].rpartition("@")[2]
        if domain not in directory.list_domains():
            directory.add_domain(domain)
        if directive in ("account", "disabled"):
            engine.add_account(args[0])
            if directive == "disabled":
                directory.set_enabled(args[0], False)
        else:
            content = (MESSAGES / f"{args[1]}.eml").read_bytes()
            put_message(engine.maildir(args[0]), content.replace(b"\n", b"\r\n"))
    return engine


def run_on_core(transcript: Transcript, engine: EngineProcess) -> list[str]:
    settings = load_settings(engine.config_file, environ={})
    guard = build_login_guard(settings)
    stores = build_stores(settings)
    with ThreadPoolExecutor(4) as executor:
        backend = build_backend(settings, executor, guard, stores)
        config = SessionConfig(tls=transcript.name.startswith("tls_"),
                               plaintext_login=settings.get_bool("server.dev_mode"),
                               limits=limits(settings))
        peer = CorePeer(backend, config)
        try:
            return converse(transcript, peer, tls_after_stls=False)
        finally:
            peer.close()
            guard.close()
            stores.close()


def run_on_socket(transcript: Transcript, engine: EngineProcess) -> list[str]:
    with engine:
        peer = SocketPeer(engine, transcript.name)
        try:
            return converse(transcript, peer, tls_after_stls=transcript.name.startswith("stls_"))
        finally:
            peer.close()


def test_transcripts_exist() -> None:
    assert len(TRANSCRIPTS) >= 10, f"expected the POP3 transcripts in {HERE}"
    for path in TRANSCRIPTS:
        assert path.stem.startswith(("plain_", "stls_", "tls_")), path.name


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=[p.stem for p in TRANSCRIPTS])
def test_transcript_on_core(path: Path, tmp_path: Path) -> None:
    transcript = parse(path)
    expected = [step.render() for step in transcript.steps]
    got = run_on_core(transcript, prepare(transcript, tmp_path / "core"))
    assert_conversation(path, expected, got, "core")


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=[p.stem for p in TRANSCRIPTS])
def test_transcript_on_socket(path: Path, tmp_path: Path) -> None:
    transcript = parse(path)
    expected = [step.render() for step in transcript.steps]
    got = run_on_socket(transcript, prepare(transcript, tmp_path / "socket"))
    assert_conversation(path, expected, got, "socket")


# -- the runner's own checks -----------------------------------------------------------------

def test_pattern_expands_catalogue_fields() -> None:
    assert pattern("{LOGGED_IN}").fullmatch("+OK Logged in, 2 messages (320 octets)")
    assert not pattern("{LOGGED_IN}").fullmatch("+OK Logged in, 2 messages")
    assert pattern("+OK 1 00000001*").fullmatch("+OK 1 0000000165A1B2C3")
    assert not pattern("{OK}").fullmatch("+OK Logging out")


def test_spelled_out_catalogue_reply_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "plain_bad.txt"
    bad.write_text(f"C: QUIT\nS: {replies.BYE}\n", encoding="utf-8")
    with pytest.raises(TranscriptError, match=r"\{BYE\}"):
        parse(bad)


def test_raw_client_lines() -> None:
    assert Step("C!", r"\x00\xff x").payload() == b"\x00\xff x\r\n"
    assert Step("C", "USER {A*3}").payload() == b"USER AAA\r\n"
