"""Publishing releases: a TUF repository (python-tuf Metadata API) on disk, with its keys.

Layout of a repository work directory `DIR` (only `DIR/public/` is served, by any static
HTTPS server; the client's `update.url` names it):

    DIR/public/metadata/  N.root.json (every version: clients walk the chain), root.json,
                          N.targets.json, N.stable.json, N.beta.json, N.snapshot.json,
                          timestamp.json (consistent snapshots, TUF spec 5.5 / 6.2)
    DIR/public/targets/   <channel>/<sha256>.mailstead-<version>-amd64.bundle
    DIR/keys/             the online private keys (targets, snapshot, timestamp, stable,
                          beta), PEM PKCS#8, one `<keyid>.pem` each, 0600 in a 0700 directory

Key handling: the root keys are the trust anchor: `create` writes them into a separate
directory (`--root-keys OFFLINE_DIR`) that the operator moves to offline storage (an
encrypted USB stick in a safe) and brings back only to re-sign root: once a year (root
expiry), to rotate a key, or to change the root threshold. The online keys sign what changes
often and live beside the repository on the publishing host. Compromise of an online key is
survived by rotating it (`rotate`): root (or targets, for a channel key) then lists only the
new key, and clients drop the old one at their next check. A root rotation writes root N+1
signed by the old root keys (a threshold of them) and the new ones, so a client that trusts
root N follows the chain (TUF spec 5.3.4); old root files stay published for that reason.
Private keys are never logged or printed; retired key files are deleted.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from packaging.version import InvalidVersion, Version

# (the defining modules: these packages re-export without __all__, which mypy --strict
# does not accept as an export)
from securesystemslib.signer._crypto_signer import CryptoSigner
from securesystemslib.signer._key import Key
from securesystemslib.signer._signer import Signer
from tuf.api._payload import (
    DelegatedRole,
    Delegations,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.metadata import Metadata
from tuf.api.serialization.json import JSONSerializer

from appliance.core.fsio import atomic_write
from appliance.update.bundle import bundle_name

CHANNELS = ("stable", "beta")
TOP_ROLES = ("root", "targets", "snapshot", "timestamp")
ROLES = TOP_ROLES + CHANNELS
DAY = datetime.timedelta(days=1)
AnyMetadata = Metadata[Any]
_VERSIONED = re.compile(r"^(\d+)\.([a-z]+)\.json$")


def target_path(channel: str, version: str) -> str:
    """The TUF target path of a release in a channel (`stable/mailstead-1.2-amd64.bundle`)."""
    return f"{channel}/{bundle_name(version)}"


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class RepositoryError(Exception):
    """The repository cannot do what was asked; the message says why (no key material)."""


@dataclass(frozen=True)
class Expiries:
    """How long each role's metadata stays valid after it is signed. Timestamp is short so
    a frozen mirror is noticed within a day (the publisher refreshes it by cron)."""

    root: datetime.timedelta = 365 * DAY
    targets: datetime.timedelta = 90 * DAY      # also the channels' delegated roles
    snapshot: datetime.timedelta = 7 * DAY
    timestamp: datetime.timedelta = 1 * DAY

    def of(self, role: str) -> datetime.timedelta:
        value: datetime.timedelta = getattr(self, role if role in TOP_ROLES else "targets")
        return value


@dataclass
class ReleaseRepository:
    """One repository work directory; every operation writes signed metadata at once.

    Args:
        workdir: the `DIR` of the module docstring.
        root_keys: the offline directory with the root private keys (needed only to change
            root: `create`, rotations).
        expiries: validity per role.
        clock: the current UTC time (tests pass a fixed one).
    """

    workdir: Path
    root_keys: Path | None = None
    expiries: Expiries = field(default_factory=Expiries)
    clock: Callable[[], datetime.datetime] = utc_now

    @property
    def metadata_dir(self) -> Path:
        return self.workdir / "public" / "metadata"

    @property
    def targets_dir(self) -> Path:
        return self.workdir / "public" / "targets"

    @property
    def keys_dir(self) -> Path:
        return self.workdir / "keys"

    # -- creating ---------------------------------------------------------------------------

    def create(self, *, root_threshold: int = 1, root_key_count: int = 0) -> None:
        """Generate every key and write version 1 of all metadata.

        Args:
            root_threshold: how many root keys must sign a new root.
            root_key_count: how many root keys to make (at least the threshold).

        Raises:
            RepositoryError: the directory already holds a repository, or bad numbers.
        """
        if self.root_keys is None:
            raise RepositoryError("creating a repository needs the offline root-keys directory")
        if self.metadata_dir.exists():
            raise RepositoryError(f"{self.metadata_dir} exists: a repository is already there")
        if root_threshold < 1 or (root_key_count and root_key_count < root_threshold):
            raise RepositoryError("the root threshold must be at least 1 and at most the keys")
        for path in (self.metadata_dir, self.targets_dir):
            _public_dir(path)
        root = Root(expires=self._expiry("root"), consistent_snapshot=True)
        for _ in range(max(root_threshold, root_key_count)):
            root.add_key(self._new_key("root"), "root")
        root.roles["root"].threshold = root_threshold
        for role in ("targets", "snapshot", "timestamp"):
            root.add_key(self._new_key(role), role)
        roles = {name: DelegatedRole(name, [], 1, True, paths=[f"{name}/*"])
                 for name in CHANNELS}
        targets = Targets(expires=self._expiry("targets"),
                          delegations=Delegations(keys={}, roles=roles))
        for name in CHANNELS:
            targets.add_key(self._new_key(name), name)
        self._sign_and_write("root", Metadata(root))
        self._sign_and_write("targets", Metadata(targets))
        for name in CHANNELS:
            self._sign_and_write(name, Metadata(Targets(expires=self._expiry(name))))
        self._sign_and_write("snapshot", Metadata(self._snapshot_signed(1)))
        self._sign_and_write("timestamp", Metadata(self._timestamp_signed(1)))

    # -- releases ---------------------------------------------------------------------------

    def add_release(self, channel: str, bundle: Path, *, version: str, min_version: str,
                    data_schema: int) -> TargetFile:
        """Copy `bundle` into the channel under its hash and sign it in, with the custom
        metadata the client chooses by; re-sign snapshot and timestamp.

        Raises:
            RepositoryError: unknown channel, bad version, or the version is there already.
        """
        _check_release(channel, version, min_version, data_schema)
        md = self.load(channel)
        assert isinstance(md.signed, Targets)
        path = target_path(channel, version)
        if path in md.signed.targets:
            raise RepositoryError(f"{version} is already published in {channel}: remove it "
                                  "first (a version never changes its bytes)")
        target = TargetFile.from_file(path, str(bundle), ["sha256"])
        target.unrecognized_fields["custom"] = {
            "version": version, "min_version": min_version, "data_schema": data_schema}
        self._copy_target(bundle, channel, target)
        md.signed.targets[path] = target
        self._bump_and_write(channel, md)
        self.publish()
        return target

    def remove_release(self, channel: str, version: str) -> None:
        """Withdraw a version from a channel (metadata first, then its file)."""
        md = self.load(channel)
        assert isinstance(md.signed, Targets)
        target = md.signed.targets.pop(target_path(channel, version), None)
        if target is None:
            raise RepositoryError(f"{version} is not published in {channel}")
        self._bump_and_write(channel, md)
        self.publish()
        (self.targets_dir / channel / _hashed_name(target)).unlink(missing_ok=True)

    def releases(self, channel: str) -> list[TargetFile]:
        md = self.load(channel)
        assert isinstance(md.signed, Targets)
        return list(md.signed.targets.values())

    # -- snapshot and timestamp -------------------------------------------------------------

    def publish(self) -> None:
        """A new snapshot of the current targets and channels, then a new timestamp."""
        version = self.load("snapshot").signed.version + 1
        self._sign_and_write("snapshot", Metadata(self._snapshot_signed(version)))
        self.refresh_timestamp()

    def renew(self) -> list[str]:
        """The publisher's cron job: a new timestamp always; before that, every online role
        past half its validity is re-signed (targets, channels, then snapshot), so nothing
        expires while releases are rare. Returns the roles re-signed besides timestamp."""
        now = self.clock()
        due = [role for role in ("targets", *CHANNELS, "snapshot")
               if self.load(role).signed.expires - now < self.expiries.of(role) / 2]
        for role in due:
            if role != "snapshot":
                self._bump_and_write(role, self.load(role))
        if due:
            self.publish()
        else:
            self.refresh_timestamp()
        return due

    def refresh_timestamp(self) -> None:
        """A new timestamp (version + 1, fresh expiry) of the current snapshot: run by cron
        on the publisher well within `Expiries.timestamp`."""
        version = self.load("timestamp").signed.version + 1
        self._sign_and_write("timestamp", Metadata(self._timestamp_signed(version)))

    # -- rotation ---------------------------------------------------------------------------

    def rotate(self, role: str) -> list[str]:
        """Replace every key of `role` by as many new ones; returns the new key ids.

        The delegating metadata (root for top-level roles, targets for a channel) lists the
        new keys; root is signed by the old and the new root keys together. The role's own
        metadata is then re-signed with its new keys, and snapshot and timestamp follow.

        Raises:
            RepositoryError: unknown role, or a key needed for signing is missing.
        """
        if role not in ROLES:
            raise RepositoryError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
        parent = "targets" if role in CHANNELS else "root"
        parent_md = self.load(parent)
        delegator = parent_md.signed
        assert isinstance(delegator, Root | Targets)
        old_ids = list(delegator.get_delegated_role(role).keyids)
        # root N+1 is signed by root N's keys too (loaded before their files go); another
        # role's old key is not needed, and may be the one that was lost
        old_signers = self._signers(role) if role == "root" else []
        for keyid in old_ids:
            delegator.revoke_key(keyid, role)
        new_ids = [self._add_new_key(delegator, role) for _ in old_ids]
        self._bump_and_write(parent, parent_md, also=old_signers)
        if role in CHANNELS or role == "targets":
            self._bump_and_write(role, self.load(role))
        if role == "timestamp":
            self.refresh_timestamp()
        elif role != "root":
            self.publish()
        self._forget_keys(role, old_ids)
        return new_ids

    # -- loading and writing ----------------------------------------------------------------

    def load(self, role: str) -> AnyMetadata:
        """The newest metadata of `role` on disk."""
        if role == "timestamp":
            return Metadata.from_file(str(self.metadata_dir / "timestamp.json"))
        versions = [int(m.group(1)) for p in self._metadata_files()
                    if (m := _VERSIONED.match(p.name)) and m.group(2) == role]
        if not versions:
            raise RepositoryError(f"no {role} metadata in {self.metadata_dir}")
        return Metadata.from_file(str(self.metadata_dir / f"{max(versions)}.{role}.json"))

    def _metadata_files(self) -> list[Path]:
        if not self.metadata_dir.is_dir():
            raise RepositoryError(f"{self.metadata_dir} is not a repository: run release init")
        return list(self.metadata_dir.iterdir())

    def _snapshot_signed(self, version: int) -> Snapshot:
        meta = {f"{role}.json": self._metafile(role) for role in ("targets", *CHANNELS)}
        return Snapshot(version=version, expires=self._expiry("snapshot"), meta=meta)

    def _timestamp_signed(self, version: int) -> Timestamp:
        return Timestamp(version=version, expires=self._expiry("timestamp"),
                         snapshot_meta=self._metafile("snapshot"))

    def _metafile(self, role: str) -> MetaFile:
        md = self.load(role)
        name = f"{md.signed.version}.{role}.json"
        return MetaFile(version=md.signed.version,
                        length=(self.metadata_dir / name).stat().st_size)

    def _bump_and_write(self, role: str, md: AnyMetadata, *,
                        also: Iterable[Signer] = ()) -> None:
        """Version + 1, a fresh expiry, new signatures; written."""
        md.signed.version += 1
        md.signed.expires = self._expiry(role)
        self._sign_and_write(role, md, also=also)

    def _sign_and_write(self, role: str, md: AnyMetadata, *,
                        also: Iterable[Signer] = ()) -> None:
        md.signatures.clear()
        for signer in (*also, *self._signers(role, md)):
            if signer.public_key.keyid not in md.signatures:
                md.sign(signer, append=True)
        data = md.to_bytes(JSONSerializer(compact=False))
        names = ["timestamp.json"] if role == "timestamp" else [f"{md.signed.version}.{role}.json"]
        names += ["root.json"] if role == "root" else []
        for name in names:
            atomic_write(self.metadata_dir / name, data, 0o644)
            os.chmod(self.metadata_dir / name, 0o644)     # the umask may have cut it

    def _signers(self, role: str, md: AnyMetadata | None = None) -> list[Signer]:
        """Every private key of `role` found on disk; at least the threshold.

        For root, `md` (the new root) names its own keys: a rotation signs with the old
        ones (passed as `also`) and the new ones."""
        parent = md.signed if role == "root" and md is not None else self._delegator(role)
        assert isinstance(parent, Root | Targets)
        delegation = parent.get_delegated_role(role)
        signers = [self._load_signer(role, parent.get_key(keyid))
                   for keyid in delegation.keyids]
        found = [s for s in signers if s is not None]
        if len(found) < delegation.threshold:
            raise RepositoryError(
                f"signing {role} needs {delegation.threshold} of its keys; found {len(found)} "
                f"in {self._key_dir(role)}")
        return found

    def _delegator(self, role: str) -> Root | Targets:
        signed = self.load("targets" if role in CHANNELS else "root").signed
        assert isinstance(signed, Root | Targets)
        return signed

    def _load_signer(self, role: str, key: Key) -> Signer | None:
        path = self._key_dir(role) / f"{key.keyid}.pem"
        if not path.is_file():
            return None
        return CryptoSigner(load_pem_private_key(path.read_bytes(), None), key)  # type: ignore[arg-type]

    def _key_dir(self, role: str) -> Path:
        if role != "root":
            return self.keys_dir
        if self.root_keys is None:
            raise RepositoryError("root must be signed: pass the offline root-keys directory")
        return self.root_keys

    def _new_key(self, role: str) -> Key:
        """A new ed25519 key whose private half is written 0600 into the role's key dir."""
        signer = CryptoSigner.generate_ed25519()
        directory = self._key_dir(role)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write(directory / f"{signer.public_key.keyid}.pem", signer.private_bytes, 0o600)
        return signer.public_key

    def _add_new_key(self, delegator: Root | Targets, role: str) -> str:
        key = self._new_key(role)
        delegator.add_key(key, role)
        return key.keyid

    def _forget_keys(self, role: str, keyids: Iterable[str]) -> None:
        for keyid in keyids:
            (self._key_dir(role) / f"{keyid}.pem").unlink(missing_ok=True)

    def _copy_target(self, bundle: Path, channel: str, target: TargetFile) -> None:
        directory = self.targets_dir / channel
        _public_dir(directory)
        final = directory / _hashed_name(target)
        temp = directory / f".{final.name}.tmp"
        shutil.copyfile(bundle, temp)
        with open(temp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(temp, 0o644)
        os.replace(temp, final)

    def _expiry(self, role: str) -> datetime.datetime:
        return (self.clock() + self.expiries.of(role)).replace(microsecond=0)


def _hashed_name(target: TargetFile) -> str:
    """The consistent-snapshot file name of a target (TUF spec 5.7.3)."""
    return f"{target.hashes['sha256']}.{target.path.rsplit('/', 1)[-1]}"


def _public_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o755)  # noqa: S103 -- served by a web server running as another user


def _check_release(channel: str, version: str, min_version: str, data_schema: int) -> None:
    if channel not in CHANNELS:
        raise RepositoryError(f"unknown channel {channel!r}: one of {', '.join(CHANNELS)}")
    try:
        if Version(min_version) > Version(version):
            raise RepositoryError(f"min_version {min_version} is newer than {version}")
    except InvalidVersion as exc:
        raise RepositoryError(f"not a version: {exc}") from exc
    if data_schema < 0:
        raise RepositoryError("data_schema must be a non-negative integer")
