"""appliance.core.run on real programs: the fixed environment, stdin closed, the working
directory, the time limit with and without the process group, bounded output."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from appliance.core.run import (
    NOT_STARTED,
    SAFE_PATH,
    TIMED_OUT,
    ToolResult,
    _Capture,
    run_tool,
    which,
)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (killed, its parent gone or not yet reaped) counts as gone
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


def wait_gone(pid: int, seconds: float = 5.0) -> bool:
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_environment_is_only_the_fixed_names_and_the_callers(monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:
    monkeypatch.setenv("SECRET_OF_THE_TEST", "x")
    program = "import json, os; print(json.dumps(sorted(os.environ)))"
    done = run_tool([sys.executable, "-c", program], 30, {"FOO": "bar"}, cwd=tmp_path)
    names = json.loads(done.stdout)
    # python itself may add LC_CTYPE when it coerces the C locale (PEP 538)
    assert set(names) - {"LC_CTYPE"} == {"PATH", "LANG", "LC_ALL", "FOO"}
    env_path = run_tool(["sh", "-c", "echo $PATH; pwd"], 30, cwd=tmp_path).stdout.split()
    assert env_path == [SAFE_PATH.encode(), str(tmp_path).encode()]


def test_stdin_is_closed_and_exit_codes_come_back() -> None:
    done = run_tool(["sh", "-c", "cat; echo err >&2; exit 7"], 30)
    assert (done.returncode, done.stdout, done.stderr) == (7, b"", b"err\n")
    assert done.started
    assert not done.timed_out
    assert done.seconds < 10


def test_a_program_that_cannot_start() -> None:
    done = run_tool(["/nonexistent/program"], 30)
    assert done.returncode == NOT_STARTED
    assert not done.started
    assert b"No such file" in done.stderr
    bad_env = run_tool(["true"], 30, {"A\x00B": "x"})
    assert bad_env.returncode == NOT_STARTED


def test_merged_output_keeps_the_order_written() -> None:
    done = run_tool(["sh", "-c", "echo one; echo two >&2; echo three"], 30, merge_stderr=True)
    assert done.stdout == b"one\ntwo\nthree\n"
    assert done.stderr == b""


def test_timeout_without_the_group_kills_the_program() -> None:
    started = time.monotonic()
    done = run_tool(["sleep", "30"], 0.5)
    assert done.returncode == TIMED_OUT
    assert done.timed_out
    assert time.monotonic() - started < 5


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    """A hook that forks a child which keeps the output pipe open and ignores nothing: the
    child dies with the group, and the call returns in time."""
    pidfile = tmp_path / "child.pid"
    script = f"sleep 60 & echo $! > {pidfile}; echo started; wait"
    started = time.monotonic()
    done = run_tool(["sh", "-c", script], 1.0, kill_group=True, grace=1.0)
    assert done.returncode == TIMED_OUT
    assert time.monotonic() - started < 6
    assert b"started" in done.stdout
    assert wait_gone(int(pidfile.read_text()))


def test_sigterm_ignored_means_sigkill_after_the_grace(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    script = f"trap '' TERM; echo $$ > {pidfile}; while :; do sleep 0.1; done"
    started = time.monotonic()
    done = run_tool(["sh", "-c", script], 0.5, kill_group=True, grace=1.0)
    took = time.monotonic() - started
    assert done.returncode == TIMED_OUT
    assert 1.4 <= took < 6                      # the limit, then the grace, then SIGKILL
    assert wait_gone(int(pidfile.read_text()))


def test_leftovers_of_an_exited_program_are_ended(tmp_path: Path) -> None:
    """The program exits 0 but leaves a background child holding stdout: the result comes
    back after LINGER, not at the time limit, and the child is ended."""
    pidfile = tmp_path / "child.pid"
    script = f"sleep 60 & echo $! > {pidfile}; echo bye"
    started = time.monotonic()
    done = run_tool(["sh", "-c", script], 30, kill_group=True, grace=1.0)
    assert (done.returncode, done.stdout) == (0, b"bye\n")
    assert time.monotonic() - started < 5
    assert wait_gone(int(pidfile.read_text()))


def test_leftovers_not_holding_the_output_are_ended_too(tmp_path: Path) -> None:
    """`nohup daemon >/dev/null &`: the pipe closes at once, the child stays in the group."""
    pidfile = tmp_path / "child.pid"
    script = f"sleep 60 >/dev/null 2>&1 & echo $! > {pidfile}; echo bye"
    done = run_tool(["sh", "-c", script], 30, kill_group=True, grace=1.0)
    assert (done.returncode, done.stdout) == (0, b"bye\n")
    assert done.seconds < 3
    assert wait_gone(int(pidfile.read_text()))


def test_a_program_that_closes_its_output_but_runs_on_is_timed_out() -> None:
    for group in (False, True):
        done = run_tool(["sh", "-c", "exec >&- 2>&-; sleep 30"], 0.5, kill_group=group,
                        grace=1.0)
        assert done.returncode == TIMED_OUT
        assert done.seconds < 5


def test_without_the_group_an_exited_program_with_a_lingering_child_returns(
        tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    done = run_tool(["sh", "-c", f"sleep 3 & echo $! > {pidfile}; exit 4"], 30)
    assert done.returncode == 4
    assert done.seconds < 2.5
    os.kill(int(pidfile.read_text()), signal.SIGKILL)


def test_huge_output_is_bounded() -> None:
    """Half a gigabyte of output costs the kept head and tail only."""
    script = "head -c 500000000 /dev/zero; echo; echo THE-END"
    done = run_tool(["sh", "-c", script], 120, max_output=1000, tail_output=100,
                    merge_stderr=True)
    assert done.returncode == 0
    assert done.stdout.startswith(b"\x00" * 1000 + b"\n[... ")
    assert done.stdout.endswith(b"THE-END\n")
    assert len(done.stdout) < 1200
    assert done.dropped == 500_000_000 + len(b"\nTHE-END\n") - 1000 - 100


def test_head_only_capture_drops_the_rest() -> None:
    done = run_tool(["sh", "-c", "seq 1 100000"], 60, max_output=10)
    assert done.stdout.startswith(b"1\n2\n3\n4\n5\n")
    assert b"bytes of output left out" in done.stdout
    assert done.dropped > 0


@pytest.mark.parametrize(("chunks", "kept"), [
    ([b"abc"], b"abc"),
    ([b"ab", b"cd"], b"abcd"),
    ([b"abcdefgh"], b"abcd\n[... 2 bytes of output left out ...]\ngh"),
    ([b"a", b"b", b"c", b"d", b"e", b"f", b"g", b"h"],
     b"abcd\n[... 2 bytes of output left out ...]\ngh"),
])
def test_capture_keeps_head_and_tail(chunks: list[bytes], kept: bytes) -> None:
    capture = _Capture(4, 2)
    for chunk in chunks:
        capture.add(chunk)
    assert capture.value() == kept


def test_which_looks_on_the_safe_path_only() -> None:
    assert which("sh") in {"/bin/sh", "/usr/bin/sh"}
    assert which("no-such-program-here") is None


def test_result_type() -> None:
    result = ToolResult(("x",), 0, b"", b"")
    assert result.started
    assert not result.timed_out
    assert result.dropped == 0
