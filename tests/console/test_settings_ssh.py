"""The settings page's [ssh] section, "SSH access (key-only, from the LAN)": the switch and
the keys are validated with the SSH key parser (errors name the line, 400), saved, audited
by fingerprint (never the keys), and the trigger file mailstead-ssh.path watches is
touched; resetting a value touches it too."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from appliance.net.ssh_access import TRIGGER_NAME
from appliance.settings import Settings
from console.conftest import form_token
from harness.debian import ensure_package

from .test_settings_page import PAGE, audit_rows, save, stored


@pytest.fixture(scope="module")
def public_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str]:
    """(ed25519 line, its fingerprint, a 2048-bit RSA line) from the real ssh-keygen."""
    keygen = ensure_package("ssh-keygen", "openssh-client")
    folder = tmp_path_factory.mktemp("sshkeys")
    for name, args in (("ed", ["-t", "ed25519"]), ("rsa", ["-t", "rsa", "-b", "2048"])):
        subprocess.run([keygen, "-q", *args, "-N", "", "-C", "admin@laptop",
                        "-f", str(folder / name)], check=True, timeout=120)
    listed = subprocess.run([keygen, "-lf", str(folder / "ed.pub")], capture_output=True,
                            text=True, check=True, timeout=30)
    return ((folder / "ed.pub").read_text().strip(), listed.stdout.split()[1],
            (folder / "rsa.pub").read_text().strip())


def test_the_section_has_a_title_a_checkbox_and_a_textarea(
        admin_client: FlaskClient) -> None:
    page = admin_client.get(PAGE).get_data(as_text=True)
    assert "<h2>[ssh] SSH access (key-only, from the LAN)</h2>" in page
    assert 'type="checkbox" id="setting-ssh.enabled" name="ssh.enabled"' in page
    assert '<textarea id="setting-ssh.authorized_keys" name="ssh.authorized_keys"' in page


def test_valid_keys_are_saved_audited_by_fingerprint_and_trigger_the_unit(
        admin_client: FlaskClient, settings: Settings, public_keys: tuple[str, str, str],
        caplog: pytest.LogCaptureFixture) -> None:
    line, fingerprint, _ = public_keys
    trigger = settings.data_dir / TRIGGER_NAME
    with caplog.at_level(logging.DEBUG):
        status, _ = save(admin_client, "ssh", **{"ssh.enabled": "on",
                                                 "ssh.authorized_keys": "# me\r\n" + line})
    assert status == 302
    assert stored(settings)["ssh.enabled"] == "true"
    assert line in stored(settings)["ssh.authorized_keys"]
    assert trigger.exists()
    rows = audit_rows(settings)
    assert ("settings.change", "ssh.authorized_keys", {"old": "none", "new": fingerprint}) in rows
    assert ("settings.change", "ssh.enabled", {"old": "false", "new": "true"}) in rows
    secret = line.split()[1]
    assert secret[:30] not in str(rows)
    assert secret[:30] not in caplog.text
    page = admin_client.get(PAGE).get_data(as_text=True)
    assert line in page                                  # shown again in the textarea
    assert "ssh.enabled" not in page.split('id="engine"')[1].split("</section>")[0]


def test_invalid_keys_are_refused_with_the_line_number(
        admin_client: FlaskClient, settings: Settings, public_keys: tuple[str, str, str],
        caplog: pytest.LogCaptureFixture) -> None:
    line, _, weak = public_keys
    with caplog.at_level(logging.DEBUG):
        status, page = save(admin_client, "ssh", **{"ssh.enabled": "on",
                                                     "ssh.authorized_keys": f"{line}\n{weak}"})
    assert status == 400
    assert "line 2: an RSA key of 2048 bits is too weak" in page
    status, page = save(admin_client, "ssh", **{"ssh.authorized_keys":
                                                f'command="/bin/sh" {line}'})
    assert status == 400
    assert "line 1: options before the key" in page
    assert "ssh.authorized_keys" not in stored(settings)
    assert not (settings.data_dir / TRIGGER_NAME).exists()
    assert audit_rows(settings) == []
    assert weak.split()[1][:30] not in caplog.text


def test_a_long_key_list_fits_and_reset_triggers_the_unit(
        admin_client: FlaskClient, settings: Settings,
        public_keys: tuple[str, str, str]) -> None:
    line = public_keys[0]
    padded = "\n".join(["# " + "x" * 900] * 3 + [line])       # over the 1,000 of one field
    assert save(admin_client, "ssh", **{"ssh.authorized_keys": padded})[0] == 302
    trigger = settings.data_dir / TRIGGER_NAME
    trigger.unlink()
    response = admin_client.post(PAGE + "/reset", data={
        "reset": "ssh.authorized_keys",
        "csrf_token": _token(admin_client)})
    assert response.status_code == 302
    assert trigger.exists()
    assert "ssh.authorized_keys" not in stored(settings)
    assert audit_rows(settings)[-1] == ("settings.reset", "ssh.authorized_keys",
                                        {"old": public_keys[1]})


def _token(client: FlaskClient) -> str:
    return form_token(client.get(PAGE).get_data(as_text=True))


def test_the_trigger_path_is_the_one_the_path_unit_watches() -> None:
    unit = Path(__file__).resolve().parents[2] / "image" / "systemd" / "mailstead-ssh.path"
    assert f"PathModified=/var/lib/mailstead/data/{TRIGGER_NAME}\n" in unit.read_text()
