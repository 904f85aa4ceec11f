"""Fuzz the SASL parsers, the username normaliser and the From-header reader: only their own
errors escape, accepted values respect the limits, and PLAIN round-trips."""

from __future__ import annotations

import base64

from hypothesis import example, given
from hypothesis import strategies as st

from appliance.auth import sasl
from appliance.auth.guard import normalise_username
from appliance.auth.sasl import Credentials, SaslError
from appliance.smtp.submission_policy import authors, missing_fields, split_header, with_fields

ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=300)
SAFE_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1,
                    max_size=60)
BASE64ISH = st.text(st.sampled_from("ABCDabcd0189+/= \t*\r\nä"), max_size=120)
HEADERISH = st.lists(
    st.sampled_from(["From:", "from :", "Sender:", "From", " ", "\t", "\r\n", "\n", ":", ";",
                     ",", "<", ">", "@", '"', "(", ")", "\\", "=?utf-8?q?", "?=", "alice",
                     "example.test", "[127.0.0.1]", "é", "\udcff", "\x00", ".", "group"]),
    max_size=40).map("".join)


@given(ANY_TEXT | BASE64ISH)
@example("=")
@example("*")
@example("====")
def test_decode_response_only_raises_sasl_errors(text: str) -> None:
    try:
        decoded = sasl.decode_response(text)
    except SaslError:
        return
    assert len(decoded) <= sasl.MAX_PLAIN_OCTETS + 2


@given(st.binary(max_size=600))
@example(b"\x00\x00")
@example(b"a\x00b\x00c")
def test_parse_plain_only_raises_sasl_errors(message: bytes) -> None:
    try:
        parsed = sasl.parse_plain(message)
    except SaslError:
        return
    assert parsed.username
    assert parsed.password
    assert "\x00" not in parsed.username + parsed.password + parsed.authzid
    rebuilt = "\x00".join((parsed.authzid, parsed.username, parsed.password)).encode()
    assert rebuilt == message


@given(SAFE_TEXT, SAFE_TEXT, st.booleans())
def test_plain_round_trips_through_base64(username: str, password: str, authzid: bool) -> None:
    identity = username if authzid else ""
    wire = base64.b64encode(f"{identity}\x00{username}\x00{password}".encode()).decode()
    assert sasl.parse_plain(sasl.decode_response(wire)) == Credentials(
        username, password, identity)


@given(st.binary(max_size=600))
def test_parse_login_fields_only_raise_sasl_errors(data: bytes) -> None:
    for parse in (sasl.parse_login_username, sasl.parse_login_password):
        try:
            text = parse(data)
        except SaslError:
            continue
        assert text.encode() == data


@given(ANY_TEXT)
@example("alice@\udcff")
@example("\u0301@example.test")
def test_normalise_username_is_total_and_idempotent(username: str) -> None:
    address = normalise_username(username)
    if address is not None:
        again = normalise_username(str(address))
        assert again is not None
        assert again.key == address.key


@given(HEADERISH | ANY_TEXT)
@example("From: a@b.test\r\nFrom: c@d.test\r\n")
@example("From: =?utf-8?q?a?= <")
@example("From: (((((\r\n")
def test_authors_never_raise(header: str) -> None:
    raw = header.encode("utf-8", errors="surrogatepass")
    found = authors(raw)
    assert found.problem is not None or found.addresses   # no problem means authors found
    missing_fields(raw)


@given(st.binary(max_size=300))
def test_with_fields_keeps_every_original_byte(content: bytes) -> None:
    result = with_fields(content, b"X-Added: 1\r\n")
    header, rest = split_header(content)
    assert result.endswith(rest)
    assert result.startswith(header)
    assert b"X-Added: 1\r\n" in result
