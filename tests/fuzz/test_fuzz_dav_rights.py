"""Fuzz the DAV rights (path -> permissions) and the Basic credential check in front of
Radicale: no spelling of a path gives an account rights on another account's tree or on
another domain's shared area, and no Authorization header makes the check raise."""

from __future__ import annotations

import base64
import urllib.parse

from hypothesis import example, given
from hypothesis import strategies as st
from radicale import pathutils

from appliance.groupware.middleware import basic_credentials_ok
from appliance.groupware.rights import permissions

USER = "alice@example.test"
OTHERS = ["bob@example.test", "alice@evil.test", "shared.evil.test", "ALICE@example.test",
          "alice@example.test.evil", "shared.example.test.evil", "Alice@example.test"]
SEGMENTS = st.sampled_from(["..", ".", "", "%2e%2e", "%2E%2E", "%2f", "calendar", USER,
                            "shared.example.test", "ａｌｉｃｅ@example.test", "İ", "\u0131",
                            "alice@example.test\u200b", *OTHERS])


def _radicale_view(raw: str) -> str:
    """What Radicale hands the rights plugin: gunicorn unquotes, Radicale sanitises."""
    return pathutils.strip_path(pathutils.sanitize_path(urllib.parse.unquote(raw)))


@given(st.lists(SEGMENTS, max_size=6), st.sampled_from(OTHERS))
@example(["..", "bob@example.test", "calendar"], "bob@example.test")
@example(["alice@example.test", "%2e%2e", "bob@example.test"], "bob@example.test")
def test_no_path_reaches_another_tree(segments: list[str], other: str) -> None:
    path = _radicale_view("/" + "/".join(segments) + "/")
    granted = permissions(USER, path)
    owner = path.split("/")[0]
    if owner not in (USER, "shared.example.test"):
        assert granted in ("", "R")
        assert granted == "" or path == ""
    if path.startswith(other + "/") or path == other:
        assert granted == ""


@given(st.text(max_size=60), st.text(max_size=60))
def test_any_user_any_path_is_total(user: str, path: str) -> None:
    granted = permissions(user, path)
    assert set(granted) <= set("RWrwd")
    if granted and path:
        owner = path.split("/")[0]
        domain = user.rpartition("@")[2]
        assert owner in (user, "shared." + domain)


@given(st.one_of(st.text(max_size=80), st.binary(max_size=60).map(
    lambda b: "Basic " + base64.b64encode(b).decode())))
@example("Basic !!!")
@example("Basic " + base64.b64encode(b"\xff\xfe:x").decode())
@example("Basic " + base64.b64encode(b"nocolon").decode())
def test_basic_check_never_raises(header: str) -> None:
    ok = basic_credentials_ok(header)
    if ok and header.strip().lower().startswith("basic "):
        text = base64.b64decode(header.strip()[6:].strip(), validate=True).decode("utf-8")
        assert ":" in text
