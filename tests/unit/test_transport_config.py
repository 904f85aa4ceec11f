"""TransportConfig comes from the `outbound.*` settings; `outbound.resolver` may be empty."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.outbound.client import Timeouts
from appliance.outbound.transport import TransportConfig
from appliance.settings import Settings, SettingsError, load_settings


def settings_from(tmp_path: Path, text: str,
                  environ: dict[str, str] | None = None) -> Settings:
    path = tmp_path / "mailstead.toml"
    path.write_text(text)
    return load_settings(path, environ or {})


def test_defaults_follow_rfc_5321_timeouts(tmp_path: Path) -> None:
    config = TransportConfig.from_settings(settings_from(tmp_path, "[paths]\ndata_dir = 'd'\n"))
    assert config.timeouts == Timeouts(connect=30, greeting=300, mail=300, rcpt=300,
                                       data_init=120, data_block=180, data_end=600)
    assert config.port == 25
    assert config.resolver == ""
    assert config.ca_file is None
    assert config.mta_sts
    assert config.mta_sts_port == 443
    assert config.mta_sts_dir == (tmp_path / "d" / "mta-sts").resolve()


def test_test_settings_reach_the_config(tmp_path: Path) -> None:
    text = ("[paths]\ndata_dir = 'd'\n[server]\nhostname = 'mx.example.test'\n"
            "[outbound]\nport = 2525\nresolver = '127.0.0.1:5353'\nca_file = 'ca.pem'\n"
            "greeting_timeout = 2\nmta_sts = false\nmta_sts_port = 8443\n")
    config = TransportConfig.from_settings(settings_from(tmp_path, text))
    assert config.helo_name == "mx.example.test"
    assert (config.port, config.resolver, config.mta_sts_port) == (2525, "127.0.0.1:5353", 8443)
    assert config.ca_file == (tmp_path / "d" / "ca.pem").resolve()
    assert config.timeouts.greeting == 2
    assert not config.mta_sts


def test_an_empty_resolver_is_allowed_but_an_empty_hostname_is_not(tmp_path: Path) -> None:
    assert settings_from(tmp_path, "[outbound]\nresolver = ''\n").get_str(
        "outbound.resolver") == ""
    with pytest.raises(SettingsError, match=r"server\.hostname"):
        settings_from(tmp_path, "[server]\nhostname = ''\n")


def test_environment_can_point_the_resolver_at_a_test_server(tmp_path: Path) -> None:
    loaded = settings_from(tmp_path, "", {"MAILSTEAD_OUTBOUND__RESOLVER": "[::1]:5353"})
    assert loaded.get_str("outbound.resolver") == "[::1]:5353"
