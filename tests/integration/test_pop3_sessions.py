"""POP3 sessions at their edges: the engine stopping under a logged-in session, a failed
STLS handshake, and the log never holding a password."""

from __future__ import annotations

from pathlib import Path

from appliance.pop3 import replies
from harness.engine import EngineProcess
from harness.pop3 import PASSWORD, put_message, sample, ssl_client, stls_client, wire

ADDRESS = "alice@example.test"


def _engine(tmp_path: Path, **settings: object) -> EngineProcess:
    engine = EngineProcess(tmp_path / "data", auth__failure_delay_ms=0, **settings)
    engine.add_domain("example.test")
    engine.add_account(ADDRESS)
    return engine


def test_shutdown_closes_sessions_and_applies_nothing(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    put_message(engine.maildir(ADDRESS), sample(1))
    put_message(engine.maildir(ADDRESS), sample(2))
    with engine:
        connection = wire(engine, tls=True)
        connection.send_line(f"USER {ADDRESS}")
        assert connection.read_line() == replies.USER_OK
        connection.send_line(f"PASS {PASSWORD}")
        assert connection.read_line() == replies.LOGGED_IN.format(
            count=2, size=len(sample(1)) + len(sample(2)))
        connection.send_line("DELE 1")
        assert connection.read_line() == replies.DELETED.format(number=1)
        assert engine.stop() == 0
        assert connection.read_line() == replies.SHUTTING_DOWN
        assert connection.is_closed()
    assert len(engine.messages(ADDRESS)) == 2


def test_failed_stls_handshake_ends_only_that_session(tmp_path: Path) -> None:
    with _engine(tmp_path, server__dev_mode=False) as engine:
        connection = wire(engine)
        connection.send_line("STLS")
        assert connection.read_line() == replies.STLS_BEGIN
        connection.send(b"this is not a TLS ClientHello\r\n" * 4)
        assert connection.is_closed()
        client = stls_client(engine, ADDRESS)           # the listener still works
        assert client.stat() == (0, 0)
        client.quit()


def test_passwords_never_reach_the_log(tmp_path: Path) -> None:
    secret = "a secret that must not be logged"
    with _engine(tmp_path) as engine:
        for password in (secret, PASSWORD):
            connection = wire(engine, tls=True)
            connection.send_line(f"USER {ADDRESS}")
            connection.read_line()
            connection.send_line(f"PASS {password}")
            connection.read_line()
            connection.close()
        ssl_client(engine, ADDRESS).quit()
        log = engine.log_text()
    assert '"protocol": "pop3"' in log
    assert secret not in log
    assert PASSWORD not in log
