"""Fuzz the signer's header handling: any header block gives a signed message or the
message unchanged, never an exception (which would defer the mail until it bounces)."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from appliance.dkim import keys
from appliance.dkim.signer import DkimSigner, from_domain, header_names

HEADER_BYTES = st.binary(max_size=400)
LINES = st.lists(st.sampled_from([
    b"From: a@example.test", b"From: <a@example.test>, b@x.test", b"from:a@EXAMPLE.test",
    b" folded", b"\tfolded", b"To: b@peer.test", b"Subject: \xff\xfe", b"no colon here",
    b": empty name", b"X-Long: " + b"y" * 300, b"From:", b"From: \"q\\\"x\" <a@example.test>",
    b"", b"\r", b"Cc: (comment) c@example.test",
]), max_size=12)


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> DkimSigner:
    data_dir: Path = tmp_path_factory.mktemp("fuzz-dkim")
    keys.ensure_keys(data_dir, "example.test", datetime.date(2026, 11, 1))
    return DkimSigner(data_dir, "mail.example.test")


@given(HEADER_BYTES)
@example(b"From: a@example.test\r\n\r\n")
@example(b"From: =?utf-8?q?x?= <a@[127.0.0.1]>\r\n\r\n")
def test_header_helpers_never_raise(raw: bytes) -> None:
    domain = from_domain(raw)
    assert domain is None or (domain.isascii() and domain == domain.lower())
    assert all(isinstance(name, str) for name in header_names(raw))


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(LINES, st.sampled_from([b"\r\n", b"\n"]), st.binary(max_size=200))
@example([b"From: a@example.test", b"no colon here"], b"\r\n", b"body")
@example([b" folded", b"From: a@example.test"], b"\r\n", b"")    # dkimpy IndexError
def test_sign_gives_signed_or_unchanged(signer: DkimSigner, lines: list[bytes],
                                        newline: bytes, body: bytes) -> None:
    content = newline.join(lines) + newline + newline + body
    out = signer.sign("a@example.test", content)
    assert out == content or (out.startswith(b"DKIM-Signature: ") and out.endswith(content))
