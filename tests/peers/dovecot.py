"""A private Dovecot instance (IMAP and POP3) for oracle tests and benchmarks.

`DovecotInstance` runs Debian's Dovecot 2.3 as `dovecot -F -c FILE` with everything under one
work directory: its own base_dir and state_dir, a passwd-file of test users with plaintext
passwords, logs in `dovecot.log`, IMAP and POP3 on free loopback ports without TLS. Each
user's Maildir++ (default LAYOUT, so the same layout our store writes) is given by path;
Dovecot's own index, control and uidlist files go under the work directory, so a Maildir can
be served without being written into. Mail is accessed as `nobody` (Dovecot refuses root).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from harness.debian import ensure_package

DOVECOT = Path("/usr/sbin/dovecot")
MAIL_USER = "nobody"


def _run(argv: list[str], timeout: float, env: dict[str, str] | None = None) -> None:
    """Run a command, raising RuntimeError with its output when it fails."""
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}")


def _installed() -> bool:
    return DOVECOT.exists() and Path("/usr/lib/dovecot/imap").exists() and Path(
        "/usr/lib/dovecot/pop3").exists()


def ensure_dovecot_installed() -> None:
    """Install `dovecot-imapd` and `dovecot-pop3d` unless present; keep the system one off."""
    if _installed():
        return
    ensure_package("/usr/lib/dovecot/imap", "dovecot-imapd")
    ensure_package("/usr/lib/dovecot/pop3", "dovecot-pop3d")
    _stop_system_service()
    if not _installed():
        raise RuntimeError("installed Dovecot but its binaries are still missing")


def _stop_system_service() -> None:
    """The package may start the system-wide Dovecot (ports 143/110); stop and disable it."""
    if shutil.which("systemctl") and Path("/run/systemd/system").exists():
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            _run(["systemctl", "disable", "--now", "dovecot.service", "dovecot.socket"], 60)
    elif shutil.which("invoke-rc.d"):
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            _run(["invoke-rc.d", "dovecot", "stop"], 60)


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def _ensure_traversable(path: Path) -> None:
    """Let the mail user walk down to `path`: our own 0700 temp ancestors get o+x."""
    temp_root = Path(tempfile.gettempdir()).resolve()
    for parent in [path, *path.parents]:
        st = parent.stat()
        if st.st_mode & stat.S_IXOTH:
            continue
        if st.st_uid != os.geteuid() or not parent.is_relative_to(temp_root):
            raise RuntimeError(f"{parent} must be searchable by others (o+x) for Dovecot")
        parent.chmod(stat.S_IMODE(st.st_mode) | stat.S_IXOTH)


def chown_tree(root: Path, user: str = MAIL_USER) -> None:
    """Give `root` and everything below it to `user` (the Dovecot mail user)."""
    entry = pwd.getpwnam(user)
    os.chown(root, entry.pw_uid, entry.pw_gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), entry.pw_uid, entry.pw_gid)


class DovecotInstance:
    """One private Dovecot: `with DovecotInstance(workdir) as dc: dc.add_user(...)`.

    Users can be added before or after start (the passwd-file is re-read on each login).
    `workdir=None` makes a temp dir (removed on stop). `settings` adds or overrides
    top-level dovecot.conf settings (e.g. `{"mail_debug": "yes"}`).
    """

    def __init__(self, workdir: Path | None = None, address: str = "127.0.0.1",
                 settings: dict[str, str] | None = None) -> None:
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="dovecot-")).resolve()
        self.address = address
        self.settings = dict(settings or {})
        self.imap_port = 0
        self.pop3_port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._users: dict[str, tuple[str, Path]] = {}

    @property
    def config_path(self) -> Path:
        return self.workdir / "dovecot.conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / "dovecot.log"

    @property
    def passwd_path(self) -> Path:
        return self.workdir / "passwd"

    def add_user(self, user: str, password: str, maildir: Path, chown: bool = True) -> None:
        """Serve the Maildir++ at `maildir` as `user`. `chown` gives it to the mail user
        (without that the Maildir must already be readable and writable by `nobody`)."""
        maildir = maildir.resolve()
        for sub in ("cur", "new", "tmp"):
            (maildir / sub).mkdir(parents=True, exist_ok=True)
        _ensure_traversable(maildir)
        if chown:
            chown_tree(maildir)
        self._users[user] = (password, maildir)
        self._write_passwd()

    def _write_passwd(self) -> None:
        entry = pwd.getpwnam(MAIL_USER)
        lines = [f"{user}:{{PLAIN}}{password}:{entry.pw_uid}:{entry.pw_gid}::{maildir}::\n"
                 for user, (password, maildir) in self._users.items()]
        self.passwd_path.write_text("".join(lines))
        self.passwd_path.chmod(0o644)

    def _config(self) -> str:
        work = self.workdir
        settings = {
            "base_dir": str(work / "run"),
            "state_dir": str(work / "state"),
            "instance_name": f"dovecot-test-{self.imap_port}",
            "log_path": str(self.log_path),
            "protocols": "imap pop3",
            "listen": self.address,
            "ssl": "no",
            "disable_plaintext_auth": "no",
            "auth_mechanisms": "plain login",
            "default_internal_user": "dovecot",
            "default_login_user": "dovenull",
            # ~ is the Maildir itself; Dovecot's own files live in the work dir.
            "mail_location": (f"maildir:~:INDEX={work}/index/%u:CONTROL={work}/control/%u"
                              f":VOLATILEDIR={work}/volatile/%u"),
            "first_valid_uid": "1",
            "mail_fsync": "never",
            **self.settings,
        }
        body = "".join(f"{key} = {value}\n" for key, value in settings.items())
        passwd = self.passwd_path
        return body + f"""
namespace inbox {{
  inbox = yes
  separator = /
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {passwd}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {passwd}
}}
service imap-login {{
  inet_listener imap {{
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {self.pop3_port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""

    def _write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        _ensure_traversable(self.workdir)
        mail_user = pwd.getpwnam(MAIL_USER)
        for name in ("index", "control", "volatile"):
            path = self.workdir / name
            path.mkdir(exist_ok=True)
            os.chown(path, mail_user.pw_uid, mail_user.pw_gid)
        self._write_passwd()
        self.config_path.write_text(self._config())

    def _answers(self) -> bool:
        try:
            with socket.create_connection((self.address, self.imap_port), timeout=2) as sock:
                ok = sock.makefile("rb").readline().startswith(b"* OK")
                sock.sendall(b"a LOGOUT\r\n")
                return ok
        except OSError:
            return False

    def start(self, timeout: float = 30.0) -> None:
        """Write the config, run `dovecot -F` and wait until IMAP greets."""
        ensure_dovecot_installed()
        self.imap_port = self.imap_port or free_port(self.address)
        self.pop3_port = self.pop3_port or free_port(self.address)
        self._write_config()
        log = open(self.workdir / "dovecot.stderr", "ab")  # noqa: SIM115 - owned by Popen
        self.proc = subprocess.Popen([str(DOVECOT), "-F", "-c", str(self.config_path)],
                                     stdout=log, stderr=log, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() >= deadline:
                self.stop()
                raise RuntimeError(f"dovecot did not start on {self.imap_port}\n"
                                   f"{self.log_tail()}")
            time.sleep(0.05)

    def log_tail(self, lines: int = 20) -> str:
        texts = []
        for path in (self.workdir / "dovecot.stderr", self.log_path):
            with contextlib.suppress(OSError):
                texts += path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(texts)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the master (it stops its children); SIGKILL the group if it lingers."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> DovecotInstance:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
