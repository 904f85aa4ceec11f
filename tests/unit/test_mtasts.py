"""MTA-STS (RFC 8461), the pure part: TXT records, policies, MX patterns, cache rules,
and the HTTP response reader of the fetcher."""

from __future__ import annotations

import pytest

from appliance.outbound.mtasts import (
    MAX_AGE_LIMIT,
    Mode,
    Policy,
    PolicyError,
    mx_matches,
    needs_fetch,
    parse_policy,
    parse_txt,
    usable,
)
from appliance.outbound.mtasts_fetch import FetchError, parse_http_response

GOOD = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\n" \
       "max_age: 604800\r\n"


@pytest.mark.parametrize(("records", "policy_id"), [
    (["v=STSv1; id=20160831085700Z;"], "20160831085700Z"),
    (["v=STSv1;id=abc"], "abc"),
    (["v=STSv1; id=abc; ext=value"], "abc"),
    (["v=spf1 -all", "v=STSv1; id=x1"], "x1"),
    (["v=STSv1; id=first; id=second"], "first"),
])
def test_parse_txt(records: list[str], policy_id: str) -> None:
    assert parse_txt(records) == policy_id


@pytest.mark.parametrize("records", [
    [], ["v=spf1 -all"], ["v=STSv1; id=a", "v=STSv1; id=b"],     # not exactly one
    ["v=STSv1; id="], ["v=STSv1; id=" + "a" * 33], ["v=STSv1; id=no-dash"],
    ["v=STSv1;"], ["v=STSv1; novalue"], ["v=STSv2; id=a"], ["V=STSv1; id=a"],
])
def test_invalid_txt_records(records: list[str]) -> None:
    with pytest.raises(PolicyError):
        parse_txt(records)


def test_parse_policy() -> None:
    policy = parse_policy(GOOD, policy_id="abc", fetched_at=100.0)
    assert policy == Policy(Mode.ENFORCE, 604800, ("mail.example.com", "*.example.net"),
                            "abc", 100.0)


def test_lf_lines_unknown_fields_and_first_value_wins() -> None:
    text = "version: STSv1\nmode: testing\nmode: enforce\nmx: MX.Example.COM.\n" \
           "max_age:86400\nfuture_field: whatever\n\n"
    policy = parse_policy(text)
    assert policy.mode is Mode.TESTING
    assert policy.mx == ("mx.example.com",)
    assert policy.max_age == 86400


def test_max_age_is_capped_at_one_year() -> None:
    policy = parse_policy(GOOD.replace("604800", "9999999999"))
    assert policy.max_age == MAX_AGE_LIMIT


def test_mode_none_needs_no_mx() -> None:
    assert parse_policy("version: STSv1\nmode: none\nmax_age: 10\n").mx == ()


@pytest.mark.parametrize("text", [
    GOOD.replace("STSv1", "STSv2"), GOOD.replace("enforce", "Enforce"),
    GOOD.replace("max_age: 604800", "max_age: -1"), GOOD.replace("max_age: 604800", ""),
    GOOD.replace("max_age: 604800", "max_age: 12345678901"),
    "version: STSv1\nmode: enforce\nmax_age: 10\n",            # enforce without mx
    GOOD.replace("mail.example.com", "*.*.example.com"),
    GOOD.replace("mail.example.com", "bad_name.example.com"),
    GOOD + "this line has no colon\n", "", "<html>not a policy</html>",
])
def test_invalid_policies(text: str) -> None:
    with pytest.raises(PolicyError):
        parse_policy(text)


@pytest.mark.parametrize(("pattern", "host", "match"), [
    ("mail.example.com", "mail.example.com", True),
    ("mail.example.com", "MAIL.example.com.", True),
    ("mail.example.com", "mail2.example.com", False),
    ("*.example.net", "mx1.example.net", True),
    ("*.example.net", "example.net", False),
    ("*.example.net", "a.b.example.net", False),          # one label only (RFC 8461 4.1)
    ("*.example.net", ".example.net", False),
])
def test_mx_matches(pattern: str, host: str, match: bool) -> None:
    assert mx_matches(pattern, host) is match


def test_json_round_trip_and_damaged_cache() -> None:
    policy = parse_policy(GOOD, policy_id="abc", fetched_at=5.0)
    assert Policy.from_json(policy.to_json()) == policy
    for damaged in ("", "{}", '{"mode": "sometimes"}', "[1]",
                    policy.to_json().replace("604800", "-5")):
        with pytest.raises(PolicyError):
            Policy.from_json(damaged)


def test_cache_rules() -> None:
    cached = parse_policy(GOOD, policy_id="abc", fetched_at=1000.0)
    assert needs_fetch(None, "abc", 1001.0)
    assert not needs_fetch(cached, "abc", 1001.0)             # same id, fresh
    assert needs_fetch(cached, "def", 1001.0)                 # new id
    assert needs_fetch(cached, "abc", 1000.0 + 604800)        # expired
    assert not needs_fetch(cached, None, 1001.0)              # no TXT: keep the cache
    assert usable(cached, 1001.0) is cached
    assert usable(cached, 1000.0 + 604800) is None
    assert usable(None, 0.0) is None


def _response(head: str, body: bytes) -> bytes:
    return head.replace("\n", "\r\n").encode() + b"\r\n" + body


def test_http_response_with_content_length() -> None:
    raw = _response("HTTP/1.1 200 OK\nContent-Type: text/plain; charset=utf-8\n"
                    "Content-Length: 5\n", b"hello extra")
    assert parse_http_response(raw) == "hello"


def test_http_response_chunked() -> None:
    raw = _response("HTTP/1.1 200 OK\nContent-Type: text/plain\n"
                    "Transfer-Encoding: chunked\n", b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n")
    assert parse_http_response(raw) == "hello world"


def test_http_response_until_close() -> None:
    raw = _response("HTTP/1.0 200 OK\nContent-Type: text/plain\n", b"body")
    assert parse_http_response(raw) == "body"


@pytest.mark.parametrize("raw", [
    _response("HTTP/1.1 301 Moved\nLocation: https://elsewhere/\nContent-Type: text/plain\n",
              b""),                                                   # no redirects
    _response("HTTP/1.1 404 Not Found\nContent-Type: text/plain\n", b""),
    _response("HTTP/1.1 200 OK\nContent-Type: text/html\n", b"<p>"),
    _response("HTTP/1.1 200 OK\n", b"no type"),
    _response("HTTP/1.1 200 OK\nContent-Type: text/plain\nContent-Length: 10\n", b"short"),
    _response("HTTP/1.1 200 OK\nContent-Type: text/plain\n", b"x" * (64 * 1024 + 1)),
    _response("HTTP/1.1 200 OK\nContent-Type: text/plain\nTransfer-Encoding: chunked\n",
              b"zz\r\n"),
    _response("HTTP/1.1 200 OK\nContent-Type: text/plain\n", b"\xff\xfe"),
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n",                 # no end of head
    b"garbage\r\n\r\n",
    _response("HTTP/1.1 200 OK\n bad header\n", b""),
])
def test_bad_http_responses(raw: bytes) -> None:
    with pytest.raises(FetchError):
        parse_http_response(raw)
