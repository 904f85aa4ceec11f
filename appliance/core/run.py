"""The engine's one way to start a program (STYLE.md practice 14): an argument list, never a
shell string; a fixed PATH and an environment the caller spells out; stdin closed; a time
limit (optionally killing the program's whole process group); bounded output kept.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# A fixed search path: nothing from the caller's environment decides which binary runs.
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MAX_OUTPUT = 4 * 1024 * 1024    # bytes kept of each stream (smartctl -x JSON is ~60 KB)
KILL_GRACE = 5.0                # seconds between SIGTERM and SIGKILL of a timed-out group
LINGER = 1.0                    # seconds a group's leftovers may hold the output open
_CHUNK = 65536
_POLL = 0.25                    # seconds between checks whether the leader has exited

NOT_STARTED = -1                # ToolResult.returncode: the program could not be started
TIMED_OUT = -2                  # ToolResult.returncode: killed after the time limit


@dataclass(frozen=True)
class ToolResult:
    """What a finished (or timed-out, or unstartable) program left behind."""

    argv: tuple[str, ...]
    returncode: int          # -1: could not start; -2: killed after the timeout
    stdout: bytes            # with merge_stderr: both streams, interleaved
    stderr: bytes            # with merge_stderr: b"" (or why it could not start)
    seconds: float = 0.0
    dropped: int = 0         # output bytes beyond the kept head and tail, not kept

    @property
    def started(self) -> bool:
        return self.returncode != NOT_STARTED

    @property
    def timed_out(self) -> bool:
        return self.returncode == TIMED_OUT


class _Capture:
    """One output stream kept within bounds: the first `head` bytes and the last `tail`
    bytes; everything between is counted and dropped, so a program printing gigabytes
    costs no more memory than the limits."""

    def __init__(self, head: int, tail: int) -> None:
        self.head, self.tail = head, tail
        self.first = bytearray()
        self.last = bytearray()
        self.dropped = 0

    def add(self, chunk: bytes) -> None:
        room = self.head - len(self.first)
        if room > 0:
            self.first += chunk[:room]
            chunk = chunk[room:]
        if not chunk:
            return
        self.last += chunk
        excess = len(self.last) - self.tail
        if excess > 0:
            del self.last[:excess]
            self.dropped += excess

    def value(self) -> bytes:
        if not self.dropped:
            return bytes(self.first + self.last)
        marker = f"\n[... {self.dropped} bytes of output left out ...]\n".encode()
        return bytes(self.first) + marker + bytes(self.last)


def run_tool(argv: Sequence[str], timeout: float,
             extra_env: Mapping[str, str] | None = None, *,
             cwd: Path | None = None, kill_group: bool = False,
             merge_stderr: bool = False, max_output: int = MAX_OUTPUT,
             tail_output: int = 0, grace: float = KILL_GRACE) -> ToolResult:
    """Run `argv` (no shell) with PATH fixed, stdin closed and a time limit; never raises
    for the program's own failure.

    Args:
        argv: the program (looked up on SAFE_PATH unless it contains a "/") and arguments.
        timeout: seconds until the program is killed (returncode TIMED_OUT).
        extra_env: added to the environment, which is otherwise only PATH, LANG=C and
            LC_ALL=C (stable output); nothing is inherited from this process.
        cwd: the working directory (default: this process's).
        kill_group: start the program in a new session and, on timeout, send SIGTERM to its
            whole process group, then SIGKILL after `grace` seconds; when the program exits,
            what it left running in its group is ended the same way after LINGER seconds.
        merge_stderr: one stream, stderr into stdout, in the order written.
        max_output, tail_output: bytes kept of each stream's beginning and end.
    Returns:
        The ToolResult; returncode NOT_STARTED with the reason in stderr when the program
        could not be started.
    """
    env = {"PATH": SAFE_PATH, "LANG": "C", "LC_ALL": "C", **(extra_env or {})}
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE, env=env,
            cwd=cwd, close_fds=True, start_new_session=kill_group)
    except (OSError, ValueError) as exc:      # ValueError: NUL or "=" in the environment
        return ToolResult(tuple(argv), NOT_STARTED, b"", str(exc).encode())
    captures = _Reader(proc, max_output, tail_output, kill_group)
    returncode = captures.wait(started + timeout, grace)
    out, err = captures.results()
    return ToolResult(tuple(argv), returncode, out.value(), err.value(),
                      time.monotonic() - started, out.dropped + err.dropped)


class _Reader:
    """Drains a running program's pipes into captures until it is done or out of time.

    With a process group, the leader is not reaped until the group has been dealt with:
    its zombie keeps the group id from being reused, so the signals reach only its group.
    """

    def __init__(self, proc: subprocess.Popen[bytes], head: int, tail: int,
                 kill_group: bool) -> None:
        self.proc, self.kill_group = proc, kill_group
        self.selector = selectors.DefaultSelector()
        self.captures: dict[int, _Capture] = {}
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                self.selector.register(stream, selectors.EVENT_READ)
                self.captures[stream.fileno()] = _Capture(head, tail)
        self.order = list(self.captures)

    def wait(self, deadline: float, grace: float) -> int:
        """Read until end of output and exit, or until `deadline`; the exit status, or
        TIMED_OUT when the program had to be killed."""
        exited_at: float | None = None
        while self.selector.get_map():
            now = time.monotonic()
            if now >= deadline:
                return self._kill(grace)
            if exited_at is not None and now >= exited_at + LINGER:
                break                       # leftovers of an exited program hold the pipe
            self._read(min(deadline - now, _POLL))
            if exited_at is None and self._exited():
                exited_at = time.monotonic()
        while not self._exited():           # closed its output, yet runs on
            if time.monotonic() >= deadline:
                return self._kill(grace)
            time.sleep(0.05)
        if self.kill_group and _group_members(self.proc.pid):
            self._end_group(grace)          # what it left running
        return self.proc.wait()

    def _exited(self) -> bool:
        """Whether the program has exited; with a group, without reaping it."""
        if not self.kill_group:
            return self.proc.poll() is not None
        flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
        return os.waitid(os.P_PID, self.proc.pid, flags) is not None

    def _read(self, timeout: float) -> None:
        for key, _ in self.selector.select(timeout):
            chunk = os.read(key.fd, _CHUNK)
            if chunk:
                self.captures[key.fd].add(chunk)
            else:
                self.selector.unregister(key.fileobj)

    def _kill(self, grace: float) -> int:
        if self.kill_group:
            self._end_group(grace)
        else:
            self.proc.kill()
        self.proc.wait()
        self._drain(time.monotonic() + 1.0)
        return TIMED_OUT

    def _end_group(self, grace: float) -> None:
        """SIGTERM to the process group, then SIGKILL to what is left after `grace`."""
        pgid = self.proc.pid          # start_new_session: the leader's pid is the group's
        _signal_group(pgid, signal.SIGTERM)
        until = time.monotonic() + grace
        while time.monotonic() < until and _group_members(pgid):
            self._read(min(_POLL, max(until - time.monotonic(), 0.0)))
        _signal_group(pgid, signal.SIGKILL)

    def _drain(self, until: float) -> None:
        """Read what a killed program left in the pipes (held open by nobody now, unless a
        process escaped the group)."""
        while self.selector.get_map() and time.monotonic() < until:
            self._read(max(until - time.monotonic(), 0.0))

    def results(self) -> tuple[_Capture, _Capture]:
        for key in list(self.selector.get_map().values()):
            self.selector.unregister(key.fileobj)
        self.selector.close()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        out = self.captures[self.order[0]]
        err = self.captures[self.order[1]] if len(self.order) > 1 else _Capture(0, 0)
        return out, err


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):      # the whole group is gone already
        os.killpg(pgid, signum)


def _group_members(pgid: int) -> bool:
    """Whether a live (not zombie) process is in process group `pgid` (from /proc: a
    zombie leader still counts for kill(2), so killpg(pgid, 0) cannot tell)."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat_file:
                fields = stat_file.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue                    # gone meanwhile
        # proc(5): after "pid (comm)": state, ppid, pgrp
        if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


def which(name: str) -> str | None:
    """The program `name` on SAFE_PATH, or None."""
    for folder in SAFE_PATH.split(":"):
        candidate = os.path.join(folder, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None
