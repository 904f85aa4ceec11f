"""DKIM keys of the local domains: generation, storage, dated selectors and rotation.

Each domain has a directory `data_dir/dkim/<domain>/` holding one RSA-2048 and one Ed25519
(RFC 8463) private key per selector pair, as 0600 PEM files named `<selector>.pem`, and
`state.json` naming the active pair (used for signing) and the pending one (created by a
rotation, published in DNS, not yet used). A pair shares a dated base, e.g. `ms202611`,
giving selectors `ms202611r` (RSA) and `ms202611e` (Ed25519); a second pair created in the
same month gets `ms202611-2r`/`ms202611-2e`.
"""

from __future__ import annotations

import base64
import datetime
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from appliance.core.addresses import normalise_domain
from appliance.core.fsio import atomic_write, safe_component

DKIM_DIR = "dkim"
STATE_FILE = "state.json"
RSA_BITS = 2048
SELECTOR_PREFIX = "ms"
MAX_CACHED_RECORDS = 1024    # public records kept (two per domain and pair); then afresh

# key file -> ((inode, mtime_ns, size), TXT value): see public_record. Holds public data only.
_PUBLIC_RECORDS: dict[Path, tuple[tuple[int, int, int], str]] = {}


class DkimKeyError(ValueError):
    """A domain has no usable keys, or a state change is not possible; says why."""


@dataclass(frozen=True)
class SelectorPair:
    """The two selectors created together: `<base>r` (RSA) and `<base>e` (Ed25519)."""

    base: str

    @property
    def rsa(self) -> str:
        return f"{self.base}r"

    @property
    def ed25519(self) -> str:
        return f"{self.base}e"


@dataclass(frozen=True)
class DomainKeys:
    """What `state.json` says for one domain."""

    domain: str
    active: SelectorPair
    pending: SelectorPair | None


@dataclass(frozen=True)
class SigningKey:
    """One private key ready for dkimpy: `private` is PKCS#1 PEM (RSA) or the base64 of the
    32-byte seed (Ed25519, as dkimpy wants it)."""

    selector: str
    algorithm: bytes            # b"rsa-sha256" or b"ed25519-sha256"
    private: bytes


def dkim_root(data_dir: Path) -> Path:
    return data_dir / DKIM_DIR


def domain_dir(data_dir: Path, domain: str) -> Path:
    return dkim_root(data_dir) / safe_component(normalise_domain(domain))


def next_base(existing: set[str], today: datetime.date | None = None) -> str:
    """A fresh dated selector base not in `existing` (bases already used by the domain)."""
    day = today or datetime.datetime.now(datetime.UTC).date()
    base = f"{SELECTOR_PREFIX}{day.year:04d}{day.month:02d}"
    number = 2
    candidate = base
    while candidate in existing:
        candidate = f"{base}-{number}"
        number += 1
    return candidate


def load_state(data_dir: Path, domain: str) -> DomainKeys | None:
    """The domain's key state, or None when it has no keys."""
    path = domain_dir(data_dir, domain) / STATE_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise DkimKeyError(f"unreadable DKIM state {path}: {exc}") from exc
    pending = raw.get("pending")
    return DomainKeys(normalise_domain(domain), SelectorPair(str(raw["active"])),
                      SelectorPair(str(pending)) if pending else None)


def _save_state(data_dir: Path, keys: DomainKeys) -> None:
    text = json.dumps({"active": keys.active.base,
                       "pending": keys.pending.base if keys.pending else None})
    atomic_write(domain_dir(data_dir, keys.domain) / STATE_FILE, text.encode() + b"\n")


def _generate_pair(directory: Path, pair: SelectorPair) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    rsa_pem = rsa_key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption())
    ed_pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    atomic_write(directory / f"{pair.rsa}.pem", rsa_pem, 0o600)
    atomic_write(directory / f"{pair.ed25519}.pem", ed_pem, 0o600)


def _make_dir(data_dir: Path, domain: str) -> Path:
    dkim_root(data_dir).mkdir(mode=0o700, exist_ok=True)
    directory = domain_dir(data_dir, domain)
    directory.mkdir(mode=0o700, exist_ok=True)
    return directory


def ensure_keys(data_dir: Path, domain: str, today: datetime.date | None = None) -> DomainKeys:
    """The domain's keys, creating a first active pair when it has none."""
    current = load_state(data_dir, domain)
    if current is not None:
        return current
    directory = _make_dir(data_dir, domain)
    pair = SelectorPair(next_base(set(), today))
    _generate_pair(directory, pair)
    keys = DomainKeys(normalise_domain(domain), pair, None)
    _save_state(data_dir, keys)
    return keys


def used_bases(data_dir: Path, domain: str) -> set[str]:
    """Every selector base that has key files in the domain's directory."""
    directory = domain_dir(data_dir, domain)
    return {p.name[:-len("r.pem")] for p in directory.glob("*r.pem")}


def start_rotation(data_dir: Path, domain: str,
                   today: datetime.date | None = None) -> DomainKeys:
    """Create the next pair as pending (or keep the pending one); signing does not change."""
    current = load_state(data_dir, domain)
    if current is None:
        raise DkimKeyError(f"{domain} has no DKIM keys")
    if current.pending is not None:
        return current
    pair = SelectorPair(next_base(used_bases(data_dir, domain), today))
    _generate_pair(domain_dir(data_dir, domain), pair)
    keys = DomainKeys(current.domain, current.active, pair)
    _save_state(data_dir, keys)
    return keys


def activate_pending(data_dir: Path, domain: str) -> DomainKeys:
    """Make the pending pair the active one (the old key files stay, for the record)."""
    current = load_state(data_dir, domain)
    if current is None or current.pending is None:
        raise DkimKeyError(f"{domain} has no pending DKIM keys: run `mailstead dkim rotate`")
    keys = DomainKeys(current.domain, current.pending, None)
    _save_state(data_dir, keys)
    return keys


def _private_key(data_dir: Path, domain: str, selector: str
                 ) -> rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey:
    path = domain_dir(data_dir, domain) / f"{selector}.pem"
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, (rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey)):
        raise DkimKeyError(f"{path} is neither an RSA nor an Ed25519 key")
    return key


def signing_keys(data_dir: Path, domain: str) -> list[SigningKey]:
    """The active pair as dkimpy wants it (RSA first), or [] when the domain has no keys."""
    state = load_state(data_dir, domain)
    if state is None:
        return []
    rsa_pem = (domain_dir(data_dir, domain) / f"{state.active.rsa}.pem").read_bytes()
    ed_key = _private_key(data_dir, domain, state.active.ed25519)
    seed = ed_key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
    return [SigningKey(state.active.rsa, b"rsa-sha256", rsa_pem),
            SigningKey(state.active.ed25519, b"ed25519-sha256", base64.b64encode(seed))]


def public_record(data_dir: Path, domain: str, selector: str) -> str:
    """The TXT record value for `selector` (RFC 6376 3.6.1; RFC 8463 4 for Ed25519, whose
    p= is the raw 32-byte public key).

    Loading an RSA private key checks it and costs milliseconds, so the record is kept per
    key file while its inode, mtime and size stay the same: a key written anew (always by
    an atomic rename, so a new inode) is read again.
    """
    path = domain_dir(data_dir, domain) / f"{selector}.pem"
    status = path.stat()
    stamp = (status.st_ino, status.st_mtime_ns, status.st_size)
    cached = _PUBLIC_RECORDS.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    record = _record_of(_private_key(data_dir, domain, selector))
    if len(_PUBLIC_RECORDS) >= MAX_CACHED_RECORDS:
        _PUBLIC_RECORDS.clear()
    # Stamped before reading: a file replaced in between is read again on the next call.
    _PUBLIC_RECORDS[path] = (stamp, record)
    return record


def _record_of(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        der = key.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
        return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"
    raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"


def pair_records(data_dir: Path, domain: str, pair: SelectorPair) -> list[tuple[str, str]]:
    """(owner name, TXT value) for both selectors of `pair`."""
    name = normalise_domain(domain)
    return [(f"{selector}._domainkey.{name}", public_record(data_dir, domain, selector))
            for selector in (pair.rsa, pair.ed25519)]
