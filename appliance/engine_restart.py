"""Graceful restart of the engine: how it is asked for, and the re-execution at the end.

A restart is asked for with SIGUSR1 (`RESTART_SIGNAL`, e.g. a systemd `ExecReload=kill
-USR1 $MAINPID`) or the control op `engine.restart` (the console's "Apply now", `mailstead
engine restart`). The engine then stops exactly as for SIGTERM (engine.py `shutdown`: stop
accepting, close idle sessions, let mail transactions finish within `limits.shutdown_grace`
seconds, 421 / IMAP BYE to the rest, stop the queue runner and the control socket), and the
process that ran `mailstead run` re-executes itself with the same command line, so that it
reads mailstead.toml and mailstead.db afresh. With several workers the primary forwards the
request to the supervisor, which stops every worker and then re-executes itself.

Why re-exec instead of exiting and letting systemd start the engine again: the unit has
`Restart=on-failure` (a clean exit would not be restarted, a failing one is logged as a
failure and waits `RestartSec`), dev mode (`./build.sh run`) and the test harness have no
systemd at all, and re-exec keeps the PID, so systemd (Type=simple), the dev script and the
tests keep watching the same process. Listening sockets are not handed over: they are
closed at the start of the shutdown (and all are close-on-exec), so the new image binds
them again; for the few seconds in between, SMTP clients get "connection refused" and
retry (RFC 5321 4.5.4.1), as during any restart. If the exec itself fails, the process exits
with status 1 and systemd's Restart=on-failure takes over.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import NoReturn

from appliance.core import log

RESTART_SIGNAL = signal.SIGUSR1


def command_line() -> list[str]:
    """The interpreter's own command line (`python -m appliance ... run`, or the `mailstead`
    console script run by the venv's python), to run again as it was."""
    return list(sys.orig_argv)


def reexec() -> NoReturn:
    """Replace this process with a fresh engine (same PID, argv, environment, directory).

    Call it only once every listener, thread pool and database of the engine is closed.
    """
    argv = command_line()
    log.event("engine.reexec", pid=os.getpid(), argv=" ".join(argv))
    logging.shutdown()          # flush and close the log file: the new image reopens it
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    try:
        os.execv(sys.executable, argv)  # noqa: S606  # not a child: this process, replaced
    except OSError as exc:      # e.g. the venv was replaced under us: let systemd restart
        print(f"mailstead: cannot re-execute the engine: {exc}", file=sys.stderr)
        os._exit(1)
