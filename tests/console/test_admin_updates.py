"""The updates page (webui/blueprints/admin_updates.py): what it shows from a real
state.json written through appliance/update/state.py, the honest dev-mode page, and the
buttons: each writes exactly one valid request file for the root updater, only when it is
offered, only for an admin with the CSRF token, and is audited."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.cli.update_cmds import running_version
from appliance.settings import Settings
from appliance.storage.db import open_database
from appliance.update import requests, slots, state
from console.conftest import (
    ADMIN,
    ADMIN_PASSWORD,
    USER,
    USER_PASSWORD,
    add_admin,
    add_user,
    close_app,
    console_settings,
    form_token,
    log_in,
    make_app,
)
from webui.blueprints.admin_updates import CMDLINE_KEY, ESP_KEY

URL = "https://updates.example.test/mailstead/"
CMDLINE = "root=PARTLABEL=root-{0} ro rootwait mailstead.slot={0} quiet\n"
ACTIONS = ["check", "install", "reboot", "rollback"]


@pytest.fixture
def appliance_settings(tmp_path: Path) -> Settings:
    return console_settings(tmp_path / "data", update__url=URL,
                            update__maintenance_window="02:00-04:00")


@pytest.fixture
def appliance_app(appliance_settings: Settings, tmp_path: Path) -> Iterator[Flask]:
    """The console as on the appliance: booted from slot a, an ESP directory present."""
    add_admin(appliance_settings)
    add_user(appliance_settings)
    (tmp_path / "cmdline").write_text(CMDLINE.format("a"))
    (tmp_path / "efi").mkdir()
    app = make_app(appliance_settings, **{CMDLINE_KEY: str(tmp_path / "cmdline"),
                                          ESP_KEY: str(tmp_path / "efi")})
    yield app
    close_app(app)


@pytest.fixture
def admin(appliance_app: Flask) -> FlaskClient:
    client = appliance_app.test_client()
    assert log_in(client, ADMIN, ADMIN_PASSWORD).status_code == 302
    return client


def save_state(settings: Settings, **fields: object) -> state.UpdateState:
    found = state.UpdateState(**fields)   # type: ignore[arg-type]
    state.save(state.state_dir(settings), found)
    return found


def esp(a: list[str], b: list[str]) -> state.EspView:
    return state.EspView({"a": a, "b": b})


def buttons(page: str) -> list[str]:
    return [label for label in ("Check now", "Install now", "Reboot now", "Roll back")
            if f">{label}</button>" in page]


def request_files(settings: Settings) -> list[Path]:
    folder = requests.request_dir(settings.data_dir)
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def audit_rows(settings: Settings) -> list[tuple[str, str, str]]:
    conn = open_database(settings.data_dir)
    try:
        return [(r["actor"], r["action"], r["target"]) for r in conn.execute(
            "SELECT actor, action, target FROM audit_log WHERE action LIKE 'update.%'")]
    finally:
        conn.close()


# -- what the page shows ---------------------------------------------------------------------

def test_dev_mode_says_it_is_not_an_appliance_and_offers_no_button(
        admin_client: FlaskClient) -> None:
    page = admin_client.get("/admin/updates").get_data(as_text=True)
    assert "This is not an appliance image" in page
    assert "<code>./build.sh image</code>" in page
    assert running_version() in page
    assert "updates are off: no update.url" in page
    assert buttons(page) == []
    assert "Actions" not in page


def test_empty_state_on_the_appliance(admin: FlaskClient) -> None:
    page = admin.get("/admin/updates").get_data(as_text=True)
    assert "not an appliance image" not in page
    assert f"<code>{URL}</code>" in page
    assert "02:00-04:00" in page
    assert ">Last check</th><td>\n    never" in page
    assert "No update has been installed on this appliance yet." in page
    assert buttons(page) == ["Check now", "Install now"]
    assert "has not yet recorded the boot loader" in page


def test_updates_off_names_the_setting_and_offers_no_check(
        tmp_path: Path) -> None:
    current = console_settings(tmp_path / "data")
    add_admin(current)
    (tmp_path / "cmdline").write_text(CMDLINE.format("b"))
    app = make_app(current, **{CMDLINE_KEY: str(tmp_path / "cmdline"), ESP_KEY: str(tmp_path)})
    try:
        client = app.test_client()
        log_in(client, ADMIN, ADMIN_PASSWORD)
        page = client.get("/admin/updates").get_data(as_text=True)
    finally:
        close_app(app)
    assert "updates are off: no update.url" in page
    assert "Set <code>update.url</code> on the" in page
    assert 'href="/admin/settings#section-update"' in page
    assert buttons(page) == []


def test_pending_install_offers_reboot_and_not_install_or_rollback(
        admin: FlaskClient, appliance_settings: Settings) -> None:
    installed = state.Outcome("0.3.0", "installed", "slot b", "0.2.0", at=1_700_000_000)
    save_state(appliance_settings, pending=slots.Pending("0.3.0", "a", "b", "0.2.0"),
               history=[installed], esp=esp(["root-a.conf"], ["root-b+3.conf"]),
               last_check=state.LastCheck("stable", "offered 0.3.0", at=1_700_000_000))
    page = admin.get("/admin/updates").get_data(as_text=True)
    assert "Installed, waiting for its reboot" in page
    assert "<strong>0.3.0</strong> is installed in slot b (from 0.2.0 in slot a) since " \
           "2023-11-14 22:13:20 UTC" in page
    assert "reboots into it in the maintenance window (02:00-04:00)" in page
    assert "<strong>offered 0.3.0</strong> (stable)" in page
    assert buttons(page) == ["Check now", "Reboot now"]
    assert "0.3.0 is installed and not committed yet" in page


def test_history_failure_and_failed_versions_from_state_json(
        admin: FlaskClient, appliance_settings: Settings) -> None:
    history = [state.Outcome("0.2.0", "installed", "slot b", "0.1.0", at=1_700_000_000),
               state.Outcome("0.2.0", "rolled back", "SMTP <script>x</script> no answer",
                             "0.1.0", at=1_700_000_600)]
    save_state(appliance_settings, history=history, failure="IMAP did not answer",
               failed_versions=["0.2.0"], esp=esp(["root-a.conf"], []),
               last_check=state.LastCheck("beta", "refused: expired",
                                          "metadata has expired", at=1_700_000_900))
    page = admin.get("/admin/updates").get_data(as_text=True)
    rows = page[page.index("<tbody>", page.index("History")):]
    assert rows.index("rolled back") < rows.index(">installed<")     # newest first
    assert "SMTP &lt;script&gt;x&lt;/script&gt; no answer" in page
    assert "<script>x" not in page
    assert "2023-11-14 22:23:20 UTC" in page
    assert "The new slot failed its health check: IMAP did not answer" in page
    assert "not installed again by the timer: <code>0.2.0</code>" in page
    assert "<strong>refused: expired</strong> (beta)" in page
    assert "metadata has expired" in page
    assert "slot b has no bootable system" in page
    assert buttons(page) == ["Check now", "Install now"]


def test_rollback_is_offered_when_the_previous_slot_can_boot(
        admin: FlaskClient, appliance_settings: Settings) -> None:
    save_state(appliance_settings, esp=esp(["root-a.conf"], ["root-b.conf"]))
    page = admin.get("/admin/updates").get_data(as_text=True)
    assert buttons(page) == ["Check now", "Install now", "Roll back"]
    save_state(appliance_settings, esp=esp(["root-a.conf"], ["root-b+0-3.conf"]))
    page = admin.get("/admin/updates").get_data(as_text=True)
    assert "slot b is marked bad" in page
    assert "Roll back</button>" not in page


def test_unreadable_state_is_said_and_disables_the_buttons(
        admin: FlaskClient, appliance_settings: Settings) -> None:
    folder = state.update_dir(state.state_dir(appliance_settings))
    (folder / state.STATE_FILE).write_text('{"history": [{"nonsense": 1}]}')
    page = admin.get("/admin/updates").get_data(as_text=True)
    assert "The updater's state cannot be read" in page
    assert buttons(page) == []


# -- the buttons -----------------------------------------------------------------------------

def _offer_everything(current: Settings, action: str) -> None:
    if action == "reboot":
        save_state(current, pending=slots.Pending("0.3.0", "a", "b", "0.2.0"),
                   esp=esp(["root-a.conf"], ["root-b+3.conf"]))
    else:
        save_state(current, esp=esp(["root-a.conf"], ["root-b.conf"]))


@pytest.mark.parametrize("action", ACTIONS)
def test_each_button_writes_exactly_one_valid_request_and_is_audited(
        admin: FlaskClient, appliance_settings: Settings, action: str) -> None:
    _offer_everything(appliance_settings, action)
    token = form_token(admin.get("/admin/updates").data)
    before = time.time()
    response = admin.post(f"/admin/updates/{action}", data={"csrf_token": token,
                                                            "confirm": "yes"})
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/admin/updates")
    files = request_files(appliance_settings)
    assert len(files) == 1
    assert files[0].stat().st_mode & 0o077 == 0
    found = requests.parse(files[0].read_bytes())
    assert (found.action, found.by) == (action, ADMIN)
    assert before <= found.requested_at <= time.time()
    assert audit_rows(appliance_settings) == [(ADMIN, f"update.{action}", "updater")]
    page = admin.get("/admin/updates").get_data(as_text=True)
    assert "requested; the updater runs it within a few seconds" in page
    assert "Requested, not picked up yet" in page
    assert f"by {ADMIN} at " in page


@pytest.mark.parametrize("action", ["reboot", "rollback"])
def test_a_restart_needs_the_ticked_box(admin: FlaskClient, appliance_settings: Settings,
                                        action: str) -> None:
    _offer_everything(appliance_settings, action)
    page = admin.get("/admin/updates").get_data(as_text=True)
    assert 'name="confirm" value="yes" required' in page
    response = admin.post(f"/admin/updates/{action}", data={"csrf_token": form_token(page)})
    assert response.status_code == 303
    assert request_files(appliance_settings) == []
    assert "tick the box to confirm. Nothing was requested." in admin.get(
        "/admin/updates").get_data(as_text=True)


def test_a_button_not_offered_writes_nothing(admin: FlaskClient,
                                             appliance_settings: Settings) -> None:
    token = form_token(admin.get("/admin/updates").data)
    for action in ("reboot", "rollback"):        # nothing pending, no ESP view
        response = admin.post(f"/admin/updates/{action}",
                              data={"csrf_token": token, "confirm": "yes"})
        assert response.status_code == 303
    assert request_files(appliance_settings) == []
    assert audit_rows(appliance_settings) == []
    assert "is not possible now: nothing was requested" in admin.get(
        "/admin/updates").get_data(as_text=True)


@pytest.mark.parametrize("action", ACTIONS)
def test_csrf_missing_or_forged_is_400_and_writes_nothing(
        admin: FlaskClient, appliance_settings: Settings, action: str) -> None:
    _offer_everything(appliance_settings, action)
    admin.get("/admin/updates")
    assert admin.post(f"/admin/updates/{action}", data={"confirm": "yes"}).status_code == 400
    assert admin.post(f"/admin/updates/{action}",
                      data={"csrf_token": "forged", "confirm": "yes"}).status_code == 400
    assert request_files(appliance_settings) == []


@pytest.mark.parametrize("action", ACTIONS)
def test_users_get_403_and_visitors_the_login_page(
        appliance_app: Flask, appliance_settings: Settings, action: str) -> None:
    _offer_everything(appliance_settings, action)
    user = appliance_app.test_client()
    assert log_in(user, USER, USER_PASSWORD).status_code == 302
    token = form_token(user.get("/").data)
    assert user.get("/admin/updates").status_code == 403
    assert user.post(f"/admin/updates/{action}",
                     data={"csrf_token": token, "confirm": "yes"}).status_code == 403
    visitor = appliance_app.test_client()
    response = visitor.get("/admin/updates")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]
    assert request_files(appliance_settings) == []


def test_the_queue_ignores_files_that_are_not_requests(
        admin: FlaskClient, appliance_settings: Settings) -> None:
    folder = requests.request_dir(appliance_settings.data_dir)
    folder.mkdir()
    (folder / "1-odd.json").write_text(json.dumps({"action": "format disk"}))
    requests.submit(folder, "check", "someone", now=1_700_000_000)
    page = admin.get("/admin/updates").get_data(as_text=True)
    assert "Check now by someone at 2023-11-14 22:13:20 UTC" in page
    assert "format disk" not in page


def test_old_state_json_without_the_new_fields_loads(tmp_path: Path) -> None:
    (tmp_path / state.STATE_FILE).write_text(json.dumps(
        {"pending": None, "failure": "", "failed_versions": ["0.2"],
         "history": [{"version": "0.2", "outcome": "aborted", "reason": "r",
                      "from_version": "0.1", "at": 5.0}]}))
    found = state.load(tmp_path)
    assert (found.last_check, found.esp, found.failed_versions) == (None, None, ["0.2"])
    found.last_check = state.LastCheck("stable", "up to date", at=7.0)
    found.esp = esp(["root-a.conf"], [])
    state.save(tmp_path, found)
    data = json.loads((tmp_path / state.STATE_FILE).read_text())
    data["last_check"]["from_a_newer_version"] = True      # unknown keys are left out
    (tmp_path / state.STATE_FILE).write_text(json.dumps(data))
    again = state.load(tmp_path)
    assert again.last_check == state.LastCheck("stable", "up to date", "", 7.0)
    assert again.esp is not None
    assert again.esp.entries == {"a": ["root-a.conf"], "b": []}
    assert (tmp_path / state.STATE_FILE).stat().st_mode & 0o777 == 0o644
