"""Settings stored in mailstead.db (settings_store.py): precedence defaults < mailstead.toml
< database < environment, validation on write (all or nothing), bad stored rows ignored and
reported, the console's live view, and the choice of editable settings."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance import settings_store
from appliance.core import log
from appliance.settings import (
    SCHEMA,
    SETTINGS_BY_NAME,
    SettingsError,
    check,
    load_settings,
    parse_text,
    render_toml,
)
from appliance.settings_store import Ignored, LiveSettings, load_effective
from appliance.storage.db import DB_NAME, open_database

FILE_VALUES = {"paths.data_dir": ".", "server.hostname": "file.example.test",
               "limits.max_recipients": 50, "greylist.enabled": False}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "mailstead.toml"
    path.write_text(render_toml(FILE_VALUES), encoding="utf-8")
    return path


@pytest.fixture
def conn(config: Path) -> sqlite3.Connection:
    return open_database(config.parent)


def test_precedence_defaults_file_database_environment(config: Path,
                                                        conn: sqlite3.Connection) -> None:
    settings_store.store(conn, "server.hostname", "db.example.test")
    settings_store.store(conn, "limits.max_recipients", "70")
    settings_store.store(conn, "queue.max_age", "7200")
    environ = {"MAILSTEAD_LIMITS__MAX_RECIPIENTS": "90"}
    current = load_effective(config, environ).settings
    assert current["server.hostname"] == "db.example.test"       # database over file
    assert current["limits.max_recipients"] == 90                # environment over database
    assert current["queue.max_age"] == 7200                      # database over default
    assert current["greylist.enabled"] is False                  # file over default
    assert current["limits.max_message_size"] == SETTINGS_BY_NAME[
        "limits.max_message_size"].default
    assert [current.origin(n) for n in ("server.hostname", "limits.max_recipients",
                                        "queue.max_age", "greylist.enabled",
                                        "limits.max_message_size")] == [
        "database", "environment", "database", "file", "default"]


def test_load_settings_stays_pure(config: Path, conn: sqlite3.Connection) -> None:
    settings_store.store(conn, "server.hostname", "db.example.test")
    assert load_settings(config, {})["server.hostname"] == "file.example.test"


def test_no_database_yet_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "mailstead.toml"
    path.write_text(render_toml({"paths.data_dir": "."}), encoding="utf-8")
    found = load_effective(path, {})
    assert found.settings["server.hostname"] == "localhost"
    assert found.ignored == ()
    assert not (tmp_path / DB_NAME).exists()


def test_values_are_stored_as_canonical_text(conn: sqlite3.Connection) -> None:
    assert settings_store.store(conn, "greylist.enabled", "yes") is True
    assert settings_store.store(conn, "limits.max_recipients", " 42 ") == 42
    assert settings_store.read_rows(conn) == {"greylist.enabled": "true",
                                              "limits.max_recipients": "42"}


@pytest.mark.parametrize(("name", "text", "expected"), [
    ("limits.max_recipients", "0", "an integer from 1 to 100000"),
    ("limits.max_recipients", "many", "an integer from 1 to 100000"),
    ("greylist.enabled", "maybe", "true or false"),
    ("log.level", "loud", "one of 'debug'"),
    ("server.timezone", "Mars/Olympus", "IANA time zone"),
    ("server.timezone", "../../etc/passwd", "IANA time zone"),
    ("server.hostname", "", "a non-empty string"),
    ("dns.public_ipv4", "2001:db8::1", "an IPv4 address or empty"),
    ("listen.smtp_port", "2525", "boot-level: set it in mailstead.toml"),
    ("paths.data_dir", "/tmp", "boot-level"),
    ("tls.cert_file", "x.pem", "boot-level"),
    ("auth.argon2_memory_kib", "8192", "boot-level"),
    ("nope.nothing", "1", "unknown setting nope.nothing"),
])
def test_refused_values_name_the_setting_and_store_nothing(
        conn: sqlite3.Connection, name: str, text: str, expected: str) -> None:
    with pytest.raises(SettingsError) as caught:
        settings_store.store(conn, name, text)
    assert name in str(caught.value)
    assert expected in str(caught.value)
    assert settings_store.read_rows(conn) == {}


def test_store_many_is_all_or_nothing(conn: sqlite3.Connection) -> None:
    with pytest.raises(SettingsError, match=r"limits\.max_recipients"):
        settings_store.store_many(conn, {"queue.max_age": "7200",
                                         "limits.max_recipients": "-1"})
    assert settings_store.read_rows(conn) == {}
    assert settings_store.store_many(conn, {"queue.max_age": "7200",
                                            "server.timezone": "Europe/Berlin"}) == {
        "queue.max_age": 7200, "server.timezone": "Europe/Berlin"}
    assert settings_store.read_rows(conn) == {"queue.max_age": "7200",
                                              "server.timezone": "Europe/Berlin"}


def test_remove_returns_to_the_file_value(config: Path, conn: sqlite3.Connection) -> None:
    settings_store.store(conn, "server.hostname", "db.example.test")
    assert settings_store.remove(conn, "server.hostname") is True
    assert settings_store.remove(conn, "server.hostname") is False
    current = load_effective(config, {}).settings
    assert current["server.hostname"] == "file.example.test"
    assert current.origin("server.hostname") == "file"


def _insert(conn: sqlite3.Connection, name: str, text: str) -> None:
    conn.execute("INSERT INTO settings (key, value) VALUES (?, ?)", (name, text))


def test_bad_stored_rows_are_ignored_and_named(config: Path, conn: sqlite3.Connection,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Rows written by an older version (a narrower range now, a key that became
    boot-level or went away) do not stop start-up; the good rows still apply."""
    _insert(conn, "limits.max_recipients", "1000000")
    _insert(conn, "listen.smtp_port", "2525")
    _insert(conn, "old.gone", "x")
    _insert(conn, "queue.max_age", "7200")
    found = load_effective(config, {})
    assert found.settings["limits.max_recipients"] == 50          # the file's
    assert found.settings["listen.smtp_port"] == 25
    assert found.settings["queue.max_age"] == 7200
    assert [i.name for i in found.ignored] == ["limits.max_recipients", "listen.smtp_port",
                                               "old.gone"]
    assert "integer from 1 to 100000" in found.ignored[0].reason
    assert "boot-level" in found.ignored[1].reason
    log.configure("info")
    settings_store.log_ignored(found.ignored)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(e["event"], e["level"], e["setting"]) for e in lines] == [
        ("settings.stored_value_ignored", "warning", i.name) for i in found.ignored]


def test_environment_still_wins_over_an_ignored_row(config: Path,
                                                   conn: sqlite3.Connection) -> None:
    _insert(conn, "limits.max_recipients", "oops")
    found = load_effective(config, {"MAILSTEAD_LIMITS__MAX_RECIPIENTS": "7"})
    assert found.settings["limits.max_recipients"] == 7
    assert found.ignored == (Ignored("limits.max_recipients", found.ignored[0].reason),)


def test_unreadable_database_is_a_settings_error(config: Path) -> None:
    (config.parent / DB_NAME).write_bytes(b"this is not a database" * 100)
    with pytest.raises(SettingsError, match="cannot read settings from"):
        load_effective(config, {})


def test_live_settings_see_other_connections_at_once(config: Path,
                                                    conn: sqlite3.Connection) -> None:
    live = LiveSettings(load_settings(config, {}))
    first = live.current()
    assert first.settings["server.hostname"] == "file.example.test"
    assert live.current() is first                       # nothing changed: nothing re-read
    settings_store.store(conn, "server.hostname", "live.example.test")
    assert live.current().settings["server.hostname"] == "live.example.test"
    settings_store.remove(conn, "server.hostname")
    assert live.current().settings["server.hostname"] == "file.example.test"
    live.close()


def test_live_settings_before_the_database_exists(tmp_path: Path) -> None:
    path = tmp_path / "mailstead.toml"
    path.write_text(render_toml({"paths.data_dir": "."}), encoding="utf-8")
    live = LiveSettings(load_settings(path, {}))
    assert live.current().settings["server.hostname"] == "localhost"
    assert not (tmp_path / DB_NAME).exists()
    settings_store.store(open_database(tmp_path), "server.hostname", "late.example.test")
    assert live.current().settings["server.hostname"] == "late.example.test"


# -- the choice of editable settings -------------------------------------------------------

EDITABLE = {s.name for s in SCHEMA if s.editable}


def test_boot_level_settings_are_not_editable() -> None:
    acme = {"tls.acme_enabled", "tls.acme_directory", "tls.acme_email"}   # the wizard's
    for setting in SCHEMA:
        if setting.name in acme:
            assert setting.editable, setting.name
        elif setting.path or setting.section in ("paths", "listen", "engine", "tls", "monitor"):
            assert not setting.editable, setting.name
    assert "server.dev_mode" not in EDITABLE
    assert "log.file" not in EDITABLE
    assert {"auth.argon2_time_cost", "antivirus.clamd_socket", "outbound.resolver",
            "outbound.port"}.isdisjoint(EDITABLE)


def test_policy_settings_are_editable() -> None:
    assert {"server.hostname", "server.timezone", "limits.max_message_size",
            "spam.junk_threshold", "greylist.delay", "dnsbl.ip_zones", "queue.first_retry",
            "checks.authentication", "reports.send_aggregate", "dns.public_ipv4",
            "console.idle_timeout", "auth.max_failures", "log.level",
            "outbound.mta_sts"} <= EDITABLE


@pytest.mark.parametrize("name", sorted(EDITABLE))
def test_every_editable_default_round_trips_as_text(name: str) -> None:
    setting = SETTINGS_BY_NAME[name]
    value: Any = setting.default
    assert parse_text(setting, settings_store.to_text(setting, value)) == value


def test_time_zone_setting() -> None:
    setting = SETTINGS_BY_NAME["server.timezone"]
    assert setting.default == "UTC"
    assert parse_text(setting, "Europe/Berlin") == "Europe/Berlin"
    assert parse_text(setting, "America/Argentina/Buenos_Aires")
    with pytest.raises(SettingsError, match=r"server\.timezone"):
        parse_text(setting, "Europe/Atlantis")


# -- fuzz: any stored or typed text is a value or a SettingsError, never a crash ----------

EDITABLE_NAMES = sorted(EDITABLE)


@settings(max_examples=400, deadline=None)
@given(name=st.sampled_from(EDITABLE_NAMES), text=st.text(max_size=80))
def test_any_text_is_a_value_or_a_settings_error(name: str, text: str) -> None:
    setting = SETTINGS_BY_NAME[name]
    try:
        value = parse_text(setting, text)
    except SettingsError as exc:
        message = str(exc)
    else:
        assert parse_text(setting, settings_store.to_text(setting, value)) == value
        return
    assert name in message


@settings(max_examples=200, deadline=None)
@given(rows=st.dictionaries(st.one_of(st.sampled_from(EDITABLE_NAMES), st.text(max_size=20)),
                            st.text(max_size=40), max_size=6))
def test_any_stored_rows_apply_or_are_ignored(rows: dict[str, str]) -> None:
    base = load_settings(None, {})
    found = settings_store.apply_rows(base, rows)
    assert {i.name for i in found.ignored} | {
        n for n in rows if found.settings.origin(n) == "database"} == set(rows)
    for name, value in found.settings.values.items():
        check(SETTINGS_BY_NAME[name], value)
