"""The one settings schema: defaults, `mailstead.toml`, `MAILSTEAD_SECTION__KEY` overrides.

Every setting is declared once in `SCHEMA` with its type, default, bounds and help text; the
loader, `mailstead config show`, the README's reference table and (later) the console forms
all come from that table. Nothing here reads a file or the environment at import time.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "MAILSTEAD_"


class SettingsError(ValueError):
    """A setting is unknown, of the wrong type or out of range; the message names it."""


@dataclass(frozen=True)
class Setting:
    """One key of the schema: how to parse, check and explain it."""

    section: str
    key: str
    kind: type
    default: Any
    help: str
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()
    secret: bool = False
    path: bool = False

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"

    def accepted(self) -> str:
        """Describe the accepted values, for error messages and docs."""
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.kind is bool:
            return "true or false"
        if self.kind is int:
            return f"an integer from {self.minimum} to {self.maximum}"
        if self.path:
            start = "the config file's directory" if self.section == "paths" else "data_dir"
            return f"a file system path (a relative path starts at {start})"
        return "a non-empty string"


KIB = 1024
MIB = 1024 * KIB

SCHEMA: tuple[Setting, ...] = (
    Setting("server", "hostname", str, "localhost",
            "Name this server uses in its SMTP greeting and Received headers."),
    Setting("server", "dev_mode", bool, False,
            "Development instance (set by `mailstead dev-init`); later listeners use it to "
            "allow password logins without TLS from loopback only."),
    Setting("paths", "data_dir", str, "/var/lib/mailstead",
            "Directory with mailstead.db, mail/, queue/, tls/ and dkim/.", path=True),
    Setting("listen", "address", str, "0.0.0.0",
            "IP address the mail listeners bind to."),
    Setting("listen", "smtp_port", int, 25, "SMTP MX port.", 1, 65535),
    Setting("listen", "submission_port", int, 587, "Submission port (STARTTLS).", 1, 65535),
    Setting("listen", "submissions_port", int, 465, "Submission port (TLS).", 1, 65535),
    Setting("listen", "imap_port", int, 143, "IMAP port (STARTTLS).", 1, 65535),
    Setting("listen", "imaps_port", int, 993, "IMAP port (TLS).", 1, 65535),
    Setting("listen", "pop3_port", int, 110, "POP3 port (STLS).", 1, 65535),
    Setting("listen", "pop3s_port", int, 995, "POP3 port (TLS).", 1, 65535),
    Setting("listen", "dav_port", int, 5232, "CalDAV/CardDAV port.", 1, 65535),
    Setting("listen", "console_port", int, 443, "Web console port.", 1, 65535),
    Setting("limits", "max_message_size", int, 50 * MIB,
            "Largest message accepted, in bytes; advertised in EHLO SIZE.", 4 * KIB, 1024 * MIB),
    Setting("limits", "max_line_length", int, 1000,
            "Longest line in a command or message, in octets with CRLF (RFC 5321 4.5.3.1.6).",
            512, 1 * MIB),
    Setting("limits", "max_recipients", int, 100,
            "Recipients per message (RFC 5321 4.5.3.1.8 requires at least 100).", 1, 100_000),
    Setting("limits", "idle_timeout", int, 300,
            "Seconds a client may stay silent between commands (RFC 5321 4.5.3.2.7).", 5, 3600),
    Setting("limits", "data_timeout", int, 600,
            "Seconds a client has to transfer one message after DATA.", 5, 7200),
    Setting("limits", "max_connections", int, 1000,
            "Simultaneous SMTP connections in all.", 1, 100_000),
    Setting("limits", "max_connections_per_ip", int, 20,
            "Simultaneous SMTP connections from one client address.", 1, 100_000),
    Setting("limits", "shutdown_grace", int, 10,
            "Seconds sessions may finish after SIGTERM before they are closed.", 0, 600),
    Setting("tls", "cert_file", str, "tls/cert.pem",
            "PEM certificate chain (relative to data_dir).", path=True),
    Setting("tls", "key_file", str, "tls/key.pem",
            "PEM private key, mode 0600 (relative to data_dir).", path=True),
    Setting("log", "level", str, "info", "Log level.",
            choices=("debug", "info", "warning", "error")),
    Setting("auth", "argon2_time_cost", int, 3,
            "argon2id iterations (RFC 9106 second recommendation).", 1, 20),
    Setting("auth", "argon2_memory_kib", int, 64 * 1024,
            "argon2id memory in KiB (RFC 9106 second recommendation: 64 MiB).", 8 * 1024,
            4 * 1024 * 1024),
    Setting("auth", "argon2_parallelism", int, 4, "argon2id lanes.", 1, 64),
)

SETTINGS_BY_NAME: dict[str, Setting] = {s.name: s for s in SCHEMA}
SECTIONS: tuple[str, ...] = tuple(dict.fromkeys(s.section for s in SCHEMA))


@dataclass(frozen=True)
class Settings:
    """Effective settings: values by `section.key`, plus where relative paths start."""

    values: Mapping[str, Any]
    base_dir: Path = field(default_factory=Path.cwd)
    source: Path | None = None

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def get_int(self, name: str) -> int:
        value = self.values[name]
        assert isinstance(value, int)
        return value

    def get_str(self, name: str) -> str:
        value = self.values[name]
        assert isinstance(value, str)
        return value

    def get_bool(self, name: str) -> bool:
        value = self.values[name]
        assert isinstance(value, bool)
        return value

    @property
    def data_dir(self) -> Path:
        return (self.base_dir / self.get_str("paths.data_dir")).resolve()

    def data_path(self, name: str) -> Path:
        """A path setting resolved against data_dir (absolute values stay as they are)."""
        return self.data_dir / self.get_str(name)

    def redacted(self) -> dict[str, Any]:
        """Values with secrets masked, for display."""
        return {
            n: ("********" if SETTINGS_BY_NAME[n].secret and v else v)
            for n, v in self.values.items()
        }


def _check(setting: Setting, value: Any) -> Any:
    """Return `value` if it fits `setting`, else raise a SettingsError naming both."""
    if setting.kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise _error(setting, value)
    if setting.kind is not int and not isinstance(value, setting.kind):
        raise _error(setting, value)
    if setting.kind is int and not (setting.minimum or 0) <= value <= (setting.maximum or 0):
        raise _error(setting, value)
    if setting.kind is str and (not value or "\x00" in value):
        raise _error(setting, value)
    if setting.choices and value not in setting.choices:
        raise _error(setting, value)
    return value


def _error(setting: Setting, value: Any) -> SettingsError:
    return SettingsError(f"setting {setting.name} = {value!r} is invalid: expected "
                         f"{setting.accepted()}")


def _parse_env(setting: Setting, raw: str) -> Any:
    """Turn an environment string into the setting's type."""
    if setting.kind is bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        return raw
    if setting.kind is int:
        try:
            return int(raw.strip())
        except ValueError:
            return raw
    return raw


def _flatten_toml(document: Mapping[str, Any], origin: str) -> dict[str, Any]:
    """`{section: {key: value}}` to `{"section.key": value}`, refusing unknown names."""
    flat: dict[str, Any] = {}
    for section, table in document.items():
        if not isinstance(table, dict):
            raise SettingsError(f"{origin}: {section} = {table!r} is outside any section: "
                                "expected a key under one of " + ", ".join(
                                    f"[{name}]" for name in SECTIONS))
        if section not in SECTIONS:
            raise SettingsError(f"{origin}: unknown section [{section}]: expected one of "
                                + ", ".join(SECTIONS))
        for key, value in table.items():
            name = f"{section}.{key}"
            if name not in SETTINGS_BY_NAME:
                raise SettingsError(f"{origin}: unknown setting {name}: known keys in "
                                    f"[{section}] are " + ", ".join(
                                        s.key for s in SCHEMA if s.section == section))
            flat[name] = value
    return flat


def _env_values(environ: Mapping[str, str]) -> dict[str, Any]:
    """Pick `MAILSTEAD_SECTION__KEY` variables, refusing unknown ones."""
    found: dict[str, Any] = {}
    for variable, raw in environ.items():
        if not variable.startswith(ENV_PREFIX) or "__" not in variable:
            continue
        section, _, key = variable[len(ENV_PREFIX):].lower().partition("__")
        setting = SETTINGS_BY_NAME.get(f"{section}.{key}")
        if setting is None:
            raise SettingsError(f"environment variable {variable} names no setting: "
                                f"expected {ENV_PREFIX}SECTION__KEY for a known key")
        found[setting.name] = _parse_env(setting, raw)
    return found


def load_settings(
    config_file: Path | None,
    environ: Mapping[str, str] | None = None,
    reader: Callable[[Path], bytes] = Path.read_bytes,
) -> Settings:
    """Build the effective settings: defaults, then the TOML file, then the environment.

    Raises:
        SettingsError: with one line naming the key, the value and what is accepted.
    """
    values: dict[str, Any] = {s.name: s.default for s in SCHEMA}
    base_dir = Path.cwd()
    if config_file is not None:
        try:
            document = tomllib.loads(reader(config_file).decode("utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"cannot read config file {config_file}: {exc}") from exc
        values.update(_flatten_toml(document, str(config_file)))
        base_dir = config_file.resolve().parent
    values.update(_env_values(os.environ if environ is None else environ))
    for name, value in values.items():
        _check(SETTINGS_BY_NAME[name], value)
    return Settings(values=values, base_dir=base_dir, source=config_file)


def render_toml(values: Mapping[str, Any]) -> str:
    """Write settings as TOML (only simple scalar types occur in the schema)."""
    lines: list[str] = []
    for section in SECTIONS:
        keys = [(n, v) for n, v in values.items() if n.split(".")[0] == section]
        if not keys:
            continue
        lines.append(f"[{section}]")
        for name, value in keys:
            lines.append(f"{name.split('.', 1)[1]} = {_toml_scalar(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return '"' + "".join(_toml_char(c) for c in str(value)) + '"'


def _toml_char(char: str) -> str:
    """One character of a TOML basic string: control characters (but tab) must be escaped."""
    if char in '\\"':
        return "\\" + char
    if (ord(char) < 32 and char != "\t") or ord(char) == 127:
        return f"\\u{ord(char):04X}"
    return char


def reference_table() -> str:
    """The settings reference as a Markdown table (for the README)."""
    rows = ["| setting | default | accepted | what it does |", "|---|---|---|---|"]
    for s in SCHEMA:
        rows.append(f"| `{s.name}` | `{_toml_scalar(s.default)}` | {s.accepted()} | {s.help} |")
    return "\n".join(rows)
