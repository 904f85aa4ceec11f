"""The settings schema: defaults, TOML, environment overrides and the errors they give."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from appliance import settings as settings_module
from appliance.cli import main as cli_main
from appliance.settings import (
    SCHEMA,
    SETTINGS_BY_NAME,
    Setting,
    Settings,
    SettingsError,
    load_settings,
    reference_table,
    render_toml,
)


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mailstead.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(SettingsError) as caught:
        load_settings(write_config(tmp_path, text), environ or {})
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_defaults_load_without_a_file() -> None:
    current = load_settings(None, {})
    assert dict(current.values) == {s.name: s.default for s in SCHEMA}
    assert current.source is None
    assert current.get_int("listen.smtp_port") == 25
    assert current.get_str("log.level") == "info"
    assert current.get_bool("server.dev_mode") is False


def test_toml_overrides_defaults_and_keeps_the_rest(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[server]\nhostname = "mx.example.org"\ndev_mode = true\n'
                                  "[listen]\nsmtp_port = 2525\n")
    current = load_settings(path, {})
    assert current["server.hostname"] == "mx.example.org"
    assert current["server.dev_mode"] is True
    assert current["listen.smtp_port"] == 2525
    assert current["listen.imap_port"] == 143
    assert current.source == path


def test_environment_wins_over_toml(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[listen]\nsmtp_port = 2525\n[log]\nlevel = \"debug\"\n")
    current = load_settings(path, {"MAILSTEAD_LISTEN__SMTP_PORT": "2626",
                                   "MAILSTEAD_SERVER__DEV_MODE": "yes"})
    assert current["listen.smtp_port"] == 2626
    assert current["server.dev_mode"] is True
    assert current["log.level"] == "debug"


def test_environ_none_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILSTEAD_LISTEN__POP3_PORT", "1110")
    assert load_settings(None)["listen.pop3_port"] == 1110


@pytest.mark.parametrize(("raw", "expected"), [
    ("1", True), ("true", True), ("On", True), (" YES ", True),
    ("0", False), ("false", False), ("off", False), ("No", False),
])
def test_environment_booleans(raw: str, expected: bool) -> None:
    assert load_settings(None, {"MAILSTEAD_SERVER__DEV_MODE": raw})["server.dev_mode"] is expected


def test_variables_without_double_underscore_are_not_settings() -> None:
    # MAILSTEAD_CONFIG names the config file for the CLI; it must not be taken for a setting.
    current = load_settings(None, {"MAILSTEAD_CONFIG": "/x.toml", "PATH": "/bin"})
    assert dict(current.values) == {s.name: s.default for s in SCHEMA}


def test_unknown_section_is_refused(tmp_path: Path) -> None:
    message = load_error(tmp_path, "[smtp]\nport = 25\n")
    assert "[smtp]" in message
    assert "server, paths, listen" in message


@pytest.mark.parametrize("text", ['hostname = "mx"\n', 'server = "mx"\n'])
def test_key_outside_a_section_is_refused(tmp_path: Path, text: str) -> None:
    message = load_error(tmp_path, text)
    name = text.split(" ")[0]
    assert f"{name} = 'mx' is outside any section" in message
    assert "[server], [paths]" in message


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    message = load_error(tmp_path, "[listen]\nsmtp_prot = 25\n")
    assert "listen.smtp_prot" in message
    assert "smtp_port" in message
    assert "imap_port" in message


def test_unknown_environment_variable_is_refused() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(None, {"MAILSTEAD_LISTEN__SMTP_PROT": "25"})
    assert "MAILSTEAD_LISTEN__SMTP_PROT" in str(caught.value)
    assert "SECTION__KEY" in str(caught.value)


@pytest.mark.parametrize(("text", "name", "shown", "accepted"), [
    ('[listen]\nsmtp_port = "25"\n', "listen.smtp_port", "'25'", "integer from 1 to 65535"),
    ("[listen]\nsmtp_port = true\n", "listen.smtp_port", "True", "integer from 1 to 65535"),
    ("[listen]\nsmtp_port = 25.0\n", "listen.smtp_port", "25.0", "integer from 1 to 65535"),
    ("[listen]\nsmtp_port = 0\n", "listen.smtp_port", "0", "integer from 1 to 65535"),
    ("[listen]\nsmtp_port = 65536\n", "listen.smtp_port", "65536", "integer from 1 to 65535"),
    ("[limits]\nmax_line_length = 511\n", "limits.max_line_length", "511", "from 512 to"),
    ('[log]\nlevel = "verbose"\n', "log.level", "'verbose'", "'debug', 'info'"),
    ('[server]\ndev_mode = "yes"\n', "server.dev_mode", "'yes'", "true or false"),
    ("[server]\nhostname = 7\n", "server.hostname", "7", "a non-empty string"),
    ('[server]\nhostname = ""\n', "server.hostname", "''", "a non-empty string"),
    ('[paths]\ndata_dir = ""\n', "paths.data_dir", "''", "a file system path"),
])
def test_bad_values_name_key_value_and_accepted(
        tmp_path: Path, text: str, name: str, shown: str, accepted: str) -> None:
    message = load_error(tmp_path, text)
    assert f"{name} = {shown}" in message
    assert accepted in message


@pytest.mark.parametrize(("variable", "raw", "name", "accepted"), [
    ("MAILSTEAD_LISTEN__SMTP_PORT", "smtp", "listen.smtp_port", "integer from 1 to 65535"),
    ("MAILSTEAD_LISTEN__SMTP_PORT", "99999", "listen.smtp_port", "integer from 1 to 65535"),
    ("MAILSTEAD_SERVER__DEV_MODE", "maybe", "server.dev_mode", "true or false"),
    ("MAILSTEAD_LOG__LEVEL", "loud", "log.level", "'warning', 'error'"),
])
def test_bad_environment_values_are_refused(
        variable: str, raw: str, name: str, accepted: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(None, {variable: raw})
    message = str(caught.value)
    assert name in message
    assert raw in message
    assert accepted in message


def test_invalid_toml_is_a_settings_error(tmp_path: Path) -> None:
    message = load_error(tmp_path, "[listen\nsmtp_port = 25\n")
    assert "cannot read config file" in message
    assert "mailstead.toml" in message


def test_non_utf8_config_is_a_settings_error(tmp_path: Path) -> None:
    path = tmp_path / "mailstead.toml"
    path.write_bytes(b'[server]\nhostname = "\xff"\n')
    with pytest.raises(SettingsError, match="cannot read config file"):
        load_settings(path, {})


def test_unreadable_config_is_a_settings_error(tmp_path: Path) -> None:
    missing = tmp_path / "absent.toml"
    with pytest.raises(SettingsError, match=r"cannot read config file .*absent\.toml"):
        load_settings(missing, {})
    with pytest.raises(SettingsError, match="cannot read config file"):
        load_settings(tmp_path, {})   # a directory


def test_relative_paths_resolve_against_the_config_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    current = load_settings(write_config(config_dir, '[paths]\ndata_dir = "data"\n'), {})
    assert current.data_dir == (config_dir / "data").resolve()
    assert current.data_path("tls.cert_file") == (config_dir / "data" / "tls" / "cert.pem")


def test_absolute_paths_stay_absolute(tmp_path: Path) -> None:
    target = tmp_path / "abs"
    current = load_settings(write_config(tmp_path, f'[paths]\ndata_dir = "{target}"\n'
                                         f'[tls]\nkey_file = "{target}/k.pem"\n'), {})
    assert current.data_dir == target.resolve()
    assert current.data_path("tls.key_file") == target / "k.pem"


def test_without_a_file_paths_resolve_against_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    current = load_settings(None, {"MAILSTEAD_PATHS__DATA_DIR": "var"})
    assert current.data_dir == (tmp_path / "var").resolve()


def test_render_toml_round_trips(tmp_path: Path) -> None:
    values = {s.name: s.default for s in SCHEMA}
    values.update({"server.hostname": 'odd "name" \\ with\ttab\nand newline',
                   "server.dev_mode": True, "listen.smtp_port": 2525, "log.level": "error",
                   "paths.data_dir": "./dä ta"})
    path = write_config(tmp_path, render_toml(values))
    assert dict(load_settings(path, {}).values) == values


def test_render_toml_groups_by_section() -> None:
    text = render_toml({"listen.smtp_port": 25, "server.hostname": "a"})
    assert text.index("[server]") < text.index("hostname") < text.index("[listen]")
    assert tomllib.loads(text) == {"server": {"hostname": "a"}, "listen": {"smtp_port": 25}}


def test_reference_table_lists_every_setting() -> None:
    table = reference_table()
    for setting in SCHEMA:
        assert f"`{setting.name}`" in table
    assert len(table.splitlines()) == len(SCHEMA) + 2


SECRET = Setting("auth", "test_secret", str, "unset", "A test-only secret.", secret=True)


def test_redacted_masks_secret_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SETTINGS_BY_NAME, SECRET.name, SECRET)
    current = Settings({"auth.test_secret": "hunter2-hunter2", "server.hostname": "mx"})
    shown = current.redacted()
    assert shown == {"auth.test_secret": "********", "server.hostname": "mx"}
    assert current["auth.test_secret"] == "hunter2-hunter2"


def test_config_show_masks_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(SETTINGS_BY_NAME, SECRET.name, SECRET)
    monkeypatch.setattr(settings_module, "SCHEMA", (*SCHEMA, SECRET))
    path = write_config(tmp_path, '[auth]\ntest_secret = "hunter2-hunter2"\n')
    umask = os.umask(0o022)
    try:
        assert cli_main(["--config", str(path), "config", "show"]) == 0
    finally:
        os.umask(umask)   # main() sets the service umask for the whole process
    out = capsys.readouterr().out
    assert "hunter2" not in out
    assert 'test_secret = "********"' in out
    assert "smtp_port = 25" in out


def test_loading_settings_imports_no_heavy_library() -> None:
    """Validators are imported lazily by their owners; none may drag a large library (the
    ACME client's `acme`, `requests`, pyOpenSSL; Flask) into the engine or the monitor,
    which read settings too (their memory targets: 1,000 idle IMAP clients < 100 MB, the
    monitor < 40 MB)."""
    script = ("import sys\nfrom appliance.settings import load_settings, render_toml, SCHEMA\n"
              "values = load_settings(None).values\n"
              "for setting in SCHEMA:\n"
              "    if setting.validate is not None and isinstance(values[setting.name], str):\n"
              "        setting.validate(values[setting.name])\n"
              "heavy = ('acme', 'josepy', 'requests', 'OpenSSL', 'flask', 'werkzeug')\n"
              "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True, timeout=60)
    assert done.stdout.strip() == "[]"
