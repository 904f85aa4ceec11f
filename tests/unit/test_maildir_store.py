"""MaildirStore.deliver: one transaction over several Maildirs, all or nothing."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from appliance.core import fsio
from appliance.core.errors import DeliveryError
from appliance.storage.interfaces import Mailbox
from appliance.storage.maildir.store import (
    STALE_TMP_SECONDS,
    MaildirStore,
    create_maildir,
    remove_stale_temps,
)

MESSAGE = b"Subject: hi\n\nhello\n"


def mailboxes(count: int) -> list[Mailbox]:
    return [Mailbox(i, f"user{i}@example.test", Path("mail/example.test") / f"user{i}")
            for i in range(1, count + 1)]


def files(directory: Path) -> list[Path]:
    return sorted(directory.iterdir()) if directory.exists() else []


def test_delivery_links_one_file_into_each_new(tmp_path: Path) -> None:
    boxes = mailboxes(3)
    MaildirStore(tmp_path).deliver(MESSAGE, boxes)
    inodes = set()
    for box in boxes:
        root = tmp_path / box.maildir
        assert files(root / "tmp") == []
        assert files(root / "cur") == []
        [delivered] = files(root / "new")
        assert delivered.read_bytes() == MESSAGE
        crlf = len(MESSAGE.replace(b"\n", b"\r\n"))
        assert delivered.name.endswith(f",S={len(MESSAGE)},W={crlf}")
        assert delivered.stat().st_nlink == 3
        inodes.add(delivered.stat().st_ino)
    assert len(inodes) == 1


def test_each_delivery_gets_a_new_name(tmp_path: Path) -> None:
    store = MaildirStore(tmp_path)
    [box] = mailboxes(1)
    store.deliver(b"one", [box])
    store.deliver(b"two", [box])
    contents = sorted(p.read_bytes() for p in files(tmp_path / box.maildir / "new"))
    assert contents == [b"one", b"two"]


def test_delivery_copies_when_links_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_link(src: object, dst: object) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    boxes = mailboxes(2)
    MaildirStore(tmp_path).deliver(MESSAGE, boxes)
    for box in boxes:
        [delivered] = files(tmp_path / box.maildir / "new")
        assert delivered.read_bytes() == MESSAGE
        assert delivered.stat().st_nlink == 1


def assert_nothing_delivered(tmp_path: Path, boxes: list[Mailbox]) -> None:
    for box in boxes:
        for sub in ("new", "tmp", "cur"):
            assert files(tmp_path / box.maildir / sub) == [], (box, sub)


def test_rename_failure_half_way_leaves_nothing(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    real_rename = os.rename
    calls: list[object] = []

    def second_fails(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        calls.append(src)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", second_fails)
    boxes = mailboxes(3)
    with pytest.raises(DeliveryError) as caught:
        MaildirStore(tmp_path).deliver(MESSAGE, boxes)
    assert caught.value.temporary
    assert caught.value.reply.startswith("451 4.")
    assert "No space" in caught.value.reason
    assert len(calls) == 2
    assert_nothing_delivered(tmp_path, boxes)


def test_second_temp_failure_leaves_nothing(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = fsio.write_new_file
    boxes = mailboxes(3)
    blocked = tmp_path / boxes[1].maildir / "tmp"

    def no_link(src: object, dst: object) -> None:
        raise OSError(31, "Too many links")

    def refuse_blocked(path: Path, data: bytes, mode: int = 0o600) -> None:
        if path.parent == blocked:
            raise PermissionError(13, "Permission denied")
        real_write(path, data, mode)

    monkeypatch.setattr(os, "link", no_link)
    monkeypatch.setattr("appliance.storage.maildir.store.write_new_file", refuse_blocked)
    with pytest.raises(DeliveryError, match="Permission denied"):
        MaildirStore(tmp_path).deliver(MESSAGE, boxes)
    assert_nothing_delivered(tmp_path, boxes)


def test_directory_sync_failure_removes_published_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_sync(directory: Path) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(fsio.DIRECTORY_SYNC, "sync", broken_sync)
    boxes = mailboxes(2)
    with pytest.raises(DeliveryError):
        MaildirStore(tmp_path).deliver(MESSAGE, boxes)
    assert_nothing_delivered(tmp_path, boxes)


def test_delivery_syncs_every_new_directory(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[Path] = []
    monkeypatch.setattr(fsio.DIRECTORY_SYNC, "sync", synced.append)
    boxes = mailboxes(2)
    MaildirStore(tmp_path).deliver(MESSAGE, boxes)
    assert synced == [tmp_path / b.maildir / "new" for b in boxes]


def test_create_maildir_is_private_and_idempotent(tmp_path: Path) -> None:
    root = tmp_path / "box"
    create_maildir(root)
    create_maildir(root)
    for sub in ("cur", "new", "tmp"):
        assert (root / sub).is_dir()
        assert (root / sub).stat().st_mode & 0o077 == 0


def test_remove_stale_temps(tmp_path: Path) -> None:
    root = tmp_path / "box"
    create_maildir(root)
    now = time.time()
    old = root / "tmp" / "old"
    fresh = root / "tmp" / "fresh"
    kept_new = root / "new" / "old-but-delivered"
    for path in (old, fresh, kept_new):
        path.write_bytes(b"x")
    stale = now - STALE_TMP_SECONDS - 60
    os.utime(old, (stale, stale))
    os.utime(kept_new, (stale, stale))
    (root / "tmp" / "subdir").mkdir()
    os.utime(root / "tmp" / "subdir", (stale, stale))
    assert remove_stale_temps(root, now=now) == 1
    assert sorted(p.name for p in files(root / "tmp")) == ["fresh", "subdir"]
    assert kept_new.exists()
    assert remove_stale_temps(root, now=now + STALE_TMP_SECONDS + 120) == 1
    assert [p.name for p in files(root / "tmp")] == ["subdir"]
