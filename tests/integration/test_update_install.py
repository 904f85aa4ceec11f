"""Installing a real bundle into a file-backed slot and a tmp ESP: verified on disk, hooks
run with their environment, a failing pre-install hook leaves everything untouched, and
refusals are recorded. Then the boot-time commit: a real engine (and an HTTP server as the
console) passes the health check and the slot is blessed; nothing listening fails it and
marks it bad; booting the old slot with an install pending runs the rollback hooks and
mails the admin."""

from __future__ import annotations

import argparse
import email
import gzip
import hashlib
import http.server
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from email.policy import default
from pathlib import Path

import pytest

from appliance.cli import release_cmds
from appliance.cli.context import CliError
from appliance.settings_store import load_effective
from appliance.storage.db import open_database
from appliance.update import bundle, commit, health, rootfs, slots, state
from appliance.update.bootenv import BootEnv
from appliance.update.install import InstallError, System, install
from appliance.update.repository import ReleaseRepository
from harness import update_image
from harness.engine import EngineProcess, free_port
from harness.release_mirror import QuietHandler, release_mirror


@pytest.fixture(autouse=True, scope="module")
def _image_tools() -> None:
    update_image.ensure_tools()

IMAGE_BOOT = update_image.REPO / "image" / "boot"
SLOT_SIZE = 8 * 1024 * 1024
ADMIN = "postmaster@example.test"
CMDLINE = "root=PARTLABEL=root-{0} ro rootwait mailstead.slot={0} quiet\n"


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bundles")
    return {"0.2.0": update_image.make_bundle(folder, "0.2.0", "0.1.0"),
            "0.3.0": update_image.make_bundle(folder, "0.3.0", "0.2.5")}


def write_hook(base: Path, stage: str, name: str, body: str) -> Path:
    folder = base / f"{stage}.d"
    folder.mkdir(parents=True, exist_ok=True)
    hook = folder / name
    hook.write_text("#!/bin/sh\n" + body)
    hook.chmod(0o755)
    return hook


def env_recorder(base: Path, stage: str, out: Path) -> None:
    write_hook(base, stage, "10-record", f"env | sort > {out}/{stage}.env\n")


def make_system(tmp_path: Path, data_dir: Path, booted: str = "a",
                running: str = "0.1.0") -> System:
    esp = tmp_path / "esp"
    if not esp.exists():
        (esp / "loader" / "entries").mkdir(parents=True)
        shutil.copy(IMAGE_BOOT / "loader.conf", esp / "loader" / "loader.conf")
        template = (IMAGE_BOOT / "entry.conf.in").read_text()
        for slot in slots.SLOTS:
            (esp / "loader" / "entries" / f"root-{slot}.conf").write_text(
                template.replace("@SLOT@", slot).replace("@VERSION@", running))
        for slot in slots.SLOTS:
            with (tmp_path / f"slot-{slot}.img").open("wb") as dev:
                dev.truncate(SLOT_SIZE)
    data_dir.mkdir(exist_ok=True)
    conn = open_database(data_dir)
    schema = int(conn.execute("PRAGMA user_version").fetchone()[0])
    conn.close()
    return System(data_dir=data_dir, esp=esp,
                  devices={s: tmp_path / f"slot-{s}.img" for s in slots.SLOTS},
                  cmdline=CMDLINE.format(booted), mounts="/dev/vda2 / ext4 ro 0 0\n",
                  running_version=running, data_schema=schema,
                  hook_dirs=[tmp_path / "hooks-image", tmp_path / "hooks-admin"],
                  hook_timeout=10.0, boot_attempts=3)


def entry_names(system: System, slot: str) -> list[str]:
    return [path.name for path, _ in BootEnv(system.esp).entries(slot)]


def snapshot(system: System) -> dict[str, bytes]:
    files = {str(p): p.read_bytes() for p in sorted(system.esp.rglob("*")) if p.is_file()}
    files["slot-b"] = system.devices["b"].read_bytes()
    return files


# -- install -------------------------------------------------------------------------------

def test_install_writes_the_slot_verifies_it_and_records_pending(
        tmp_path: Path, bundles: dict[str, Path]) -> None:
    system = make_system(tmp_path, tmp_path / "data")
    env_recorder(tmp_path / "hooks-image", "pre-install", tmp_path)
    env_recorder(tmp_path / "hooks-admin", "post-install", tmp_path)
    pending = install(bundles["0.2.0"], system)
    assert pending == slots.Pending("0.2.0", "a", "b", "0.1.0")
    manifest = bundle.read_manifest(bundles["0.2.0"])
    on_disk = system.devices["b"].read_bytes()
    assert hashlib.sha256(on_disk[:manifest.root.size]).hexdigest() == manifest.root.sha256
    assert b"0.2.0" in on_disk                             # etc/mailstead-release of 0.2.0
    assert system.devices["a"].read_bytes() == bytes(SLOT_SIZE)   # booted slot untouched
    assert (system.esp / "root-b" / "vmlinuz").read_bytes().startswith(b"vmlinuz of 0.2.0")
    assert entry_names(system, "b") == ["root-b+3.conf"]
    assert entry_names(system, "a") == ["root-a.conf"]
    entry = (system.esp / "loader" / "entries" / "root-b+3.conf").read_text()
    assert "mailstead.slot=b" in entry
    assert "sort-key mailstead" in entry
    assert "default root-*" in (system.esp / "loader" / "loader.conf").read_text()
    for stage in ("pre-install", "post-install"):
        env = (tmp_path / f"{stage}.env").read_text()
        assert f"MAILSTEAD_HOOK_STAGE={stage}\n" in env
        assert "MAILSTEAD_UPDATE_VERSION=0.2.0\n" in env
        assert "MAILSTEAD_UPDATE_FROM_VERSION=0.1.0\n" in env
        assert "MAILSTEAD_UPDATE_SLOT=b\n" in env
    saved = state.load(system.update_dir)
    assert saved.pending == pending
    assert saved.last is not None
    assert saved.last.outcome == "installed"
    assert (system.data_dir / "update").stat().st_mode & 0o777 == 0o755     # console reads
    with pytest.raises(InstallError, match="waits for its reboot"):
        install(bundles["0.3.0"], system)


def test_failing_pre_install_hook_aborts_with_nothing_written(
        tmp_path: Path, bundles: dict[str, Path]) -> None:
    system = make_system(tmp_path, tmp_path / "data")
    write_hook(tmp_path / "hooks-admin", "pre-install", "50-backup",
               "echo backup target unreachable; exit 1\n")
    before = snapshot(system)
    with pytest.raises(InstallError, match=r"pre-install hook failed .50-backup"):
        install(bundles["0.2.0"], system)
    assert snapshot(system) == before
    saved = state.load(system.update_dir)
    assert saved.pending is None
    assert saved.last is not None
    assert saved.last.outcome == "aborted"
    assert "50-backup" in saved.last.reason


def test_failing_post_install_hook_takes_the_slot_out_of_the_menu(
        tmp_path: Path, bundles: dict[str, Path]) -> None:
    system = make_system(tmp_path, tmp_path / "data")
    write_hook(tmp_path / "hooks-image", "post-install", "20-check", "exit 3\n")
    with pytest.raises(InstallError, match="post-install hook failed"):
        install(bundles["0.2.0"], system)
    assert entry_names(system, "b") == []
    assert entry_names(system, "a") == ["root-a.conf"]
    assert state.load(system.update_dir).pending is None


@pytest.mark.parametrize(("running", "version", "message"), [
    ("0.2.0", "0.2.0", "not newer"),
    ("0.3.0", "0.2.0", "not newer"),
    ("0.1.0", "0.3.0", "needs at least 0.2.5"),
])
def test_versions_are_checked(tmp_path: Path, bundles: dict[str, Path], running: str,
                              version: str, message: str) -> None:
    system = make_system(tmp_path, tmp_path / "data", running=running)
    with pytest.raises(InstallError, match=message):
        install(bundles[version], system)
    assert system.devices["b"].read_bytes() == bytes(SLOT_SIZE)


def test_data_schema_going_back_is_refused(tmp_path: Path) -> None:
    old = update_image.make_bundle(tmp_path / "old", "0.2.0", "0", data_schema=1)
    system = make_system(tmp_path, tmp_path / "data")
    with pytest.raises(InstallError, match="reads data schema 1"):
        install(old, system)


def test_mounted_or_booted_target_is_refused(tmp_path: Path, bundles: dict[str, Path]) -> None:
    system = make_system(tmp_path, tmp_path / "data")
    mounted = System(**{**system.__dict__,
                        "mounts": f"{system.devices['b']} /mnt ext4 rw 0 0\n"})
    with pytest.raises(InstallError, match="is mounted"):
        install(bundles["0.2.0"], mounted)
    same = System(**{**system.__dict__, "devices": {"a": system.devices["a"],
                                                    "b": system.devices["a"]}})
    with pytest.raises(InstallError, match="booted slot's"):
        install(bundles["0.2.0"], same)
    unknown = System(**{**system.__dict__, "cmdline": "root=/dev/vda2 ro"})
    with pytest.raises(InstallError, match="booted slot is unknown"):
        install(bundles["0.2.0"], unknown)


def test_tampered_root_image_leaves_no_bootable_entry(tmp_path: Path,
                                                      bundles: dict[str, Path]) -> None:
    raw = bytearray(bundles["0.2.0"].read_bytes())
    raw[512 * 2 + 5000] ^= 0xFF                   # inside root.img.gz's data
    bad = tmp_path / "bad.bundle"
    bad.write_bytes(bytes(raw))
    system = make_system(tmp_path, tmp_path / "data")
    with pytest.raises(InstallError, match=r"gzip|manifest"):
        install(bad, system)
    assert entry_names(system, "b") == []
    assert state.load(system.update_dir).last is not None


def test_installed_slot_is_a_clean_filesystem_smaller_than_the_slot(
        tmp_path: Path, bundles: dict[str, Path]) -> None:
    """The bundle carries root-a's filesystem shrunk (bundle.py, rootfs.py): the slot keeps
    an older release's bytes after it, and e2fsck, dumpe2fs and debugfs (what the kernel
    reads: the superblock's block count) see the new release's filesystem."""
    system = make_system(tmp_path, tmp_path / "data")
    system.devices["b"].write_bytes(os.urandom(SLOT_SIZE))
    install(bundles["0.2.0"], system)
    manifest = bundle.read_manifest(bundles["0.2.0"])
    assert manifest.root.size < SLOT_SIZE
    slot = str(system.devices["b"])
    env = update_image.ENV
    checked = subprocess.run(["e2fsck", "-f", "-n", slot], capture_output=True, text=True,
                             env=env, timeout=60, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    header = subprocess.run(["dumpe2fs", "-h", slot], capture_output=True, text=True,
                            env=env, timeout=60, check=True).stdout
    assert rootfs.parse_fs_size(header) == manifest.root.size
    release = subprocess.run(["debugfs", "-R", "cat /etc/mailstead-release", slot],
                             capture_output=True, text=True, env=env, timeout=60,
                             check=True).stdout
    assert release == "0.2.0\n"


def _rewrite_root(source: Path, out: Path) -> Path:
    """`source` with a byte in the middle of its root image flipped and re-gzipped, and the
    manifest's entry for the member updated to match: only manifest.root still tells."""
    with tarfile.open(source) as tar:
        members = {info.name: tar.extractfile(info).read()          # type: ignore[union-attr]
                   for info in tar}
    root = bytearray(gzip.decompress(members[bundle.ROOT]))
    root[len(root) // 2] ^= 0xFF
    members[bundle.ROOT] = gzip.compress(bytes(root))
    manifest = json.loads(members[bundle.MANIFEST])
    manifest["files"][bundle.ROOT] = {"size": len(members[bundle.ROOT]),
                                      "sha256": hashlib.sha256(members[bundle.ROOT]).hexdigest()}
    members[bundle.MANIFEST] = json.dumps(manifest).encode()
    with tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name in (bundle.MANIFEST, *bundle.PAYLOAD):
            info = tarfile.TarInfo(name)
            info.size = len(members[name])
            tar.addfile(info, io.BytesIO(members[name]))
    return out


def test_root_that_inflates_to_other_bytes_is_refused_by_the_verify_on_disk(
        tmp_path: Path, bundles: dict[str, Path]) -> None:
    """The compressed member is not hashed at install (one SHA-256 pass over the root): the
    hash of what the device holds against manifest.root is the check, before any entry."""
    bad = _rewrite_root(bundles["0.2.0"], tmp_path / "bad.bundle")
    system = make_system(tmp_path, tmp_path / "data")
    with pytest.raises(InstallError, match="verify on disk failed"):
        install(bad, system)
    assert entry_names(system, "b") == []
    assert not (system.esp / "root-b").exists()


def test_small_device_is_refused(tmp_path: Path, bundles: dict[str, Path]) -> None:
    system = make_system(tmp_path, tmp_path / "data")
    with system.devices["b"].open("r+b") as dev:
        dev.truncate(1024 * 1024)
    with pytest.raises(InstallError, match="smaller than the root image"):
        install(bundles["0.2.0"], system)


# -- commit ----------------------------------------------------------------------------------

@pytest.fixture
def console() -> Iterator[int]:
    """A real HTTP server on loopback standing in for the console's port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def mail_engine(tmp_path: Path) -> Iterator[EngineProcess]:
    proc = EngineProcess(tmp_path / "data")
    proc.start()
    proc.add_domain("example.test")
    proc.add_account(ADMIN)
    try:
        yield proc
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.stop()


def targets(smtp: int, imap: int, console_port: int, data_dir: Path) -> health.Targets:
    return health.Targets(smtp, imap, "127.0.0.1", console_port, data_dir,
                          bundle.current_data_schema())


def installed(tmp_path: Path, data_dir: Path, bundle_path: Path) -> System:
    """0.2.0 installed from slot a; the system as it looks after booting slot b."""
    system = make_system(tmp_path, data_dir)
    install(bundle_path, system)
    return System(**{**system.__dict__, "cmdline": CMDLINE.format("b")})


def no_alert(subject: str, text: str) -> None:
    raise AssertionError(f"unexpected alert: {subject}")


def test_healthy_trial_boot_is_blessed(tmp_path: Path, bundles: dict[str, Path],
                                       mail_engine: EngineProcess, console: int) -> None:
    system = installed(tmp_path, mail_engine.data_dir, bundles["0.2.0"])
    env_recorder(tmp_path / "hooks-admin", "health-check", tmp_path)
    reboots: list[str] = []
    result = commit.commit(system, targets(mail_engine.smtp_port, mail_engine.imap_port,
                                           console, system.data_dir), 30.0,
                           alert=no_alert, reboot=lambda: reboots.append("reboot"))
    assert (result.decision, result.outcome) == (slots.Decision.TRIAL, "committed")
    assert entry_names(system, "b") == ["root-b.conf"]
    assert reboots == []
    saved = state.load(system.update_dir)
    assert saved.pending is None
    assert saved.last is not None
    assert saved.last.outcome == "committed"
    assert "MAILSTEAD_UPDATE_VERSION=0.2.0" in (tmp_path / "health-check.env").read_text()
    again = commit.commit(system, targets(1, 1, 1, system.data_dir), 0.0, alert=no_alert,
                          reboot=lambda: reboots.append("reboot"))
    assert again.outcome == "nothing"


def test_unhealthy_trial_boot_is_marked_bad_and_rebooted(tmp_path: Path,
                                                         bundles: dict[str, Path]) -> None:
    data_dir = tmp_path / "data"
    system = installed(tmp_path, data_dir, bundles["0.2.0"])
    (data_dir / "queue").mkdir()
    reboots: list[str] = []
    closed = free_port()
    result = commit.commit(system, targets(closed, closed, closed, data_dir), 1.0,
                           alert=no_alert, reboot=lambda: reboots.append("reboot"))
    assert (result.decision, result.outcome) == (slots.Decision.TRIAL, "failed")
    assert "220" in result.reason
    assert "console" in result.reason
    assert reboots == ["reboot"]
    assert entry_names(system, "b") == ["root-b+0-0.conf"]
    saved = state.load(data_dir / "update")
    assert saved.pending is not None
    assert saved.failure == result.reason


def test_health_check_hook_failure_fails_the_trial(tmp_path: Path, bundles: dict[str, Path],
                                                   mail_engine: EngineProcess,
                                                   console: int) -> None:
    system = installed(tmp_path, mail_engine.data_dir, bundles["0.2.0"])
    write_hook(tmp_path / "hooks-image", "health-check", "30-mailflow", "exit 1\n")
    result = commit.commit(system, targets(mail_engine.smtp_port, mail_engine.imap_port,
                                           console, system.data_dir), 10.0,
                           alert=no_alert, reboot=lambda: None)
    assert result.outcome == "failed"
    assert result.reason == "health-check hook 30-mailflow: fail"


def test_rollback_runs_hooks_and_mails_the_admin(tmp_path: Path, bundles: dict[str, Path],
                                                 mail_engine: EngineProcess) -> None:
    system = installed(tmp_path, mail_engine.data_dir, bundles["0.2.0"])
    current = state.load(system.update_dir)
    current.failure = "220 on 127.0.0.1:25: Connection refused"
    state.save(system.update_dir, current)
    BootEnv(system.esp).mark_bad("b")
    back_on_a = System(**{**system.__dict__, "cmdline": CMDLINE.format("a")})
    write_hook(tmp_path / "hooks-admin", "rollback", "10-note",
               f"echo \"$MAILSTEAD_UPDATE_VERSION: $MAILSTEAD_UPDATE_REASON\" > {tmp_path}/rb\n")
    settings = load_effective(mail_engine.config_file).settings
    result = commit.commit(back_on_a, targets(1, 1, 1, system.data_dir), 0.0,
                           alert=commit.mail_admin(settings), reboot=lambda: None)
    assert (result.decision, result.outcome) == (slots.Decision.ROLLED_BACK, "rolled back")
    assert (tmp_path / "rb").read_text() == \
        "0.2.0: 220 on 127.0.0.1:25: Connection refused\n"
    assert entry_names(system, "b") == []
    saved = state.load(system.update_dir)
    assert saved.pending is None
    assert saved.failed_versions == ["0.2.0"]
    assert saved.last is not None
    assert saved.last.outcome == "rolled back"
    (alert,) = [email.message_from_bytes(m, policy=default)
                for m in mail_engine.messages(ADMIN)]
    assert alert["Subject"] == "[Mailstead CRITICAL] Update to 0.2.0 rolled back"
    assert alert["Auto-Submitted"] == "auto-generated"
    assert "Connection refused" in alert.get_content()
    with pytest.raises(InstallError, match="failed its health check before"):
        install(bundles["0.2.0"], back_on_a)
    assert install(bundles["0.2.0"], back_on_a, force=True).to_slot == "b"


def test_rollback_without_a_verdict_says_so(tmp_path: Path, bundles: dict[str, Path]) -> None:
    data_dir = tmp_path / "data"
    system = installed(tmp_path, data_dir, bundles["0.2.0"])
    alerts: list[tuple[str, str]] = []
    back_on_a = System(**{**system.__dict__, "cmdline": CMDLINE.format("a")})
    result = commit.commit(back_on_a, targets(1, 1, 1, data_dir), 0.0,
                           alert=lambda s, t: alerts.append((s, t)), reboot=lambda: None)
    assert result.reason == commit.NO_VERDICT
    assert len(alerts) == 1
    assert commit.NO_VERDICT in alerts[0][1]


def write(path: Path) -> None:
    path.write_text("x")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to change user")
def test_alert_is_delivered_as_the_data_directory_owner() -> None:
    base = Path(tempfile.mkdtemp())            # in /tmp (sticky): any user may traverse
    try:
        base.chmod(0o755)
        owned = base / "data"
        owned.mkdir()
        os.chown(owned, 65534, 65534)
        commit.as_owner(owned, lambda: write(owned / "mail"))
        assert (owned / "mail").stat().st_uid == 65534
        with pytest.raises(RuntimeError, match="as uid 65534 failed"):
            commit.as_owner(owned, lambda: write(base / "not-theirs"))
        assert not (base / "not-theirs").exists()
    finally:
        shutil.rmtree(base)


def run_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MAILSTEAD_")}
    return subprocess.run([sys.executable, "-m", "appliance", *argv], capture_output=True,
                          text=True, timeout=120, env=clean, check=False)


def test_cli_install_status_and_commit(tmp_path: Path, bundles: dict[str, Path]) -> None:
    system = make_system(tmp_path, tmp_path / "data")
    config = tmp_path / "mailstead.toml"
    config.write_text(f'[paths]\ndata_dir = "{system.data_dir}"\n[hooks]\n'
                      f'image_dir = "{tmp_path}/hooks-image"\n'
                      f'admin_dir = "{tmp_path}/hooks-admin"\n'
                      '[update]\nmaintenance_window = "now"\nhealth_wait = 10\n')
    cmdline = tmp_path / "cmdline"
    cmdline.write_text(CMDLINE.format("a"))
    where = ["--esp", str(system.esp), "--device", f"a={system.devices['a']}",
             "--device", f"b={system.devices['b']}", "--cmdline", str(cmdline)]
    done = run_cli("--config", str(config), "update", "install", str(bundles["0.2.0"]),
                   "--no-reboot", *where)
    assert done.returncode == 0, done.stderr
    assert "installed 0.2.0 into slot b; reboot now" in done.stdout
    done = run_cli("--config", str(config), "update", "status", "--json",
                   "--cmdline", str(cmdline))
    status = json.loads(done.stdout)
    assert status["booted_slot"] == "a"
    assert status["pending"]["version"] == "0.2.0"
    assert status["last"]["outcome"] == "installed"
    cmdline.write_text(CMDLINE.format("b"))           # "rebooted" into b: nothing answers
    done = run_cli("--config", str(config), "update", "commit", "--no-reboot", *where)
    assert done.returncode == 1
    assert done.stdout.startswith("trial: failed (")
    assert entry_names(system, "b") == ["root-b+0-0.conf"]
    done = run_cli("--config", str(config), "update", "install", str(bundles["0.3.0"]),
                   "--no-reboot", *where)
    assert done.returncode == 2
    assert "waits for its reboot" in done.stderr


def test_release_build_command_makes_a_bundle_from_an_image(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = update_image.make_image(tmp_path / "out", "1.4.0rc2")
    parser = argparse.ArgumentParser()
    release_cmds.register(parser.add_subparsers())
    args = parser.parse_args(["release", "build", str(image), "--min-version", "1.3",
                              "--out", str(tmp_path / "dist")])
    assert args.handler(args) == 0
    made = tmp_path / "dist" / "mailstead-1.4.0rc2-amd64.bundle"
    manifest = bundle.read_manifest(made)
    assert (manifest.version, manifest.min_version) == ("1.4.0rc2", "1.3")
    said = capsys.readouterr().out.splitlines()
    assert said[-1] == str(made)                       # scripts take the last line
    mib = round(manifest.root.size / (1024 * 1024))
    assert said[0] == f"root filesystem {mib} MiB (of the 6 MiB partition)"
    odd = parser.parse_args(["release", "build", str(tmp_path / "disk.img")])
    with pytest.raises(CliError, match="give --version"):
        odd.handler(odd)


@pytest.fixture
def https_mirror(tmp_path: Path) -> Iterator[tuple[ReleaseRepository, str, Path]]:
    """A release repository served over HTTPS on loopback (harness/release_mirror.py)."""
    with release_mirror(tmp_path, "Update install test CA") as served:
        yield served


def test_update_run_checks_downloads_and_installs(
        tmp_path: Path, https_mirror: tuple[ReleaseRepository, str, Path]) -> None:
    repo, url, ca_file = https_mirror
    newer = update_image.make_bundle(tmp_path / "release", "99.0.0", "0")
    repo.add_release("stable", newer, version="99.0.0", min_version="0",
                     data_schema=bundle.current_data_schema())
    system = make_system(tmp_path, tmp_path / "data")
    config = tmp_path / "mailstead.toml"
    config.write_text(f'[paths]\ndata_dir = "{system.data_dir}"\n'
                      f'[hooks]\nimage_dir = ""\nadmin_dir = "{tmp_path}/hooks-admin"\n'
                      f'[update]\nurl = "{url}"\nca_file = "{ca_file}"\n'
                      f'trusted_root = "{repo.metadata_dir / "1.root.json"}"\n')
    cmdline = tmp_path / "cmdline"
    cmdline.write_text(CMDLINE.format("a"))
    where = ["--esp", str(system.esp), "--device", f"a={system.devices['a']}",
             "--device", f"b={system.devices['b']}", "--cmdline", str(cmdline)]
    done = run_cli("--config", str(config), "update", "run", "--no-reboot", *where)
    assert done.returncode == 0, done.stderr
    assert "installed 99.0.0 into slot b" in done.stdout
    assert entry_names(system, "b") == ["root-b+3.conf"]
    manifest = bundle.read_manifest(newer)
    on_disk = system.devices["b"].read_bytes()[:manifest.root.size]
    assert hashlib.sha256(on_disk).hexdigest() == manifest.root.sha256
    assert list((system.data_dir / "update" / "downloads").iterdir()) == []
    done = run_cli("--config", str(config), "update", "run", "--no-reboot", *where)
    assert "99.0.0 is installed and waits for its reboot" in done.stdout
