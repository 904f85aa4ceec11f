"""The console's frame: the app factory, blueprints and navigation, services, the audit log,
the dashboard (with and without a running engine) and the setup code file."""

from __future__ import annotations

import re
import sqlite3
import threading
from pathlib import Path

import pytest
from flask import Flask, url_for
from flask.testing import FlaskClient

from appliance.settings import Settings, load_settings
from harness.engine import EngineProcess
from webui import audit, create_app, services, setup_code
from webui.blueprints import BLUEPRINTS, NAV

from .conftest import (
    ADMIN,
    ADMIN_PASSWORD,
    add_admin,
    close_app,
    console_settings,
    log_in,
    make_app,
)


def test_every_listed_blueprint_is_registered(app: Flask) -> None:
    for module_name, _ in BLUEPRINTS:
        name = module_name.rsplit(".", 1)[1]
        assert any(bp.import_name == module_name for bp in app.blueprints.values()), name


def test_navigation_shows_only_existing_pages_for_the_audience(
        admin_client: FlaskClient, user_client: FlaskClient, app: Flask) -> None:
    admin_page = admin_client.get("/").data.decode()
    user_page = user_client.get("/").data.decode()
    for label, endpoint, audience in NAV:
        if endpoint not in app.view_functions:
            continue
        with app.test_request_context():
            href = url_for(endpoint)
        link = f'href="{href}"'
        if audience == "admin":
            assert link in admin_page, label
        if audience == "user" and href != "/":
            assert link not in admin_page, label
    assert "Dashboard" not in user_page


def test_app_loads_settings_like_the_cli(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = console_settings(tmp_path / "data")
    monkeypatch.setenv("MAILSTEAD_CONFIG", str(settings.source))
    app = create_app({"TESTING": True})
    try:
        with app.app_context():
            assert services.settings().data_dir == settings.data_dir
        assert setup_code.read(settings.data_dir) is not None
    finally:
        close_app(app)


def test_db_is_per_request_and_closed(app: Flask) -> None:
    seen = []
    with app.test_request_context(environ_base={"REMOTE_ADDR": "127.0.0.1"}):
        conn = services.db()
        assert services.db() is conn
        assert services.directory() is services.directory()
        seen.append(conn)
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        seen[0].execute("SELECT 1")


def test_audit_record_and_recent(app: Flask, admin_client: FlaskClient) -> None:
    with app.test_request_context(environ_base={"REMOTE_ADDR": "192.0.2.9"}):
        audit.record("test.action", "x" * 600, reason="because", other="<b>")
        entries = audit.recent(5)
    entry = entries[0]
    assert entry.action == "test.action"
    assert entry.actor == "setup"                 # no user in this request
    assert entry.client == "192.0.2.9"
    assert len(entry.target) == audit.MAX_FIELD
    assert entry.details == {"reason": "because", "other": "<b>"}


def test_dashboard_without_engine(admin_client: FlaskClient) -> None:
    page = admin_client.get("/").data
    assert b"The mail engine is not reachable" in page
    assert b"example.test" in page


def test_dashboard_counts_accounts_per_domain(admin_client: FlaskClient,
                                              settings: Settings) -> None:
    from appliance.storage.db import open_database
    from appliance.storage.directory import SqliteDirectory

    conn = open_database(settings.data_dir)
    try:
        directory = SqliteDirectory(conn)
        directory.add_domain("empty.test")
        directory.add_domain("other.test")
        for address in ("b@other.test", "c@other.test"):
            directory.add_account(address, "x")
    finally:
        conn.close()
    page = admin_client.get("/").get_data(as_text=True)
    rows = re.findall(r"<tr><td>([^<]+)</td><td[^>]*><a [^>]*>(\d+)</a></td></tr>", page)
    assert rows == [("empty.test", "0"), ("example.test", "1"), ("other.test", "2")]
    tiles = re.findall(r'<p class="figure">(\d+)</p>', page)
    assert tiles[:2] == ["3", "3"]                  # 3 domains, 3 accounts


def test_dashboard_with_a_running_engine(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path / "data")
    engine.start()
    app = None
    try:
        engine.add_domain("example.test")
        engine.add_account("alice@example.test")
        settings = load_settings(engine.config_file, environ={})
        add_admin(settings)
        app = make_app(settings)
        client = app.test_client()
        assert log_in(client, ADMIN, ADMIN_PASSWORD).status_code == 302
        page = client.get("/").data.decode()
        assert "not reachable" not in page
        assert "messages waiting" in page
        assert '<p class="figure">0</p>' in page            # an empty queue
    finally:
        if app is not None:
            close_app(app)
        engine.stop()


def test_setup_code_races_make_one_code(tmp_path: Path) -> None:
    codes: list[str] = []
    threads = [threading.Thread(target=lambda: codes.append(setup_code.ensure(tmp_path)))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(codes)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [setup_code.FILE_NAME]
    setup_code.remove(tmp_path)
    assert setup_code.read(tmp_path) is None


def test_no_setup_code_once_an_admin_exists(settings: Settings) -> None:
    add_admin(settings)
    app = make_app(settings)
    close_app(app)
    assert setup_code.read(settings.data_dir) is None
