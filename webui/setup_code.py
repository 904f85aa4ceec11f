"""The one-time setup code: made at first start, kept 0600 in the data directory, removed
once the first admin exists. Whoever types it may run the first-boot wizard.

12 characters from an alphabet without look-alikes (60 bits), shown as XXXX-XXXX-XXXX;
typed in any case, with or without dashes and spaces.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

FILE_NAME = "console-setup-code"
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"   # 32 symbols: no 0/O, 1/I
LENGTH = 12
MAX_TYPED = 64


def path(data_dir: Path) -> Path:
    return data_dir / FILE_NAME


def generate() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    return "-".join(raw[i:i + 4] for i in range(0, LENGTH, 4))


def normalise(typed: str) -> str:
    """Upper case without dashes and white space; over-long input becomes ''."""
    if len(typed) > MAX_TYPED:
        return ""
    return "".join(typed.split()).replace("-", "").upper()


def ensure(data_dir: Path) -> str:
    """The current code, creating it (mode 0600) if there is none. Several console
    processes may race here: the code is written to a private temporary file and linked
    into place, which fails if another process got there first."""
    existing = read(data_dir)
    if existing is not None:
        return existing
    temporary = data_dir / f".{FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(generate() + "\n")
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path(data_dir))
    finally:
        temporary.unlink(missing_ok=True)
    code = read(data_dir)
    assert code is not None
    return code


def read(data_dir: Path) -> str | None:
    try:
        text = path(data_dir).read_text(encoding="ascii").strip()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    return text or None


def remove(data_dir: Path) -> None:
    """Forget the code (the first admin exists: it is of no more use)."""
    path(data_dir).unlink(missing_ok=True)
