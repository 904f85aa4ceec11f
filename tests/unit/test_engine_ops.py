"""The engine's control ops (appliance/control/engine_ops.py): per-setting digests that never
carry a value, the fingerprint, which saved settings an engine does not run with, the ops
themselves, and their routing beside the queue's ops over a real UNIX socket."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.control import client
from appliance.control.engine_ops import (
    ENGINE_OPS,
    EngineOps,
    fingerprint,
    pending,
    settings_digests,
)
from appliance.control.messages import ControlError, Request, encode_request, parse_request
from appliance.control.queue_ops import QueueOps
from appliance.control.server import ControlServer
from appliance.outbound.spool import Spool
from appliance.settings import SCHEMA, Settings, load_settings

SECRET = "hunter2-relay-password"


def base() -> Settings:
    return load_settings(None, environ={})


def changed(settings: Settings, **values: object) -> Settings:
    return replace(settings, values={**settings.values,
                                     **{k.replace("__", "."): v for k, v in values.items()}})


def test_digests_cover_every_editable_setting_and_never_a_value() -> None:
    # (no editable setting is a secret today; any value must stay out of the answer)
    secret = next(s for s in SCHEMA if s.editable and (s.secret or s.kind is str))
    settings = changed(base(), **{secret.name.replace(".", "__"): SECRET})
    digests = settings_digests(settings)
    assert set(digests) == {s.name for s in SCHEMA if s.editable}
    assert all(len(d) == 16 and int(d, 16) >= 0 for d in digests.values())
    assert SECRET not in repr(digests)
    assert SECRET not in fingerprint(digests)
    assert digests[secret.name] != settings_digests(base())[secret.name]


def test_pending_names_what_differs_except_skipped_sections() -> None:
    engine = settings_digests(base())
    now = changed(base(), server__hostname="mx.new.example", console__idle_timeout=1200,
                  limits__max_recipients=7)
    assert pending(engine, base()) == []
    assert pending(engine, now) == ["console.idle_timeout", "limits.max_recipients",
                                    "server.hostname"]
    assert pending(engine, now, ("console",)) == ["limits.max_recipients", "server.hostname"]
    older = {k: v for k, v in engine.items() if k != "server.hostname"}   # an older engine
    assert pending(older, now, ("console",)) == ["limits.max_recipients"]


@given(st.integers(min_value=1, max_value=1000))
def test_fingerprint_changes_with_any_value(recipients: int) -> None:
    settings = changed(base(), limits__max_recipients=recipients)
    same = fingerprint(settings_digests(settings)) == fingerprint(settings_digests(base()))
    assert same == (recipients == base().get_int("limits.max_recipients"))


def test_restart_is_requested_once_and_status_says_so() -> None:
    asked: list[int] = []
    ops = EngineOps(base(), lambda: asked.append(1))
    first = ops.call("engine.status", {})
    assert first["restarting"] is False
    assert first["fingerprint"] == fingerprint(
        settings_digests(base()))
    assert ops.call("engine.restart", {})["restarting"] is True
    assert ops.call("engine.restart", {})["instance"] == first["instance"]
    assert asked == [1]
    assert ops.call("engine.status", {})["restarting"] is True
    assert EngineOps(base(), lambda: None).instance != first["instance"]
    with pytest.raises(ControlError):
        ops.call("queue.list", {})


@pytest.mark.parametrize("op", ENGINE_OPS)
def test_engine_ops_parse_without_arguments(op: str) -> None:
    assert parse_request(encode_request(Request(op))) == Request(op)
    with pytest.raises(ControlError):
        parse_request(encode_request(Request(op, {"extra": "x"})))


def test_added_ops_answer_beside_the_queue_ops(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    spool = Spool(tmp_path / "queue")
    asked = threading.Event()
    engine_ops = EngineOps(base(), asked.set)
    ready, done = threading.Event(), threading.Event()

    async def serve(with_engine: bool) -> None:
        server = ControlServer(QueueOps(spool), ThreadPoolExecutor(2))
        if with_engine:
            server.add_ops(ENGINE_OPS, engine_ops)
        await server.start(path)
        ready.set()
        while not done.is_set():
            await asyncio.sleep(0.02)
        await server.close()

    for with_engine in (False, True):
        ready.clear()
        done.clear()
        thread = threading.Thread(target=asyncio.run, args=(serve(with_engine),))
        thread.start()
        try:
            assert ready.wait(5)
            assert client.call(path, "queue.list") == []
            if not with_engine:     # a server without them (the CLI's spool fallback)
                with pytest.raises(ControlError, match="unknown op"):
                    client.call(path, "engine.status")
                continue
            assert client.call(path, "engine.status")["instance"] == engine_ops.instance
            assert client.call(path, "engine.restart")["restarting"] is True
            assert asked.is_set()
        finally:
            done.set()
            thread.join()
    spool.close()


class SlowOps:
    """An op that is still running when the server is asked to close."""

    def __init__(self) -> None:
        self.started = threading.Event()

    def call(self, op: str, args: dict[str, str]) -> str:
        self.started.set()
        time.sleep(0.3)
        return "answered"


def test_close_lets_an_answer_in_progress_reach_its_client(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    spool = Spool(tmp_path / "queue")
    slow = SlowOps()
    ready, closed = threading.Event(), threading.Event()

    async def serve() -> None:
        server = ControlServer(QueueOps(spool), ThreadPoolExecutor(2))
        server.add_ops(["engine.restart"], slow)
        await server.start(path)
        ready.set()
        while not slow.started.is_set():
            await asyncio.sleep(0.005)
        await server.close()        # while the op still runs, as a restart does
        closed.set()

    thread = threading.Thread(target=asyncio.run, args=(serve(),))
    thread.start()
    try:
        assert ready.wait(5)
        assert client.call(path, "engine.restart") == "answered"
        assert closed.wait(5)
    finally:
        slow.started.set()
        thread.join()
    spool.close()
