"""The release repository on disk (appliance/update/repository.py): versions, expiries,
key files, consistent-snapshot names, rotation; each result checked with python-tuf's own
verification of the signatures."""

from __future__ import annotations

import datetime
import hashlib
import stat
from pathlib import Path

import pytest
from tuf.api._payload import Root, Snapshot, Targets, Timestamp
from tuf.api.metadata import Metadata

from appliance.update.repository import (
    Expiries,
    ReleaseRepository,
    RepositoryError,
    target_path,
)

NOW = datetime.datetime(2026, 11, 1, 12, 0, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime.datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def repo(tmp_path: Path, clock: Clock) -> ReleaseRepository:
    repository = ReleaseRepository(tmp_path / "repo", root_keys=tmp_path / "offline",
                                   clock=clock)
    repository.create()
    return repository


def _bundle(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "in.bundle"
    path.write_bytes(content)
    return path


def _verify(repo: ReleaseRepository, role: str) -> None:
    """The role's newest metadata verifies against its delegator (python-tuf's check)."""
    md = repo.load(role)
    if role in ("stable", "beta"):
        delegator = repo.load("targets").signed
    else:
        delegator = repo.load("root").signed
    assert isinstance(delegator, Root | Targets)
    delegator.verify_delegate(role, md.signed_bytes, md.signatures)


def test_create_writes_version_one_of_every_role_signed(repo: ReleaseRepository) -> None:
    names = sorted(p.name for p in repo.metadata_dir.iterdir())
    assert names == ["1.beta.json", "1.root.json", "1.snapshot.json", "1.stable.json",
                     "1.targets.json", "root.json", "timestamp.json"]
    for role in ("root", "targets", "snapshot", "timestamp", "stable", "beta"):
        _verify(repo, role)
        assert repo.load(role).signed.version == 1
    root = repo.load("root").signed
    assert isinstance(root, Root)
    assert root.consistent_snapshot


def test_expiries_per_role(tmp_path: Path, clock: Clock) -> None:
    repo = ReleaseRepository(tmp_path / "r", root_keys=tmp_path / "k", clock=clock,
                             expiries=Expiries(timestamp=datetime.timedelta(hours=6)))
    repo.create()
    expected = {"root": 365 * DAY, "targets": 90 * DAY, "stable": 90 * DAY,
                "snapshot": 7 * DAY, "timestamp": datetime.timedelta(hours=6)}
    for role, delta in expected.items():
        assert repo.load(role).signed.expires == NOW + delta


def test_private_keys_are_0600_in_0700_dirs_and_root_keys_apart(
        repo: ReleaseRepository, tmp_path: Path) -> None:
    offline = tmp_path / "offline"
    root = repo.load("root").signed
    assert isinstance(root, Root)
    root_ids = set(root.roles["root"].keyids)
    assert {p.stem for p in offline.iterdir()} == root_ids
    online = {p.stem for p in repo.keys_dir.iterdir()}
    assert not online & root_ids
    assert len(online) == 5
    for directory in (offline, repo.keys_dir):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        for key in directory.iterdir():
            assert stat.S_IMODE(key.stat().st_mode) == 0o600
            assert key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    public = repo.workdir / "public"
    assert not any("PRIVATE" in p.read_text() for p in public.rglob("*") if p.is_file())


def test_add_release_hash_prefixed_file_custom_metadata_and_version_bumps(
        repo: ReleaseRepository, tmp_path: Path, clock: Clock) -> None:
    content = b"bundle bytes " * 100
    clock.now = NOW + 3 * DAY
    target = repo.add_release("stable", _bundle(tmp_path, content), version="1.2.0",
                              min_version="1.0", data_schema=7)
    digest = hashlib.sha256(content).hexdigest()
    stored = repo.targets_dir / "stable" / f"{digest}.mailstead-1.2.0-amd64.bundle"
    assert stored.read_bytes() == content
    assert stat.S_IMODE(stored.stat().st_mode) == 0o644
    assert target.path == target_path("stable", "1.2.0")
    assert target.custom == {"version": "1.2.0", "min_version": "1.0", "data_schema": 7}
    stable = repo.load("stable")
    assert stable.signed.version == 2
    assert stable.signed.expires == clock.now + 90 * DAY
    assert (repo.metadata_dir / "2.stable.json").is_file()
    assert (repo.metadata_dir / "1.stable.json").is_file()     # old versions stay
    snapshot, timestamp = repo.load("snapshot").signed, repo.load("timestamp").signed
    assert isinstance(snapshot, Snapshot)
    assert isinstance(timestamp, Timestamp)
    assert snapshot.version == 2
    assert snapshot.meta["stable.json"].version == 2
    assert snapshot.meta["beta.json"].version == 1
    assert timestamp.version == 2
    assert timestamp.snapshot_meta.version == 2
    assert timestamp.snapshot_meta.length == (repo.metadata_dir / "2.snapshot.json").stat(
        ).st_size
    for role in ("stable", "snapshot", "timestamp"):
        _verify(repo, role)


def test_same_version_twice_is_refused(repo: ReleaseRepository, tmp_path: Path) -> None:
    repo.add_release("beta", _bundle(tmp_path, b"a"), version="2.0b1", min_version="1.0",
                     data_schema=1)
    with pytest.raises(RepositoryError, match="already published"):
        repo.add_release("beta", _bundle(tmp_path, b"b"), version="2.0b1",
                         min_version="1.0", data_schema=1)


@pytest.mark.parametrize(("channel", "version", "min_version", "schema", "text"), [
    ("nightly", "1.0", "1.0", 1, "unknown channel"),
    ("stable", "not a version", "1.0", 1, "not a version"),
    ("stable", "1.0", "2.0", 1, "newer than"),
    ("stable", "1.0", "1.0", -1, "non-negative"),
])
def test_bad_release_values(repo: ReleaseRepository, tmp_path: Path, channel: str,
                            version: str, min_version: str, schema: int, text: str) -> None:
    with pytest.raises(RepositoryError, match=text):
        repo.add_release(channel, _bundle(tmp_path, b"x"), version=version,
                         min_version=min_version, data_schema=schema)


def test_remove_release(repo: ReleaseRepository, tmp_path: Path) -> None:
    repo.add_release("stable", _bundle(tmp_path, b"one"), version="1.1", min_version="1.0",
                     data_schema=1)
    repo.remove_release("stable", "1.1")
    assert repo.releases("stable") == []
    assert list((repo.targets_dir / "stable").iterdir()) == []
    assert repo.load("stable").signed.version == 3
    with pytest.raises(RepositoryError, match="not published"):
        repo.remove_release("stable", "1.1")


def test_refresh_timestamp_bumps_only_the_timestamp(repo: ReleaseRepository,
                                                    clock: Clock) -> None:
    clock.now = NOW + DAY / 2
    repo.refresh_timestamp()
    timestamp = repo.load("timestamp").signed
    assert timestamp.version == 2
    assert timestamp.expires == clock.now + DAY
    assert repo.load("snapshot").signed.version == 1
    _verify(repo, "timestamp")


def test_rotate_root_signed_by_old_and_new_keys(repo: ReleaseRepository,
                                                tmp_path: Path) -> None:
    old_root = repo.load("root")
    new_ids = repo.rotate("root")
    new_root = repo.load("root")
    assert new_root.signed.version == 2
    assert isinstance(old_root.signed, Root)
    assert isinstance(new_root.signed, Root)
    old_root.signed.verify_delegate("root", new_root.signed_bytes, new_root.signatures)
    new_root.signed.verify_delegate("root", new_root.signed_bytes, new_root.signatures)
    assert new_root.signed.roles["root"].keyids == new_ids
    assert {p.stem for p in (tmp_path / "offline").iterdir()} == set(new_ids)  # old gone
    assert (repo.metadata_dir / "1.root.json").is_file()


@pytest.mark.parametrize("role", ["targets", "snapshot", "timestamp", "stable", "beta"])
def test_rotate_online_role_resigns_what_depends_on_it(repo: ReleaseRepository,
                                                       role: str) -> None:
    before = {r: repo.load(r).signed.version for r in ("root", "targets", role)}
    new_ids = repo.rotate(role)
    parent = "targets" if role in ("stable", "beta") else "root"
    assert repo.load(parent).signed.version == before[parent] + 1
    delegator = repo.load(parent).signed
    assert isinstance(delegator, Root | Targets)
    assert delegator.get_delegated_role(role).keyids == new_ids
    for checked in (role, "snapshot", "timestamp"):
        _verify(repo, checked)
    assert (repo.keys_dir / f"{new_ids[0]}.pem").is_file()


def test_root_threshold_two_needs_two_keys(tmp_path: Path, clock: Clock) -> None:
    repo = ReleaseRepository(tmp_path / "r", root_keys=tmp_path / "k", clock=clock)
    repo.create(root_threshold=2, root_key_count=3)
    root = repo.load("root")
    assert isinstance(root.signed, Root)
    assert root.signed.roles["root"].threshold == 2
    assert len(root.signatures) == 3
    for key in list((tmp_path / "k").iterdir())[:2]:
        key.unlink()
    with pytest.raises(RepositoryError, match="needs 2 of its keys; found 1"):
        repo.rotate("root")


def test_online_operations_need_no_root_keys(repo: ReleaseRepository, tmp_path: Path,
                                             clock: Clock) -> None:
    online = ReleaseRepository(repo.workdir, clock=clock)     # the offline dir is away
    online.add_release("stable", _bundle(tmp_path, b"z"), version="1.0", min_version="1.0",
                       data_schema=1)
    online.refresh_timestamp()
    with pytest.raises(RepositoryError, match="offline root-keys"):
        online.rotate("timestamp")


def test_create_refuses_an_existing_repository(repo: ReleaseRepository) -> None:
    with pytest.raises(RepositoryError, match="already there"):
        repo.create()


def test_metadata_files_are_world_readable(repo: ReleaseRepository) -> None:
    for path in repo.metadata_dir.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    Metadata.from_file(str(repo.metadata_dir / "timestamp.json"))


def test_renew_resigns_only_roles_past_half_their_validity(repo: ReleaseRepository,
                                                           clock: Clock) -> None:
    clock.now = NOW + DAY
    assert repo.renew() == []
    assert repo.load("timestamp").signed.version == 2
    clock.now = NOW + 4 * DAY                     # snapshot (7 days) past half
    assert repo.renew() == ["snapshot"]
    assert repo.load("snapshot").signed.expires == clock.now + 7 * DAY
    clock.now = NOW + 46 * DAY                    # targets and channels (90 days) past half
    assert repo.renew() == ["targets", "stable", "beta", "snapshot"]
    for role in ("targets", "stable", "beta", "snapshot", "timestamp"):
        _verify(repo, role)
        assert repo.load(role).signed.expires > clock.now + DAY / 2


def test_rotate_a_lost_online_key(repo: ReleaseRepository) -> None:
    root = repo.load("root").signed
    assert isinstance(root, Root)
    lost = root.roles["timestamp"].keyids[0]
    (repo.keys_dir / f"{lost}.pem").unlink()
    new_ids = repo.rotate("timestamp")
    _verify(repo, "timestamp")
    assert lost not in new_ids
