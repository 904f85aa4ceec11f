"""`./build.sh image-test`: boots the built appliance image in qemu and checks it from the host.

The image boots as it ships: UEFI (OVMF) -> systemd-boot -> slot A, on a copy of the image
grown to 6 GiB (so first boot grows the data partition), with two SATA disks and one NVMe
disk beside it, under TCG, with user networking restricted to host forwards on 127.0.0.1.
The setup code is read from the serial console. Prints one line per check and a closing
`N passed, M failed`; exits 1 on any failure.

In-guest checks: guest_probe.sh and a unit that runs it are written into root-a of the
test copy with debugfs (the shipped image has neither); it reports on the second serial
port. From the host, after the setup code: the rest of the wizard and the admin pages
(console_driver.py), then, once the probe has restarted the engine with that set-up, mail
over SMTP, submission 587 and 465 with AUTH, read back over IMAPS, calendars and contacts
over CalDAV/CardDAV (dav_checks.py), root over SSH with the key the console took
(ssh_checks.py), and finally the RAID
and NVMe alert mails in postmaster's INBOX (mail_checks.py).

With --update, the same guest then updates itself to a version N+1 published on a test TUF
repository, reboots into slot B and commits it, and rolls back from a broken N+2
(update_checks.py, update_rig.py, guest_update_probe.sh).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

# run as a script (build.sh): this directory is on sys.path
from console_driver import (
    Console,
    Site,
    add_accounts,
    enter_code,
    offline_settings,
    run_wizard,
    unverified_context,
)
from dav_checks import dav_checks
from mail_checks import (
    Imaps,
    Ports,
    check_names,
    find_subject,
    make_message,
    pinned_context,
    send_mx,
    send_submission,
)
from ssh_checks import enable_ssh, make_key, no_sshd, ssh_checks
from update_checks import Mail, ProbeReader, run_update_checks
from update_rig import UpdateRig

ROOT = Path(__file__).resolve().parents[2]
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
CODE_LINE = re.compile(rb"Mailstead setup code: ([A-Za-z0-9-]+)")
# guest ports forwarded to 127.0.0.1:<free port>; 8081 is open nowhere (firewall check).
# The guest sees every forwarded connection come from slirp's 10.0.2.2: a LAN address
# (the firewall's lan4), so 443 is the LAN's whole console here; port 80 (the public web
# listener's plain HTTP) is the same for the LAN and the internet.
GUEST_PORTS = {"smtp": 25, "submission": 587, "submissions": 465, "imaps": 993,
               "console": 443, "closed": 8081, "web": 80, "dav": 5232, "ssh": 22}
BOOT_BUDGET = 300.0          # seconds from qemu start to the setup code on the console
PROBE_BUDGET = 1500.0        # seconds for the in-guest checks after boot (incl. set-up)
ALERT_MAIL_BUDGET = 240.0    # seconds for the RAID alert mail after the probe saw the alert
PROBE_SCRIPT = Path(__file__).with_name("guest_probe.sh")
PROBE_UNIT = """[Unit]
Description=image-test probe (written into the test copy of the image only)
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/usr/lib/mailstead-test/guest_probe.sh
StandardOutput=tty
StandardError=inherit
TTYPath=/dev/ttyS1
TTYReset=no
TTYVHangup=no
TimeoutStartSec=1500

[Install]
WantedBy=multi-user.target
"""
PROBE_LINE = re.compile(r"^PROBE (ok|fail) (\S+) ?(.*)$")


@dataclass
class Results:
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def check(self, name: str, test: Callable[[], str]) -> None:
        try:
            detail = test()
        except Exception as exc:
            self.failed.append(name)
            print(f"FAIL {name}: {type(exc).__name__}: {exc}", flush=True)
            return
        self.passed.append(name)
        print(f"ok   {name}{': ' + detail if detail else ''}", flush=True)

    def record(self, name: str, ok: bool, detail: str) -> None:
        (self.passed if ok else self.failed).append(name)
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}", flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Guest:
    work: Path
    image: Path
    ports: dict[str, int]
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    netdev_extra: str = ""      # more -netdev user options (--update: the guestfwd)
    reboot: bool = False        # --update: a guest reboot restarts it, not exits qemu

    @property
    def console_log(self) -> Path:
        return self.work / "console.log"

    def prepare(self) -> None:
        disk = self.work / "disk.img"
        subprocess.run(["cp", "--sparse=always", str(self.image), str(disk)], check=True)
        with disk.open("r+b") as grow:
            grow.truncate(6 * 1024**3)
        self.inject_probe(disk)
        shutil.copyfile(OVMF_VARS, self.work / "vars.fd")
        for name in ("sata1", "sata2", "nvme"):
            with (self.work / f"{name}.img").open("wb") as data:
                data.truncate(512 * 1024**2)

    def inject_probe(self, disk: Path) -> None:
        """Write the probe and its unit into root-a of the test copy (ext4, via debugfs:
        no loop device, no mount)."""
        table = json.loads(subprocess.run(["sfdisk", "-J", str(disk)], capture_output=True,
                                          text=True, check=True).stdout)
        start = table["partitiontable"]["partitions"][1]["start"] * 512
        unit = self.work / "mailstead-image-probe.service"
        unit.write_text(PROBE_UNIT)
        script = self.work / "guest_probe.sh"
        shutil.copyfile(PROBE_SCRIPT, script)
        script.chmod(0o755)
        unit.chmod(0o644)
        wants = "/etc/systemd/system/multi-user.target.wants"
        commands = "\n".join([
            "mkdir /usr/lib/mailstead-test",
            f"write {script} /usr/lib/mailstead-test/guest_probe.sh",
            f"write {unit} /etc/systemd/system/mailstead-image-probe.service",
            f"symlink {wants}/mailstead-image-probe.service "
            "/etc/systemd/system/mailstead-image-probe.service",
        ]) + "\n"
        (self.work / "debugfs.cmd").write_text(commands)
        subprocess.run(["debugfs", "-w", "-f", str(self.work / "debugfs.cmd"),
                        f"{disk}?offset={start}"], check=True, capture_output=True)

    def monitor_command(self, command: str) -> str:
        with socket.socket(socket.AF_UNIX) as mon:
            mon.settimeout(10)
            mon.connect(str(self.work / "monitor.sock"))
            time.sleep(0.3)
            mon.recv(65536)
            mon.sendall(command.encode() + b"\n")
            time.sleep(1)
            return mon.recv(65536).decode(errors="replace")

    def probe_lines(self, budget: float) -> Iterator[str]:
        """The probe's lines as they arrive on the second serial port, until PROBE-END."""
        log = self.work / "probe.log"
        deadline = time.monotonic() + budget
        seen = 0
        buffer = b""
        while time.monotonic() < deadline:
            data = log.read_bytes() if log.exists() else b""
            buffer += data[seen:]
            seen = len(data)
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                text = line.decode(errors="replace").strip()
                yield text
                if text == "PROBE-END":
                    return
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"qemu exited with {self.process.returncode}")
            time.sleep(1)
        raise TimeoutError(f"the in-guest probe did not finish within {budget:.0f} s")

    def start(self) -> None:
        forwards = ",".join(f"hostfwd=tcp:127.0.0.1:{self.ports[name]}-:{port}"
                            for name, port in GUEST_PORTS.items())
        w = self.work
        argv = [
            "qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-cpu", "max",
            "-m", "2048", "-smp", "2", "-display", "none",
            *([] if self.reboot else ["-no-reboot"]),
            "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
            "-drive", f"if=pflash,format=raw,file={w / 'vars.fd'}",
            "-serial", f"file:{self.console_log}", "-serial", f"file:{w / 'probe.log'}",
            "-monitor", f"unix:{w / 'monitor.sock'},server,nowait",
            "-drive", f"file={w / 'disk.img'},format=raw,if=none,id=d0",
            "-device", "virtio-blk-pci,drive=d0,bootindex=0",
            "-device", "ahci,id=ahci",
            "-drive", f"file={w / 'sata1.img'},if=none,id=s1,format=raw",
            "-device", "ide-hd,drive=s1,bus=ahci.0,serial=SATA0001",
            "-drive", f"file={w / 'sata2.img'},if=none,id=s2,format=raw",
            "-device", "ide-hd,drive=s2,bus=ahci.1,serial=SATA0002",
            "-drive", f"file={w / 'nvme.img'},if=none,id=nv,format=raw",
            "-device", "nvme,id=nvme0,drive=nv,serial=NVME0001",
            "-netdev", f"user,id=n0,restrict=on,{forwards}{self.netdev_extra}",
            "-device", "virtio-net-pci,netdev=n0",
        ]
        self.started = time.monotonic()
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                        stdout=(w / "qemu.out").open("wb"),
                                        stderr=subprocess.STDOUT)

    def wait_for_code(self, budget: float) -> tuple[str, float]:
        deadline = self.started + budget
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"qemu exited with {self.process.returncode}")
            if self.console_log.exists():
                found = CODE_LINE.search(self.console_log.read_bytes())
                if found:
                    return found.group(1).decode(), time.monotonic() - self.started
            time.sleep(1)
        raise TimeoutError(f"no setup code on the serial console within {budget:.0f} s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as mon:
            mon.connect(str(self.work / "monitor.sock"))
            mon.sendall(b"quit\n")
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        data += chunk
    return data


def until_answers(port: int, budget: float = 120.0) -> bytes:
    """The first line a forwarded TCP service says, retried until the service is up."""
    deadline = time.monotonic() + budget
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
                line = read_line(sock)
                if line:
                    return line
        except OSError as exc:
            last = exc
        time.sleep(2)
    raise TimeoutError(f"port {port} said nothing within {budget:.0f} s ({last})")


def run_checks(guest: Guest, results: Results) -> Site | None:
    code_box: dict[str, str] = {}

    def boots() -> str:
        code, seconds = guest.wait_for_code(BOOT_BUDGET)
        code_box["code"] = code
        return f"setup code on the serial console after {seconds:.0f} s"

    results.check("boot to the setup code (UEFI, systemd-boot, slot A)", boots)
    if "code" not in code_box:
        return None

    def console_url() -> str:
        # mailstead-welcome prints the console's address (user networking leases
        # 10.0.2.15); the login prompt below it shows the same through agetty's \4
        log = guest.console_log.read_bytes()
        shown = re.search(rb"Web console: (https://[0-9.]+/)", log)
        assert shown is not None, "no console URL with an address on the serial console"
        by_welcome = re.search(rb"python\[\d+\]: Web console: https://[0-9.]+/", log)
        where = "mailstead-welcome and the login prompt" if by_welcome else \
            "the login prompt only (mailstead-welcome saw no address)"
        return f"{shown.group(1).decode()} shown by {where}"

    results.check("welcome text shows the console URL with the leased address", console_url)
    console = Console(f"https://127.0.0.1:{guest.ports['console']}")
    results.check("console setup wizard accepts the setup code over HTTPS",
                  lambda: enter_code(console, code_box["code"]))
    banner_checks(guest, results)
    site = Site()
    set_up(console, site, results)
    key = ssh_set_up(guest, console, results)
    in_guest_checks(guest, site, results, key)
    return site


def ssh_set_up(guest: Guest, console: Console, results: Results) -> Path | None:
    """SSH is off after the first boot; the admin enables it in the console with a key."""
    results.check("SSH: no server before the admin enables it",
                  lambda: no_sshd(guest.ports["ssh"]))
    key, public = make_key(guest.work)
    before = len(results.failed)
    results.check("console admin: SSH enabled with an ed25519 key (settings page)",
                  lambda: enable_ssh(console, public))
    return key if len(results.failed) == before else None


def banner_checks(guest: Guest, results: Results) -> None:
    """Before set-up: the mail ports greet, and a port that is not open is refused."""
    def greets(port: int) -> Callable[[], str]:
        def check() -> str:
            line = until_answers(port)
            assert line.startswith(b"220 "), line
            return line.decode().strip()
        return check

    results.check("SMTP answers on port 25", greets(guest.ports["smtp"]))
    results.check("submission answers on port 587", greets(guest.ports["submission"]))

    def imaps_greeting() -> str:
        deadline = time.monotonic() + 120
        while True:
            try:
                # the first-boot certificate (mailstead.invalid): not yet the wizard's
                with socket.create_connection(("127.0.0.1", guest.ports["imaps"]),
                                              timeout=15) as raw, \
                        unverified_context().wrap_socket(raw) as sock:
                    line = read_line(sock)
                assert line.startswith(b"* OK"), line
                return line.decode().strip()[:60]
            except (OSError, AssertionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(2)

    results.check("IMAPS answers on port 993 (TLS)", imaps_greeting)

    def firewall_refuses() -> str:
        # slirp accepts on the host side, then the guest's firewall resets the connection:
        # the client sees the connection closed without a byte
        with socket.create_connection(("127.0.0.1", guest.ports["closed"]), timeout=15) as s:
            s.settimeout(15)
            try:
                data = s.recv(100)
            except ConnectionResetError:
                data = b""
        assert data == b"", data
        return "port 8081 closed by the guest"

    results.check("firewall refuses a port that is not open", firewall_refuses)


def set_up(console: Console, site: Site, results: Results) -> None:
    """The rest of the wizard and the admin pages, as an admin does after the code."""
    results.check("console wizard: admin, host name, time zone, TLS, DKIM",
                  lambda: run_wizard(console, site))
    results.check("console admin: accounts alice and postmaster",
                  lambda: add_accounts(console, site))
    results.check("console admin: settings for an offline box (greylist, antivirus)",
                  lambda: offline_settings(console))


def in_guest_checks(guest: Guest, site: Site, results: Results,
                    ssh_key: Path | None) -> None:
    """The probe's lines as results; the host's mail checks when the probe says the engine
    runs with the set-up; the RAID and NVMe alert mails once the probe has seen the alerts."""
    ports = Ports(guest.ports["smtp"], guest.ports["submission"],
                  guest.ports["submissions"], guest.ports["imaps"])
    seen: set[str] = set()

    def probe() -> str:
        for line in guest.probe_lines(PROBE_BUDGET):
            found = PROBE_LINE.match(line)
            if found:
                seen.add(found.group(2))
                results.record(f"guest: {found.group(2)}", found.group(1) == "ok",
                               found.group(3))
            elif line == "PROBE-STEP setup-applied":
                mail_checks(ports, site, results)
                dav_checks(guest.ports["dav"], pinned_context(ports.imaps, site.hostname),
                           site.hostname, site.alice, site.mail_password, results)
                if ssh_key is not None:
                    ssh_checks(guest.ports["ssh"], ssh_key, guest.work, results)
            elif line.startswith("PROBE-STEP public-web-token "):
                public_web_checks(guest.ports["web"], site, line.split()[-1], results)
            elif line == "PROBE-STEP nvme-warning":
                # qemu's NVMe device: set the SMART critical-warning byte (2 = temperature)
                guest.monitor_command(
                    "qom-set /machine/peripheral/nvme0 smart_critical_warning 2")
        return "all probe lines read"

    results.check("in-guest probe ran to the end", probe)

    def alert_mail() -> str:
        assert "md-member-failed" in seen, "the probe did not fail an md member"
        context = pinned_context(ports.imaps, site.hostname)
        hits = find_subject(ports, context, site.hostname, site.postmaster,
                            site.mail_password, "md0", ALERT_MAIL_BUDGET)
        return f"{site.postmaster} got {hits[0]!r}"

    results.check("RAID alert mail in postmaster's INBOX (IMAPS)", alert_mail)

    def nvme_alert_mail() -> str:
        assert "monitor-nvme-alert" in seen, "the probe did not see the NVMe alert"
        context = pinned_context(ports.imaps, site.hostname)
        hits = find_subject(ports, context, site.hostname, site.postmaster,
                            site.mail_password, "/dev/nvme", ALERT_MAIL_BUDGET)
        assert any("failing" in hit for hit in hits), f"no failing-disk mail: {hits}"
        return f"{site.postmaster} got {hits[0]!r}"

    results.check("NVMe failing-disk alert mail in postmaster's INBOX (IMAPS)",
                  nvme_alert_mail)


def fetch_plain(port: int, host: str, path: str) -> tuple[int, str, bytes]:
    """GET over the plain HTTP forward: status, Location and body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers={"Host": host})
        reply = conn.getresponse()
        return reply.status, reply.getheader("Location", ""), reply.read()
    finally:
        conn.close()


def public_web_checks(port: int, site: Site, token: str, results: Results) -> None:
    """Port 80 from the host (what an ACME CA and a mail client get): the token the probe
    wrote, autoconfig of the wizard's domain, and a redirect to HTTPS for the rest."""
    def acme() -> str:
        status, _, body = fetch_plain(port, site.hostname,
                                      f"/.well-known/acme-challenge/{token}")
        assert (status, body) == (200, f"{token}.probe-key".encode()), (status, body[:80])
        return "the probe's token answered over plain HTTP"

    def autoconfig() -> str:
        status, _, body = fetch_plain(port, f"autoconfig.{site.domain}",
                                      "/mail/config-v1.1.xml")
        assert status == 200, (status, body[:80])
        root = ElementTree.fromstring(body)
        assert root.tag == "clientConfig", root.tag
        hosts = {node.text for node in root.iter("hostname")}
        assert site.hostname in hosts, hosts
        return f"clientConfig for {site.domain} names {site.hostname}"

    def redirect() -> str:
        status, location, _ = fetch_plain(port, site.hostname, "/login")
        assert (status, location) == (308, f"https://{site.hostname}/login"), (status, location)
        return f"/login -> {location}"

    results.check("public web on port 80: ACME HTTP-01 challenge", acme)
    results.check("public web on port 80: Thunderbird autoconfig", autoconfig)
    results.check("public web on port 80: console paths redirected to HTTPS", redirect)


def mail_checks(ports: Ports, site: Site, results: Results) -> None:
    """SMTP in and submission with AUTH, each read back over IMAPS."""
    box: dict[str, object] = {}

    def tls_pinned() -> str:
        context = pinned_context(ports.imaps, site.hostname)
        with Imaps(ports.imaps, context) as imap:
            check_names(imap.sock, site.hostname)
            imap.logout()
        box["context"] = context
        return f"993 serves the wizard's certificate for {site.hostname}"

    results.check("IMAPS certificate pinned (the wizard's self-signed one)", tls_pinned)
    context = box.get("context")
    if context is None:
        return
    assert isinstance(context, ssl.SSLContext)

    def read_back(subject: str) -> str:
        find_subject(ports, context, site.hostname, site.alice, site.mail_password,
                     subject, 120)
        return f"read back over IMAPS as {site.alice}"

    def mx() -> str:
        message, subject = make_message("bob@example.org", site.alice, "MX")
        return f"{send_mx(ports, 'mx.example.org', message)}; {read_back(subject)}"

    results.check("SMTP on 25 to alice, read back over IMAPS", mx)

    def submission(implicit_tls: bool) -> Callable[[], str]:
        def check() -> str:
            what = "submissions 465" if implicit_tls else "submission 587"
            message, subject = make_message(site.alice, site.alice, what)
            sent = send_submission(ports, context, site.hostname, site.alice,
                                   site.mail_password, message, implicit_tls)
            return f"{sent}; {read_back(subject)}"
        return check

    results.check("submission 587 STARTTLS + AUTH PLAIN, alice to alice, read back",
                  submission(False))
    results.check("submission 465 TLS + AUTH PLAIN, alice to alice, read back",
                  submission(True))


def update_rig(guest: Guest, images: Path) -> UpdateRig:
    """--update: the release repository, CA and HTTPS server before the guest starts."""
    rig = UpdateRig(guest.work, guest.image, images)
    rig.prepare()
    guest.netdev_extra = "," + rig.netdev_option()
    guest.reboot = True
    return rig


def update_stage(guest: Guest, site: Site, rig: UpdateRig, results: Results) -> None:
    """--update, after the checks above on the same guest (update_checks.py)."""
    ports = Ports(guest.ports["smtp"], guest.ports["submission"],
                  guest.ports["submissions"], guest.ports["imaps"])
    process = guest.process
    reader = ProbeReader(guest.work / "probe.log",
                         lambda: process is not None and process.poll() is None, results)
    mail = Mail(ports, site.hostname, site.mail_password, site.alice, site.postmaster)
    run_update_checks(rig, reader, mail, guest.work / "disk.img", results)


@contextlib.contextmanager
def work_dir(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="mailstead-image-test-") as tmp:
        yield Path(tmp)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("image", type=Path)
    parser.add_argument("--work", type=Path, help="keep the VM's files here (console.log)")
    parser.add_argument("--update", action="store_true",
                        help="then the A/B update test of issue 9 (update_checks.py)")
    parser.add_argument("--update-images", type=Path, default=ROOT / "out" / "update-test",
                        help="where --update builds versions N+1 and N+2 (reused if there)")
    args = parser.parse_args()
    results = Results()
    start = time.monotonic()
    with work_dir(args.work) as work:
        guest = Guest(work, args.image, {name: free_port() for name in GUEST_PORTS})
        rig = update_rig(guest, args.update_images) if args.update else None
        guest.prepare()
        if rig is not None:
            rig.inject(work / "disk.img")
            rig.start_builds()
        guest.start()
        try:
            site = run_checks(guest, results)
            if rig is not None and site is not None:
                update_stage(guest, site, rig, results)
        finally:
            guest.stop()
            if rig is not None:
                rig.close()
            if results.failed:
                tail = guest.console_log.read_bytes()[-3000:] if guest.console_log.exists() \
                    else b""
                print("--- last of the serial console ---")
                print(tail.decode(errors="replace"))
    print(f"image-test took {time.monotonic() - start:.0f} s")
    print(f"{len(results.passed)} passed, {len(results.failed)} failed")
    return 1 if results.failed else 0


if __name__ == "__main__":
    sys.exit(main())
