"""Addresses: RFC 5321 syntax, RFC 6531 UTF-8 local parts, IDNA 2008 domains, length limits."""

from __future__ import annotations

import pytest

from appliance.core.addresses import Address, AddressError, normalise_domain, parse_address


def labels(total: int) -> str:
    """A syntactically valid domain of exactly `total` characters (labels of at most 63)."""
    parts: list[str] = []
    while total > 63:
        parts.append("a" * 62)
        total -= 63
    domain = ".".join([*parts, "b" * total])
    return domain


@pytest.mark.parametrize(("text", "local", "domain"), [
    ("alice@example.org", "alice", "example.org"),
    ("Alice.Smith@Example.ORG", "Alice.Smith", "example.org"),        # local kept as given
    ("a+tag@example.org", "a+tag", "example.org"),
    ("!#$%&'*+/=?^_`{|}~-@example.org", "!#$%&'*+/=?^_`{|}~-", "example.org"),
    ('"john doe"@example.org', '"john doe"', "example.org"),
    ('"a@b"@example.org', '"a@b"', "example.org"),
    ('"quoted\\"escape"@example.org', '"quoted\\"escape"', "example.org"),
    ('""@example.org', '""', "example.org"),
    ("jörg@example.org", "jörg", "example.org"),                       # RFC 6531
    ("用户@例子.广告", "用户", "xn--fsqu00a.xn--4rr70v"),
    ("user@Bücher.Example", "user", "xn--bcher-kva.example"),          # IDN -> A-label
    ("user@xn--bcher-kva.example", "user", "xn--bcher-kva.example"),
    ("user@ÉXAMPLE.com", "user", "xn--xample-9ua.com"),
    ("user@example.org.", "user", "example.org"),                      # root dot dropped
    ("user@localhost", "user", "localhost"),
])
def test_valid_addresses(text: str, local: str, domain: str) -> None:
    address = parse_address(text)
    assert address == Address(local, domain)
    assert str(address) == f"{local}@{domain}"


@pytest.mark.parametrize("text", [
    "", "@", "alice", "alice@", "@example.org",
    "a..b@example.org", ".a@example.org", "a.@example.org",
    "a b@example.org", "a(comment)@example.org", "a,b@example.org", "a\\b@example.org",
    '"unterminated@example.org', '"bad"quote"@example.org', '"tab\there"@example.org',
    "a\r\nb@example.org", "a\x00@example.org", "a\udcff@example.org",
    "user@exa mple.org", "user@-example.org", "user@example-.org", "user@exa_mple.org",
    "user@example..org", "user@[192.0.2.1]", "user@.", "user@a\x00b.org",
    "<user@example.org>",
])
def test_invalid_addresses(text: str) -> None:
    with pytest.raises(AddressError):
        parse_address(text)


def test_key_folds_local_part_case_only_for_lookup() -> None:
    address = parse_address("Alice@EXAMPLE.org")
    assert address.local == "Alice"
    assert address.key == "alice@example.org"
    assert address.local_key == "alice"
    assert parse_address("ALICE@example.org").key == address.key


def test_local_part_limit_is_64_octets() -> None:
    assert parse_address("a" * 64 + "@example.org").local == "a" * 64
    with pytest.raises(AddressError, match="local part longer than 64"):
        parse_address("a" * 65 + "@example.org")
    # octets, not characters: 32 two-octet characters fit, 33 do not
    assert parse_address("é" * 32 + "@example.org").local == "é" * 32
    with pytest.raises(AddressError):
        parse_address("é" * 33 + "@example.org")


def test_domain_length_limits() -> None:
    assert normalise_domain(labels(253)) == labels(253)
    for too_long in (labels(256), labels(300)):
        with pytest.raises(AddressError):
            normalise_domain(too_long)
    with pytest.raises(AddressError):
        normalise_domain("a" * 64 + ".org")          # a label is at most 63 octets
    assert normalise_domain("a" * 63 + ".org") == "a" * 63 + ".org"


def test_path_limit_is_254_octets() -> None:
    # RFC 5321 4.5.3.1.3: the path including <> is at most 256 octets
    local = "a" * 64
    fits = labels(254 - 65)
    assert len(str(parse_address(f"{local}@{fits}"))) == 254
    with pytest.raises(AddressError, match="longer than 254"):
        parse_address(f"{local}@{labels(255 - 65)}")


@pytest.mark.parametrize(("text", "expected"), [
    ("EXAMPLE.ORG", "example.org"),
    ("  example.org  ", "example.org"),
    ("Bücher.example", "xn--bcher-kva.example"),
    ("faß.de", "xn--fa-hia.de"),                   # IDNA 2008: ß is kept, not mapped to ss
    ("ａｂｃ.com", "abc.com"),                       # UTS 46 width mapping
    ("例え.テスト", "xn--r8jz45g.xn--zckzah"),
])
def test_normalise_domain(text: str, expected: str) -> None:
    assert normalise_domain(text) == expected
    assert normalise_domain(expected) == expected


@pytest.mark.parametrize("text", ["", ".", " ", "a..b", "-a.org", "a_b.org", "[1.2.3.4]",
                                  "a/b.org", "xn--a.org"])
def test_invalid_domains(text: str) -> None:
    with pytest.raises(AddressError, match="invalid domain"):
        normalise_domain(text)
