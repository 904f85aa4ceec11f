"""The update client: what the release repository offers, verified with python-tuf's
ngclient against the root of trust shipped in the image, and the download of a verified
bundle. Every refusal is one `UpdateRefused` with a reason code and one log line.

Trust: `update.trusted_root` (the image's root.json) is the bootstrap; newer roots are
followed from it through the chain cached in `<update.state_dir>/tuf/root_history/` (TUF spec
5.3). ngclient checks signatures, thresholds, versions (rollback), expiry (freeze) and hashes;
this module bounds every download (metadata sizes from `UpdaterConfig`, the signed target
length, `update.max_bundle_size`, a whole-download time limit) and never offers a version
lower than or equal to the running one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, NoReturn

import urllib3
from packaging.version import InvalidVersion, Version
from tuf.api import exceptions
from tuf.api._payload import TargetFile, Targets
from tuf.ngclient.config import UpdaterConfig
from tuf.ngclient.fetcher import FetcherInterface
from tuf.ngclient.updater import Updater

import appliance
from appliance.core import fsio, log
from appliance.update import state
from appliance.update.repository import CHANNELS, target_path

if TYPE_CHECKING:
    from appliance.settings import Settings

REASONS = ("tampered", "expired", "rollback", "bad-signature", "oversize", "unreachable",
           "config")
_MESSAGES = {
    "tampered": "The update server sent data that does not match its signed metadata "
                "(tampered or corrupted). Nothing was installed.",
    "expired": "The update server's signed metadata has expired: the server may be frozen "
               "or replaying old data. Nothing was installed.",
    "rollback": "The update server offered older metadata than this appliance has already "
                "seen (a rollback). Nothing was installed.",
    "bad-signature": "Update metadata is not signed by the keys this appliance trusts. "
                     "Nothing was installed.",
    "oversize": "The update server sent more data than allowed. Nothing was installed.",
    "unreachable": "The update server could not be reached or answered with an error.",
    "config": "The update settings are incomplete or the trusted root cannot be read.",
}
# Limits on untrusted metadata (TUF spec 5.2-5.6); a channel holds a few dozen releases.
METADATA_LIMITS = UpdaterConfig(
    max_root_rotations=32, max_delegations=8, root_max_length=512 * 1024,
    timestamp_max_length=16 * 1024, snapshot_max_length=1024 * 1024,
    targets_max_length=4 * 1024 * 1024, app_user_agent=f"mailstead/{appliance.__version__}")
_CHUNK = 64 * 1024
_PROBE = ".mailstead-probe"      # a path in no channel: asking for it loads the channel role


class UpdateRefused(Exception):  # noqa: N818 -- the agreed name: a refusal, not a fault
    """The update was refused; `reason` is one of REASONS, the message fits the console."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Offer:
    """The release a check found: newer than the running version, allowed from it."""

    channel: str
    version: str
    min_version: str
    data_schema: int
    target_path: str
    length: int
    sha256: str


@dataclass(frozen=True)
class ClientConfig:
    """Everything the client needs (from `update.*` settings, or given by tests)."""

    url: str
    trusted_root: Path
    cache_dir: Path                   # <update.state_dir>/tuf
    ca_file: Path | None = None       # None: the system's CA store
    max_bundle_size: int = 4 << 30
    connect_timeout: float = 30.0
    download_timeout: float = 3600.0


def config_from_settings(settings: Settings) -> ClientConfig:
    ca = settings.get_str("update.ca_file")
    return ClientConfig(
        url=settings.get_str("update.url"),
        trusted_root=settings.data_path("update.trusted_root"),
        cache_dir=state.state_dir(settings) / "tuf",
        ca_file=settings.data_path("update.ca_file") if ca else None,
        max_bundle_size=settings.get_int("update.max_bundle_size"),
        connect_timeout=settings.get_int("update.connect_timeout"),
        download_timeout=settings.get_int("update.download_timeout"))


class BoundedFetcher(FetcherInterface):
    """HTTPS GETs with a verified certificate, connect/read timeouts, a limit on the whole
    download's time, and read1 chunks so a trickling mirror cannot stall a read. The byte
    limit itself is the caller's `max_length`. ngclient uses it for metadata only
    (`download_bytes`); targets go through `download_into`, never `download_file`."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self._pool = urllib3.PoolManager(
            cert_reqs="CERT_REQUIRED",
            ca_certs=str(config.ca_file) if config.ca_file else None,
            headers={"User-Agent": METADATA_LIMITS.app_user_agent or "mailstead"},
            retries=urllib3.Retry(total=2, redirect=3, raise_on_status=False))

    def _fetch(self, url: str) -> Iterator[bytes]:
        timeout = urllib3.Timeout(connect=self.config.connect_timeout,
                                  read=self.config.connect_timeout)
        try:
            response = self._pool.request("GET", url, preload_content=False,
                                          timeout=timeout)
        except urllib3.exceptions.MaxRetryError as exc:
            if isinstance(exc.reason, urllib3.exceptions.TimeoutError):
                raise exceptions.SlowRetrievalError from exc
            raise
        if response.status >= 400:
            response.release_conn()
            raise exceptions.DownloadHTTPError(f"HTTP {response.status} for {url}",
                                               response.status)
        return self._chunks(response, time.monotonic() + self.config.download_timeout)

    def _chunks(self, response: urllib3.BaseHTTPResponse, deadline: float) -> Iterator[bytes]:
        complete = False
        try:
            while chunk := response.read1(_CHUNK):
                if time.monotonic() > deadline:
                    raise exceptions.SlowRetrievalError(
                        f"download took longer than {self.config.download_timeout} s")
                yield chunk
            complete = True
        except urllib3.exceptions.TimeoutError as exc:
            raise exceptions.SlowRetrievalError from exc
        except urllib3.exceptions.HTTPError as exc:
            raise exceptions.DownloadError(f"download failed: {exc}") from exc
        finally:
            if not complete:
                response.close()    # cut off (too long, too slow): hang up, reuse nothing
            response.release_conn()

    def download_bytes(self, url: str, max_length: int) -> bytes:
        """Metadata (ngclient's only use of the fetcher): kept in memory, as the limits of
        METADATA_LIMITS are a few MiB at most; past `max_length` the transfer stops."""
        buffer = bytearray()
        for chunk in self._bounded(url, max_length):
            buffer += chunk
        return bytes(buffer)

    def download_into(self, url: str, max_length: int, out: IO[bytes]) -> int:
        """Write the body of `url` into `out` (the download's own `.part` file: the one
        copy it ever has on disk); past `max_length` the transfer stops. The bytes written.

        Raises:
            DownloadLengthMismatchError: more than `max_length` bytes.
            DownloadError: connection, HTTP status, timeouts.
        """
        received = 0
        for chunk in self._bounded(url, max_length):
            out.write(chunk)
            received += len(chunk)
        return received

    def _bounded(self, url: str, max_length: int) -> Iterator[bytes]:
        received = 0
        for chunk in self.fetch(url):
            received += len(chunk)
            if received > max_length:
                raise exceptions.DownloadLengthMismatchError(
                    f"more than the allowed {max_length} bytes from {url}")
            yield chunk


class UpdateClient:
    """One appliance's view of the release repository at `config.url`."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.fetcher = BoundedFetcher(config)
        self._checked: dict[str, tuple[Updater, TargetFile]] = {}

    def check(self, channel: str, current_version: str) -> Offer | None:
        """Refresh the metadata and return the newest release of `channel` that is newer
        than `current_version` and allows updating from it (min_version), else None.

        Raises:
            UpdateRefused: the metadata failed verification, or the server failed.
        """
        if channel not in CHANNELS:
            _refuse("config", f"unknown channel {channel!r}")
        current = _parse_version(current_version)
        with _refusals("check"):
            updater = self._updater()
            updater.refresh()
            offer = choose_offer(channel, _channel_targets(updater, channel), current)
            info = updater.get_targetinfo(offer.target_path) if offer else None
        if offer is None:
            log.event("update.none", channel=channel, current=current_version)
            return None
        if info is None or _release_version(channel, info) is None or _offer(
                channel, info) != offer:      # another role shadows the channel's target
            _refuse("tampered", f"{offer.target_path} resolves to other signed data")
        self._checked[offer.target_path] = (updater, info)
        log.event("update.offer", channel=channel, current=current_version,
                  version=offer.version, length=offer.length)
        return _offer(channel, info)

    def download(self, offer: Offer, dest_dir: Path) -> Path:
        """Download `offer` into `dest_dir/<bundle name>`, verified against its signed
        length and SHA-256; a partial file never stays behind.

        Raises:
            UpdateRefused: oversize, tampered (hash or length), unreachable, or the release
                changed since the check (tampered).
        """
        if offer.length > self.config.max_bundle_size:
            _refuse("oversize", f"release {offer.version} is {offer.length} bytes, more than "
                    f"update.max_bundle_size ({self.config.max_bundle_size})")
        dest_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        final = dest_dir / offer.target_path.rsplit("/", 1)[-1]
        partial = dest_dir / f".{final.name}.part"
        try:
            with _refusals("download"):
                updater, info = self._verified(offer)
                self._fetch_verified(updater, info, partial)
            os.replace(partial, final)
            fsio.fsync_dir(dest_dir)
        finally:
            partial.unlink(missing_ok=True)
        log.event("update.downloaded", version=offer.version, length=offer.length)
        return final

    def _fetch_verified(self, updater: Updater, info: TargetFile, partial: Path) -> None:
        """What ngclient's `Updater.download_target` does (python-tuf 7: the URL, the length
        bound, `verify_length_and_hashes`), but streaming into `partial` itself rather than
        into a temporary file that is then copied: a bundle is written to disk once."""
        with partial.open("w+b") as out:
            self.fetcher.download_into(_target_url(updater, self.config.url, info),
                                       info.length, out)
            out.flush()
            info.verify_length_and_hashes(out)      # reads the file back (page cache)
            os.fsync(out.fileno())

    def _verified(self, offer: Offer) -> tuple[Updater, TargetFile]:
        found = self._checked.get(offer.target_path)
        if found is None:
            updater = self._updater()
            info = updater.get_targetinfo(offer.target_path)
            if info is None:
                _refuse("tampered", f"release {offer.version} is no longer published")
            found = (updater, info)
        if (_release_version(offer.channel, found[1]) is None
                or _offer(offer.channel, found[1]) != offer):
            _refuse("tampered", f"release {offer.version} changed since it was checked")
        return found

    def _updater(self) -> Updater:
        if not self.config.url:
            _refuse("config", "update.url is empty: updates are off")
        try:
            bootstrap = self.config.trusted_root.read_bytes()
        except OSError as exc:
            _refuse("config", f"cannot read the trusted root {self.config.trusted_root}: "
                    f"{exc.strerror}")
        # Signed public metadata, no secret: readable (the console shows the update state
        # kept beside it), written only by the updater (root on the appliance).
        self.config.cache_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        base = _base(self.config.url)
        return Updater(str(self.config.cache_dir), f"{base}/metadata/",
                       target_base_url=f"{base}/targets/", fetcher=self.fetcher,
                       config=METADATA_LIMITS, bootstrap=bootstrap)


def _target_url(updater: Updater, base_url: str, info: TargetFile) -> str:
    """The target's URL as ngclient's download_target builds it: under the targets URL,
    the file name prefixed with its first hash when the (verified) root uses consistent
    snapshots (TUF spec 5.7.3; `release add` stores bundles as `<sha256>.<name>`)."""
    path = info.path
    if updater._trusted_set.root.consistent_snapshot and updater.config.prefix_targets_with_hash:
        folder, sep, name = path.rpartition("/")
        path = f"{folder}{sep}{next(iter(info.hashes.values()))}.{name}"
    return f"{_base(base_url)}/targets/{path}"


def _base(url: str) -> str:
    return url.rstrip("/")


def choose_offer(channel: str, targets: Iterable[TargetFile], current: Version) -> Offer | None:
    """The newest target newer than `current` whose min_version allows `current`. Targets
    whose custom metadata is malformed, or whose path does not name their version, are
    ignored (signed, but not a release this client understands)."""
    best: tuple[Version, TargetFile] | None = None
    for target in targets:
        version = _release_version(channel, target)
        if version is None or version <= current:
            continue        # never an older or the same version: no rollback by choice
        if Version(target.custom["min_version"]) > current:
            continue
        if best is None or version > best[0]:
            best = (version, target)
    return None if best is None else _offer(channel, best[1])


def _release_version(channel: str, target: TargetFile) -> Version | None:
    custom = target.unrecognized_fields.get("custom")
    if not isinstance(custom, dict):
        return None
    version, minimum, schema = (custom.get(k) for k in ("version", "min_version",
                                                       "data_schema"))
    if not (isinstance(version, str) and isinstance(minimum, str)
            and isinstance(schema, int) and not isinstance(schema, bool) and schema >= 0
            and target.path == target_path(channel, version) and "sha256" in target.hashes):
        return None
    try:
        Version(minimum)
        return Version(version)
    except InvalidVersion:
        return None


def _offer(channel: str, target: TargetFile) -> Offer:
    custom = target.custom
    return Offer(channel=channel, version=custom["version"],
                 min_version=custom["min_version"], data_schema=custom["data_schema"],
                 target_path=target.path, length=target.length,
                 sha256=target.hashes["sha256"])


def _channel_targets(updater: Updater, channel: str) -> list[TargetFile]:
    """Every target the channel's delegated role lists. ngclient looks targets up by exact
    path only; asking for a path under the channel makes it load and verify the channel's
    metadata (delegated from targets), which its trusted set then holds."""
    updater.get_targetinfo(f"{channel}/{_PROBE}")
    trusted = updater._trusted_set       # verified metadata, only read here
    if not trusted.contains(channel, "targets"):
        return []
    role = trusted[channel]
    assert isinstance(role, Targets)
    return list(role.targets.values())


def _parse_version(text: str) -> Version:
    try:
        return Version(text)
    except InvalidVersion:
        _refuse("config", f"the running version {text!r} is not a version")


def _refuse(reason: str, detail: str) -> NoReturn:
    log.event("update.refused", logging.WARNING, reason=reason, detail=detail)
    raise UpdateRefused(reason, f"{_MESSAGES[reason]} ({detail})")


@contextlib.contextmanager
def _refusals(action: str) -> Iterator[None]:
    """Turn python-tuf's and the fetcher's errors into one UpdateRefused each."""
    try:
        yield
    except exceptions.UnsignedMetadataError as exc:
        _refuse("bad-signature", f"{action}: {exc}")
    except exceptions.ExpiredMetadataError as exc:
        _refuse("expired", f"{action}: {exc}")
    except exceptions.BadVersionNumberError as exc:
        _refuse("rollback", f"{action}: {exc}")
    except exceptions.RepositoryError as exc:   # hashes, lengths, malformed metadata
        _refuse("tampered", f"{action}: {exc}")
    except exceptions.DownloadLengthMismatchError as exc:
        _refuse("oversize", f"{action}: {exc}")
    except exceptions.DownloadError as exc:
        _refuse("unreachable", f"{action}: {_cause(exc)}")


def _cause(exc: BaseException) -> str:
    """The innermost reason of a download error (an SSL failure, a refused connection)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return str(exc) or type(exc).__name__
