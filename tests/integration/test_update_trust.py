"""The update client (appliance/update/trust.py) against a release repository published
with appliance/update/repository.py and served over HTTPS on loopback by a real static
server (http.server in a thread, a certificate from a test CA), with the attacks of issue 9
built by the test: tampered target, replayed timestamp, frozen (expired) metadata, rollback,
unknown keys, endless data, and root key rotations to follow or refuse."""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import shutil
import ssl
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from securesystemslib.signer._crypto_signer import CryptoSigner
from tuf.api._payload import Root, Snapshot, TargetFile, Targets

from appliance.update.repository import ReleaseRepository, utc_now
from appliance.update.trust import ClientConfig, Offer, UpdateClient, UpdateRefused
from peers.ca import TestCA

ENDLESS = "endless"
TRICKLE = "trickle"          # one byte every 0.1 s, for at most 30 s
ENDLESS_CAP = 256 * 1024 * 1024      # the server gives up here: a client that never stops


class Mirror:
    """A static HTTPS server of `root`; `overrides` replace a path's answer with bytes or
    with ENDLESS (a 200 that streams zeros without a length until the client hangs up)."""

    def __init__(self, root: Path, cert: Path, key: Path) -> None:
        self.root = root
        self.overrides: dict[str, bytes | str] = {}
        self.requests: list[str] = []
        self.endless_sent = 0
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                mirror.requests.append(self.path)
                answer = mirror.overrides.get(self.path)
                if answer in (ENDLESS, TRICKLE):
                    self._stream(answer == TRICKLE)
                    return
                if answer is None:
                    file = (mirror.root / self.path.lstrip("/")).resolve()
                    if not file.is_relative_to(mirror.root) or not file.is_file():
                        self.send_error(404)
                        return
                    answer = file.read_bytes()
                assert isinstance(answer, bytes)
                self.send_response(200)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def _stream(self, trickle: bool) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                chunk = b"\0" if trickle else b"\0" * 65536
                cap = 300 if trickle else ENDLESS_CAP
                try:
                    while mirror.endless_sent < cap:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                        mirror.endless_sent += len(chunk)
                        if trickle:
                            time.sleep(0.1)
                except OSError:
                    pass        # the client hung up: what we want

        return Handler


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[TestCA, Path, Path, Path]:
    directory = tmp_path_factory.mktemp("ca")
    authority = TestCA("Update mirror test CA")
    cert, key = authority.issue(["127.0.0.1"], directory, "mirror")
    return authority, authority.write_cert(directory / "ca.pem"), cert, key


@pytest.fixture
def repo(tmp_path: Path) -> ReleaseRepository:
    repository = ReleaseRepository(tmp_path / "repo", root_keys=tmp_path / "offline")
    repository.create()
    return repository


@pytest.fixture
def mirror(repo: ReleaseRepository, ca: tuple[TestCA, Path, Path, Path]) -> Iterator[Mirror]:
    server = Mirror((repo.workdir / "public").resolve(), ca[2], ca[3])
    yield server
    server.close()


def _client(repo: ReleaseRepository, mirror: Mirror, ca_file: Path, tmp_path: Path,
            **changes: int) -> UpdateClient:
    trusted = tmp_path / "image-root.json"        # the image ships version 1
    if not trusted.exists():
        shutil.copyfile(repo.metadata_dir / "1.root.json", trusted)
    config = ClientConfig(url=mirror.url + "/", trusted_root=trusted,
                          cache_dir=tmp_path / "data" / "update" / "tuf", ca_file=ca_file,
                          connect_timeout=5, download_timeout=60)
    if changes:
        config = ClientConfig(**{**config.__dict__, **changes})
    return UpdateClient(config)


@pytest.fixture
def client(repo: ReleaseRepository, mirror: Mirror, ca: tuple[TestCA, Path, Path, Path],
           tmp_path: Path) -> UpdateClient:
    return _client(repo, mirror, ca[1], tmp_path)


def _publish(repo: ReleaseRepository, tmp_path: Path, version: str, *, channel: str = "stable",
             min_version: str = "1.0", content: bytes | None = None) -> bytes:
    data = content if content is not None else f"bundle {version} ".encode() * 1000
    bundle = tmp_path / f"{version}.bundle"
    bundle.write_bytes(data)
    repo.add_release(channel, bundle, version=version, min_version=min_version,
                     data_schema=3)
    return data


def _refused(reason: str, caplog: pytest.LogCaptureFixture) -> None:
    lines = [r for r in caplog.records if r.getMessage() == "update.refused"]
    assert [getattr(r, "reason", None) for r in lines] == [reason]


# -- what works ----------------------------------------------------------------------------

def test_offer_newest_allowed_version_and_download_it(
        repo: ReleaseRepository, client: UpdateClient, tmp_path: Path) -> None:
    _publish(repo, tmp_path, "1.1")
    newest = _publish(repo, tmp_path, "1.2", min_version="1.1")
    _publish(repo, tmp_path, "2.0b1", channel="beta")
    offer = client.check("stable", "1.0")        # 1.2 needs 1.1 first
    assert offer is not None
    assert offer.version == "1.1"
    offer = client.check("stable", "1.1")
    assert offer == Offer("stable", "1.2", "1.1", 3, "stable/mailstead-1.2-amd64.bundle",
                          len(newest), hashlib.sha256(newest).hexdigest())
    path = client.download(offer, tmp_path / "data" / "update" / "downloads")
    assert path.name == "mailstead-1.2-amd64.bundle"
    assert path.read_bytes() == newest
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    cache = tmp_path / "data" / "update" / "tuf"
    # public signed metadata: readable by the console, writable only by the updater
    assert stat.S_IMODE(cache.stat().st_mode) & 0o022 == 0
    assert stat.S_IMODE(cache.parent.stat().st_mode) & 0o022 == 0
    assert client.check("beta", "1.2") is not None
    assert client.check("stable", "1.2") is None


def test_download_in_a_later_run_verifies_the_offer_again(
        repo: ReleaseRepository, client: UpdateClient, tmp_path: Path) -> None:
    data = _publish(repo, tmp_path, "1.1")
    offer = client.check("stable", "1.0")
    assert offer is not None
    later = UpdateClient(client.config)        # e.g. the install run after the check run
    assert later.download(offer, tmp_path / "downloads").read_bytes() == data
    repo.remove_release("stable", "1.1")
    with pytest.raises(UpdateRefused, match="no longer published") as refused:
        UpdateClient(client.config).download(offer, tmp_path / "again")
    assert refused.value.reason == "tampered"


def test_version_order_is_pep440_not_text(repo: ReleaseRepository, client: UpdateClient,
                                          tmp_path: Path) -> None:
    for version in ("1.9", "1.10", "1.10rc1"):
        _publish(repo, tmp_path, version)
    offer = client.check("stable", "1.2")
    assert offer is not None
    assert offer.version == "1.10"


# -- attacks -------------------------------------------------------------------------------

def test_tampered_target_is_refused_and_nothing_stays(
        repo: ReleaseRepository, client: UpdateClient, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    _publish(repo, tmp_path, "1.1")
    offer = client.check("stable", "1.0")
    assert offer is not None
    stored = next((repo.targets_dir / "stable").iterdir())
    data = bytearray(stored.read_bytes())
    data[100] ^= 0xFF                             # same length, one byte changed after signing
    stored.write_bytes(bytes(data))
    downloads = tmp_path / "downloads"
    with pytest.raises(UpdateRefused) as refused:
        client.download(offer, downloads)
    assert refused.value.reason == "tampered"
    assert list(downloads.iterdir()) == []
    _refused("tampered", caplog)


def test_replayed_old_timestamp_is_refused(
        repo: ReleaseRepository, mirror: Mirror, client: UpdateClient, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    old_timestamp = (repo.metadata_dir / "timestamp.json").read_bytes()
    _publish(repo, tmp_path, "1.1")
    assert client.check("stable", "1.0") is not None       # the client saw timestamp v2
    mirror.overrides["/metadata/timestamp.json"] = old_timestamp   # v1, still unexpired
    with pytest.raises(UpdateRefused) as refused:
        client.check("stable", "1.0")
    assert refused.value.reason == "rollback"
    _refused("rollback", caplog)


def test_expired_metadata_from_a_frozen_mirror_is_refused(
        tmp_path: Path, ca: tuple[TestCA, Path, Path, Path],
        caplog: pytest.LogCaptureFixture) -> None:
    two_days_ago = utc_now() - datetime.timedelta(days=2)
    repo = ReleaseRepository(tmp_path / "repo", root_keys=tmp_path / "offline",
                             clock=lambda: two_days_ago)
    repo.create()
    _publish(repo, tmp_path, "1.1")            # signed two days ago: timestamp expired
    server = Mirror((repo.workdir / "public").resolve(), ca[2], ca[3])
    try:
        with pytest.raises(UpdateRefused) as refused:
            _client(repo, server, ca[1], tmp_path).check("stable", "1.0")
    finally:
        server.close()
    assert refused.value.reason == "expired"
    assert "expired" in str(refused.value)
    assert "Nothing was installed" in str(refused.value)
    _refused("expired", caplog)


def test_newer_metadata_listing_only_older_versions_offers_nothing(
        repo: ReleaseRepository, client: UpdateClient, tmp_path: Path) -> None:
    _publish(repo, tmp_path, "1.2")
    assert client.check("stable", "1.1") is not None
    repo.remove_release("stable", "1.2")
    _publish(repo, tmp_path, "1.0")             # a newer channel version, an older release
    assert client.check("stable", "1.1") is None
    assert client.check("stable", "1.0") is None      # the same version is not offered


def test_snapshot_rolling_back_a_channel_version_is_refused(
        repo: ReleaseRepository, client: UpdateClient, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    _publish(repo, tmp_path, "1.1")
    _publish(repo, tmp_path, "1.2")              # stable v3
    assert client.check("stable", "1.0") is not None
    snapshot = repo.load("snapshot")            # an attacker holding the snapshot key
    assert isinstance(snapshot.signed, Snapshot)
    snapshot.signed.meta["stable.json"].version = 2
    snapshot.signed.meta["stable.json"].length = (
        repo.metadata_dir / "2.stable.json").stat().st_size
    repo._bump_and_write("snapshot", snapshot)
    repo.refresh_timestamp()
    with pytest.raises(UpdateRefused) as refused:
        client.check("stable", "1.0")
    assert refused.value.reason == "rollback"
    _refused("rollback", caplog)


def test_top_level_targets_shadowing_a_channel_release_is_refused(
        repo: ReleaseRepository, client: UpdateClient, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    _publish(repo, tmp_path, "1.1")
    targets = repo.load("targets")               # an attacker holding the targets key
    assert isinstance(targets.signed, Targets)
    evil = TargetFile.from_data("stable/mailstead-1.1-amd64.bundle", b"evil")
    evil.unrecognized_fields["custom"] = {"version": "1.1", "min_version": "0",
                                          "data_schema": 3}
    targets.signed.targets[evil.path] = evil
    repo._bump_and_write("targets", targets)
    repo.publish()
    with pytest.raises(UpdateRefused) as refused:
        client.check("stable", "1.0")
    assert refused.value.reason == "tampered"
    _refused("tampered", caplog)


def test_metadata_signed_by_an_unknown_key_is_refused(
        repo: ReleaseRepository, client: UpdateClient, caplog: pytest.LogCaptureFixture
        ) -> None:
    timestamp = repo.load("timestamp")
    timestamp.signed.version += 1
    timestamp.signatures.clear()
    timestamp.sign(CryptoSigner.generate_ed25519())       # not a key root lists
    (repo.metadata_dir / "timestamp.json").write_bytes(timestamp.to_bytes())
    with pytest.raises(UpdateRefused) as refused:
        client.check("stable", "1.0")
    assert refused.value.reason == "bad-signature"
    _refused("bad-signature", caplog)


def test_endless_target_is_cut_off_at_its_signed_length(
        repo: ReleaseRepository, mirror: Mirror, client: UpdateClient, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    data = _publish(repo, tmp_path, "1.1")
    offer = client.check("stable", "1.0")
    assert offer is not None
    stored = next((repo.targets_dir / "stable").iterdir())
    mirror.overrides[f"/targets/stable/{stored.name}"] = ENDLESS
    downloads = tmp_path / "downloads"
    with pytest.raises(UpdateRefused) as refused:
        client.download(offer, downloads)
    assert refused.value.reason == "oversize"
    assert list(downloads.iterdir()) == []
    assert mirror.endless_sent < 16 * 1024 * 1024 + len(data)     # stopped, not at the cap
    _refused("oversize", caplog)


def test_short_target_is_refused_and_nothing_stays(
        repo: ReleaseRepository, mirror: Mirror, client: UpdateClient, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    data = _publish(repo, tmp_path, "1.1")
    offer = client.check("stable", "1.0")
    assert offer is not None
    stored = next((repo.targets_dir / "stable").iterdir())
    mirror.overrides[f"/targets/stable/{stored.name}"] = data[:-1]   # right bytes, one short
    downloads = tmp_path / "downloads"
    with pytest.raises(UpdateRefused) as refused:
        client.download(offer, downloads)
    assert refused.value.reason == "tampered"
    assert "length" in str(refused.value)
    assert list(downloads.iterdir()) == []
    _refused("tampered", caplog)


def _bytes_written_by_this_thread() -> int:
    """write(2) bytes of the calling thread (proc(5) /proc/thread-self/io `wchar`): the
    download runs here, the mirror's sends in its own threads."""
    for line in Path("/proc/thread-self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise AssertionError("no wchar in /proc/thread-self/io")


def test_download_is_written_to_disk_once(
        repo: ReleaseRepository, mirror: Mirror, client: UpdateClient, tmp_path: Path) -> None:
    data = _publish(repo, tmp_path, "1.1", content=os.urandom(8 * 1024 * 1024))
    offer = client.check("stable", "1.0")
    assert offer is not None
    downloads = tmp_path / "downloads"
    before = _bytes_written_by_this_thread()
    path = client.download(offer, downloads)
    written = _bytes_written_by_this_thread() - before
    assert path.read_bytes() == data
    assert sorted(p.name for p in downloads.iterdir()) == [path.name]
    # one copy (plus a TLS request); a spool file copied to the destination writes 2x
    assert len(data) <= written < len(data) + 64 * 1024
    assert [r for r in mirror.requests if r.startswith("/targets/")] == [
        f"/targets/stable/{offer.sha256}.mailstead-1.1-amd64.bundle"]   # consistent snapshot


def test_endless_timestamp_is_cut_off(
        mirror: Mirror, client: UpdateClient, caplog: pytest.LogCaptureFixture) -> None:
    mirror.overrides["/metadata/timestamp.json"] = ENDLESS
    with pytest.raises(UpdateRefused) as refused:
        client.check("stable", "1.0")
    assert refused.value.reason == "oversize"
    assert mirror.endless_sent < 16 * 1024 * 1024
    _refused("oversize", caplog)


def test_trickling_target_is_cut_off_by_the_download_time_limit(
        repo: ReleaseRepository, mirror: Mirror, ca: tuple[TestCA, Path, Path, Path],
        tmp_path: Path) -> None:
    _publish(repo, tmp_path, "1.1")
    client = _client(repo, mirror, ca[1], tmp_path, download_timeout=1)
    offer = client.check("stable", "1.0")
    assert offer is not None
    stored = next((repo.targets_dir / "stable").iterdir())
    mirror.overrides[f"/targets/stable/{stored.name}"] = TRICKLE
    started = time.monotonic()
    with pytest.raises(UpdateRefused) as refused:
        client.download(offer, tmp_path / "downloads")
    assert refused.value.reason == "unreachable"
    assert time.monotonic() - started < 10        # each byte within the read timeout
    assert list((tmp_path / "downloads").iterdir()) == []


def test_bundle_over_max_bundle_size_is_not_downloaded(
        repo: ReleaseRepository, mirror: Mirror, ca: tuple[TestCA, Path, Path, Path],
        tmp_path: Path) -> None:
    _publish(repo, tmp_path, "1.1", content=b"x" * 5000)
    client = _client(repo, mirror, ca[1], tmp_path, max_bundle_size=4096)
    offer = client.check("stable", "1.0")
    assert offer is not None
    with pytest.raises(UpdateRefused) as refused:
        client.download(offer, tmp_path / "downloads")
    assert refused.value.reason == "oversize"
    assert not [r for r in mirror.requests if r.startswith("/targets/")]


def test_root_rotation_is_followed(repo: ReleaseRepository, client: UpdateClient,
                                   tmp_path: Path) -> None:
    assert client.check("stable", "1.0") is None           # the client trusts root v1
    repo.rotate("root")
    repo.rotate("root")
    repo.rotate("timestamp")                               # root v4 names a new timestamp key
    _publish(repo, tmp_path, "1.1")
    offer = client.check("stable", "1.0")
    assert offer is not None
    assert offer.version == "1.1"
    history = tmp_path / "data" / "update" / "tuf" / "root_history"
    assert sorted(p.name for p in history.iterdir()) == [
        "1.root.json", "2.root.json", "3.root.json", "4.root.json"]
    assert client.download(offer, tmp_path / "downloads").is_file()


def test_root_signed_only_by_the_new_key_is_refused(
        repo: ReleaseRepository, client: UpdateClient, caplog: pytest.LogCaptureFixture
        ) -> None:
    root = repo.load("root")
    assert isinstance(root.signed, Root)
    for keyid in list(root.signed.roles["root"].keyids):
        root.signed.revoke_key(keyid, "root")
    intruder = CryptoSigner.generate_ed25519()
    root.signed.add_key(intruder.public_key, "root")
    root.signed.version += 1
    root.signatures.clear()
    root.sign(intruder)
    (repo.metadata_dir / "2.root.json").write_bytes(root.to_bytes())
    with pytest.raises(UpdateRefused) as refused:
        client.check("stable", "1.0")
    assert refused.value.reason == "bad-signature"
    _refused("bad-signature", caplog)


# -- the transport -------------------------------------------------------------------------

def test_server_certificate_from_another_ca_is_unreachable(
        repo: ReleaseRepository, mirror: Mirror, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    stranger = TestCA("Stranger CA").write_cert(tmp_path / "stranger.pem")
    with pytest.raises(UpdateRefused) as refused:
        _client(repo, mirror, stranger, tmp_path).check("stable", "1.0")
    assert refused.value.reason == "unreachable"
    assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value)
    _refused("unreachable", caplog)


def test_missing_trusted_root_and_empty_url_are_config_refusals(
        repo: ReleaseRepository, mirror: Mirror, ca: tuple[TestCA, Path, Path, Path],
        tmp_path: Path) -> None:
    client = _client(repo, mirror, ca[1], tmp_path)
    client.config.trusted_root.unlink()
    with pytest.raises(UpdateRefused) as refused:
        client.check("stable", "1.0")
    assert refused.value.reason == "config"
    off = UpdateClient(ClientConfig(url="", trusted_root=tmp_path / "r.json",
                                    cache_dir=tmp_path / "c"))
    with pytest.raises(UpdateRefused, match="updates are off"):
        off.check("stable", "1.0")


def test_refusals_log_one_structured_line(client: UpdateClient, mirror: Mirror,
                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mailstead")
    mirror.overrides["/metadata/timestamp.json"] = b"{not json"
    with pytest.raises(UpdateRefused) as refused:
        client.check("stable", "1.0")
    assert refused.value.reason == "tampered"
    _refused("tampered", caplog)


# -- the command line ----------------------------------------------------------------------

CHECK_SCRIPT = """\
import argparse, sys
from appliance.cli.update_check_cmd import add_check
parser = argparse.ArgumentParser()
parser.add_argument("--config")
add_check(parser.add_subparsers(dest="action", required=True))
args = parser.parse_args(sys.argv[1:])
sys.exit(args.handler(args))
"""


def _run(*args: str, status: int = 0, script: str | None = None,
         stdout_only: bool = False) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSTEAD_")}
    command = ([sys.executable, "-c", script] if script else
               [sys.executable, "-m", "appliance"])
    done = subprocess.run([*command, *args], capture_output=True, text=True, env=env,
                          timeout=120, check=False)
    assert done.returncode == status, (done.stdout, done.stderr)
    return done.stdout if stdout_only else done.stdout + done.stderr


def test_release_commands_and_update_check(tmp_path: Path,
                                           ca: tuple[TestCA, Path, Path, Path]) -> None:
    work, offline = tmp_path / "repo", tmp_path / "offline"
    out = _run("release", "init", str(work), "--root-keys", str(offline),
               "--expiry", "timestamp=2")
    assert "1.root.json" in out
    assert "offline" in out
    bundle = tmp_path / "any.bundle"
    bundle.write_bytes(b"not a tar, so the facts come from the flags" * 100)
    out = _run("release", "add", str(work), str(bundle), status=2)
    assert "--version" in out
    out = _run("release", "add", str(work), str(bundle), "--channel", "beta", "--version",
               "1.1b1", "--min-version", "1.0", "--data-schema", "4")
    assert "published beta/mailstead-1.1b1-amd64.bundle" in out
    assert "beta 1.1b1 min_version=1.0 data_schema=4" in _run("release", "list", str(work))
    _run("release", "timestamp", str(work))
    assert "offline root-keys" in _run("release", "rotate", str(work), "snapshot", status=2)
    _run("release", "rotate", str(work), "snapshot", "--root-keys", str(offline))
    _run("release", "rotate", str(work), "beta")
    server = Mirror((work / "public").resolve(), ca[2], ca[3])
    try:
        shutil.copyfile(work / "public" / "metadata" / "1.root.json", tmp_path / "root.json")
        config = tmp_path / "mailstead.toml"
        config.write_text(f'[paths]\ndata_dir = "{tmp_path / "data"}"\n[update]\n'
                          f'url = "{server.url}"\nchannel = "beta"\n'
                          f'trusted_root = "{tmp_path / "root.json"}"\n'
                          f'ca_file = "{ca[1]}"\n')
        out = _run("--config", str(config), "check", "--current", "1.0", "--download",
                   script=CHECK_SCRIPT)
        assert "update available: 1.1b1 on beta" in out
        downloaded = tmp_path / "data" / "update" / "downloads" / "mailstead-1.1b1-amd64.bundle"
        assert downloaded.read_bytes() == bundle.read_bytes()
        out = _run("--config", str(config), "check", "--current", "1.1", "--json",
                   script=CHECK_SCRIPT, stdout_only=True)
        assert json.loads(out) == {"result": "up-to-date", "channel": "beta",
                                   "current": "1.1"}
        (work / "public" / "metadata" / "timestamp.json").write_bytes(b"{}")
        out = _run("--config", str(config), "check", "--current", "1.0", status=1,
                   script=CHECK_SCRIPT)
        assert "update refused (tampered)" in out
    finally:
        server.close()
