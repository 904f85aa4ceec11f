"""Fuzz safe_component: always one safe path component, and distinct names stay distinct."""

from __future__ import annotations

import re

from hypothesis import example, given
from hypothesis import strategies as st

from appliance.core.fsio import safe_component

ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=60)
TRICKY = st.text(st.sampled_from("./\x00%2EFa-\udcff é"), max_size=12)
ESCAPE = re.compile(r"%([0-9A-F]{2})")


def decode(component: str) -> str:
    """The inverse of safe_component; it exists only if safe_component is injective."""
    if component == "%":
        return ""
    raw = bytearray()
    index = 0
    while index < len(component):
        match = ESCAPE.match(component, index)
        if match:
            raw.append(int(match[1], 16))
            index = match.end()
        else:
            assert component[index] != "%", component
            raw += component[index].encode("ascii")
            index += 1
    return raw.decode("utf-8", "surrogatepass")


@given(ANY_TEXT | TRICKY)
@example("")
@example("\x00")
@example(".")
@example("..")
@example("%")
@example("%25")
@example("\udcff")
def test_safe_component_is_safe_and_reversible(name: str) -> None:
    component = safe_component(name)
    assert component not in ("", ".", "..")
    assert "/" not in component
    assert "\x00" not in component
    assert not component.startswith(".")
    assert component.isascii()
    assert component.isprintable()
    assert decode(component) == name


@given(ANY_TEXT | TRICKY, ANY_TEXT | TRICKY)
def test_safe_component_is_injective(first: str, second: str) -> None:
    if first != second:
        assert safe_component(first) != safe_component(second)
