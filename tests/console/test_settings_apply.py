"""The settings page against a real engine (webui/blueprints/admin_system.py): a saved
setting the engine does not run with is named as not yet applied, "Apply now" restarts the
engine over its control socket (audited, CSRF-protected, admins only) and the page then says
applied; the new value is on the wire. Without an engine the page and the button say so."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.control import client as control
from appliance.control.server import SOCKET_NAME
from appliance.settings import Settings, load_settings
from appliance.storage.db import open_database
from console.conftest import (
    ADMIN,
    ADMIN_PASSWORD,
    USER,
    USER_PASSWORD,
    add_admin,
    add_user,
    close_app,
    form_token,
    log_in,
    make_app,
    post_form,
)
from harness.engine import HOSTNAME, EngineProcess, wait_for_port

pytestmark = pytest.mark.timeout(120)
URL = "/admin/settings"
APPLY = "/admin/settings/apply"
CHANGED = "mx.applied.example"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[EngineProcess]:
    proc = EngineProcess(tmp_path / "data", auth__failure_delay_ms=0)
    proc.start()
    try:
        yield proc
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.stop()


@pytest.fixture
def console(engine: EngineProcess) -> Iterator[Flask]:
    """The console on the engine's own data directory and settings file."""
    settings: Settings = load_settings(engine.config_file, environ={})
    add_admin(settings)
    add_user(settings)
    app = make_app(settings, MAILSTEAD_RESTART_WAIT=60)    # a loaded machine restarts slowly
    yield app
    close_app(app)


@pytest.fixture
def admin(console: Flask) -> FlaskClient:
    client = console.test_client()
    assert log_in(client, ADMIN, ADMIN_PASSWORD).status_code == 302
    return client


def instance(engine: EngineProcess) -> str:
    status = control.call(engine.data_dir / SOCKET_NAME, "engine.status")
    assert isinstance(status, dict)
    return str(status["instance"])


def greeting(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        line = sock.makefile("rb").readline().decode("ascii")
        sock.sendall(b"QUIT\r\n")
    return line


def audit_rows(engine: EngineProcess, action: str) -> list[tuple[str, dict[str, Any]]]:
    conn = open_database(engine.data_dir)
    try:
        rows = conn.execute("SELECT actor, details FROM audit_log WHERE action = ? ORDER BY id",
                            (action,)).fetchall()
    finally:
        conn.close()
    return [(str(actor), json.loads(details)) for actor, details in rows]


def save_hostname(admin: FlaskClient, hostname: str) -> None:
    response = post_form(admin, URL, {"section": "server", "server.hostname": hostname,
                                      "server.timezone": "UTC"})
    assert response.status_code == 302, response.data


def test_apply_now_restarts_the_engine_and_the_page_says_applied(
        engine: EngineProcess, admin: FlaskClient) -> None:
    page = admin.get(URL).get_data(as_text=True)
    assert "Applied: the mail engine runs with every saved setting" in page
    assert f'action="{APPLY}"' not in page

    save_hostname(admin, CHANGED)
    page = admin.get(URL).get_data(as_text=True)
    assert "Saved but not yet applied" in page
    assert "the mail engine still runs without\n  <code>server.hostname</code>." in page
    assert f'action="{APPLY}"' in page
    assert greeting(engine.smtp_port).startswith(f"220 {HOSTNAME} ")

    first = instance(engine)
    response = post_form(admin, APPLY, {}, token_page=URL)
    assert response.status_code == 302
    page = admin.get(URL).get_data(as_text=True)
    assert "The mail engine restarted and runs with the saved settings." in page
    assert "Applied: the mail engine runs with every saved setting" in page
    assert instance(engine) != first
    wait_for_port(engine.smtp_port, 30, engine.proc)
    assert greeting(engine.smtp_port).startswith(f"220 {CHANGED} ")
    assert audit_rows(engine, "engine.restart") == [
        (ADMIN, {"reason": "apply settings", "pending": "server.hostname"})]


def test_console_settings_need_no_restart(engine: EngineProcess, admin: FlaskClient) -> None:
    page = admin.get(URL).get_data(as_text=True)
    token = form_token(page)
    response = admin.post(URL, data={"csrf_token": token, "section": "console",
                                     "console.idle_timeout": "1200"})
    assert response.status_code == 302, response.data
    assert "Saved console.idle_timeout" in admin.get(URL).get_data(as_text=True)
    assert "Applied: the mail engine runs with every saved setting" in admin.get(
        URL).get_data(as_text=True)


def test_apply_needs_the_csrf_token_and_an_admin(engine: EngineProcess, console: Flask,
                                                 admin: FlaskClient) -> None:
    first = instance(engine)
    assert admin.post(APPLY, data={}).status_code == 400
    assert admin.post(APPLY, data={"csrf_token": "forged"}).status_code == 400
    user = console.test_client()
    assert log_in(user, USER, USER_PASSWORD).status_code == 302
    token = form_token(user.get("/").data)
    assert user.post(APPLY, data={"csrf_token": token}).status_code == 403
    assert console.test_client().post(APPLY, data={}).status_code in (302, 400)
    assert instance(engine) == first                # never restarted
    assert audit_rows(engine, "engine.restart") == []


def test_without_an_engine_the_page_and_the_button_say_so(engine: EngineProcess,
                                                          admin: FlaskClient) -> None:
    engine.stop()
    page = admin.get(URL).get_data(as_text=True)
    assert "The mail engine does not answer on its control socket" in page
    response = post_form(admin, APPLY, {}, token_page=URL)
    assert response.status_code == 302
    page = admin.get(URL).get_data(as_text=True)
    assert "The mail engine did not answer, nothing was restarted" in page
    assert audit_rows(engine, "engine.restart") == []
