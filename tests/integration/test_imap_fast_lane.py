"""The fast lane (`appliance.imap.fast_lane`: NOOP and FETCH of one whole message answered
straight from the line received) answers byte for byte what the general path does.

Two in-process servers (real listeners, sockets, login guard and Maildir store), one with
the lane and one without, get the same command streams from a client on INBOX while a second
session on each changes the folder (flags, expunges, appends, moves); everything each client
reads must be equal, UIDVALIDITY aside (it is a timestamp). The streams mix the lane's
shapes with the ones it must leave alone (BODY[] that sets \\Seen, MODSEQ, CHANGEDSINCE,
numbers past the end, unknown UIDs, a message bigger than its limit, EXAMINE, IMAP4rev2,
CONDSTORE and QRESYNC enabled, pipelined lines)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.imap.fast_lane import MAX_MESSAGE
from harness.imap import ImapWire
from harness.imap_server import InProcessImap, serving

COUNT = 8


def message(n: int) -> bytes:
    """Message n: varied sizes, one past the lane's limit, one that says " BAD " inside."""
    size = MAX_MESSAGE + 5000 if n == 3 else 300 + n * 911
    words = b"this one is BAD and fine\r\n" if n == 5 else b"lorem ipsum dolor\r\n"
    return (b"From: a@example.org\r\nSubject: m%d\r\n\r\n" % n
            + words * max(1, size // len(words)))


@dataclass
class Side:
    server: InProcessImap
    client: ImapWire            # the session on INBOX whose answers are compared
    other: ImapWire             # the session that changes the folder meanwhile
    tags: int = 0

    def tag(self) -> str:
        self.tags += 1
        return f"t{self.tags}"


def _open(server: InProcessImap) -> Side:
    other = server.connect()
    for n in range(COUNT):
        body = message(n)
        other.send_line(f"A{n} APPEND INBOX (\\Seen) {{{len(body)}+}}".encode())
        other.send(body + b"\r\n")
        assert other.read_until_tagged(f"A{n}")[-1].startswith(f"A{n} OK".encode())
    client = server.connect()
    assert client.command("S", "SELECT INBOX")[-1].startswith(b"S OK")
    assert other.command("S", "SELECT INBOX")[-1].startswith(b"S OK")
    return Side(server, client, other)


@pytest.fixture(scope="module")
def sides(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Side, Side]]:
    root: Path = tmp_path_factory.mktemp("fast-lane")
    with serving(root / "fast", autologout=600.0) as fast, \
            serving(root / "general", autologout=600.0, fast_lane=False) as general:
        yield _open(fast), _open(general)


_UIDVALIDITY = re.compile(rb"(UIDVALIDITY |APPENDUID |COPYUID )\d+")


def _normal(lines: list[bytes]) -> list[bytes]:
    return [_UIDVALIDITY.sub(rb"\1V", line) for line in lines]


def run(side: Side, who: str, texts: list[str]) -> list[bytes]:
    """Send `texts` (one packet when several: pipelined) and read every answer."""
    wire = side.client if who == "client" else side.other
    tags = [side.tag() for _ in texts]
    packet = b"".join(f"{tag} {text}\r\n".encode() for tag, text in zip(tags, texts,
                                                                        strict=True))
    if texts[0].startswith("APPEND"):
        body = message(len(texts[0]))
        packet = f"{tags[0]} APPEND INBOX {{{len(body)}+}}\r\n".encode() + body + b"\r\n"
    wire.send(packet)
    lines: list[bytes] = []
    for tag in tags:
        lines += wire.read_until_tagged(tag)
    return _normal(lines)


LANE = ["NOOP", "noop", "UID FETCH {uid} (BODY.PEEK[])", "uid fetch {uid} body.peek[]",
        "FETCH {seq} BODY.PEEK[]", "FETCH {seq} (FLAGS BODY.PEEK[])",
        "UID FETCH {uid} (UID RFC822.SIZE BODY.PEEK[])", "FETCH {seq} (BODY.PEEK[] FLAGS)"]
NOT_LANE = ["FETCH {seq} BODY[]", "FETCH {seq} RFC822", "UID FETCH {uid} (BODY.PEEK[] MODSEQ)",
            "FETCH {seq} (BODY.PEEK[]) (CHANGEDSINCE 1)", "UID FETCH {uid} BODY.PEEK[1]",
            "FETCH {seq} (BODY.PEEK[]", "FETCH 0 BODY.PEEK[]"]
CHANGES = ["STORE {seq} +FLAGS (\\Flagged)", "STORE {seq} -FLAGS (\\Seen)",
           "STORE {seq} +FLAGS.SILENT (\\Deleted)", "EXPUNGE", "APPEND", "UID MOVE {uid} Archive",
           "NOOP"]
MODES = ["EXAMINE INBOX", "SELECT INBOX", "ENABLE CONDSTORE", "ENABLE QRESYNC",
         "ENABLE IMAP4rev2"]

numbers = st.integers(1, COUNT + 6)
client_step = st.tuples(st.just("client"), st.lists(
    st.tuples(st.sampled_from(LANE + NOT_LANE), numbers, numbers), min_size=1, max_size=4))
other_step = st.tuples(st.just("other"), st.lists(
    st.tuples(st.sampled_from(CHANGES), numbers, numbers), min_size=1, max_size=1))
mode_step = st.tuples(st.just("client"), st.lists(
    st.tuples(st.sampled_from(MODES), numbers, numbers), min_size=1, max_size=1))


def _texts(items: list[tuple[str, int, int]]) -> list[str]:
    return [shape.format(seq=seq, uid=uid) for shape, seq, uid in items]


def _both(sides: tuple[Side, Side], who: str, texts: list[str]) -> list[bytes]:
    fast, general = sides
    answer = run(fast, who, texts)
    assert answer == run(general, who, texts), texts
    return answer


def test_a_download_session_is_answered_alike_and_by_the_lane(
        sides: tuple[Side, Side]) -> None:
    fast, general = sides
    before = fast.server.config.thread_jobs.fast
    for uid in range(1, COUNT + 1):                 # what mbsync sends, one by one
        _both(sides, "client", [f"UID FETCH {uid} (BODY.PEEK[])"])
    whole = _both(sides, "client", [f"UID FETCH {uid} (BODY.PEEK[])" for uid in (1, 2, 4)])
    assert message(1) in b"\r\n".join(whole)          # UID 2
    _both(sides, "other", ["STORE 1 +FLAGS (\\Answered)"])
    noop = _both(sides, "client", ["NOOP"])
    assert noop[0].startswith(b"* 1 FETCH (")
    assert b"\\Answered" in noop[0]
    # By the lane: UIDs 2, 3 and 5-8 singly, 1 and 2 pipelined. Not UID 1 the first time
    # (no change token yet: SELECT's went to a worker thread), never UID 4 (message 3,
    # past the lane's size limit), nor the NOOP that reports another session's STORE.
    assert fast.server.config.thread_jobs.fast - before == 8
    # Lines queued behind one for the connection's task (BODY[] stores \Seen: a worker
    # thread) take the lane from the task, in one burst (`Receiver.buffered_commands`).
    before = fast.server.config.thread_jobs.fast
    queued = _both(sides, "client", ["FETCH 1 BODY[]", "UID FETCH 2 (BODY.PEEK[])",
                                     "NOOP", "UID FETCH 5 (BODY.PEEK[])"])
    assert message(4) in b"\r\n".join(queued)       # UID 5
    assert fast.server.config.thread_jobs.fast - before == 3
    assert general.server.config.thread_jobs.fast == 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(st.one_of(client_step, client_step, other_step, mode_step),
                      min_size=1, max_size=10))
def test_streams_are_answered_alike_with_and_without_the_lane(
        sides: tuple[Side, Side], steps: list[tuple[str, list[tuple[str, int, int]]]]) -> None:
    # The servers and sessions live across examples: new mail keeps the folder from
    # emptying (moves and expunges), and an OK after each of the client's steps keeps its
    # BAD answers (numbers past the end) from adding up to the BYE for too many in a row.
    _both(sides, "other", ["APPEND"])
    for who, items in steps:
        texts = _texts(items)
        _both(sides, who, [*texts, "NOOP"] if who == "client" else texts)
