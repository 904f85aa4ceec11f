"""The `mailstead` command line, run as a subprocess the way an administrator runs it."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance import datadir
from appliance.auth.passwords import Passwords
from appliance.settings import load_settings

PASSWORD = "Tr0ub4dor&3-horse-staple"
NEW_PASSWORD = "a-different-long-secret"
CONFIG = """\
[server]
hostname = "mx.example.test"
[paths]
data_dir = "."
[auth]
argon2_time_cost = 1
argon2_memory_kib = 8192
argon2_parallelism = 1
"""


@dataclass
class Cli:
    config: Path

    @property
    def data_dir(self) -> Path:
        return self.config.parent

    def run(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSTEAD_")}
        result = subprocess.run(
            [sys.executable, "-m", "appliance", "--config", str(self.config), *args],
            input=stdin, capture_output=True, text=True, env=env, timeout=60, check=False)
        assert PASSWORD not in result.stdout + result.stderr
        assert NEW_PASSWORD not in result.stdout + result.stderr
        return result

    def ok(self, *args: str, stdin: str = "") -> list[str]:
        result = self.run(*args, stdin=stdin)
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()

    def fails(self, *args: str, stdin: str = "") -> str:
        """Run a command that must fail with status 2 and a one-line message; return it."""
        result = self.run(*args, stdin=stdin)
        assert result.returncode == 2, (result.stdout, result.stderr)
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("mailstead: ")
        return lines[0]

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.data_dir / "mailstead.db")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory made once by `datadir.prepare` (the RSA key is the slow part)."""
    config = tmp_path_factory.mktemp("template") / "data" / "mailstead.toml"
    config.parent.mkdir()
    config.write_text(CONFIG, encoding="utf-8")
    datadir.prepare(load_settings(config, {}))
    return config.parent


@pytest.fixture
def cli(tmp_path: Path, prepared: Path) -> Cli:
    shutil.copytree(prepared, tmp_path / "data")
    return Cli(tmp_path / "data" / "mailstead.toml")


@pytest.fixture
def domain(cli: Cli) -> Cli:
    assert cli.ok("domain", "add", "example.test")[0] == "added domain example.test"
    return cli


def test_domain_add_list_remove(cli: Cli) -> None:
    assert cli.ok("domain", "add", "Bücher.Example")[0] == "added domain xn--bcher-kva.example"
    assert "already exists" in cli.fails("domain", "add", "BÜCHER.example")
    assert cli.ok("domain", "list") == ["xn--bcher-kva.example"]
    cli.ok("domain", "remove", "bücher.example")
    assert cli.ok("domain", "list") == []


def test_account_lifecycle(domain: Cli) -> None:
    cli = domain
    twice = f"{PASSWORD}\n{PASSWORD}\n"
    [added] = cli.ok("account", "add", "Alice@example.test", "--quota", "1000", stdin=twice)
    assert added == "added account Alice@example.test (mail/example.test/alice)"
    maildir = cli.data_dir / "mail" / "example.test" / "alice"
    assert (maildir / "new").is_dir()
    assert cli.ok("account", "list") == [
        "Alice@example.test\tenabled\tquota=1000\tmail/example.test/alice"]

    cheap = Passwords(1, 8192, 1)
    assert cheap.verify(stored_hash(cli), PASSWORD).ok
    cli.ok("account", "passwd", "alice@example.test", stdin=f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n")
    assert cheap.verify(stored_hash(cli), NEW_PASSWORD).ok
    assert not cheap.verify(stored_hash(cli), PASSWORD).ok
    for path in cli.data_dir.glob("mailstead.db*"):      # the WAL file included
        assert PASSWORD.encode() not in path.read_bytes(), path
        assert NEW_PASSWORD.encode() not in path.read_bytes(), path

    assert cli.ok("account", "disable", "alice@example.test") == ["disabled alice@example.test"]
    assert "\tdisabled\t" in cli.ok("account", "list", "example.test")[0]
    assert cli.ok("account", "enable", "ALICE@example.test") == ["enabled ALICE@example.test"]
    assert enabled(cli) == [1]

    (maildir / "new" / "1.msg").write_bytes(b"Subject: keep me\n\n")
    [removed] = cli.ok("account", "remove", "alice@example.test")
    assert "its mail is kept" in removed
    assert (maildir / "new" / "1.msg").exists()
    assert enabled(cli) == []

    cli.ok("account", "add", "bob@example.test", stdin=twice)
    bob = cli.data_dir / "mail" / "example.test" / "bob"
    (bob / "cur" / "1.msg").write_bytes(b"x")
    assert cli.ok("dav", "provision", "bob@example.test")
    calendars = cli.data_dir / "dav" / "collections" / "collection-root" / "bob@example.test"
    assert (calendars / "calendar").is_dir()
    assert cli.ok("account", "remove", "bob@example.test", "--purge") == [
        "removed account bob@example.test, its mail, calendars and contacts"]
    assert not bob.exists()
    assert not calendars.exists()
    assert maildir.exists()


def stored_hash(cli: Cli) -> str:
    with contextlib.closing(cli.db()) as conn:
        [value] = conn.execute("SELECT password_hash FROM accounts").fetchone()
    assert isinstance(value, str)
    assert value.startswith("$argon2id$")
    return value


def enabled(cli: Cli) -> list[int]:
    with contextlib.closing(cli.db()) as conn:
        return [r[0] for r in conn.execute("SELECT enabled FROM accounts")]


def test_bad_input_is_a_one_line_error(domain: Cli) -> None:
    assert "differ" in domain.fails("account", "add", "dave@example.test",
                                    stdin=f"{PASSWORD}\n{PASSWORD}x\n")
    assert "too short" in domain.fails("account", "add", "eve@example.test",
                                       stdin="short\nshort\n")
    message = domain.fails("account", "add", "not an address", stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert "invalid address 'not an address'" in message
    assert "invalid domain" in domain.fails("domain", "add", "bad_domain.test")
    assert enabled(domain) == []


def test_alias_add_list_remove(domain: Cli) -> None:
    cli = domain
    assert cli.ok("alias", "add", "Sales@example.test", "alice@example.test") == [
        "added alias Sales@example.test -> alice@example.test"]
    cli.ok("alias", "add", "sales@example.test", "Bob@Elsewhere.TEST")
    cli.ok("alias", "add", "@example.test", "postmaster@example.test")
    assert sorted(cli.ok("alias", "list")) == [
        "@example.test\tpostmaster@example.test",
        "Sales@example.test\talice@example.test",
        "sales@example.test\tBob@elsewhere.test",
    ]
    assert cli.ok("alias", "remove", "SALES@example.test", "alice@example.test") == [
        "removed 1 alias target(s) of SALES@example.test"]
    assert cli.ok("alias", "remove", "@example.test") == [
        "removed 1 alias target(s) of @example.test"]
    assert cli.ok("alias", "list", "example.test") == ["sales@example.test\tBob@elsewhere.test"]


def test_config_show(cli: Cli, tmp_path: Path) -> None:
    out = cli.ok("config", "show")
    assert out[0].startswith(f"# effective settings (file: {cli.config}; data_dir: ")
    shown = tmp_path / "shown.toml"
    shown.write_text("\n".join(out) + "\n", encoding="utf-8")
    assert tomllib.loads(shown.read_text())["server"]["hostname"] == "mx.example.test"
    assert dict(load_settings(shown, {}).values) == dict(load_settings(cli.config, {}).values)


def test_bad_setting_stops_config_show(cli: Cli) -> None:
    cli.config.write_text(CONFIG + '[listen]\nsmtp_port = "twenty-five"\n', encoding="utf-8")
    message = cli.fails("config", "show")
    assert "listen.smtp_port = 'twenty-five'" in message
    assert "integer from 1 to 65535" in message


def test_missing_data_dir_is_a_one_line_error(tmp_path: Path) -> None:
    config = tmp_path / "mailstead.toml"
    config.write_text(CONFIG.replace('data_dir = "."', 'data_dir = "absent"'), encoding="utf-8")
    assert "does not exist" in Cli(config).fails("domain", "list")
