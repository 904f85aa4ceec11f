"""The IMAP driver's pure parts: output batching, the per-account count, the tracker's refusals
in IMAP words, the limits taken from the settings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from appliance.imap import server, server_config
from appliance.imap.server_plans import _TAIL, RUN_BATCH, _tail, pull
from appliance.settings import load_settings
from appliance.smtp import replies as smtp_replies


def _chunks(sizes: list[int], pulled: list[int]) -> Iterator[bytes]:
    for size in sizes:
        pulled.append(size)
        yield b"x" * size


@pytest.mark.parametrize(("sizes", "batches"), [
    ([], [[]]),
    ([10, 20], [[10, 20]]),
    ([RUN_BATCH], [[RUN_BATCH], []]),
    ([RUN_BATCH // 2, RUN_BATCH // 2, 5], [[RUN_BATCH // 2, RUN_BATCH // 2], [5]]),
    ([3 * RUN_BATCH, 1], [[3 * RUN_BATCH], [1]]),
])
def test_pull_takes_about_one_batch_at_a_time(sizes: list[int],
                                              batches: list[list[int]]) -> None:
    pulled: list[int] = []
    chunks = _chunks(sizes, pulled)
    got = []
    done = False
    while not done:
        batch, done = pull(chunks)
        got.append([len(chunk) for chunk in batch])
        assert pulled == [size for b in got for size in b]   # nothing pulled ahead
    assert got == batches


@pytest.mark.parametrize("sizes", [[], [1], [_TAIL - 1, 2], [3, _TAIL], [_TAIL + 7, 5, _TAIL // 2],
                                   [2, 2, 2, _TAIL * 3, 1]])
def test_tail_is_the_end_of_all_the_output(sizes: list[int]) -> None:
    chunks = [bytes([65 + n % 26]) * size for n, size in enumerate(sizes)]
    before = b"prev" * 200                 # a tail from before: at most _TAIL octets
    assert _tail(before, chunks) == (before + b"".join(chunks))[-_TAIL:]
    assert _tail(b"", chunks) == b"".join(chunks)[-_TAIL:]


def test_account_counter_limits_and_releases() -> None:
    counter = server_config.AccountCounter(2)
    assert counter.acquire("a@example.test")
    assert counter.acquire("a@example.test")
    assert not counter.acquire("a@example.test")
    assert counter.acquire("b@example.test")
    counter.release("a@example.test")
    assert counter.acquire("a@example.test")
    counter.release("nobody@example.test")          # never acquired: no effect
    assert not counter.acquire("a@example.test")


@pytest.mark.parametrize(("smtp", "imap"), [
    (smtp_replies.TOO_MANY_CONNECTIONS, server.BYE_TOO_MANY_CONNECTIONS),
    (smtp_replies.TOO_MANY_FROM_YOU, server.BYE_TOO_MANY_FROM_YOU),
    (smtp_replies.SHUTTING_DOWN, server.BYE_SHUTTING_DOWN),
])
def test_tracker_refusals_become_bye(smtp: str, imap: bytes) -> None:
    assert server._imap_refusal(smtp) == imap
    assert imap.startswith(b"* BYE ")
    assert imap.endswith(b"\r\n")


def test_limits_follow_the_settings() -> None:
    settings = load_settings(None, environ={"MAILSTEAD_IMAP__MAX_LINE_LENGTH": "10000",
                                            "MAILSTEAD_LIMITS__MAX_MESSAGE_SIZE": "1000000"})
    limits = server_config.receiver_limits(settings)
    assert (limits.max_line, limits.max_literal) == (10000, 1000000)
    assert limits.max_non_sync_literal is None          # LITERAL+ is advertised
    assert server_config.session_config(settings).max_append == 1000000
    before = server_config.pre_auth_limits(settings)
    assert before.max_literal == server_config.PRE_AUTH_MAX_LITERAL
    assert before.max_line == 10000
    explicit = load_settings(None, environ={"MAILSTEAD_IMAP__MAX_APPEND": "5000"})
    assert server_config.receiver_limits(explicit).max_literal == 5000
