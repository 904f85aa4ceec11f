"""Fuzz the bounded output capture of appliance.core.run (what any program or hook prints,
however it arrives in chunks) and the hook runner's log excerpt."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from appliance.core.run import _Capture
from appliance.update.hooks import LOGGED_OUTPUT, excerpt

CHUNKS = st.lists(st.binary(max_size=300), max_size=40)


@given(CHUNKS, st.integers(0, 500), st.integers(0, 500))
def test_capture_keeps_exactly_head_and_tail(chunks: list[bytes], head: int, tail: int) -> None:
    capture = _Capture(head, tail)
    for chunk in chunks:
        capture.add(chunk)
    whole = b"".join(chunks)
    assert len(capture.first) + len(capture.last) <= head + tail
    if len(whole) <= head + tail:
        assert capture.value() == whole
        assert capture.dropped == 0
    else:
        assert capture.dropped == len(whole) - head - tail
        kept_tail = whole[len(whole) - tail:] if tail else b""
        assert capture.value() == (whole[:head] + f"\n[... {capture.dropped} bytes of output "
                                   "left out ...]\n".encode() + kept_tail)


@given(st.binary(max_size=3 * LOGGED_OUTPUT))
def test_excerpt_is_bounded_text_with_both_ends(output: bytes) -> None:
    text = excerpt(output)
    decoded = output.decode("utf-8", "replace")
    assert len(text) <= LOGGED_OUTPUT + len("\n[...]\n")
    if len(decoded) <= LOGGED_OUTPUT:
        assert text == decoded
    else:
        assert text.startswith(decoded[:LOGGED_OUTPUT // 2])
        assert text.endswith(decoded[-(LOGGED_OUTPUT // 2):])
