"""The engine starts through the command line (`mailstead run`), so importing the command
line must not load what only other commands need: the console (Flask, Jinja), the ACME
client (`acme`, `requests`, pyOpenSSL) or the hardware monitor (psutil, pyudev). Each such
library costs every engine process megabytes (1,000 idle IMAP clients must fit in 100 MB)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("acme", "josepy", "requests", "OpenSSL", "flask", "werkzeug", "jinja2", "webui",
         "psutil", "pyudev", "pyotp", "qrcode")


def test_the_command_line_and_engine_load_no_other_commands_libraries() -> None:
    script = ("import sys\nimport appliance.cli, appliance.engine\n"
              "appliance.cli.build_parser()\n"
              f"heavy = {HEAVY!r}\n"
              "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stdout
