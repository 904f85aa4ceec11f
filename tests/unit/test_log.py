"""Structured logging: one JSON object a line, with event name and fields."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.core import log


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.getLogger("mailstead").level,
             logging.getLogger("mail.log").level)
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    logging.getLogger("mailstead").setLevel(saved[2])
    logging.getLogger("mail.log").setLevel(saved[3])


def records(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    err = capsys.readouterr().err
    assert err == "" or err.endswith("\n")
    return [json.loads(line) for line in err.splitlines()]


def test_event_is_one_json_line_with_fields(capsys: pytest.CaptureFixture[str]) -> None:
    log.configure("info")
    log.event("smtp.accepted", queue_id="Q1", size=42, recipients=["a@b.test"])
    [entry] = records(capsys)
    assert entry["event"] == "smtp.accepted"
    assert entry["level"] == "info"
    assert entry["queue_id"] == "Q1"
    assert entry["size"] == 42
    assert entry["recipients"] == ["a@b.test"]
    assert entry["ts"].endswith("Z")
    assert "T" in entry["ts"]
    assert set(entry) == {"ts", "level", "event", "queue_id", "size", "recipients"}


def test_one_line_per_event_even_with_newlines(capsys: pytest.CaptureFixture[str]) -> None:
    log.configure("info")
    log.event("one", text="line\nbreak\r\ninside")
    log.event("two", path=Path("/x/y"), unicode="jörg")
    entries = records(capsys)
    assert [e["event"] for e in entries] == ["one", "two"]
    assert entries[0]["text"] == "line\nbreak\r\ninside"
    assert entries[1]["path"] == "/x/y"
    assert entries[1]["unicode"] == "jörg"


def test_level_filters_events(capsys: pytest.CaptureFixture[str]) -> None:
    log.configure("warning")
    log.event("quiet", level=logging.INFO)
    log.event("loud", level=logging.WARNING)
    assert [e["event"] for e in records(capsys)] == ["loud"]
    log.configure("debug")
    log.event("detail", level=logging.DEBUG)
    assert [(e["event"], e["level"]) for e in records(capsys)] == [("detail", "debug")]


def test_error_records_the_exception(capsys: pytest.CaptureFixture[str]) -> None:
    log.configure("info")
    try:
        raise ValueError("boom")
    except ValueError as exc:
        log.error("smtp.internal_error", exc, client="192.0.2.1")
    log.error("maildir.sweep_failed")
    first, second = records(capsys)
    assert first["level"] == "error"
    assert first["error"] == "ValueError: boom"
    assert first["client"] == "192.0.2.1"
    assert "error" not in second


def test_aiosmtpd_protocol_log_is_silenced(capsys: pytest.CaptureFixture[str]) -> None:
    log.configure("debug")
    logging.getLogger("mail.log").info("AUTH PLAIN c2VjcmV0")
    logging.getLogger("mail.log").error("also not shown")
    assert records(capsys) == []
