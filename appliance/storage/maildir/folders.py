"""Folder names: IMAP names (UTF-8, `/`) <-> Maildir++ directories (`.A.B`), and their checks.

On disk each component is modified UTF-7 (RFC 3501 5.1.3), as Dovecot and Courier write it,
with `.` and `~` inside a component escaped Dovecot-style as `~2e` / `~7e`; INBOX is the
Maildir root itself. Pure functions except `list_folder_dirs` and `make_folder_dir`.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

from appliance.core.fsio import DIRECTORY_SYNC, write_new_file
from appliance.imap import mutf7
from appliance.storage.mailbox_api import DELIMITER, INBOX, InvalidFolderNameError

MAX_DEPTH = 16                # components in one name
MAX_DIR_BYTES = 255           # one directory name on disk (NAME_MAX)
SUBDIRS = ("cur", "new", "tmp")
FOLDER_MARKER = "maildirfolder"    # Maildir++: this directory is a folder of its parent
_ESCAPES = {"~": "~7e", ".": "~2e"}
_UNESCAPE = re.compile(r"~([0-9a-fA-F]{2})")


@functools.lru_cache(maxsize=4096)      # every store call names its folder: check it once
def normalise(name: str) -> str:
    """Check an IMAP folder name and spell INBOX (case-insensitive, RFC 9051 5.1) canonically.

    Raises:
        InvalidFolderNameError: empty, `.`/`..` or over-long components, NUL or control
            characters, deeper than MAX_DEPTH, or a directory name over MAX_DIR_BYTES.
    """
    parts = name.split(DELIMITER)
    if len(parts) > MAX_DEPTH:
        raise InvalidFolderNameError(f"folder name deeper than {MAX_DEPTH} levels")
    for part in parts:
        _check_component(part)
    if parts[0].upper() == INBOX:
        parts[0] = INBOX
    normal = DELIMITER.join(parts)
    if normal != INBOX and len(dir_name(normal).encode("utf-8")) > MAX_DIR_BYTES:
        raise InvalidFolderNameError(f"folder name longer than {MAX_DIR_BYTES} bytes on disk")
    return normal


def _check_component(part: str) -> None:
    if part in ("", ".", ".."):
        raise InvalidFolderNameError(f"invalid folder name component {part!r}")
    for char in part:
        if ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0 or 0xD800 <= ord(char) < 0xE000:
            raise InvalidFolderNameError(f"control character {char!r} in folder name")


def dir_name(name: str) -> str:
    """The Maildir++ directory of a normalised non-INBOX folder name (`A/B` -> `.A.B`)."""
    return "." + ".".join(_escape(mutf7.encode(part)) for part in name.split(DELIMITER))


def _escape(component: str) -> str:
    return "".join(_ESCAPES.get(char, char) for char in component)


def folder_name(directory: str) -> str | None:
    """The folder a root entry `.A.B` stands for, or None when it is not a valid folder."""
    if not directory.startswith(".") or directory in (".", ".."):
        return None
    try:
        parts = [_unescape_decode(part) for part in directory[1:].split(".")]
        name = normalise(DELIMITER.join(parts))
    except (ValueError, InvalidFolderNameError):
        return None
    # Only the canonical spelling names a folder; another one would alias it.
    return name if name != INBOX and dir_name(name) == directory else None


def _unescape_decode(part: str) -> str:
    return mutf7.decode(_UNESCAPE.sub(lambda m: chr(int(m[1], 16)), part))


def folder_path(root: Path, name: str) -> Path:
    """Where the normalised folder `name` lives under the account's Maildir `root`."""
    return root if name == INBOX else root / dir_name(name)


def parents(name: str) -> list[str]:
    """The ancestors of `name`, outermost first (`A/B/C` -> `A`, `A/B`)."""
    parts = name.split(DELIMITER)
    return [DELIMITER.join(parts[:i]) for i in range(1, len(parts))]


def is_inside(name: str, ancestor: str) -> bool:
    """True when `name` is `ancestor` or one of its descendants."""
    return name == ancestor or name.startswith(ancestor + DELIMITER)


def list_folder_dirs(root: Path) -> dict[str, str]:
    """Every folder under `root` as {name: directory}, INBOX included (as the root)."""
    found = {INBOX: ""}
    with os.scandir(root) as entries:
        for entry in entries:
            name = folder_name(entry.name)
            if name is not None and entry.is_dir(follow_symlinks=False):
                found[name] = entry.name
    return found


def make_folder_dir(path: Path, inbox: bool) -> None:
    """Create a Maildir (cur/new/tmp, plus the Maildir++ marker for folders), durably."""
    path.mkdir(mode=0o700, exist_ok=True)
    for sub in SUBDIRS:
        (path / sub).mkdir(mode=0o700, exist_ok=True)
    if not inbox and not (path / FOLDER_MARKER).exists():
        write_new_file(path / FOLDER_MARKER, b"")
    DIRECTORY_SYNC.sync(path)
    DIRECTORY_SYNC.sync(path.parent)
