"""Maildir file names: the info suffix `:2,<letters>` <-> IMAP flags, Dovecot's keyword file,
and the sizes in the name (`,S=` file size, `,W=` RFC822.SIZE with CRLF line ends).

Letters (maildir(5) and Dovecot): D Draft, F Flagged, R Answered (replied), S Seen,
T Deleted (trashed), a-z keywords numbered in the folder's `dovecot-keywords` file. Also
the dirty mark of a deferred flag rename: "subdir/name" of the file until it is renamed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from appliance.core.fsio import atomic_write

INFO_SEP = ":2,"
KEYWORDS_FILE = "dovecot-keywords"
KEYWORD_LETTERS = "abcdefghijklmnopqrstuvwxyz"
LETTER_FLAGS = {"D": "\\Draft", "F": "\\Flagged", "R": "\\Answered", "S": "\\Seen",
                "T": "\\Deleted"}
FLAG_LETTERS = {flag: letter for letter, flag in LETTER_FLAGS.items()}
_SIZE_FIELD = re.compile(r",([SW])=(\d+)")


def split_name(filename: str) -> tuple[str, str | None]:
    """(base, info letters) of a Maildir file name; letters None when there is no `:2,`."""
    base, sep, info = filename.partition(":")
    if not sep:
        return base, None
    return base, info[2:] if info.startswith("2,") else ""


def sizes_in_name(base: str) -> tuple[int | None, int | None]:
    """The `,S=` (bytes on disk) and `,W=` (RFC822.SIZE) values in a base name, if present."""
    found = {key: int(value) for key, value in _SIZE_FIELD.findall(base)}
    return found.get("S"), found.get("W")


def crlf_size(data: bytes) -> int:
    """Octets of `data` once every bare LF is CRLF (RFC822.SIZE of an LF-stored message)."""
    return len(data) + data.count(b"\n") - data.count(b"\r\n")


def to_crlf(data: bytes) -> bytes:
    """`data` with CRLF line ends, whether it was stored with LF, CRLF or a mix."""
    if b"\r" not in data:              # stored with LF, as we and Dovecot store: one pass
        return data.replace(b"\n", b"\r\n")
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def to_lf(data: bytes) -> bytes:
    """`data` with LF line ends: how messages are stored (as delivery writes them)."""
    return data.replace(b"\r\n", b"\n")


def letters_to_flags(letters: str, keywords: list[str]) -> frozenset[str]:
    """The IMAP flags that info `letters` stand for (unknown letters are left out)."""
    flags: set[str] = set()
    for letter in letters:
        if letter in LETTER_FLAGS:
            flags.add(LETTER_FLAGS[letter])
        elif "a" <= letter <= "z" and ord(letter) - ord("a") < len(keywords):
            flags.add(keywords[ord(letter) - ord("a")])
    return frozenset(flags)


def flags_to_letters(flags: Iterable[str], keywords: list[str], keep: str = "") -> str:
    """Sorted info letters for `flags`; letters in `keep` that no flag owns (e.g. Dovecot's
    P "passed") stay. Keywords without a letter are left out (they live in the index)."""
    letters = {c for c in keep if c not in LETTER_FLAGS and not "a" <= c <= "z"}
    for flag in flags:
        if flag in FLAG_LETTERS:
            letters.add(FLAG_LETTERS[flag])
        elif flag in keywords and keywords.index(flag) < len(KEYWORD_LETTERS):
            letters.add(KEYWORD_LETTERS[keywords.index(flag)])
    return "".join(sorted(letters))


def lettered(flags: Iterable[str], keywords: list[str]) -> frozenset[str]:
    """The flags that have a letter (what the file name can show)."""
    return frozenset(f for f in flags if f in FLAG_LETTERS
                     or (f in keywords and keywords.index(f) < len(KEYWORD_LETTERS)))


def file_name(base: str, letters: str) -> str:
    return f"{base}{INFO_SEP}{letters}"


def read_keywords(folder: Path) -> list[str]:
    """The folder's keyword list from `dovecot-keywords` (`<index> <name>` lines)."""
    try:
        text = (folder / KEYWORDS_FILE).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    slots: dict[int, str] = {}
    for line in text.splitlines():
        number, _, name = line.partition(" ")
        if number.isdigit() and name and int(number) < len(KEYWORD_LETTERS):
            slots[int(number)] = name
    if not slots:
        return []
    return [slots.get(i, "") for i in range(max(slots) + 1)]


def add_keywords(folder: Path, keywords: list[str], wanted: Iterable[str]) -> list[str]:
    """Give letters to `wanted` keywords that have none while letters are free; rewrite the
    file (atomically) when that changed anything. Returns the new list.

    Callers hold the index write lock, so two of our processes never race here."""
    new = list(keywords)
    for keyword in sorted(set(wanted)):
        if keyword.startswith("\\") or keyword in new or len(new) >= len(KEYWORD_LETTERS):
            continue
        new.append(keyword)
    if new != keywords:
        text = "".join(f"{i} {name}\n" for i, name in enumerate(new) if name)
        atomic_write(folder / KEYWORDS_FILE, text.encode("utf-8"))
    return new


_SUBDIRS = ("cur", "new")


def mark_of(subdir: str, filename: str) -> str:
    """A dirty mark (`messages.dirty`): where the file is until its flag rename."""
    return f"{subdir}/{filename}"


def parse_mark(text: object) -> tuple[str, str] | None:
    """(subdir, name) of a dirty mark; None for NULL or a damaged one (never a path out of
    the folder)."""
    if text is None:
        return None
    subdir, sep, name = str(text).partition("/")
    if not sep or subdir not in _SUBDIRS or not name or "/" in name or name.startswith("."):
        return None
    return subdir, name
