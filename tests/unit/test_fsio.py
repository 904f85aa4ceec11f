"""fsio: atomic replacement, exclusive creation, safe names and directory group commit."""

from __future__ import annotations

import os
import re
import stat
import threading
import time
from pathlib import Path

import pytest

from appliance.core import fsio
from appliance.core.fsio import DirectorySync, atomic_write, safe_component, write_new_file


def test_atomic_write_creates_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    atomic_write(target, b"first")
    assert target.read_bytes() == b"first"
    atomic_write(target, b"second, longer than the first")
    assert target.read_bytes() == b"second, longer than the first"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_atomic_write_syncs_the_directory(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[Path] = []
    monkeypatch.setattr(fsio, "fsync_dir", synced.append)
    atomic_write(tmp_path / "a", b"x")
    assert synced == [tmp_path]


def test_atomic_write_failure_keeps_old_content_and_no_temp(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "state"
    atomic_write(target, b"old")

    def refuse(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="No space"):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["state"]


def test_write_new_file_is_exclusive(tmp_path: Path) -> None:
    target = tmp_path / "msg"
    write_new_file(target, b"one", mode=0o640)
    assert stat.S_IMODE(target.stat().st_mode) & 0o600 == 0o600
    with pytest.raises(FileExistsError):
        write_new_file(target, b"two")
    assert target.read_bytes() == b"one"


def test_write_new_file_removes_partial_file_on_failure(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="Input/output"):
        write_new_file(tmp_path / "msg", b"data")
    assert list(tmp_path.iterdir()) == []


def test_unique_names_differ_and_are_safe() -> None:
    names = {fsio.unique_name() for _ in range(1000)}
    assert len(names) == 1000
    assert all("/" not in n and ":" not in n for n in names)


def test_unique_names_sort_as_their_times_do(monkeypatch: pytest.MonkeyPatch) -> None:
    """Six-digit microseconds: UIDs of messages in one mtime tick follow name order."""
    names = []
    for _ in range(200):
        names.append(fsio.unique_name())
    assert all(re.fullmatch(r"\d+\.M\d{6}P\d+Q\d+\..+", name) for name in names)
    stamps = [name.split("P", 1)[0] for name in names]
    assert stamps == sorted(stamps)
    # Across M99999 -> M100000 (the real calls above rarely land on a short value).
    ticks = iter([1_700_000_000.0999, 1_700_000_000.1001])
    monkeypatch.setattr(time, "time", lambda: next(ticks))
    early, late = fsio.unique_name(), fsio.unique_name()
    assert ".M09" in early
    assert ".M10" in late
    assert early.split("P", 1)[0] < late.split("P", 1)[0]


def test_unique_names_carry_the_pid_of_a_forked_child() -> None:
    """The pid in the name is cached per process: a worker forked later has its own."""
    parent = fsio.unique_name()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write_end, fsio.unique_name().encode())
        os._exit(0)
    os.close(write_end)
    child = os.read(read_end, 1000).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    assert f"P{os.getpid()}Q" in parent
    assert f"P{pid}Q" in child


@pytest.mark.parametrize(("name", "expected"), [
    ("alice", "alice"),
    ("a.b-c_d+e=f@g,h~i", "a.b-c_d+e=f@g,h~i"),
    (".hidden", "%2Ehidden"),
    ("..", "%2E."),
    ("a/b", "a%2Fb"),
    ("50%", "50%25"),
    ("jörg", "j%C3%B6rg"),
    ("a\x00b", "a%00b"),
    ("\udcff", "%ED%B3%BF"),            # a lone surrogate (surrogateescape input)
])
def test_safe_component_examples(name: str, expected: str) -> None:
    assert safe_component(name) == expected


def test_safe_component_empty_and_nul_differ() -> None:
    assert safe_component("") not in ("", safe_component("\x00"))


def test_directory_sync_coalesces_concurrent_callers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every caller returns after an fsync that began after it called; fsyncs are shared."""
    lock = threading.Lock()
    clock = iter(range(1_000_000))
    finished_starts: list[int] = []          # start ticks of completed fsyncs

    def slow_fsync(path: Path) -> None:
        assert path == tmp_path
        with lock:
            started = next(clock)
        time.sleep(0.01)
        with lock:
            finished_starts.append(started)

    monkeypatch.setattr(fsio, "fsync_dir", slow_fsync)
    group = DirectorySync()
    callers = 40
    violations: list[int] = []
    barrier = threading.Barrier(callers)

    def caller() -> None:
        barrier.wait()
        with lock:
            called = next(clock)
        group.sync(tmp_path)
        with lock:
            if not any(start > called for start in finished_starts):
                violations.append(called)

    threads = [threading.Thread(target=caller) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not any(t.is_alive() for t in threads)
    assert violations == []
    assert 1 <= len(finished_starts) < callers


def test_directory_sync_error_propagates_and_next_caller_retries(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []

    def flaky(path: Path) -> None:
        calls.append(path)
        if len(calls) == 1:
            raise OSError(5, "Input/output error")

    monkeypatch.setattr(fsio, "fsync_dir", flaky)
    group = DirectorySync()
    with pytest.raises(OSError):
        group.sync(tmp_path)
    group.sync(tmp_path)
    assert calls == [tmp_path, tmp_path]


def test_directory_sync_keeps_directories_apart(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    monkeypatch.setattr(fsio, "fsync_dir", calls.append)
    group = DirectorySync()
    group.sync(tmp_path / "a")
    group.sync(tmp_path / "b")
    group.sync(tmp_path / "a")
    assert calls == [tmp_path / "a", tmp_path / "b", tmp_path / "a"]


def test_fsync_dir_on_a_real_directory(tmp_path: Path) -> None:
    fsio.fsync_dir(tmp_path)
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(NotADirectoryError):
        fsio.fsync_dir(tmp_path / "f")


def test_read_whole_reads_small_empty_and_large_files(tmp_path: Path) -> None:
    from appliance.core.fsio import read_whole
    for size in (0, 1, 70_000, 1_000_003):
        path = tmp_path / f"f{size}"
        data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
        path.write_bytes(data)
        assert read_whole(str(path)) == data
        for hint in (0, size - 1, size, size + 5):     # a wrong size only costs reads
            assert read_whole(str(path), max(hint, 0)) == data


def test_the_mode_asked_for_is_the_mode_written_whatever_the_umask(tmp_path: Path) -> None:
    """A 0644 file (root's authorized_keys, the update state the console reads) must not
    come out 0600 from a unit with UMask=0077."""
    old = os.umask(0o077)
    try:
        atomic_write(tmp_path / "public", b"x", 0o644)
        write_new_file(tmp_path / "new", b"y", 0o640)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "public").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o640
