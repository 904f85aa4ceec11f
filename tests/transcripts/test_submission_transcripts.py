"""Run every `submission/*.txt` transcript against a real engine's submission listeners.

The notation and the directives are those of `test_smtp_transcripts.py` (whose parser and
matcher are used here). The file name picks the listener: `starttls_*` talks to the
STARTTLS port, `tls_*` to the implicit-TLS port. On the STARTTLS port the runner starts TLS
right after the server's `{READY_FOR_TLS}` line. Accounts get the harness password
"correct horse battery" (`AGFsaWNlQGV4YW1wbGUudGVzdABjb3JyZWN0IGhvcnNlIGJhdHRlcnk=` is
AUTH PLAIN for alice@example.test).
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from transcripts.test_smtp_transcripts import Engines, parse, pattern

from appliance.smtp import replies
from harness.engine import EngineProcess
from harness.smtp_wire import SMTPWire
from harness.transcripts import READ_TIMEOUT, Transcript, WirePeer, assert_conversation, play

HERE = Path(__file__).parent / "submission"
TRANSCRIPTS = sorted(HERE.glob("*.txt"))


def _context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False             # certificates are checked in test_mx_tls
    context.verify_mode = ssl.CERT_NONE
    return context


def connect(engine: EngineProcess, name: str) -> SMTPWire:
    if name.startswith("tls_"):
        wire = SMTPWire(engine.submissions_port, timeout=READ_TIMEOUT)
        wire.sock = _context().wrap_socket(wire.sock)
        return wire
    assert name.startswith("starttls_"), f"{name}: name it starttls_* or tls_*"
    return SMTPWire(engine.submission_port, timeout=READ_TIMEOUT)


def converse(transcript: Transcript, wire: SMTPWire) -> list[str]:
    """Play the transcript (as the MX runner does), starting TLS after READY_FOR_TLS."""
    peer = WirePeer(wire)

    def on_line(got: str) -> None:
        if got == replies.READY_FOR_TLS:
            peer.start_tls(_context())

    return play(transcript.steps, peer, pattern, on_line)


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engines]:
    pool = Engines(tmp_path_factory.mktemp("submission-transcripts"))
    try:
        yield pool
    finally:
        assert all(status == 0 for status in pool.stop_all())


def test_transcripts_exist() -> None:
    assert len(TRANSCRIPTS) >= 4, f"expected the submission transcripts in {HERE}"


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=[p.stem for p in TRANSCRIPTS])
def test_transcript(path: Path, engines: Engines) -> None:
    transcript = parse(path)
    engine = engines.for_transcript(transcript)
    expected = [step.render() for step in transcript.steps]
    with connect(engine, path.stem) as wire:
        got = converse(transcript, wire)
    assert_conversation(path, expected, got)
