"""Console fixtures: a Flask app on a temporary data directory, with or without an admin,
and test clients that are logged in as the admin or as a mail user.

`form_token(html)` reads the CSRF token from a page; `post_form(client, url, data)` GETs a
page for its token first when `data` has none.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.auth.passwords import Passwords
from appliance.settings import Settings, load_settings, render_toml
from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory
from webui import admins, create_app, setup_state

ADMIN = "admin"
ADMIN_PASSWORD = "Correct-Horse-42-battery"
USER = "alice@example.test"
USER_PASSWORD = "alice mail password 1"
DOMAIN = "example.test"

FAST = {"auth.argon2_time_cost": 1, "auth.argon2_memory_kib": 8192,
        "auth.argon2_parallelism": 1, "auth.failure_delay_ms": 0}
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def console_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Dev-mode settings on `data_dir` with cheap argon2 and no failure delay."""
    data_dir.mkdir(parents=True, exist_ok=True)
    values: dict[str, Any] = {"server.hostname": "mail.example.test", "server.dev_mode": True,
                              "paths.data_dir": ".", "listen.address": "127.0.0.1", **FAST}
    values.update({k.replace("__", "."): v for k, v in overrides.items()})
    config = data_dir / "mailstead.toml"
    config.write_text(render_toml(values), encoding="utf-8")
    return load_settings(config, environ={})


def make_app(settings: Settings, **config: Any) -> Flask:
    return create_app({"MAILSTEAD_SETTINGS": settings, "TESTING": True, **config})


def close_app(app: Flask) -> None:
    found = app.extensions.get("mailstead.guards")
    if found is not None:
        found.close()


def add_admin(settings: Settings, username: str = ADMIN, password: str = ADMIN_PASSWORD,
              totp_secret: str | None = None) -> None:
    conn = open_database(settings.data_dir)
    try:
        admins.create(conn, username, Passwords.from_settings(settings).hash(password))
        if totp_secret:
            admins.set_totp(conn, username, totp_secret)
        for step in setup_state.STEPS:
            setup_state.mark_done(conn, step)
    finally:
        conn.close()


def add_user(settings: Settings, address: str = USER, password: str = USER_PASSWORD) -> None:
    conn = open_database(settings.data_dir)
    try:
        directory = SqliteDirectory(conn)
        domain = address.rpartition("@")[2]
        if domain not in directory.list_domains():
            directory.add_domain(domain)
        directory.add_account(address, Passwords.from_settings(settings).hash(password))
    finally:
        conn.close()


def form_token(html: str | bytes) -> str:
    text = html.decode() if isinstance(html, bytes) else html
    found = _TOKEN.search(text)
    assert found, "no CSRF token in the page"
    return found.group(1)


def post_form(client: FlaskClient, url: str, data: dict[str, str],
              token_page: str | None = None, **kwargs: Any) -> Any:
    """POST `data` with this session's CSRF token (read from `token_page`, default `url`)."""
    if "csrf_token" not in data:
        page = client.get(token_page or url)
        data = {**data, "csrf_token": form_token(page.data)}
    return client.post(url, data=data, **kwargs)


def log_in(client: FlaskClient, username: str, password: str) -> Any:
    return post_form(client, "/login", {"username": username, "password": password})


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return console_settings(tmp_path / "data")


@pytest.fixture
def fresh_app(settings: Settings) -> Iterator[Flask]:
    """First boot: no admin yet (the setup code is in the data directory)."""
    app = make_app(settings)
    yield app
    close_app(app)


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    """Set up: admin `admin` (no TOTP), domain example.test with account alice."""
    add_admin(settings)
    add_user(settings)
    app = make_app(settings)
    yield app
    close_app(app)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def admin_client(app: Flask) -> FlaskClient:
    client = app.test_client()
    response = log_in(client, ADMIN, ADMIN_PASSWORD)
    assert response.status_code == 302, response.data
    return client


@pytest.fixture
def user_client(app: Flask) -> FlaskClient:
    client = app.test_client()
    response = log_in(client, USER, USER_PASSWORD)
    assert response.status_code == 302, response.data
    return client
