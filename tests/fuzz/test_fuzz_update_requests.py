"""Fuzz the update request parser (appliance/update/requests.py), whose input the console's
user controls and root reads: only BadRequestError escapes, an accepted request names one of
the actions and a plain user name, and what the console writes is read back unchanged."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from appliance.update import requests
from appliance.update.requests import ACTIONS, MAX_REQUEST, BadRequestError, Request

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                 max_size=4),
    max_leaves=12)
NAMES = st.text(st.sampled_from("abcz019._@+-/ \\\n\x00é"), min_size=0, max_size=300)
OBJECTS = st.fixed_dictionaries(
    {"action": st.sampled_from([*ACTIONS, "", "CHECK", "../x", "shutdown"]) | JSON_VALUES,
     "requested_at": st.floats(allow_nan=True) | st.integers() | st.booleans() | JSON_VALUES,
     "by": NAMES | JSON_VALUES},
    optional={"bundle": st.text(max_size=40), "path": JSON_VALUES})


def check(data: bytes) -> None:
    try:
        found = requests.parse(data)
    except BadRequestError:
        return
    assert len(data) <= MAX_REQUEST
    assert found.action in ACTIONS
    assert "/" not in found.by
    assert found.by.isascii()
    assert found.by.isprintable()
    assert 0 <= found.requested_at < float("inf")


@given(st.binary(max_size=MAX_REQUEST + 64))
@example(b'{"action": "check", "requested_at": 1, "by": "a"}' + b" " * MAX_REQUEST)
@example(b'{"action": "check", "requested_at": 1e999, "by": "a"}')
@example(b'{"action": "check", "requested_at": 1, "by": "a", "action": "rollback"}')
def test_any_bytes(data: bytes) -> None:
    check(data)


@given(OBJECTS)
def test_any_object_of_the_right_shape(item: dict[str, Any]) -> None:
    check(json.dumps(item).encode())


@given(st.sampled_from(ACTIONS), st.floats(0, 4e9), st.from_regex(r"[a-z0-9][a-z0-9._-]{0,31}",
                                                                  fullmatch=True))
def test_what_the_console_writes_reads_back(action: str, at: float, by: str) -> None:
    request = Request(action, at, by)
    assert requests.parse(requests.encode(request)) == request
