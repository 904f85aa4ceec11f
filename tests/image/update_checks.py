"""`vm_checks.py --update`: issue 9's update test on the guest that vm_checks.py booted.

Before the boot (`UpdateRig.prepare`, `inject`): a TUF release repository in the work
directory (made with `mailstead release init`, its keys there), a test CA and a server
certificate for 10.0.2.100, a static HTTPS server on 127.0.0.1 that serves the repository
and tells the in-guest probe what to do next, and qemu's `guestfwd` from the guest's
10.0.2.100:443 to it (through guest_relay.py, one per connection). Into root-a of the test
copy: the repository's 1.root.json, the CA, an [update] section pointing at the server
(maintenance window "now"), and guest_update_probe.sh with a unit that runs it each boot.

Meanwhile (`start_builds`, a thread): versions N+1 and N+2 built with image/build-image.sh
from the same base tree cache, the same files written into their root-a, and in N+2 a
health-check hook that always fails; each made into a bundle (`mailstead release build`).

After vm_checks.py's own checks (`run_update_checks`): mail to alice, N+1 published, the
guest updates itself and reboots into slot b, commits (blessed on the ESP, seen from the
host too) and alice's mail is still there; then N+2 published and installed into slot a,
its health check fails, the loader falls back to slot b (N+1), the rollback is recorded and
postmaster gets the alert mail. Each step is a `results.check` line with its time.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from mail_checks import Ports, find_subject, make_message, pinned_context, send_mx
from update_rig import UpdateRig, partition_offset

INSTALL_BUDGET = 2400.0     # seconds from "update" to the new slot's probe after the reboot
ROLLBACK_BUDGET = 2400.0    # from "update" to N+1's probe again after N+2's failed trial
STEP_BUDGET = 600.0
MAIL_BUDGET = 240.0
PROBE_LINE = re.compile(r"^PROBE (ok|fail) (\S+) ?(.*)$")


class Results(Protocol):
    failed: list[str]

    def check(self, name: str, test: Callable[[], str]) -> None: ...
    def record(self, name: str, ok: bool, detail: str) -> None: ...


def esp_entries(image: Path) -> list[str]:
    """The loader entry files on the image's ESP, read from the host (mtools, no mount)."""
    done = subprocess.run(["mdir", "-b", "-i", f"{image}@@{partition_offset(image, 0)}",
                           "::/loader/entries"], capture_output=True, text=True, check=True,
                          env={**os.environ, "MTOOLS_SKIP_CHECK": "1"}, timeout=60)
    return sorted(Path(line.strip()).name for line in done.stdout.splitlines() if line.strip())


# -- reading the update probe --------------------------------------------------------------

@dataclass
class ProbeReader:
    """The update probe's lines on the second serial port (after guest_probe.sh's
    PROBE-END), across reboots: qemu keeps the file open over a guest reboot."""

    log: Path
    alive: Callable[[], bool]
    results: Results
    facts: dict[str, str] = field(default_factory=dict)
    seen: int = 0
    started: bool = False

    def lines(self, budget: float) -> Iterator[str]:
        """Whole lines from where the last call stopped: `seen` moves past each line as
        it is handed out, so a caller that stops reading (until) loses none."""
        deadline = time.monotonic() + budget
        while time.monotonic() < deadline:
            data = self.log.read_bytes() if self.log.exists() else b""
            end = data.find(b"\n", self.seen)
            if end >= 0:
                text = data[self.seen:end].decode(errors="replace").strip()
                self.seen = end + 1
                if not self.started:
                    self.started = text == "PROBE-END"
                    continue
                yield text
                continue
            if not self.alive():
                raise RuntimeError("qemu exited")
            time.sleep(1)
        raise TimeoutError(f"nothing expected from the update probe within {budget:.0f} s")

    def until(self, wanted: Callable[[str], bool], budget: float) -> str:
        """Read lines until one is `wanted`; PROBE lines become facts, fails become results."""
        for line in self.lines(budget):
            found = PROBE_LINE.match(line)
            if found:
                self.facts[found.group(2)] = found.group(3)
                if found.group(1) == "fail":
                    self.results.record(f"guest: {found.group(2)}", False, found.group(3))
                else:
                    print(f"     guest {found.group(2)}: {found.group(3)[:300]}", flush=True)
            elif line.startswith(("PROBE-STEP", "UPDATE-END")):
                print(f"     guest {line}", flush=True)
            if wanted(line):
                return line
        raise AssertionError("unreachable")

    def boot(self, slot: str, version: str, budget: float) -> dict[str, object]:
        """Wait for the probe of a boot of `slot` with `version`; its status JSON."""
        self.until(lambda line: line == f"PROBE-STEP update-boot {slot} {version}", budget)
        self.until(lambda line: line.startswith(f"PROBE ok commit-unit-{slot}-{version}"),
                   STEP_BUDGET)
        status = json.loads(self.facts[f"update-status-{slot}-{version}"])
        assert isinstance(status, dict), status
        return status


# -- the checks ----------------------------------------------------------------------------

@dataclass
class Mail:
    ports: Ports
    hostname: str
    password: str
    alice: str
    postmaster: str
    context: ssl.SSLContext | None = None

    def find(self, user: str, needle: str) -> str:
        # the certificate is pinned again after each reboot: it is on the data partition,
        # so it must be the same one
        context = pinned_context(self.ports.imaps, self.hostname)
        if self.context is not None:
            assert context.get_ca_certs() == self.context.get_ca_certs(), "certificate changed"
        self.context = context
        return find_subject(self.ports, context, self.hostname, user, self.password, needle,
                            MAIL_BUDGET)[0]


def timed(check: Callable[[], str]) -> Callable[[], str]:
    def run() -> str:
        started = time.monotonic()
        detail = check()
        return f"{detail} [{time.monotonic() - started:.0f} s]"
    return run


def run_update_checks(rig: UpdateRig, reader: ProbeReader, mail: Mail, disk: Path,
                      results: Results) -> None:
    """Issue 9 in the booted guest; each step needs the one before."""
    base, plus1, plus2 = rig.versions
    assert rig.server is not None
    server = rig.server
    box: dict[str, str] = {}
    started = time.monotonic()

    def probe_ready() -> str:
        status = reader.boot("a", base, STEP_BUDGET)
        assert status["booted_slot"] == "a", status
        assert status["pending"] is None, status
        return f"slot a runs {status['running_version']}, nothing pending"

    def mail_before() -> str:
        message, subject = make_message("bob@example.org", mail.alice, "before-update")
        send_mx(mail.ports, "mx.example.org", message)
        box["subject"] = subject
        return f"{mail.find(mail.alice, subject)!r} in {mail.alice}'s INBOX"

    def updated() -> str:
        server.set_action("a", base, "update")
        reader.until(lambda line: line.startswith("PROBE-STEP update-started a"), STEP_BUDGET)
        status = reader.boot("b", plus1, INSTALL_BUDGET)
        last = status.get("last") or {}
        assert isinstance(last, dict)
        assert status["pending"] is None, status
        assert last.get("outcome") == "committed", status
        return f"rebooted into slot b running {status['running_version']}: {last}"

    def blessed_on_host() -> str:
        entries = esp_entries(disk)
        assert "root-b.conf" in entries, entries
        assert not any(e.startswith("root-b+") for e in entries), entries
        return f"host reads the ESP: {entries}"

    def mail_after() -> str:
        return f"{mail.find(mail.alice, box['subject'])!r} still in {mail.alice}'s INBOX"

    def rolled_back() -> str:
        server.set_action("b", plus1, "update")
        reader.until(lambda line: line.startswith("PROBE-STEP update-started b"), STEP_BUDGET)
        status = reader.boot("b", plus1, ROLLBACK_BUDGET)
        last = status.get("last") or {}
        assert isinstance(last, dict)
        assert last.get("version") == plus2, status
        assert last.get("outcome") == "rolled back", status
        assert plus2 in str(status["failed_versions"]), status
        assert "00-always-fails" in str(last.get("reason")), last
        return f"back on slot b ({status['running_version']}): {last}"

    def entries_after_rollback() -> str:
        entries = esp_entries(disk)
        assert "root-b.conf" in entries, entries
        assert not any(e.startswith("root-a") for e in entries), entries
        return f"host reads the ESP: {entries}"

    def alert() -> str:
        needle = f"[Mailstead CRITICAL] Update to {plus2} rolled back"
        return f"{mail.postmaster} got {mail.find(mail.postmaster, needle)!r}"

    steps: list[tuple[str, Callable[[], str]]] = [
        (f"update: probe ready on slot a ({base})", probe_ready),
        ("update: mail to alice before the update, read back over IMAPS", mail_before),
        (f"update: {plus1} built, bundled and published (TUF, channel stable)",
         lambda: rig.publish(plus1)),
        (f"update: the guest installs {plus1} into slot b, reboots, passes the health check, "
         "commits", updated),
        ("update: slot b's entry blessed on the ESP (read from the host)", blessed_on_host),
        ("update: alice's mail from before the update still there (IMAPS)", mail_after),
        (f"update: broken {plus2} built, bundled and published", lambda: rig.publish(plus2)),
        (f"update: {plus2} installed into slot a, fails its health check, the loader falls "
         f"back to slot b ({plus1}), the rollback is recorded", rolled_back),
        ("update: slot a out of the boot menu, slot b's blessed entry stays (host)",
         entries_after_rollback),
        ("update: rollback alert mail in postmaster's INBOX (IMAPS)", alert),
    ]
    for name, step in steps:
        before = len(results.failed)
        results.check(name, timed(step))
        if len(results.failed) != before:
            break
    server.end_all()
    rig.times["update checks after the base checks"] = time.monotonic() - started
    for name, seconds in rig.times.items():
        print(f"     time: {name}: {seconds:.0f} s", flush=True)
