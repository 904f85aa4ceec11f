"""Fuzz the address parser: only AddressError escapes, and normalisation is idempotent."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from appliance.core.addresses import AddressError, normalise_domain, parse_address

# Any code point, lone surrogates included: aiosmtpd decodes with surrogateescape.
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=300)
ATEXT = st.sampled_from("abcXYZ019!#$%&'*+/=?^_`{|}~-éßü用")
LOCAL = st.lists(st.text(ATEXT, min_size=1, max_size=12), min_size=1, max_size=4).map(".".join)
QUOTED = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters='"\\'),
                 max_size=20).map(lambda s: f'"{s}"')
LABEL = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzABCZ0189-äöüßΣσ日本"), min_size=1,
                max_size=20)
DOMAIN = st.lists(LABEL, min_size=1, max_size=5).map(".".join)
ADDRESS_LIKE = st.builds(lambda local, domain: f"{local}@{domain}", LOCAL | QUOTED, DOMAIN)


def check_parsed(text: str) -> None:
    try:
        address = parse_address(text)
    except AddressError:
        return
    assert address.local == text.rpartition("@")[0]
    assert address.domain.isascii()
    assert address.domain == address.domain.lower()
    assert len(str(address).encode("utf-8")) <= 254
    assert len(address.local.encode("utf-8")) <= 64
    again = parse_address(str(address))
    assert again == address
    assert again.key == address.key


@given(ANY_TEXT)
@example("\udcff@example.org")
@example("a@\udcff")
@example("a@" + "é" * 300)
@example('"\\\udcff"@x.org')
def test_parse_address_only_raises_address_error(text: str) -> None:
    check_parsed(text)


@given(ADDRESS_LIKE)
def test_parse_address_round_trips(text: str) -> None:
    check_parsed(text)


@given(ANY_TEXT | DOMAIN)
@example("xn--bcher-kva.example")
@example("faß.de")
def test_normalise_domain_is_idempotent(text: str) -> None:
    try:
        domain = normalise_domain(text)
    except AddressError:
        return
    assert domain.isascii()
    assert normalise_domain(domain) == domain
    assert normalise_domain(domain.upper()) == domain
