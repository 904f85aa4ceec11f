"""Fuzz what the public web listener (webui/public.py) takes from anyone on the internet:
the Host header it builds its HTTPS redirect from, the path, and the client address its
rate limit counts."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from flask import Flask
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from appliance.settings import load_settings, render_toml
from webui.public import client_key, create_public_app, https_url

HOSTISH = st.text(st.sampled_from("az09.-:[]@/\\?#%é \t_"), max_size=80)
ANY_TEXT = st.text(st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=120)
# (a path starting "//" would be read as a host by the test request builder itself)
PATHS = st.text(st.sampled_from("az/.%?=&#"), max_size=40).map(lambda p: "/" + p.lstrip("/"))


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    data = tmp_path_factory.mktemp("public-fuzz")
    values = {"server.hostname": "mail.example.test", "paths.data_dir": "."}
    (data / "mailstead.toml").write_text(render_toml(values), encoding="utf-8")
    current = load_settings(Path(data / "mailstead.toml"), environ={})
    return create_public_app({"MAILSTEAD_SETTINGS": current, "TESTING": True})


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=300)
@given(host=HOSTISH | ANY_TEXT, path=PATHS)
@example(host="evil.test/@other", path="/")
@example(host="[::1]:80", path="/x")
@example(host="a" * 300, path="/")
def test_redirect_stays_https_to_a_plain_host(app: Flask, host: str, path: str) -> None:
    with app.test_request_context(path, environ_overrides={"HTTP_HOST": host}):
        target = https_url()
    parts = urlsplit(target)
    assert parts.scheme == "https"
    assert parts.port is None                      # the appliance: 443
    assert parts.username is None
    assert parts.password is None
    assert not any(c in target for c in "\r\n\t \\")
    name = parts.hostname or ""
    if name.startswith("[") or ":" in name:
        ipaddress.IPv6Address(name.strip("[]"))
    else:
        assert name == "mail.example.test" or all(c.isalnum() or c in ".-" for c in name)
    assert target.startswith(f"https://{parts.netloc}/")


@given(ANY_TEXT)
@example("fe80::1%eth0")
@example("::ffff:10.0.0.1")
def test_client_key_never_fails(remote: str) -> None:
    key = client_key(remote)
    assert isinstance(key, str)
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return
    if address.version == 6 and address.ipv4_mapped is None:
        assert key.endswith("/64")
