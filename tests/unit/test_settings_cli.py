"""`mailstead config set|unset|show`: the same mailstead.db store as the console's settings
page, run as a subprocess the way an administrator runs it."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from appliance.settings import load_settings
from appliance.settings_store import load_effective, read_rows
from appliance.storage.db import open_database

CONFIG = """\
[server]
hostname = "file.example.test"
[paths]
data_dir = "."
[limits]
max_recipients = 50
"""


def run(config: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MAILSTEAD_")}
    return subprocess.run([sys.executable, "-m", "appliance", "--config", str(config), *args],
                          capture_output=True, text=True, env={**clean, **env}, timeout=60,
                          check=False)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "mailstead.toml"
    path.write_text(CONFIG, encoding="utf-8")
    open_database(tmp_path).close()
    return path


def test_set_show_unset(config: Path) -> None:
    done = run(config, "config", "set", "server.hostname", "db.example.test")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("stored server.hostname = db.example.test in mailstead.db")
    assert "next start" in done.stdout
    assert run(config, "config", "set", "greylist.enabled", "off").returncode == 0
    assert load_effective(config, {}).settings["server.hostname"] == "db.example.test"

    shown = run(config, "config", "show")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert 'hostname = "db.example.test"  # database' in lines
    assert "max_recipients = 50  # file" in lines
    assert "enabled = false  # database" in lines
    assert "smtp_port = 25" in lines                           # a default: no comment
    parsed = tomllib.loads(shown.stdout)
    assert parsed["server"]["hostname"] == "db.example.test"

    done = run(config, "config", "unset", "server.hostname")
    assert done.returncode == 0, done.stderr
    assert load_settings(config, {})["server.hostname"] == "file.example.test"
    assert read_rows(open_database(config.parent)) == {"greylist.enabled": "false"}
    again = run(config, "config", "unset", "server.hostname")
    assert again.returncode == 2
    assert "holds no value of server.hostname" in again.stderr


@pytest.mark.parametrize(("args", "expected"), [
    (("limits.max_recipients", "0"), "setting limits.max_recipients = 0 is invalid: "
                                    "expected an integer from 1 to 100000"),
    (("listen.smtp_port", "2525"), "setting listen.smtp_port is boot-level"),
    (("no.such", "1"), "unknown setting no.such"),
    (("server.timezone", "Nowhere/Town"), "server.timezone"),
])
def test_set_refuses_with_one_line(config: Path, args: tuple[str, str], expected: str) -> None:
    done = run(config, "config", "set", *args)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert expected in done.stderr
    assert read_rows(open_database(config.parent)) == {}


def test_environment_wins_and_set_says_so(config: Path) -> None:
    done = run(config, "config", "set", "limits.max_recipients", "70",
               MAILSTEAD_LIMITS__MAX_RECIPIENTS="90")
    assert done.returncode == 0, done.stderr
    assert "$MAILSTEAD_LIMITS__MAX_RECIPIENTS is set and wins" in done.stdout
    shown = run(config, "config", "show", MAILSTEAD_LIMITS__MAX_RECIPIENTS="90")
    assert "max_recipients = 90  # environment" in shown.stdout.splitlines()


def test_ignored_row_is_shown_and_warned(config: Path) -> None:
    conn = open_database(config.parent)
    conn.execute("INSERT INTO settings (key, value) VALUES ('listen.smtp_port', '2525')")
    shown = run(config, "config", "show")
    assert shown.returncode == 0
    assert "# ignored in mailstead.db: setting listen.smtp_port is boot-level" in shown.stdout
    listed = run(config, "domain", "list")        # other commands warn on stderr
    assert listed.returncode == 0
    assert "mailstead: warning: ignoring mailstead.db's value of listen.smtp_port" in (
        listed.stderr)
    assert run(config, "config", "unset", "listen.smtp_port").returncode == 0   # removable
    assert read_rows(conn) == {}
