"""Prints the host's apt sources for one Debian suite family as one-line `deb` entries.

image/build-image.sh hands them to mmdebstrap, so the image is built from whatever mirror
the build host uses; the mirror is never written into the repository (nor left in the image).
Reads /etc/apt/sources.list and /etc/apt/sources.list.d/*.list and *.sources (deb822).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

APT = Path("/etc/apt")


def one_line_entries(text: str) -> Iterator[tuple[str, str, list[str]]]:
    """(uri, suite, components) of each `deb` line of a sources.list file."""
    for raw in text.splitlines():
        words = raw.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):      # options: [signed-by=... arch=...]
            while words and not words[0].endswith("]"):
                words = words[1:]
            words = words[1:]
        if len(words) >= 3:
            yield words[0], words[1], words[2:]


def deb822_entries(text: str) -> Iterator[tuple[str, str, list[str]]]:
    """(uri, suite, components) of each enabled deb stanza of a .sources file."""
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                yield uri, suite, fields.get("components", "main").split()


def entries(apt: Path) -> Iterator[tuple[str, str, list[str]]]:
    main_list = apt / "sources.list"
    if main_list.is_file():
        yield from one_line_entries(main_list.read_text(encoding="utf-8"))
    parts = apt / "sources.list.d"
    for path in sorted(parts.glob("*.list")) if parts.is_dir() else []:
        yield from one_line_entries(path.read_text(encoding="utf-8"))
    for path in sorted(parts.glob("*.sources")) if parts.is_dir() else []:
        yield from deb822_entries(path.read_text(encoding="utf-8"))


def lines_for(suite: str, apt: Path = APT) -> list[str]:
    """`deb URI SUITE main` for the suite and its -updates and -security companions."""
    wanted = {suite, f"{suite}-updates", f"{suite}-security"}
    found: list[str] = []
    for uri, entry_suite, components in entries(apt):
        if entry_suite in wanted and "main" in components:
            line = f"deb {uri} {entry_suite} main"
            if line not in found:
                found.append(line)
    return found


def main(argv: list[str]) -> int:
    lines = lines_for(argv[1] if len(argv) > 1 else "bookworm")
    print("\n".join(lines))
    return 0 if lines else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
