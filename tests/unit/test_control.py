"""Control protocol messages, queue operations, and the socket server/client pair."""

from __future__ import annotations

import asyncio
import contextlib
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.cli.queue_cmds import render
from appliance.control import client
from appliance.control.messages import (
    ControlError,
    Request,
    Response,
    encode_request,
    encode_response,
    parse_request,
    parse_response,
)
from appliance.control.queue_ops import QueueOps
from appliance.control.server import ControlServer
from appliance.outbound.spool import Spool
from appliance.outbound.types import OutboundRecipient
from appliance.storage.interfaces import NewMessage, RecipientState, RecipientUpdate


@pytest.mark.parametrize("request_", [
    Request("ping"), Request("queue.list"), Request("queue.show", {"queue_id": "Q1"}),
    Request("queue.delete", {"queue_id": "Q1"}), Request("queue.flush")])
def test_request_round_trip(request_: Request) -> None:
    line = encode_request(request_)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert parse_request(line) == request_


@pytest.mark.parametrize(("line", "error"), [
    (b"not json\n", "not a JSON line"), (b"[1]\n", "JSON object"),
    (b'{"op": "queue.nuke"}\n', "unknown op"), (b'{"op": "queue.show"}\n', "takes arguments"),
    (b'{"op": "queue.list", "args": {"x": "y"}}\n', "takes arguments"),
    (b'{"op": "queue.show", "args": {"queue_id": 5}}\n', "non-empty strings"),
    (b'{"op": 1}\n', "unknown op")])
def test_bad_requests(line: bytes, error: str) -> None:
    with pytest.raises(ControlError, match=error):
        parse_request(line)


def test_response_round_trip() -> None:
    assert parse_response(encode_response(Response(True, [{"a": 1}]))) == Response(
        True, [{"a": 1}])
    assert parse_response(encode_response(Response(False, error="no"))) == Response(
        False, error="no")


@given(st.binary(max_size=300))
def test_parse_request_raises_only_control_error(line: bytes) -> None:
    with contextlib.suppress(ControlError):
        parse_request(line)


def filled_spool(tmp_path: Path) -> Spool:
    spool = Spool(tmp_path / "queue")
    for queue_id in ("QA", "QB"):
        spool.enqueue(NewMessage(queue_id, "s@example.test",
                                 (OutboundRecipient("x@remote.test"),)), b"Subject: x\r\n\r\n")
    return spool


def test_queue_ops(tmp_path: Path) -> None:
    woken: list[int] = []
    ops = QueueOps(filled_spool(tmp_path), lambda: woken.append(1),
                   lambda: frozenset({"QA"}))
    listed = ops.call("queue.list", {})
    assert [(m["queue_id"], m["active"], m["pending"]) for m in listed] == [
        ("QA", True, 1), ("QB", False, 1)]
    shown = ops.call("queue.show", {"queue_id": "QB"})
    assert shown["recipient_list"][0]["address"] == "x@remote.test"
    assert ops.call("queue.retry", {"queue_id": "QB"}) == {"queue_id": "QB", "recipients": 1}
    assert ops.call("queue.flush", {}) == {"recipients": 2}
    assert len(woken) == 2
    assert ops.call("queue.delete", {"queue_id": "QB"}) == {"queue_id": "QB", "deleted": True}
    for op in ("queue.show", "queue.retry", "queue.delete"):
        with pytest.raises(ControlError, match="no queued message"):
            ops.call(op, {"queue_id": "QB"})
    with pytest.raises(ControlError, match="not a queue id"):
        ops.call("queue.show", {"queue_id": "../x"})


def test_queue_list_says_why_each_recipient_waits(tmp_path: Path) -> None:
    """Like `mailq`: the last reply of every deferred recipient under its message."""
    spool = filled_spool(tmp_path)
    reply = "451 4.4.1 Cannot connect to mx.remote.test[192.0.2.1]"
    assert spool.update("QB", [RecipientUpdate("x@remote.test", RecipientState.QUEUED,
                                               0.0, reply, "mx.remote.test[192.0.2.1]")])
    listed = QueueOps(spool).call("queue.list", {})
    assert [m["deferred"] for m in listed] == [
        [], [{"address": "x@remote.test", "last_reply": reply}]]
    lines = render("queue.list", listed).splitlines()
    assert lines[2].startswith("QB ")
    assert lines[3:5] == [f"    ({reply})", "      <x@remote.test>"]


def test_server_and_client_over_a_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    ops = QueueOps(filled_spool(tmp_path))
    ready = threading.Event()
    done = threading.Event()

    async def serve() -> None:
        server = ControlServer(ops, ThreadPoolExecutor(2))
        await server.start(path)
        ready.set()
        while not done.is_set():
            await asyncio.sleep(0.02)
        await server.close()

    thread = threading.Thread(target=asyncio.run, args=(serve(),))
    thread.start()
    try:
        assert ready.wait(5)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert client.call(path, "ping") == "pong"
        assert [m["queue_id"] for m in client.call(path, "queue.list")] == ["QA", "QB"]
        with pytest.raises(ControlError, match="no queued message"):
            client.call(path, "queue.show", queue_id="QZ")
    finally:
        done.set()
        thread.join()
    assert not path.exists()
    with pytest.raises(client.ControlUnavailableError):
        client.call(path, "ping")
