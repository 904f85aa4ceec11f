"""SSH access, key-only: `ssh.enabled` and `ssh.authorized_keys` applied to the appliance.

The image ships openssh-server disabled, keys only (image/overlay/etc/ssh/sshd_config.d/
50-mailstead.conf: `AuthorizedKeysFile /var/lib/mailstead/.system/ssh/authorized_keys/%u`).
This module checks the admin's keys (pure: `parse_keys`, also the console's validator),
renders root's authorized_keys file (`authorized_keys_text`) and, as root (`apply`, from
`mailstead ssh apply`: at boot and when the console touches the trigger file a path unit
watches), writes that file and starts or stops ssh.service. The root file system is
read-only, so `systemctl enable` cannot work: the unit starts sshd at every boot instead.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.core import fsio, log
from appliance.core.run import run_tool
from appliance.settings import Settings

TRIGGER_NAME = "ssh.apply"      # in data_dir: the console touches it after a change
KEYS_DIR = Path("/var/lib/mailstead/.system/ssh/authorized_keys")   # = sshd's config
KEY_FILE = "root"               # AuthorizedKeysFile .../%u: only root logs in
SERVICE = "ssh.service"
SYSTEMCTL_TIMEOUT = 60.0        # seconds for `systemctl start|stop` (sshd -t runs first)

# Limits on the admin's text (every limit on untrusted input is named here)
MAX_KEYS = 20
MAX_LINE = 8192                 # characters of one line: an RSA 16384-bit key is ~2.8 K
MAX_TEXT = 65536                # characters of the whole setting
MAX_COMMENT = 200
MIN_RSA_BITS = 3072             # NIST SP 800-57: 2048-bit RSA is below 128-bit strength

# key type -> the curve name inside the blob (ECDSA, RFC 5656 3.1), or "" (none)
KEY_TYPES: dict[str, str] = {
    "ssh-ed25519": "",
    "sk-ssh-ed25519@openssh.com": "",
    "ecdsa-sha2-nistp256": "nistp256",
    "ecdsa-sha2-nistp384": "nistp384",
    "ecdsa-sha2-nistp521": "nistp521",
    "sk-ecdsa-sha2-nistp256@openssh.com": "nistp256",
    "ssh-rsa": "",
}
# uncompressed EC point lengths (SEC 1 2.3.3: 0x04 || X || Y)
_POINT_LENGTHS = {"nistp256": 65, "nistp384": 97, "nistp521": 133}
# sshd(8) AUTHORIZED_KEYS FILE FORMAT: the options without a value (with one: "=")
_OPTION_WORDS = frozenset({
    "agent-forwarding", "cert-authority", "no-agent-forwarding", "no-port-forwarding",
    "no-pty", "no-user-rc", "no-x11-forwarding", "port-forwarding", "pty", "restrict",
    "user-rc", "x11-forwarding", "no-touch-required", "verify-required"})
_BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")


class SshKeyError(ValueError):
    """A line of `ssh.authorized_keys` is refused; the message names the line."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}" if line else reason)
        self.line = line
        self.reason = reason


@dataclass(frozen=True)
class AuthorizedKey:
    """One accepted public key (the blob is the key's SSH wire encoding)."""

    key_type: str
    blob: bytes
    comment: str
    bits: int

    @property
    def fingerprint(self) -> str:
        """`SHA256:...` as `ssh-keygen -l` prints it (unpadded base64 of the blob's hash)."""
        digest = base64.b64encode(hashlib.sha256(self.blob).digest()).decode("ascii")
        return "SHA256:" + digest.rstrip("=")

    def line(self) -> str:
        encoded = base64.b64encode(self.blob).decode("ascii")
        return " ".join(part for part in (self.key_type, encoded, self.comment) if part)


def parse_keys(text: str) -> list[AuthorizedKey]:
    """Parse OpenSSH authorized_keys lines: `TYPE BASE64 [COMMENT]`, one key a line; blank
    lines and `#` comments are skipped. No options prefix (`command=`, `from=`, ...).

    Raises:
        SshKeyError: the first refused line (numbered from 1), or too much text.
    """
    if len(text) > MAX_TEXT:
        raise SshKeyError(0, f"longer than {MAX_TEXT} characters")
    keys: list[AuthorizedKey] = []
    seen: dict[bytes, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key = parse_line(number, line)
        if key.blob in seen:
            raise SshKeyError(number, f"the same key as line {seen[key.blob]}")
        seen[key.blob] = number
        keys.append(key)
        if len(keys) > MAX_KEYS:
            raise SshKeyError(number, f"more than {MAX_KEYS} keys")
    return keys


def parse_line(number: int, line: str) -> AuthorizedKey:
    """One non-blank line (see `parse_keys`)."""
    if len(line) > MAX_LINE:
        raise SshKeyError(number, f"longer than {MAX_LINE} characters")
    if any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in line):
        raise SshKeyError(number, "control characters are not allowed")
    parts = line.split(None, 2)
    key_type = parts[0]
    if key_type not in KEY_TYPES:
        if "=" in key_type or "," in key_type or key_type.lower() in _OPTION_WORDS:
            raise SshKeyError(number, "options before the key (such as command=, from=, "
                                      "no-pty) are not accepted: give TYPE KEY [COMMENT]")
        raise SshKeyError(number, f"unknown key type {key_type[:40]!r}: expected one of "
                                  + ", ".join(KEY_TYPES))
    if len(parts) < 2:
        raise SshKeyError(number, "the key itself (base64) is missing after its type")
    comment = parts[2].strip() if len(parts) > 2 else ""
    if len(comment) > MAX_COMMENT:
        raise SshKeyError(number, f"the comment is longer than {MAX_COMMENT} characters")
    blob = _decode(number, parts[1])
    bits = _check_blob(number, key_type, blob)
    return AuthorizedKey(key_type, blob, comment, bits)


def _decode(number: int, text: str) -> bytes:
    if not _BASE64.match(text) or len(text) % 4:
        raise SshKeyError(number, "the key is not valid base64")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SshKeyError(number, "the key is not valid base64") from exc


class _Blob:
    """A reader of the SSH wire encoding (RFC 4251 5: uint32-length strings)."""

    def __init__(self, number: int, data: bytes) -> None:
        self.number, self.data, self.at = number, data, 0

    def string(self) -> bytes:
        if self.at + 4 > len(self.data):
            raise SshKeyError(self.number, "the key is truncated")
        size = int.from_bytes(self.data[self.at:self.at + 4], "big")
        start, self.at = self.at + 4, self.at + 4 + size
        if self.at > len(self.data):
            raise SshKeyError(self.number, "the key is truncated")
        return self.data[start:self.at]

    def end(self) -> None:
        if self.at != len(self.data):
            raise SshKeyError(self.number, "the key has trailing bytes")


def _check_blob(number: int, key_type: str, blob: bytes) -> int:
    """Check the decoded key against its line's type; its size in bits."""
    reader = _Blob(number, blob)
    inner = reader.string()
    if inner != key_type.encode():
        raise SshKeyError(number, f"the key inside is {inner[:40].decode(errors='replace')!r}, "
                                  f"not {key_type!r} as the line says")
    if key_type == "ssh-rsa":
        bits = _rsa_bits(reader)
    elif KEY_TYPES[key_type]:
        bits = _ecdsa_bits(reader, KEY_TYPES[key_type])
    else:
        if len(reader.string()) != 32:                  # RFC 8709 4
            raise SshKeyError(number, "an Ed25519 key has 32 bytes")
        bits = 256
    if key_type.startswith("sk-"):
        reader.string()                                 # the FIDO application ("ssh:")
    reader.end()
    return bits


def _rsa_bits(reader: _Blob) -> int:
    """RFC 4253 6.6: mpint e, mpint n; the modulus must be at least MIN_RSA_BITS."""
    exponent = int.from_bytes(reader.string(), "big")
    bits = int.from_bytes(reader.string(), "big").bit_length()
    if exponent < 3 or exponent % 2 == 0:
        raise SshKeyError(reader.number, "the RSA exponent is invalid")
    if bits < MIN_RSA_BITS:
        raise SshKeyError(reader.number, f"an RSA key of {bits} bits is too weak: at least "
                                         f"{MIN_RSA_BITS} (or use ssh-ed25519)")
    return bits


def _ecdsa_bits(reader: _Blob, curve: str) -> int:
    """RFC 5656 3.1: string curve name, string Q (an uncompressed point)."""
    if reader.string() != curve.encode():
        raise SshKeyError(reader.number, f"the key's curve is not {curve}")
    point = reader.string()
    if len(point) != _POINT_LENGTHS[curve] or point[:1] != b"\x04":
        raise SshKeyError(reader.number, f"the key is not a {curve} point")
    return {"nistp256": 256, "nistp384": 384, "nistp521": 521}[curve]


def authorized_keys_text(keys: list[AuthorizedKey]) -> str:
    """root's authorized_keys file (sshd reads it at every login: no reload needed)."""
    head = "# Written by `mailstead ssh apply` from ssh.authorized_keys; changes here are lost.\n"
    return head + "".join(key.line() + "\n" for key in keys)


@dataclass(frozen=True)
class SshPlan:
    """What `apply` does: the file's text (None: remove it) and the systemctl action."""

    enabled: bool
    keys: tuple[AuthorizedKey, ...]

    @property
    def running(self) -> bool:
        return self.enabled and bool(self.keys)

    @property
    def action(self) -> str:
        return "start" if self.running else "stop"

    @property
    def file_text(self) -> str | None:
        return authorized_keys_text(list(self.keys)) if self.running else None


def plan(settings: Settings) -> SshPlan:
    """The plan for these settings.

    Raises:
        SshKeyError: `ssh.authorized_keys` holds a refused line.
    """
    return SshPlan(settings.get_bool("ssh.enabled"),
                   tuple(parse_keys(settings.get_str("ssh.authorized_keys"))))


def apply(settings: Settings, *, keys_dir: Path = KEYS_DIR,
          systemctl: str = "systemctl") -> SshPlan:
    """As root: write (or remove) `<keys_dir>/root`, then start or stop ssh.service.

    Raises:
        SshKeyError: a refused key (nothing was changed).
        RuntimeError: systemctl failed (the key file is already written or removed).
    """
    wanted = plan(settings)
    path = keys_dir / KEY_FILE
    if wanted.file_text is None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            fsio.fsync_dir(keys_dir)
    else:
        # 0644 whatever the umask: sshd's StrictModes wants no group or world write
        fsio.atomic_write(path, wanted.file_text.encode("utf-8"), 0o644)
    done = run_tool([systemctl, wanted.action, SERVICE], SYSTEMCTL_TIMEOUT)
    fields: dict[str, Any] = {
        "enabled": wanted.enabled, "keys": len(wanted.keys), "action": wanted.action,
        "fingerprints": ",".join(k.fingerprint for k in wanted.keys)}
    if done.returncode != 0:
        message = (done.stderr or done.stdout).decode(errors="replace").strip()[:500]
        log.event("ssh.apply_failed", status=done.returncode, error=message, **fields)
        raise RuntimeError(f"systemctl {wanted.action} {SERVICE} failed: {message}")
    log.event("ssh.applied", **fields)
    return wanted


def request_apply(data_dir: Path) -> None:
    """The console's side: touch the trigger file (its content is never read)."""
    (data_dir / TRIGGER_NAME).write_bytes(b"")
