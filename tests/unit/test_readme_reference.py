"""The README stays generated from the code: its settings table and its first commands."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from appliance.settings import reference_table

README = Path(__file__).resolve().parents[2] / "README.md"
START = "<!-- settings-reference:start -->"
END = "<!-- settings-reference:end -->"


def readme_block() -> str:
    text = README.read_text(encoding="utf-8")
    assert text.count(START) == 1, f"README.md needs exactly one {START} marker"
    assert text.count(END) == 1, f"README.md needs exactly one {END} marker"
    rest = text.partition(START)[2]
    block = rest.partition(END)[0]
    return block.strip("\n")


def test_readme_settings_reference_matches_schema() -> None:
    expected = reference_table()
    actual = readme_block()
    diff = "\n".join(difflib.unified_diff(
        actual.splitlines(), expected.splitlines(), "README.md", "reference_table()",
        lineterm=""))
    assert actual == expected, (
        "README.md's settings reference is out of date: replace the block between the "
        "markers with the output of `./.venv/bin/mailstead config reference`\n" + diff)


def test_readme_starts_with_the_newcomer_commands() -> None:
    text = README.read_text(encoding="utf-8")
    first_block = re.search(r"^```[a-z]*\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    assert first_block is not None, "README.md has no code block"
    assert first_block.group(1).splitlines() == ["./build.sh run", "./build.sh test"]
    assert text.index(first_block.group(0)) < text.index("\n## "), (
        "the newcomer commands must come before the first section")
