"""Run every `smtp_client/*.txt` transcript against the client core and over a real socket.

A transcript is a header of directives, then the conversation seen from the wire:

    # comment (anywhere)
    ! sender alice@example.org           envelope sender ("<>" for the null sender)
    ! rcpt bob@peer.test NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@peer.test
    ! flag smtputf8 | body_8bit          envelope flags
    ! ret HDRS / ! envid QUEUED-1        RFC 3461 envelope parameters
    ! line Subject: hello                a message line (queue files end lines with LF)
    S: 220 peer.test ESMTP               a line the peer sends
    C: EHLO client.test                  a line our client must send (CRLF added)
    C: <closed>                          our client must close the connection here
    = bob@peer.test delivered 250 2.0.0 Ok    the expected result for one recipient

The core run feeds the transaction (between the EHLO reply and QUIT) to `MailTransaction`;
the socket run plays the peer to a real `SmtpSession` (connect, hello, send, quit) on a
loopback port. Both must produce exactly the `C:` lines and the `=` results.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from appliance.outbound.client import SmtpSession, Timeouts
from appliance.outbound.smtp_client_protocol import (
    Capabilities,
    Reply,
    ReplyParser,
    helo_capabilities,
    parse_ehlo,
)
from appliance.outbound.smtp_client_transaction import MailTransaction
from appliance.outbound.types import OutboundEnvelope, OutboundRecipient, RecipientResult

HERE = Path(__file__).parent / "smtp_client"
HELO_NAME = "client.test"
CLOSED = "<closed>"
FAST = Timeouts(connect=5, greeting=5, mail=5, rcpt=5, data_init=5, data_block=5, data_end=5)


@dataclass
class Transcript:
    name: str
    sender: str = ""
    recipients: list[OutboundRecipient] = field(default_factory=list)
    flags: set[str] = field(default_factory=set)
    ret: str | None = None
    envid: str | None = None
    lines: list[str] = field(default_factory=list)
    steps: list[tuple[str, str]] = field(default_factory=list)      # ("C"|"S", text)
    expected: list[str] = field(default_factory=list)

    @property
    def envelope(self) -> OutboundEnvelope:
        return OutboundEnvelope(
            queue_id="Q1", sender=self.sender, recipients=tuple(self.recipients),
            size=len(self.message), smtputf8="smtputf8" in self.flags,
            body_8bit="body_8bit" in self.flags, envid=self.envid, ret=self.ret)

    @property
    def message(self) -> bytes:
        return "".join(line + "\n" for line in self.lines).encode("utf-8")


def parse(path: Path) -> Transcript:
    transcript = Transcript(path.stem)
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not raw.strip() or raw.startswith("#"):
            continue
        if raw[:3] in ("C: ", "S: ") or raw in ("C:", "S:"):
            transcript.steps.append((raw[0], raw[3:]))
        elif raw.startswith("= "):
            transcript.expected.append(raw[2:])
        elif raw.startswith("! "):
            _directive(transcript, raw[2:], f"{path.name}:{number}")
        else:
            raise ValueError(f"{path.name}:{number}: unknown line {raw!r}")
    return transcript


def _directive(transcript: Transcript, text: str, where: str) -> None:
    word, _, rest = text.partition(" ")
    if word == "sender":
        transcript.sender = "" if rest == "<>" else rest
    elif word == "rcpt":
        address, *params = rest.split()
        values = dict(p.split("=", 1) for p in params)
        notify = tuple(values["NOTIFY"].split(",")) if "NOTIFY" in values else ()
        transcript.recipients.append(OutboundRecipient(address, notify, values.get("ORCPT")))
    elif word == "flag":
        transcript.flags.add(rest)
    elif word in ("ret", "envid"):
        setattr(transcript, word, rest)
    elif word == "line":
        transcript.lines.append(rest)
    else:
        raise ValueError(f"{where}: unknown directive {text!r}")


def render(results: list[RecipientResult]) -> list[str]:
    return [f"{r.address} {r.outcome.value} {r.reply}" for r in results]


# -- the core run ----------------------------------------------------------------------------

def _hello_caps(steps: list[tuple[str, str]]) -> tuple[Capabilities, int]:
    """Capabilities from the last EHLO/HELO exchange before MAIL, and where MAIL starts."""
    caps, index = Capabilities(esmtp=False), 0
    while index < len(steps) and not steps[index][1].startswith("MAIL FROM:"):
        kind, text = steps[index]
        if kind == "C" and text.split(" ")[0] in ("EHLO", "HELO"):
            reply_lines = []
            index += 1
            while index < len(steps) and steps[index][0] == "S":
                reply_lines.append(steps[index][1])
                index += 1
            replies = ReplyParser().feed("".join(f"{x}\r\n" for x in reply_lines).encode())
            if replies and replies[-1].positive:
                make = parse_ehlo if text.startswith("EHLO") else helo_capabilities
                caps = make(replies[-1])
            continue
        index += 1
    return caps, index


def run_core(transcript: Transcript) -> tuple[list[str], list[str]]:
    """Drive MailTransaction with the transcript's peer lines; return (C: lines, results)."""
    caps, index = _hello_caps(transcript.steps)
    steps = transcript.steps
    sent: list[str] = []
    transaction = MailTransaction(transcript.envelope, transcript.message, caps,
                                  remote="peer.test[127.0.0.1]")
    step = transaction.start()
    while step is not None:
        lines = step.data.decode("utf-8").split("\r\n")[:-1]
        sent += lines
        index += len(lines)
        parser, replies = ReplyParser(), list[Reply]()
        while len(replies) < len(step.replies) and index < len(steps) and steps[index][0] == "S":
            replies += parser.feed(steps[index][1].encode("utf-8") + b"\r\n")
            index += 1
        step = transaction.receive(replies)
    return sent, render(transaction.results())


def expected_core_lines(transcript: Transcript) -> list[str]:
    """The `C:` lines of the transaction part: after the EHLO reply, before QUIT/close."""
    _, index = _hello_caps(transcript.steps)
    out = []
    for kind, text in transcript.steps[index:]:
        if kind == "C" and text in ("QUIT", CLOSED):
            break
        if kind == "C":
            out.append(text)
    return out


# -- the socket run --------------------------------------------------------------------------

async def _play_peer(steps: list[tuple[str, str]], reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter, seen: list[str]) -> None:
    for kind, text in steps:
        if kind == "S":
            writer.write(text.encode("utf-8") + b"\r\n")
            await writer.drain()
            continue
        line = await asyncio.wait_for(reader.readline(), 5)
        got = CLOSED if not line else line.decode("utf-8", "replace").removesuffix("\r\n")
        seen.append(got)
        if got != text:
            break
    writer.close()


async def run_socket(transcript: Transcript) -> tuple[list[str], list[str]]:
    seen: list[str] = []
    done = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _play_peer(transcript.steps, reader, writer, seen)
        finally:
            done.set()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        session = await SmtpSession.connect("127.0.0.1", port, remote="peer.test[127.0.0.1]",
                                            timeouts=FAST)
        await session.hello(HELO_NAME)
        results = await session.send(transcript.envelope, transcript.message)
        await session.quit()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 5)
    return seen, render(results)


TRANSCRIPTS = sorted(HERE.glob("*.txt"))


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=[p.stem for p in TRANSCRIPTS])
def test_transcript_against_the_core(path: Path) -> None:
    transcript = parse(path)
    sent, results = run_core(transcript)
    assert sent == expected_core_lines(transcript)
    assert results == transcript.expected


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=[p.stem for p in TRANSCRIPTS])
def test_transcript_over_a_socket(path: Path) -> None:
    transcript = parse(path)
    seen, results = asyncio.run(run_socket(transcript))
    assert seen == [text for kind, text in transcript.steps if kind == "C"]
    assert results == transcript.expected


def test_there_are_transcripts() -> None:
    assert len(TRANSCRIPTS) >= 10
