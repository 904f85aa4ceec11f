"""The engine side of the control socket: a UNIX stream socket in data_dir, mode 0600.

Only the service user (and root) can connect, so the socket needs no login. Each line is
one request; the ops run in a thread (they touch SQLite). The queue's ops answer unless
another handler was added for an op (`add_ops`: the engine's own, engine_ops.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterable
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, Protocol

from appliance.control.messages import (
    MAX_LINE,
    ControlError,
    Response,
    encode_response,
    parse_request,
)
from appliance.control.queue_ops import QueueOps
from appliance.core import log

SOCKET_NAME = "control.sock"
CLOSE_GRACE = 5.0       # seconds `close` waits for answers in progress (engine.restart's own)


class Ops(Protocol):
    def call(self, op: str, args: dict[str, str]) -> Any: ...


class ControlServer:
    """Answers control requests with `QueueOps`, and others with handlers added later."""

    def __init__(self, ops: QueueOps, executor: Executor) -> None:
        self._ops: Ops = ops
        self._more: dict[str, Ops] = {}
        self._executor = executor
        self._server: asyncio.AbstractServer | None = None
        self._path: Path | None = None
        self._answering = 0

    async def start(self, path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)     # left by a killed engine
        old_umask = os.umask(0o177)     # never world- or group-accessible, even for a moment
        try:
            self._server = await asyncio.start_unix_server(self._serve, path, limit=MAX_LINE)
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)
        self._path = path
        log.event("control.started", socket=str(path))

    def add_ops(self, names: Iterable[str], ops: Ops) -> None:
        """Answer the ops `names` (known to `messages.OPS`) with `ops` from now on."""
        self._more.update(dict.fromkeys(names, ops))

    async def close(self) -> None:
        """Stop listening, then let requests already read get their answer (bounded): the
        client that asked for a restart must hear that it is under way."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        deadline = asyncio.get_running_loop().time() + CLOSE_GRACE
        while self._answering and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        if self._path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                self._answering += 1
                try:
                    writer.write(encode_response(await self._answer(line)))
                    await writer.drain()
                finally:
                    self._answering -= 1
        except (ConnectionError, ValueError):     # ValueError: a line over the limit
            pass
        finally:
            writer.close()

    async def _answer(self, line: bytes) -> Response:
        try:
            request = parse_request(line)
            loop = asyncio.get_running_loop()
            ops = self._more.get(request.op, self._ops)
            result = await loop.run_in_executor(self._executor, ops.call,
                                                request.op, request.args)
        except ControlError as exc:
            return Response(False, error=str(exc))
        except Exception as exc:
            log.error("control.failed", exc)
            return Response(False, error="internal error (see the engine log)")
        return Response(True, result)
