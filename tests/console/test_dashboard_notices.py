"""The dashboard's notices: filters that hold mail back on a new box (a virus scanner that
does not answer -- a real clamd from Debian, started and stopped -- and greylisting), and
postmaster@ or the alert address reaching nobody."""

from __future__ import annotations

import html
from pathlib import Path

from appliance.storage.db import open_database
from appliance.storage.directory import SqliteDirectory
from peers.clamd import ClamdInstance
from webui.dashboard_notices import clamd_answers, dashboard_notices, filter_notices

from .conftest import (
    ADMIN,
    ADMIN_PASSWORD,
    add_admin,
    add_user,
    close_app,
    console_settings,
    log_in,
    make_app,
)


def dashboard(tmp_path: Path, **overrides: object) -> str:
    settings = console_settings(tmp_path / "data", **overrides)
    add_admin(settings)
    app = make_app(settings)
    try:
        client = app.test_client()
        assert log_in(client, ADMIN, ADMIN_PASSWORD).status_code == 302
        return html.unescape(client.get("/").get_data(as_text=True))
    finally:
        close_app(app)


def test_a_running_clamd_gives_no_virus_notice(tmp_path: Path) -> None:
    with ClamdInstance(tmp_path / "clamd") as clamd:
        assert clamd_answers(str(clamd.socket_path))
        assert clamd_answers(clamd.tcp_address)
        page = dashboard(tmp_path, antivirus__clamd_socket=str(clamd.socket_path),
                         greylist__enabled=False)
    assert "virus scanner" not in page
    assert "Greylisting is on" not in page


def test_a_silent_clamd_is_shown_with_what_it_means_for_mail(tmp_path: Path) -> None:
    with ClamdInstance(tmp_path / "clamd") as clamd:
        address = clamd.tcp_address
    assert not clamd_answers(address)                   # stopped: nothing listens
    assert not clamd_answers(str(tmp_path / "no-such.sock"))
    assert not clamd_answers("not an address")
    page = dashboard(tmp_path, antivirus__clamd_socket=address)
    assert "The virus scanner (ClamAV) is not answering." in page
    assert "deferred with 451" in page
    assert "antivirus.fail_open" in page
    assert "Greylisting is on." in page
    assert "about 5 minutes" in page


def test_fail_open_and_a_disabled_scanner_change_the_notice(tmp_path: Path) -> None:
    settings = console_settings(tmp_path / "a", antivirus__clamd_socket="127.0.0.1:9",
                                antivirus__fail_open=True, greylist__delay=60)
    notices = {n.title: n for n in filter_notices(settings)}
    assert "accepted unscanned" in notices["The virus scanner (ClamAV) is not answering"].text
    assert "about 1 minute " in notices["Greylisting is on"].text
    settings = console_settings(tmp_path / "b", antivirus__enabled=False,
                                greylist__enabled=False)
    assert filter_notices(settings) == []


def test_postmaster_and_alert_mail_that_reach_nobody_are_named(tmp_path: Path) -> None:
    settings = console_settings(tmp_path / "data", greylist__enabled=False,
                                antivirus__enabled=False)
    add_user(settings, "alice@example.test")
    add_user(settings, "bob@other.test")
    conn = open_database(settings.data_dir)
    try:
        directory = SqliteDirectory(conn)
        titles = {n.title: n.text for n in dashboard_notices(settings, directory)}
        assert "postmaster@example.test, postmaster@other.test" in titles[
            "postmaster@ reaches nobody"]
        assert "mailed to postmaster@example.test" in titles["Alert mail has no mailbox"]
        directory.add_alias("postmaster@example.test", "alice@example.test")
        directory.add_alias("@other.test", "bob@other.test")        # a catch-all counts
        assert dashboard_notices(settings, directory) == []
    finally:
        conn.close()
    add_admin(settings)
    app = make_app(settings)
    try:
        client = app.test_client()
        assert log_in(client, ADMIN, ADMIN_PASSWORD).status_code == 302
        page = client.get("/").get_data(as_text=True)
    finally:
        close_app(app)
    assert "reaches nobody" not in page
    assert "Alert mail has no mailbox" not in page


def test_an_outside_alert_address_needs_no_local_mailbox(tmp_path: Path) -> None:
    settings = console_settings(tmp_path / "data", monitor__admin_address="ops@elsewhere.test",
                                greylist__enabled=False, antivirus__enabled=False)
    add_user(settings, "postmaster@example.test")
    conn = open_database(settings.data_dir)
    try:
        assert dashboard_notices(settings, SqliteDirectory(conn)) == []
    finally:
        conn.close()
