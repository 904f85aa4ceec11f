"""Run every `imap_core/*.txt` transcript against the IMAP core and again over a real socket.

A transcript is directives, then the conversation as it appears on the wire:

    # comment (anywhere)
    ! deliver SUBJECT                 a message (From bob@example.test, body "hello") delivered
                                      to alice@example.test's INBOX over the Maildir before
                                      the conversation starts; repeatable
    C: a LOGIN alice@example.test "correct horse battery"    a line the client sends
    S: a OK ...                       a line the server must send, exactly
    S~ \\* OK \\[UIDVALIDITY \\d+\\] .*    a line the server must send, as a regular expression

The core run drives `ImapSession` through the real `Receiver` (a LOGIN is accepted as the
login guard accepts the right password); the socket run talks to a real engine on its
implicit-TLS port with the real login guard. Both must produce exactly the `S` lines, in order,
and (core run) nothing else. The first `S` line is the greeting.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory
from appliance.storage.interfaces import Mailbox
from appliance.storage.maildir.store import MaildirStore
from appliance.storage.maildir.stores import MaildirStores
from harness.engine import EngineProcess, loopback_context
from harness.imap_core import ADDRESS, PASSWORD, CoreWire

HERE = Path(__file__).parent / "imap_core"


@dataclass
class Transcript:
    name: str
    deliveries: list[str] = field(default_factory=list)
    steps: list[tuple[str, str]] = field(default_factory=list)   # ("C" | "S" | "S~", text)


def load(path: Path) -> Transcript:
    transcript = Transcript(path.stem)
    for raw in path.read_text(encoding="utf-8").splitlines():
        if not raw or raw.startswith("#"):
            continue
        if raw.startswith("! deliver "):
            transcript.deliveries.append(raw[len("! deliver "):])
        elif raw.startswith(("C: ", "S: ", "S~ ")) or raw in ("C:", "S:"):
            kind = raw[:2].rstrip(":").strip()
            transcript.steps.append((kind if kind != "S~" else "S~", raw[3:]))
        else:
            raise ValueError(f"{path.name}: cannot read {raw!r}")
    return transcript


TRANSCRIPTS = [load(path) for path in sorted(HERE.glob("*.txt"))]


def message(subject: str) -> bytes:
    return (f"From: Bob <bob@example.test>\nTo: {ADDRESS}\nSubject: {subject}\n"
            f"Message-ID: <{subject.replace(' ', '.')}@example.test>\n\nhello\n").encode()


def check(transcript: Transcript, send: Callable[[bytes], None],
          read_line: Callable[[], bytes]) -> None:
    for kind, text in transcript.steps:
        if kind == "C":
            send(text.encode("utf-8") + b"\r\n")
            continue
        got = read_line()
        shown = got.decode("utf-8", "replace")
        if kind == "S":
            assert shown == text, f"{transcript.name}: expected {text!r}, got {shown!r}"
        else:
            assert re.fullmatch(text, shown), f"{transcript.name}: {text!r} !~ {shown!r}"


# -- against the core ------------------------------------------------------------------------

@pytest.mark.parametrize("transcript", TRANSCRIPTS, ids=[t.name for t in TRANSCRIPTS])
def test_transcript_against_the_core(transcript: Transcript, tmp_path: Path) -> None:
    directory = SqliteDirectory(open_database(tmp_path))
    directory.add_domain("example.test")
    account = directory.add_account(ADDRESS, "x")
    for subject in transcript.deliveries:
        MaildirStore(tmp_path).deliver(message(subject),
                                       [Mailbox(account.id, ADDRESS, account.maildir)])
    wire = CoreWire(MaildirStores(tmp_path, directory))
    check(transcript, wire.send, wire.read_line)
    assert bytes(wire.output) == b"", f"unexpected output: {bytes(wire.output)!r}"


# -- over a socket ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    proc = EngineProcess(tmp_path_factory.mktemp("imap-transcripts"))
    proc.start()
    proc.add_domain("example.test")
    try:
        yield proc
    finally:
        proc.stop()


@pytest.mark.parametrize("transcript", TRANSCRIPTS, ids=[t.name for t in TRANSCRIPTS])
def test_transcript_over_a_socket(transcript: Transcript, engine: EngineProcess) -> None:
    address = f"{transcript.name.replace('_', '-')}@example.test"
    engine.add_account(address, PASSWORD)
    store = MaildirStore(engine.data_dir)
    account = engine.directory.get_account(address)
    for subject in transcript.deliveries:
        store.deliver(message(subject), [Mailbox(account.id, address, account.maildir)])
    steps = [(kind, text.replace(ADDRESS, address)) for kind, text in transcript.steps]
    context = loopback_context(engine)
    with socket.create_connection(("127.0.0.1", engine.imaps_port), timeout=10) as raw, \
            context.wrap_socket(raw) as tls:
        reader = tls.makefile("rb")
        check(Transcript(transcript.name, [], steps), tls.sendall,
              lambda: reader.readline().removesuffix(b"\r\n"))
