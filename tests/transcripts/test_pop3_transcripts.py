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

import ast
import asyncio
import contextlib
import difflib
import re
import ssl
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
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
from harness.pop3 import HOSTNAME, put_message
from harness.smtp_wire import ConnectionClosed, SMTPWire

HERE = Path(__file__).parent / "pop3"
MESSAGES = HERE / "messages"
TRANSCRIPTS = sorted(HERE.glob("*.txt"))
CLOSED = "<closed>"
READ_TIMEOUT = 5.0
CATALOGUE: dict[str, str] = {
    name: value for name, value in vars(replies).items()
    if name.isupper() and isinstance(value, str)
}
_PLACEHOLDER = re.compile(r"(\{[A-Za-z_]+\})")
_FIELD = re.compile(r"(\{[a-z_]+\})")
_REPEAT = re.compile(r"\{(.)\*(\d+)\}")
# Transcripts must not wait out the guard's one-second failure delay.
BASE_SETTINGS: dict[str, object] = {"auth__failure_delay_ms": 0}


@dataclass(frozen=True)
class Step:
    kind: str          # "C", "C!" or "S"
    text: str

    def render(self) -> str:
        return f"{self.kind} {self.text}" if self.kind == "C!" else f"{self.kind}: {self.text}"

    def payload(self) -> bytes:
        if self.kind == "C!":
            raw = ast.literal_eval("b'" + self.text.replace("'", "\\'") + "'")
            assert isinstance(raw, bytes)
            return raw + b"\r\n"
        text = _REPEAT.sub(lambda m: m.group(1) * int(m.group(2)), self.text)
        return text.encode("utf-8") + b"\r\n"


@dataclass
class Transcript:
    name: str
    settings: dict[str, object] = field(default_factory=dict)
    setup: list[tuple[str, ...]] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)


class TranscriptError(ValueError):
    """The transcript file itself is malformed."""


def parse(path: Path) -> Transcript:
    transcript = Transcript(path.stem)
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        where = f"{path.name}:{number}"
        if not raw.strip() or raw.startswith("#"):
            continue
        if raw.startswith(("C: ", "S: ", "C! ")):
            kind = "C!" if raw.startswith("C! ") else raw[0]
            step = Step(kind, raw[3:])
            if kind == "S":
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
    if words[:1] == ["setting"] and len(words) == 4 and words[2] == "=":
        value: object = {"true": True, "false": False}.get(words[3], words[3])
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        transcript.settings[words[1].replace(".", "__")] = value
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


def _matches(expected: str, got: str) -> bool:
    if CLOSED in (expected, got):
        return expected == got
    return pattern(expected).fullmatch(got) is not None


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


class SocketPeer:
    """A real connection to the engine."""

    def __init__(self, engine: EngineProcess, name: str) -> None:
        implicit = name.startswith("tls_")
        self._wire = SMTPWire(engine.pop3s_port if implicit else engine.pop3_port,
                              timeout=READ_TIMEOUT)
        self._context = ssl.create_default_context(
            cafile=str(engine.data_dir / "tls" / "cert.pem"))
        if implicit:
            self.start_tls()

    def send(self, data: bytes) -> None:
        with contextlib.suppress(OSError):   # the server may have closed: reads will show it
            self._wire.send(data)

    def read_line(self, timeout: float = READ_TIMEOUT) -> str:
        try:
            line = self._wire.read_line(timeout)
        except TimeoutError:
            return f"<nothing within {timeout:.1f}s>"
        except (ConnectionClosed, OSError) as exc:
            return f"<connection failed: {exc}>"
        return CLOSED if line is None else line

    def start_tls(self) -> None:
        self._wire.sock = self._context.wrap_socket(self._wire.sock, server_hostname=HOSTNAME)

    def close(self) -> None:
        self._wire.close()


Peer = CorePeer | SocketPeer


def converse(transcript: Transcript, peer: Peer, tls_after_stls: bool) -> list[str]:
    """Play the transcript; what happened, in the transcript's notation (matched lines as
    written, so a diff shows only the differences; after a mismatch, what else came)."""
    seen: list[str] = []
    steps = transcript.steps
    index = 0
    while index < len(steps):
        if steps[index].kind != "S":
            batch = []
            while index < len(steps) and steps[index].kind != "S":
                batch.append(steps[index])
                index += 1
            peer.send(b"".join(step.payload() for step in batch))
            seen.extend(step.render() for step in batch)
            continue
        got = peer.read_line()
        if not _matches(steps[index].text, got):
            return [*seen, f"S: {got}", *_drain(peer)]
        seen.append(steps[index].render())
        index += 1
        if tls_after_stls and got == replies.STLS_BEGIN:
            peer.start_tls()
    if steps[-1].text != CLOSED:
        seen.extend(_drain(peer, timeout=0.1))
    return seen


def _drain(peer: Peer, timeout: float = 0.3) -> list[str]:
    extra: list[str] = []
    while True:
        got = peer.read_line(timeout)
        if got.startswith("<"):
            return [*extra, f"S: {got}"] if got == CLOSED else extra
        extra.append(f"S: {got}")


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


def assert_conversation(path: Path, how: str, expected: list[str], got: list[str]) -> None:
    if got != expected:
        diff = "\n".join(difflib.unified_diff(expected, got, "expected", "got", lineterm=""))
        pytest.fail(f"transcript {path.name} ({how}) differs (- expected, + got):\n{diff}",
                    pytrace=False)


def test_transcripts_exist() -> None:
    assert len(TRANSCRIPTS) >= 10, f"expected the POP3 transcripts in {HERE}"
    for path in TRANSCRIPTS:
        assert path.stem.startswith(("plain_", "stls_", "tls_")), path.name


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=[p.stem for p in TRANSCRIPTS])
def test_transcript_on_core(path: Path, tmp_path: Path) -> None:
    transcript = parse(path)
    expected = [step.render() for step in transcript.steps]
    got = run_on_core(transcript, prepare(transcript, tmp_path / "core"))
    assert_conversation(path, "core", expected, got)


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=[p.stem for p in TRANSCRIPTS])
def test_transcript_on_socket(path: Path, tmp_path: Path) -> None:
    transcript = parse(path)
    expected = [step.render() for step in transcript.steps]
    got = run_on_socket(transcript, prepare(transcript, tmp_path / "socket"))
    assert_conversation(path, "socket", expected, got)


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
