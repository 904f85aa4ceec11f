"""A private clamd instance for tests: Debian's daemon with a signature database we write.

`ClamdInstance` runs `clamd -c FILE` in the foreground with its own UNIX socket, TCP port,
database directory and log under one work directory. The official databases cannot be
downloaded here, so the database is one `.ndb` file: the EICAR test string and one custom
test pattern. ScanMail (MIME decoding) and ScanArchive (zip, nested to MaxRecursion) are on,
as on the appliance; StreamMaxLength is small so that the size-limit reply can be provoked.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from harness.debian import ensure_package
from harness.engine import free_port

# Built from two halves so that this source file is not itself detected as EICAR.
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD" + b"-ANTIVIRUS-TEST-FILE!$H+H*"
TEST_PATTERN = b"MAILSTEAD-TEST-MALWARE-" + b"PATTERN-7f3a91"
EICAR_NAME = "Mailstead.Test.EICAR"
PATTERN_NAME = "Mailstead.Test.Pattern"
STREAM_MAX = 2 * 1024 * 1024       # clamd's StreamMaxLength here


def signature_database() -> str:
    """The `.ndb` text (Name:TargetType:Offset:HexSignature; type 0 = any file)."""
    return (f"{EICAR_NAME}:0:*:{EICAR.hex()}\n"
            f"{PATTERN_NAME}:0:*:{TEST_PATTERN.hex()}\n")


class ClamdInstance:
    """One clamd process with everything under `work_dir`."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.socket_path = work_dir / "clamd.sock"
        self.port = free_port()
        self.config = work_dir / "clamd.conf"
        self.log_file = work_dir / "clamd.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def tcp_address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _write_files(self) -> None:
        database = self.work_dir / "db"
        database.mkdir(parents=True, exist_ok=True)
        (database / "mailstead-test.ndb").write_text(signature_database(), encoding="ascii")
        self.config.write_text("\n".join([
            "Foreground yes", f"LocalSocket {self.socket_path}",
            f"TCPSocket {self.port}", "TCPAddr 127.0.0.1",
            f"DatabaseDirectory {database}", f"LogFile {self.log_file}", "LogVerbose yes",
            "ScanMail yes", "ScanArchive yes", "MaxRecursion 10",
            f"StreamMaxLength {STREAM_MAX}", "SelfCheck 3600", "",
        ]), encoding="ascii")

    def start(self, timeout: float = 60.0) -> None:
        clamd = ensure_package("/usr/sbin/clamd", "clamav-daemon")
        self._write_files()
        output = open(self.work_dir / "clamd.out", "ab")      # noqa: SIM115 - the child's
        with output:
            self.proc = subprocess.Popen([clamd, "-c", str(self.config)], stdout=output,
                                         stderr=output, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"clamd exited {self.proc.returncode}: {self.log_text()}")
            if self.ping():
                return
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"clamd did not answer within {timeout}s: {self.log_text()}")

    def ping(self) -> bool:
        """True when clamd answers PING with PONG on its UNIX socket."""
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(2)
                sock.connect(str(self.socket_path))
                sock.sendall(b"zPING\x00")
                return sock.recv(16).startswith(b"PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_text(self) -> str:
        try:
            return self.log_file.read_text(encoding="utf-8", errors="replace")[-3000:]
        except OSError:
            return ""

    def __enter__(self) -> ClamdInstance:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()
