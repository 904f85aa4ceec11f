"""The outbound queue pages (webui/blueprints/admin_queue.py) against a real engine: messages
submitted over SMTP to a remote domain wait in its queue (its resolver answers nothing);
the console lists, shows, retries and deletes them over the control socket, finds them in
the engine's JSON-lines log file, and says so plainly once the engine is stopped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.control import client as control
from appliance.control.server import SOCKET_NAME
from appliance.settings import Settings, load_settings
from console.conftest import (
    ADMIN,
    ADMIN_PASSWORD,
    add_admin,
    close_app,
    log_in,
    make_app,
    post_form,
)
from harness.e2e import submit, wait_until
from harness.engine import EngineProcess
from harness.submission import message

pytestmark = pytest.mark.timeout(120)
ALICE = "alice@example.test"
REMOTE = "carol@remote.example"
URL = "/admin/queue/"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[EngineProcess]:
    # Nothing answers DNS on 127.0.0.1:9, so every delivery is deferred and stays queued.
    proc = EngineProcess(tmp_path / "data", outbound__resolver="127.0.0.1:9",
                         outbound__dns_timeout=1, auth__failure_delay_ms=0)
    proc.start()
    proc.add_domain("example.test")
    proc.add_account(ALICE)
    try:
        yield proc
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.stop()


@pytest.fixture
def console(engine: EngineProcess) -> Iterator[tuple[Flask, FlaskClient]]:
    """The console on the engine's own data directory and settings file."""
    settings: Settings = load_settings(engine.config_file, environ={})
    add_admin(settings)
    app = make_app(settings)
    client = app.test_client()
    assert log_in(client, ADMIN, ADMIN_PASSWORD).status_code == 302
    yield app, client
    close_app(app)


def queued(engine: EngineProcess) -> list[dict[str, Any]]:
    result = control.call(engine.data_dir / SOCKET_NAME, "queue.list")
    assert isinstance(result, list)
    return result


def test_list_show_retry_delete(engine: EngineProcess,
                                console: tuple[Flask, FlaskClient]) -> None:
    _, admin = console
    first = submit(engine, ALICE, [REMOTE], message(ALICE, REMOTE, "first"))
    second = submit(engine, ALICE, [REMOTE, "dave@remote.example"],
                    message(ALICE, REMOTE, "second"))
    wait_until(lambda: len(queued(engine)) == 2, 10, "two queued messages")

    listing = admin.get(URL)
    text = listing.get_data(as_text=True)
    assert listing.status_code == 200
    assert first in text
    assert second in text
    assert "2 message(s) waiting" in text
    assert ALICE in text

    detail = admin.get(f"{URL}{second}").get_data(as_text=True)
    assert REMOTE in detail
    assert "dave@remote.example" in detail

    retried = post_form(admin, f"{URL}{first}/retry", {}, token_page=URL)
    assert retried.status_code == 302
    assert "recipient(s) due now" in admin.get(retried.headers["Location"]).get_data(
        as_text=True)

    deleted = post_form(admin, f"{URL}{first}/delete", {}, token_page=URL)
    assert deleted.status_code == 302
    assert [m["queue_id"] for m in queued(engine)] == [second]
    after = admin.get(URL).get_data(as_text=True)
    assert f"Deleted {first}" in after
    assert f">{first}<" not in after

    assert post_form(admin, f"{URL}{first}/delete", {}, token_page=URL).status_code == 302
    assert f"no queued message {first}" in admin.get(URL).get_data(as_text=True)
    assert admin.get(f"{URL}{first}").status_code == 404
    assert admin.get(f"{URL}not-an-id").status_code == 404

    flushed = post_form(admin, f"{URL}flush", {}, token_page=URL)
    assert flushed.status_code == 302

    # The engine's JSON-lines log (log.file) has the submission, found by queue id.
    log_page = admin.get(f"/admin/log/?q={second}").get_data(as_text=True)
    assert "submission.accepted" in log_page
    assert "dave@remote.example" in log_page
    by_address = admin.get("/admin/log/?q=DAVE@remote.example").get_data(as_text=True)
    assert "submission.accepted" in by_address


def test_engine_down_is_said_plainly(engine: EngineProcess,
                                     console: tuple[Flask, FlaskClient]) -> None:
    _, admin = console
    health = admin.get("/admin/health").get_data(as_text=True)
    assert "running" in health
    engine.stop()
    page = admin.get(URL)
    assert page.status_code == 503
    assert "The mail engine is not running" in page.get_data(as_text=True)
    action = post_form(admin, f"{URL}ABC123/delete", {}, token_page="/admin/domains/")
    assert action.status_code == 503
    assert "not answering" in admin.get("/admin/health").get_data(as_text=True)


def test_queue_actions_need_csrf_and_admin(engine: EngineProcess,
                                           console: tuple[Flask, FlaskClient]) -> None:
    app, admin = console
    queue_id = submit(engine, ALICE, [REMOTE], message(ALICE, REMOTE, "kept"))
    wait_until(lambda: len(queued(engine)) == 1, 10, "a queued message")
    admin.get(URL)
    assert admin.post(f"{URL}{queue_id}/delete").status_code == 400
    visitor = app.test_client()
    assert visitor.get(URL).status_code == 302
    assert [m["queue_id"] for m in queued(engine)] == [queue_id]
