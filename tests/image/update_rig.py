"""The host side of `vm_checks.py --update` (update_checks.py): the test's release
repository, CA and HTTPS update server, what goes into each root-a with debugfs, and the
builds of versions N+1 and N+2 made into bundles."""

from __future__ import annotations

import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import threading
import time
import tomllib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
UPDATE_HOST = "10.0.2.100"            # the update server's address as the guest sees it
PROBE_SCRIPT = Path(__file__).with_name("guest_update_probe.sh")
RELAY = Path(__file__).with_name("guest_relay.py")
PROBE_UNIT = """[Unit]
Description=image-test update probe (written into the test images only)
After=multi-user.target mailstead-image-probe.service mailstead-update-commit.service

[Service]
Type=oneshot
ExecStart=/usr/lib/mailstead-test/guest_update_probe.sh
StandardOutput=tty
StandardError=inherit
TTYPath=/dev/ttyS1
TTYReset=no
TTYVHangup=no
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
"""
FAILING_HOOK = "#!/bin/sh\necho 'image-test: this release is broken on purpose'\nexit 1\n"
FAILING_HOOK_PATH = "/usr/lib/mailstead/firmware-hooks/health-check.d/00-always-fails"
ORIGINAL_TOML = "/etc/mailstead/mailstead.toml.image-test-orig"
GUEST_CA = "/usr/share/mailstead/update/ca.pem"
BUILD_BUDGET = 1200.0       # seconds for both builds and bundles


def next_versions(version: str) -> tuple[str, str]:
    """N+1 and N+2: the last number of N raised by one and two (0.1.0 -> 0.1.1, 0.1.2)."""
    head, _, last = version.rpartition(".")
    if not last.isdigit():
        raise ValueError(f"cannot count up from version {version!r}")
    prefix = f"{head}." if head else ""
    return f"{prefix}{int(last) + 1}", f"{prefix}{int(last) + 2}"


def version_of(image: Path) -> str:
    found = re.fullmatch(r"mailstead-(.+)-amd64\.img", image.name)
    if found is None:
        raise ValueError(f"cannot tell the version from {image.name}")
    return found.group(1)


def partition_offset(image: Path, index: int) -> int:
    """Byte offset of partition `index` (0: esp, 1: root-a) of a GPT disk image."""
    table = json.loads(subprocess.run(["sfdisk", "-J", str(image)], capture_output=True,
                                      text=True, check=True).stdout)
    return int(table["partitiontable"]["partitions"][index]["start"]) * 512


def debugfs(image: Path, offset: int, commands: list[str], writable: bool = True) -> str:
    """Run debugfs commands on the ext4 file system at `offset` of `image`; the output has
    each command echoed before its answer ("debugfs: cat ...")."""
    argv = ["debugfs"] + (["-w"] if writable else []) + ["-f", "-", f"{image}?offset={offset}"]
    done = subprocess.run(argv, input="\n".join(commands) + "\n", capture_output=True,
                          text=True, check=True, timeout=300)
    return done.stdout


def read_file(image: Path, offset: int, path: str) -> str:
    """One file of the ext4 file system at `offset` (debugfs -R: no command echo)."""
    done = subprocess.run(["debugfs", "-R", f"cat {path}", f"{image}?offset={offset}"],
                          capture_output=True, text=True, check=True, timeout=300)
    return done.stdout


def with_update_section(toml: str, url: str) -> str:
    """The shipped mailstead.toml with the test's [update] keys added (the rest kept)."""
    lines = [f'url = "{url}"', f'ca_file = "{GUEST_CA}"', 'maintenance_window = "now"']
    if re.search(r"^\[update\]\s*$", toml, re.MULTILINE):
        return re.sub(r"^\[update\]\s*$", "[update]\n" + "\n".join(lines), toml, count=1,
                      flags=re.MULTILINE)
    return toml.rstrip("\n") + "\n\n[update]\n" + "\n".join(lines) + "\n"


class ProbeServer:
    """The test's update server: the repository's public/ directory over HTTPS, and
    /probe/next?slot=X&version=V, the in-guest probe's next instruction."""

    def __init__(self, public: Path, cert: Path, key: Path) -> None:
        self.public = public.resolve()
        self.actions: dict[str, str] = {}      # "slot/version" -> update (once) or end
        self.lock = threading.Lock()
        self.requests: list[str] = []
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def set_action(self, slot: str, version: str, action: str) -> None:
        with self.lock:
            self.actions[f"{slot}/{version}"] = action

    def end_all(self) -> None:
        with self.lock:
            self.actions["*"] = "end"

    def next_action(self, slot: str, version: str) -> str:
        with self.lock:
            action = self.actions.get(f"{slot}/{version}") or self.actions.get("*", "wait")
            if action == "update":
                self.actions.pop(f"{slot}/{version}")      # once
            return action

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                server.requests.append(parts.path)
                if parts.path == "/probe/next":
                    query = parse_qs(parts.query)
                    body = server.next_action(query.get("slot", ["?"])[0],
                                              query.get("version", ["?"])[0]).encode()
                    self._answer(body)
                    return
                file = (server.public / parts.path.lstrip("/")).resolve()
                if not file.is_relative_to(server.public) or not file.is_file():
                    self.send_error(404)
                    return
                self._send_file(file)

            def _answer(self, body: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _send_file(self, file: Path) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(file.stat().st_size))
                self.end_headers()
                try:
                    with file.open("rb") as source:
                        shutil.copyfileobj(source, self.wfile, 1024 * 1024)
                except OSError:
                    pass        # the client hung up

        return Handler


@dataclass
class Build:
    version: str
    image: Path
    bundle: Path | None = None
    error: str = ""
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class UpdateRig:
    """Everything on the host side of the update test."""

    work: Path                  # the VM's work directory
    base_image: Path            # version N
    images_dir: Path            # where N+1 and N+2 are built (kept; reused when there)
    server: ProbeServer | None = None
    builds: dict[str, Build] = field(default_factory=dict)
    thread: threading.Thread | None = None
    times: dict[str, float] = field(default_factory=dict)

    @property
    def dir(self) -> Path:
        return self.work / "update"

    @property
    def repo(self) -> Path:
        return self.dir / "repo"

    @property
    def versions(self) -> tuple[str, str, str]:
        base = version_of(self.base_image)
        return (base, *next_versions(base))

    def prepare(self) -> None:
        """CA and server certificate, the repository, the HTTPS server."""
        started = time.monotonic()
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        self._make_ca()
        mailstead("release", "init", str(self.repo), "--root-keys", str(self.dir / "offline"))
        self.server = ProbeServer(self.repo / "public", self.dir / "server.crt",
                                  self.dir / "server.key")
        self.times["repository, CA and server"] = time.monotonic() - started

    def _make_ca(self) -> None:
        # tests/peers/ca.py under the project's venv (cryptography is there)
        code = ("import sys; sys.path.insert(0, sys.argv[1]); from pathlib import Path; "
                "from peers.ca import TestCA; d = Path(sys.argv[2]); "
                "ca = TestCA('Mailstead image-test update CA'); "
                "ca.issue([sys.argv[3]], d, 'server'); ca.write_cert(d / 'ca.pem')")
        subprocess.run([str(VENV_BIN / "python"), "-c", code, str(ROOT / "tests"),
                        str(self.dir), UPDATE_HOST], check=True, capture_output=True)

    def netdev_option(self) -> str:
        """qemu -netdev user,... option: the guest's 10.0.2.100:443 to our server."""
        assert self.server is not None
        return f"guestfwd=tcp:{UPDATE_HOST}:443-cmd:{sys.executable} {RELAY} {self.server.port}"

    # -- what goes into each root-a -------------------------------------------------------

    def inject(self, image: Path, failing_hook: bool = False) -> None:
        """The update configuration and the probe into root-a of `image`."""
        offset = partition_offset(image, 1)
        # the image's own file, kept beside it the first time: a reused N+1 or N+2 image
        # is injected again at each run
        shipped = read_file(image, offset, ORIGINAL_TOML) or \
            read_file(image, offset, "/etc/mailstead/mailstead.toml")
        stage = self.dir / f"inject-{image.stem}"
        stage.mkdir(parents=True, exist_ok=True)
        toml = stage / "mailstead.toml"
        toml.write_text(with_update_section(shipped, f"https://{UPDATE_HOST}/"))
        assert "url" in tomllib.loads(toml.read_text())["update"], toml   # parses
        unit = stage / "mailstead-update-probe.service"
        unit.write_text(PROBE_UNIT)
        probe = stage / "guest_update_probe.sh"
        shutil.copyfile(PROBE_SCRIPT, probe)
        hook = stage / "00-always-fails"
        hook.write_text(FAILING_HOOK)
        for path, mode in ((toml, 0o644), (unit, 0o644), (probe, 0o755), (hook, 0o755)):
            path.chmod(mode)
        wants = "/etc/systemd/system/multi-user.target.wants/mailstead-update-probe.service"
        original = stage / "mailstead.toml.orig"
        original.write_text(shipped)
        files = [(original, ORIGINAL_TOML), (toml, "/etc/mailstead/mailstead.toml"),
                 (self.repo / "public" / "metadata" / "1.root.json",
                  "/usr/share/mailstead/update/root.json"),
                 (self.dir / "ca.pem", GUEST_CA),
                 (probe, "/usr/lib/mailstead-test/guest_update_probe.sh"),
                 (unit, "/etc/systemd/system/mailstead-update-probe.service")]
        if failing_hook:
            files.append((hook, FAILING_HOOK_PATH))
        commands = ["mkdir /usr/share/mailstead", "mkdir /usr/share/mailstead/update",
                    "mkdir /usr/lib/mailstead-test", f"rm {wants}",
                    f"symlink {wants} /etc/systemd/system/mailstead-update-probe.service"]
        for source, target in files:
            commands += [f"rm {target}", f"write {source} {target}"]
        debugfs(image, offset, commands)
        listing = debugfs(image, offset, [f"stat {target}" for _, target in files], False)
        answers = listing.split("debugfs: stat ")[1:]      # one per file, in order
        missing = [target for (_, target), answer in zip(files, answers, strict=True)
                   if "Inode:" not in answer]
        assert not missing, f"debugfs did not write {missing}"

    # -- N+1 and N+2 ---------------------------------------------------------------------

    def start_builds(self) -> None:
        self.thread = threading.Thread(target=self._build_all, daemon=True)
        self.thread.start()

    def _build_all(self) -> None:
        _, plus1, plus2 = self.versions
        for version, failing in ((plus1, False), (plus2, True)):
            out = self.images_dir / f"out-{version}"
            build = Build(version, out / f"mailstead-{version}-amd64.img")
            self.builds[version] = build
            try:
                self._build(build, failing)
            except Exception as exc:     # reported by wait_build
                build.error = f"{type(exc).__name__}: {exc}"

    def _build(self, build: Build, failing_hook: bool) -> None:
        started = time.monotonic()
        if not build.image.is_file():
            env = {**os.environ, "MAILSTEAD_VERSION": build.version,
                   "MAILSTEAD_IMAGE_OUT": str(build.image.parent),
                   "MAILSTEAD_IMAGE_CACHE": str(ROOT / "out" / "cache")}
            log = self.dir / f"build-{build.version}.log"
            with log.open("wb") as sink:
                done = subprocess.run(["bash", str(ROOT / "image" / "build-image.sh"),
                                       "--no-compress"], env=env, stdout=sink,
                                      stderr=subprocess.STDOUT, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"build-image.sh failed, see {log}")
        build.seconds["image"] = time.monotonic() - started
        started = time.monotonic()
        self.inject(build.image, failing_hook)
        out = mailstead("release", "build", str(build.image), "--out", str(self.dir))
        build.bundle = Path(out.strip().splitlines()[-1])
        build.seconds["bundle"] = time.monotonic() - started

    def wait_build(self, version: str) -> Build:
        deadline = time.monotonic() + BUILD_BUDGET
        while time.monotonic() < deadline:
            build = self.builds.get(version)
            if build is not None and (build.bundle is not None or build.error):
                if build.error:
                    raise RuntimeError(f"{version}: {build.error}")
                return build
            time.sleep(2)
        raise TimeoutError(f"the {version} bundle was not ready within {BUILD_BUDGET:.0f} s")

    def publish(self, version: str) -> str:
        build = self.wait_build(version)
        assert build.bundle is not None
        mailstead("release", "add", str(self.repo), str(build.bundle), "--channel", "stable")
        size = build.bundle.stat().st_size
        return (f"{build.bundle.name} ({size / 1e6:.0f} MB; image {build.seconds['image']:.0f}"
                f" s, inject + bundle {build.seconds['bundle']:.0f} s) in stable")

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


def mailstead(*args: str) -> str:
    """The project's CLI (the venv's `mailstead`), as a publisher runs it."""
    done = subprocess.run([str(VENV_BIN / "mailstead"), *args], capture_output=True,
                          text=True, check=False, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"mailstead {' '.join(args[:2])}: {done.stderr.strip()[-500:]}")
    return done.stdout
