"""Fuzz the ACME inputs that come from outside: challenge tokens (from any HTTP client),
the directory URL and contact settings (from mailstead.toml or the console)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from appliance.tls.acme_client import TOKEN, challenge_path
from appliance.tls.acme_settings import parse_contact, parse_directory_url

ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=300)
TOKENISH = st.text(st.sampled_from("AZaz09_-./%\\\x00é"), max_size=140)
BASE = Path("/data")


@given(ANY_TEXT | TOKENISH)
@example("..")
@example("A" * 21 + "/")
def test_token_path_stays_in_the_challenge_directory(token: str) -> None:
    path = challenge_path(BASE, token)
    if path is None:
        assert not TOKEN.fullmatch(token)
        return
    assert path.parent == BASE / "acme" / "challenges"
    assert path.name == token
    assert 22 <= len(token) <= 128


@given(ANY_TEXT)
@example("https://")
@example("https://[::1")
def test_directory_url_raises_only_value_error(text: str) -> None:
    try:
        url = parse_directory_url(text)
    except ValueError:
        return
    assert url.startswith("https://")


@given(ANY_TEXT)
def test_contact_raises_only_value_error(text: str) -> None:
    try:
        contact = parse_contact(text)
    except ValueError:
        return
    assert contact == "" or "@" in contact
