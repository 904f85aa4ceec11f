"""The console asks the root firewall unit to reload the LAN sets (a trigger file that
mailstead-firewall.path watches) when, and only when, console.allowed_networks changes."""

from __future__ import annotations

from flask.testing import FlaskClient

from appliance.net.firewall_lan import TRIGGER_NAME
from appliance.settings import Settings

from .test_settings_page import save


def test_the_console_asks_for_a_reload_only_when_the_lan_changes(
        admin_client: FlaskClient, settings: Settings) -> None:
    trigger = settings.data_dir / TRIGGER_NAME
    assert save(admin_client, "limits", limits__max_recipients="250")[0] == 302
    assert not trigger.exists()
    status, _ = save(admin_client, "console",
                     console__allowed_networks="127.0.0.0/8, ::1, 192.168.77.0/24")
    assert status == 302
    assert trigger.exists()
