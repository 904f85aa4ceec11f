"""A private Postfix instance for tests and benchmarks.

`PostfixInstance` runs Debian's Postfix as a real peer MX beside Mailstead: its own config,
queue, data and log directories under one work directory, SMTP on one loopback port, and
virtual Maildir delivery for a fixed list of mailboxes. Several instances can run at once.

It never sends mail off the box: every non-local transport is `error:`, and relaying for
other domains is refused (5xx) because no client network is trusted by default.
"""

from __future__ import annotations

import contextlib
import grp
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

POSTFIX = Path("/usr/sbin/postfix")
SYSTEM_MASTER_CF = Path("/etc/postfix/master.cf")
DEBCONF_ANSWER = "postfix postfix/main_mailer_type select No configuration\n"
MAILDIR_USER = "nobody"
MAILDIR_GROUP = "nogroup"


def _run(argv: list[str], timeout: float, env: dict[str, str] | None = None) -> None:
    """Run a command, raising RuntimeError with its output when it fails."""
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}")


def ensure_postfix_installed() -> None:
    """Install Debian's `postfix` package (with no system configuration) unless present."""
    if POSTFIX.exists():
        return
    if os.geteuid() == 0:       # answer debconf first: no system Postfix configuration
        subprocess.run(["debconf-set-selections"], input=DEBCONF_ANSWER, text=True,
                       check=True, timeout=60)
    ensure_package(str(POSTFIX), "postfix")


def _rewrite_master_cf(text: str, port: int, address: str = "127.0.0.1") -> str:
    """Bind `smtp inet` to ADDRESS:PORT and turn chroot off for every service."""
    out: list[str] = []
    for line in text.splitlines():
        fields = line.split()
        if line[:1] not in ("", "#", " ", "\t") and len(fields) >= 8:
            if fields[0] == "smtp" and fields[1] == "inet":
                fields[0] = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
            fields[4] = "n"
            line = " ".join(fields[:7]) + " " + line.split(None, 7)[7]
        out.append(line)
    return "\n".join(out) + "\n"


def _ensure_traversable(path: Path) -> None:
    """Let Postfix's daemons (user postfix, no chroot) and `nobody` walk down to `path`.

    Ancestors that deny others search (`x`) get `o+x` if they are ours and inside the temp
    root (mkdtemp and pytest make 0700 dirs); any other such ancestor is an error.
    """
    temp_root = Path(tempfile.gettempdir()).resolve()
    for parent in [path, *path.parents]:
        st = parent.stat()
        if st.st_mode & stat.S_IXOTH:
            continue
        if st.st_uid != os.geteuid() or not parent.is_relative_to(temp_root):
            raise RuntimeError(f"{parent} must be searchable by others (o+x) for Postfix")
        parent.chmod(stat.S_IMODE(st.st_mode) | stat.S_IXOTH)


class PostfixInstance:
    """One private Postfix: `with PostfixInstance(dir, port, domains, mailboxes) as pf: ...`.

    `trusted_networks` becomes `mynetworks` (empty: even loopback clients may not relay);
    `main_cf` overrides or adds main.cf settings (e.g. `smtpd_forbid_bare_newline=reject`).
    `address` is the loopback address smtpd listens on (127.0.0.1, 127.0.0.2, ::1, ...).
    """

    def __init__(
        self,
        workdir: Path,
        port: int,
        domains: list[str],
        mailboxes: list[str],
        trusted_networks: str = "",
        main_cf: dict[str, str] | None = None,
        address: str = "127.0.0.1",
    ) -> None:
        self.workdir = workdir.resolve()
        self.port = port
        self.domains = list(domains)
        self.mailboxes = [m.lower() for m in mailboxes]
        self.trusted_networks = trusted_networks
        self.overrides = dict(main_cf or {})
        self.address = address
        self.config_dir = self.workdir / "config"
        self.queue_dir = self.workdir / "queue"
        self.data_dir = self.workdir / "data"
        self.mail_dir = self.workdir / "mail"
        self.name = f"postfix-test-{port}"

    @property
    def log_path(self) -> Path:
        """The instance's own log file (Postfix's postlogd writes it, no syslog needed)."""
        return self.workdir / "postfix.log"

    def maildir_of(self, address: str) -> Path:
        """The Maildir that `virtual` delivers `address` into."""
        local, _, domain = address.lower().rpartition("@")
        return self.mail_dir / domain / local

    def count_delivered(self, address: str) -> int:
        """Messages delivered to `address` so far (files in new/ and cur/)."""
        maildir = self.maildir_of(address)
        return sum(
            sum(1 for p in (maildir / sub).iterdir() if p.is_file())
            for sub in ("new", "cur")
            if (maildir / sub).is_dir()
        )

    def wait_delivered(self, total: int, timeout: float) -> bool:
        """Poll until all mailboxes together hold at least `total` messages."""
        deadline = time.monotonic() + timeout
        while True:
            if sum(self.count_delivered(m) for m in self.mailboxes) >= total:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    def _main_cf(self) -> str:
        maps = self.config_dir / "vmailbox"
        nobody = pwd.getpwnam(MAILDIR_USER).pw_uid
        nogroup = grp.getgrnam(MAILDIR_GROUP).gr_gid
        settings = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.queue_dir),
            "data_directory": str(self.data_dir),
            "multi_instance_name": self.name,
            "syslog_name": self.name,
            "maillog_file": str(self.log_path),
            "maillog_file_prefixes": f"/var, /dev/stdout, {self.workdir}",
            "myhostname": f"{self.name}.localhost",
            "mydestination": "",
            "alias_maps": "",
            "alias_database": "",
            # Postfix refuses an inet_interfaces address that no interface carries, and
            # 127.0.0.2 and up are routed to lo without being on it: master.cf binds those.
            "inet_interfaces": (self.address if self.address in ("127.0.0.1", "::1")
                                else "loopback-only"),
            "inet_protocols": "ipv6" if ":" in self.address else "ipv4",
            "mynetworks": self.trusted_networks,
            "smtpd_relay_restrictions": "permit_mynetworks reject_unauth_destination",
            "smtpd_forbid_bare_newline": "yes",
            "smtpd_peername_lookup": "no",
            "default_transport": "error:mail leaves no test box",
            "relay_transport": "error:mail leaves no test box",
            "virtual_mailbox_domains": ", ".join(self.domains),
            "virtual_mailbox_base": str(self.mail_dir),
            "virtual_mailbox_maps": f"texthash:{maps}",
            "virtual_uid_maps": f"static:{nobody}",
            "virtual_gid_maps": f"static:{nogroup}",
            "virtual_minimum_uid": "1",
            "virtual_mailbox_limit": "0",
            "mailbox_size_limit": "0",
            "message_size_limit": str(50 * 1024 * 1024),
            "default_process_limit": "100",
            "smtpd_client_connection_count_limit": "0",
            "smtpd_client_connection_rate_limit": "0",
            "smtpd_client_message_rate_limit": "0",
            "smtpd_client_recipient_rate_limit": "0",
            "smtpd_client_event_limit_exceptions": "127.0.0.0/8",
            **self.overrides,
        }
        return "".join(f"{key} = {value}\n" for key, value in settings.items())

    def _write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        _ensure_traversable(self.workdir)
        for path in (self.config_dir, self.queue_dir, self.data_dir, self.mail_dir):
            path.mkdir(exist_ok=True)
        shutil.chown(self.data_dir, "postfix", "postfix")
        shutil.chown(self.mail_dir, MAILDIR_USER, MAILDIR_GROUP)
        entries = "".join(
            f"{m} {self.maildir_of(m).relative_to(self.mail_dir)}/\n" for m in self.mailboxes
        )
        (self.config_dir / "vmailbox").write_text(entries)
        (self.config_dir / "main.cf").write_text(self._main_cf())
        master = _rewrite_master_cf(SYSTEM_MASTER_CF.read_text(), self.port, self.address)
        (self.config_dir / "master.cf").write_text(master)

    def _banner(self) -> bool:
        try:
            with socket.create_connection((self.address, self.port), timeout=2) as sock:
                ok = sock.makefile("rb").readline().startswith(b"220")
                sock.sendall(b"QUIT\r\n")
                return ok
        except OSError:
            return False

    def start(self, timeout: float = 30.0) -> None:
        """Write the config, start the master and wait for a 220 banner on the port."""
        ensure_postfix_installed()
        self._write_config()
        try:
            _run([str(POSTFIX), "-c", str(self.config_dir), "start"], timeout=60)
        except RuntimeError as err:
            raise RuntimeError(f"{err}\n{self.log_tail()}") from None
        deadline = time.monotonic() + timeout
        while self.master_pid() is None or not self._banner():
            if time.monotonic() >= deadline:
                self.stop()
                raise RuntimeError(f"{self.name}: no 220 on port {self.port}\n{self.log_tail()}")
            time.sleep(0.1)

    def log_tail(self, lines: int = 20) -> str:
        """The last `lines` lines of the instance's log ("" before it exists)."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def master_pid(self) -> int | None:
        """The master's PID from its pid file, or None when it is not running."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.queue_dir / "pid" / "master.pid").read_text().split()[0])
            proc = Path(f"/proc/{pid}/stat").read_text()
            # "PID (comm) STATE ...": a reused PID or an unreaped zombie is not our master
            if proc.split(") ", 1)[1][:1] != "Z" and "(master)" in proc:
                return pid
        return None

    def stop(self, timeout: float = 15.0) -> None:
        """`postfix stop`; if the master outlives `timeout`, kill its process group."""
        pid = self.master_pid()
        if pid is None:
            return
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            _run([str(POSTFIX), "-c", str(self.config_dir), "stop"], timeout=timeout)
        if not self._wait_gone(pid, timeout):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)  # master leads its own process group
            self._wait_gone(pid, 5.0)

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.master_pid() == pid:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True

    def __enter__(self) -> PostfixInstance:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
