"""Mail log search: the pure reader and matcher (webui/blueprints/admin_logsearch.py), the
engine's capped log file (appliance/core/log.py CappedFileHandler), and the page
(admin_log.py) with bounded reads and escaped output."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from appliance.core.log import CappedFileHandler, JsonLineFormatter
from appliance.settings import Settings
from appliance.storage.db import open_database
from console.conftest import ADMIN, ADMIN_PASSWORD, add_admin, close_app, log_in, make_app
from webui.blueprints.admin_logsearch import (
    Query,
    QueryError,
    log_files,
    parse_query,
    search,
    tail_lines,
)

URL = "/admin/log/"


def line(event: str, **fields: Any) -> bytes:
    return json.dumps({"ts": "2026-11-27T10:00:00.000Z", "level": "info", "event": event,
                       **fields}, ensure_ascii=False).encode()


def write_log(path: Path, lines: list[bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(item + b"\n" for item in lines))


@pytest.mark.parametrize(("text", "expected"), [
    ("Alice@Example.TEST", Query("alice@example.test", True)),
    ("@example.test", Query("@example.test", True)),
    ("  4Kq9ZtX2  ", Query("4Kq9ZtX2", False)),
])
def test_parse_query(text: str, expected: Query) -> None:
    assert parse_query(text) == expected


@pytest.mark.parametrize("text", ["", "   ", "x" * 255, "a b", "id-with-dash", "a\x00@b",
                                  "<script>", "q" * 65])
def test_parse_query_refuses(text: str) -> None:
    with pytest.raises(QueryError):
        parse_query(text)


def test_search_matches_fields_not_headers() -> None:
    lines = [line("smtp.accepted", queue_id="Q1", sender="a@x.example",
                  recipients=["Bob@Example.test"]),
             line("delivery.result", queue_id="Q2", recipient="carol@y.example"),
             line("bob@example.test"),                      # the event name is no field
             b"not json bob@example.test", b"[1, 2]",
             line("dsn.queued", queue_id="Q3", about="Q1")]
    assert [e.event for e in search(lines, parse_query("bob@example.test"))] == [
        "smtp.accepted"]
    assert [e.event for e in search(lines, parse_query("Q1"))] == ["smtp.accepted",
                                                                   "dsn.queued"]
    assert search(lines, parse_query("q1")) == []           # queue ids match exactly
    assert len(search(lines, parse_query("@"), limit=2)) == 2
    entry = search(lines, parse_query("@y.example"))[0]
    assert entry.fields == (("queue_id", "Q2"), ("recipient", "carol@y.example"))


def test_search_non_ascii_and_quoted_addresses() -> None:
    lines = [line("smtp.accepted", sender="Jörg@Bücher.example"),
             line("smtp.accepted", sender='"odd \\"one\\""@x.example')]
    assert len(search(lines, parse_query("JÖRG@bücher.example"))) == 1
    assert len(search(lines, parse_query('"odd \\"one\\""@x.example'))) == 1


def test_tail_reads_whole_lines_newest_first_within_budget(tmp_path: Path) -> None:
    path = tmp_path / "engine.jsonl"
    write_log(path.with_name("engine.jsonl.1"), [line("old", n=n) for n in range(3)])
    write_log(path, [line("new", n=n) for n in range(3)])
    files = log_files(path)
    assert files == [path, path.with_name("engine.jsonl.1")]
    everything = tail_lines(files)
    assert [json.loads(x)["n"] for x in everything] == [2, 1, 0, 2, 1, 0]
    assert [json.loads(x)["event"] for x in everything] == ["new"] * 3 + ["old"] * 3
    one_line = len(line("new", n=0)) + 1
    cut = tail_lines(files, budget=one_line * 2 - 5)        # starts inside the second line
    assert [json.loads(x)["n"] for x in cut] == [2]
    assert log_files(tmp_path / "missing.jsonl") == []


def test_capped_file_rotates_once_for_two_writers(tmp_path: Path) -> None:
    """Two forked workers share the file: one renames it, the other follows to the new one."""
    path = tmp_path / "log" / "engine.jsonl"
    first, second = CappedFileHandler(path, 300), CappedFileHandler(path, 300)
    logger = logging.getLogger("mailstead.test_capped")
    try:
        for handler in (first, second):
            handler.setFormatter(JsonLineFormatter())
        for n in range(4):
            first.handle(logger.makeRecord(logger.name, logging.INFO, "x", 0, f"first {n}",
                                           (), None, extra={"queue_id": f"A{n}"}))
        rotated = path.with_name("engine.jsonl.1")
        assert rotated.is_file()
        assert path.stat().st_size == 0
        second.handle(logger.makeRecord(logger.name, logging.INFO, "x", 0, "second", (),
                                        None, extra={"queue_id": "B0"}))
        assert b'"queue_id": "B0"' in path.read_bytes()
        assert b"first 3" in rotated.read_bytes()
        assert b"B0" not in rotated.read_bytes()
    finally:
        first.close()
        second.close()


def test_page_searches_and_escapes(admin_client: FlaskClient, settings: Settings) -> None:
    path = settings.data_path("log.file")
    write_log(path, [line("smtp.accepted", queue_id="Q7", sender="<script>x</script>@e.x",
                          recipients=["alice@example.test"]),
                     line("delivery.result", queue_id="Q7", reply="<b>250 ok</b>")])
    page = admin_client.get(f"{URL}?q=ALICE@example.test")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "smtp.accepted" in text
    assert "<script>x" not in text
    assert "&lt;script&gt;x&lt;/script&gt;" in text
    both = admin_client.get(f"{URL}?q=Q7").get_data(as_text=True)
    assert "delivery.result" in both
    assert "&lt;b&gt;250 ok&lt;/b&gt;" in both
    assert "<b>250" not in both
    evil = admin_client.get(f"{URL}?q=<script>alert(1)</script>@x")
    assert evil.status_code == 200
    assert "<script>alert(1)" not in evil.get_data(as_text=True)
    assert "Nothing found for" in evil.get_data(as_text=True)
    bad = admin_client.get(f"{URL}?q=<svg>")
    assert bad.status_code == 400
    assert "<svg>" not in bad.get_data(as_text=True)


def test_page_audits_searches(admin_client: FlaskClient, settings: Settings) -> None:
    write_log(settings.data_path("log.file"), [line("smtp.accepted", queue_id="Q1")])
    admin_client.get(f"{URL}?q=Q1")
    conn = open_database(settings.data_dir)
    try:
        row = conn.execute("SELECT action, target, details FROM audit_log "
                           "ORDER BY id DESC").fetchone()
    finally:
        conn.close()
    assert (row[0], row[1], json.loads(row[2])) == ("log.search", "Q1", {"results": "1"})


def test_page_without_a_log_file(admin_client: FlaskClient) -> None:
    text = admin_client.get(URL).get_data(as_text=True)
    assert "No log file yet" in text


def test_page_when_logging_to_a_file_is_off(settings: Settings) -> None:
    off = Settings({**settings.values, "log.file": ""}, settings.base_dir, settings.source)
    add_admin(off)
    app = make_app(off)
    try:
        client = app.test_client()
        assert log_in(client, ADMIN, ADMIN_PASSWORD).status_code == 302
        text = client.get(f"{URL}?q=Q1").get_data(as_text=True)
        assert "writes no log file" in text
        assert "log.file" in text
    finally:
        close_app(app)


def test_users_get_403(user_client: FlaskClient) -> None:
    assert user_client.get(f"{URL}?q=alice@example.test").status_code == 403
