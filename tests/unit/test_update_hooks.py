"""The firmware-hook runner (appliance/update/hooks.py) on real scripts in tmp dirs: the
environment in, exit codes out, name order merged over the image's and the admin's
directories, the safety refusals, the time limit with a hanging hook and its children
killed, bounded output, the log lines; and the default hooks shipped in firmware-hooks/."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.core.run import which
from appliance.settings import SettingsError, load_settings
from appliance.settings_store import apply_rows, read_rows
from appliance.update import hooks
from appliance.update.hooks import HookRun, StageResult, run_stage
from harness.debian import ensure_package

ROOT = Path(__file__).parent.parent.parent
SHIPPED = ROOT / "firmware-hooks"
NOBODY = 65534


def hook(base: Path, stage: str, name: str, body: str, mode: int = 0o755) -> Path:
    folder = base / f"{stage}.d"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(mode)
    return path


def recorder(base: Path, stage: str, name: str, log: Path, code: int = 0) -> Path:
    """A hook that appends `<name> <its directory>` to `log` and exits `code`."""
    return hook(base, stage, name, f'echo "{name} $(basename "$(dirname "$(dirname "$0")")")"'
                                   f" >> {log}\nexit {code}\n")


def statuses(result: StageResult) -> list[tuple[str, str]]:
    return [(run.path.name, run.status) for run in result.runs]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


# -- environment -------------------------------------------------------------------------

def test_hook_gets_exactly_the_callers_env_and_the_fixed_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SECRET_OF_THE_RUNNER", "hunter2")
    monkeypatch.setenv("MAILSTEAD_UPDATE_VERSION", "from-the-test-environment")
    seen = tmp_path / "env.json"
    folder = tmp_path / "image" / "post-install.d"
    folder.mkdir(parents=True)
    script = folder / "50-env"
    script.write_text(f"#!{sys.executable} -I\nimport json, os\n"
                      f"json.dump([dict(os.environ), os.getcwd()], open({str(seen)!r}, 'w'))\n")
    script.chmod(0o755)
    given = {"MAILSTEAD_UPDATE_VERSION": "1.2.0", "MAILSTEAD_DATA_DIR": "/var/lib/x"}
    before = time.time()
    result = run_stage("post-install", given, dirs=[tmp_path / "image"], timeout=30)
    assert result.ok, result.runs
    env, cwd = json.loads(seen.read_text())
    deadline = int(env.pop("MAILSTEAD_HOOK_DEADLINE"))
    env.pop("LC_CTYPE", None)           # python's own PEP 538 coercion may add it
    assert env == {**given, "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                   "LANG": "C", "LC_ALL": "C", "MAILSTEAD_HOOK_STAGE": "post-install"}
    assert before + 29 <= deadline <= time.time() + 31
    assert cwd == "/"


@pytest.mark.parametrize("env", [{"PATH": "/tmp"}, {"LC_ALL": "de_DE"},
                                 {"MAILSTEAD_HOOK_DEADLINE": "0"},
                                 {"MAILSTEAD_HOOK_STAGE": "rollback"}])
def test_caller_may_not_set_the_runners_names(tmp_path: Path, env: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="sets"):
        run_stage("post-install", env, dirs=[tmp_path], timeout=1)


def test_unknown_stage_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown hook stage 'pre_install'"):
        run_stage("pre_install", {}, dirs=[tmp_path], timeout=1)


# -- exit codes, order, override --------------------------------------------------------

@pytest.mark.parametrize(("body", "status", "code", "ok"), [
    ("exit 0", "ok", 0, True), ("exit 1", "fail", 1, False), ("exit 2", "skip", 2, True),
    ("exit 3", "fail", 3, False), ("exit 255", "fail", 255, False),
    ("kill -9 $$", "fail", -9, False)])
def test_exit_codes(tmp_path: Path, body: str, status: str, code: int, ok: bool) -> None:
    hook(tmp_path, "rollback", "10-x", f"echo out; echo err >&2; {body}\n")
    result = run_stage("rollback", {}, dirs=[tmp_path], timeout=30)
    (run,) = result.runs
    assert (run.status, run.returncode, result.ok) == (status, code, ok)
    assert run.output == "out\nerr\n"
    assert run.failed is not ok


def test_name_order_merged_over_two_dirs_with_override(tmp_path: Path) -> None:
    image, admin, log = tmp_path / "image", tmp_path / "admin", tmp_path / "order.log"
    for name in ("30-c", "10-a", "20-b", "9-z", "A-upper"):
        recorder(image, "health-check", name, log)
    recorder(admin, "health-check", "20-b", log)       # replaces the image's 20-b
    recorder(admin, "health-check", "15-x", log)
    result = run_stage("health-check", {}, dirs=[image, admin], timeout=30)
    assert result.ok
    assert log.read_text().splitlines() == [
        "10-a image", "15-x admin", "20-b admin", "30-c image", "9-z image", "A-upper image"]
    assert [run.path for run in result.runs][2] == admin / "health-check.d" / "20-b"


def test_a_symlink_to_dev_null_masks_an_image_hook(tmp_path: Path) -> None:
    image, admin, log = tmp_path / "image", tmp_path / "admin", tmp_path / "order.log"
    recorder(image, "post-install", "50-fwupd", log)
    recorder(image, "post-install", "60-other", log)
    (admin / "post-install.d").mkdir(parents=True)
    (admin / "post-install.d" / "50-fwupd").symlink_to("/dev/null")
    result = run_stage("post-install", {}, dirs=[image, admin], timeout=30)
    assert statuses(result) == [("50-fwupd", "skip"), ("60-other", "ok")]
    assert "masked" in result.runs[0].reason
    assert log.read_text() == "60-other image\n"


def test_all_hooks_run_and_the_result_is_the_and(tmp_path: Path) -> None:
    log = tmp_path / "order.log"
    recorder(tmp_path, "health-check", "10-a", log, code=1)
    recorder(tmp_path, "health-check", "20-b", log, code=2)
    recorder(tmp_path, "health-check", "30-c", log, code=0)
    result = run_stage("health-check", {}, dirs=[tmp_path], timeout=30)
    assert statuses(result) == [("10-a", "fail"), ("20-b", "skip"), ("30-c", "ok")]
    assert not result.ok
    assert [run.path.name for run in result.failures] == ["10-a"]
    assert len(log.read_text().splitlines()) == 3


def test_a_failing_pre_install_hook_stops_the_rest(tmp_path: Path) -> None:
    log = tmp_path / "order.log"
    recorder(tmp_path, "pre-install", "10-backup", log, code=0)
    recorder(tmp_path, "pre-install", "20-fails", log, code=1)
    recorder(tmp_path, "pre-install", "30-announce", log, code=0)
    result = run_stage("pre-install", {}, dirs=[tmp_path], timeout=30)
    assert statuses(result) == [("10-backup", "ok"), ("20-fails", "fail"),
                                ("30-announce", "skip")]
    assert result.runs[2].reason == "not run: an earlier pre-install hook failed"
    assert not result.ok
    assert log.read_text().splitlines() == [f"10-backup {tmp_path.name}",
                                            f"20-fails {tmp_path.name}"]


def test_missing_stage_dir_and_missing_base_dir(tmp_path: Path) -> None:
    hook(tmp_path / "image", "rollback", "10-x", "exit 0\n")
    result = run_stage("first-boot", {}, dirs=[tmp_path / "image", tmp_path / "nowhere"],
                       timeout=1)
    assert result.ok
    assert result.runs == []
    assert run_stage("rollback", {}, dirs=[], timeout=1).runs == []


def test_names_that_are_not_hooks(tmp_path: Path) -> None:
    for name in ("10-ok", "10-ok~", "10-ok.dpkg-old", "10-ok.bak", ".hidden", "-dash",
                 "sp ace"):
        hook(tmp_path, "rollback", name, "exit 0\n")
    result = run_stage("rollback", {}, dirs=[tmp_path], timeout=30)
    assert sorted(statuses(result)) == [("-dash", "skip"), ("10-ok", "ok"),
                                        ("10-ok.bak", "skip"), ("10-ok.dpkg-old", "skip"),
                                        ("10-ok~", "skip"), ("sp ace", "skip")]
    assert result.ok


# -- refusals ----------------------------------------------------------------------------

def test_not_executable_is_skipped(tmp_path: Path) -> None:
    hook(tmp_path, "rollback", "10-off", "exit 1\n", mode=0o644)
    result = run_stage("rollback", {}, dirs=[tmp_path], timeout=30)
    assert statuses(result) == [("10-off", "skip")]
    assert result.runs[0].reason == "not executable"
    assert result.ok


@pytest.mark.parametrize(("mode", "owner", "reason"), [
    (0o757, None, "writable by group or others"),
    (0o775, None, "writable by group or others"),
    (0o755, NOBODY, f"owned by uid {NOBODY}, not root or this user")])
def test_unsafe_hooks_are_refused(tmp_path: Path, mode: int, owner: int | None,
                                  reason: str) -> None:
    log = tmp_path / "ran"
    path = hook(tmp_path, "health-check", "10-x", f"touch {log}\n", mode=mode)
    if owner is not None:
        if os.geteuid() != 0:
            pytest.skip("chown to another user needs root")
        os.chown(path, owner, owner)
    result = run_stage("health-check", {}, dirs=[tmp_path], timeout=30)
    assert statuses(result) == [("10-x", "error")]
    assert result.runs[0].reason == reason
    assert not result.ok
    assert not log.exists()


def test_a_directory_and_a_dangling_symlink_are_errors(tmp_path: Path) -> None:
    folder = tmp_path / "rollback.d"
    (folder / "10-dir").mkdir(parents=True)
    (folder / "20-dangling").symlink_to(tmp_path / "gone")
    target = hook(tmp_path / "elsewhere", "x", "real", "echo via-link\n")
    (folder / "30-link").symlink_to(target)
    result = run_stage("rollback", {}, dirs=[tmp_path], timeout=30)
    assert statuses(result) == [("10-dir", "error"), ("20-dangling", "error"),
                                ("30-link", "ok")]
    assert [run.reason for run in result.runs[:2]] == ["a directory", "dangling symlink"]
    assert result.runs[2].output == "via-link\n"


def test_a_script_without_interpreter_line_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "rollback.d" / "10-noshebang"
    path.parent.mkdir()
    path.write_bytes(b"\x7fELF garbage")
    path.chmod(0o755)
    (run,) = run_stage("rollback", {}, dirs=[tmp_path], timeout=30).runs
    assert run.status == "error"
    assert run.reason.startswith("could not start: ")


@pytest.mark.parametrize("which", ["stage", "base", "parent"])
def test_a_writable_or_foreign_directory_is_refused_as_a_whole(tmp_path: Path,
                                                                which: str) -> None:
    parent = tmp_path / "data"
    base = parent / "hooks"
    log = tmp_path / "ran"
    hook(base, "pre-install", "10-x", f"touch {log}\n")
    target = {"stage": base / "pre-install.d", "base": base, "parent": parent}[which]
    target.chmod(0o777 if which != "parent" else 0o775)
    result = run_stage("pre-install", {}, dirs=[base], timeout=30)
    assert statuses(result) == [("pre-install.d", "error")]
    assert "writable by group or others" in result.runs[0].reason
    assert not log.exists()
    if os.geteuid() == 0:                   # a directory someone else owns
        target.chmod(0o755)
        os.chown(target, NOBODY, NOBODY)
        refused = run_stage("pre-install", {}, dirs=[base], timeout=30)
        assert f"owned by uid {NOBODY}" in refused.runs[0].reason
        assert not log.exists()


def test_a_sticky_parent_is_fine(tmp_path: Path) -> None:
    parent = tmp_path / "shared"
    parent.mkdir()
    parent.chmod(0o1777)                    # like /tmp: nobody replaces what is not theirs
    hook(parent / "hooks", "rollback", "10-x", "exit 0\n")
    assert statuses(run_stage("rollback", {}, dirs=[parent / "hooks"], timeout=30)) == [
        ("10-x", "ok")]


# -- time limit and output ---------------------------------------------------------------

def test_a_hanging_hook_and_the_child_it_forked_are_killed(tmp_path: Path) -> None:
    pidfile, log = tmp_path / "child.pid", tmp_path / "order.log"
    hook(tmp_path, "health-check", "10-hangs",
         f"sleep 300 & echo $! > {pidfile}\necho waiting\nwait\n")
    recorder(tmp_path, "health-check", "20-next", log)
    started = time.monotonic()
    result = run_stage("health-check", {}, dirs=[tmp_path], timeout=1)
    assert time.monotonic() - started < 10
    assert statuses(result) == [("10-hangs", "timeout"), ("20-next", "ok")]
    assert result.runs[0].output == "waiting\n"
    assert "process group was killed" in result.runs[0].reason
    assert not result.ok
    child = int(pidfile.read_text())
    for _ in range(100):
        if not alive(child):
            break
        time.sleep(0.05)
    assert not alive(child)


def test_huge_output_is_bounded(tmp_path: Path) -> None:
    hook(tmp_path, "post-install", "10-loud",
         "echo FIRST-LINE\nhead -c 300000000 /dev/zero | tr '\\0' x\necho\necho LAST-LINE\n")
    (run,) = run_stage("post-install", {}, dirs=[tmp_path], timeout=120).runs
    assert run.status == "ok"
    assert run.output.startswith("FIRST-LINE\n")
    assert run.output.endswith("LAST-LINE\n")
    assert len(run.output) <= hooks.LOGGED_OUTPUT + 10


# -- logging -----------------------------------------------------------------------------

def test_log_events_carry_the_facts_and_no_environment(tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    hook(tmp_path, "rollback", "10-ok", "echo fine\n")
    hook(tmp_path, "rollback", "20-skip", "exit 2\n")
    hook(tmp_path, "rollback", "30-slow", "sleep 30\n")
    hook(tmp_path, "rollback", "40-off", "exit 0\n", mode=0o757)
    caplog.set_level(logging.INFO, logger="mailstead")
    run_stage("rollback", {"MAILSTEAD_UPDATE_REASON": "s3cr3t-value"}, dirs=[tmp_path],
              timeout=0.5)
    events = [(r.getMessage(), getattr(r, "status", None)) for r in caplog.records]
    assert events == [("hook.ran", "ok"), ("hook.skipped", "skip"), ("hook.timeout", "timeout"),
                      ("hook.refused", "error"), ("stage.done", None)]
    ran = caplog.records[0]
    assert (ran.stage, ran.path, ran.returncode, ran.output) == (  # type: ignore[attr-defined]
        "rollback", str(tmp_path / "rollback.d" / "10-ok"), 0, "fine\n")
    assert ran.seconds >= 0                                          # type: ignore[attr-defined]
    done = caplog.records[-1]
    assert (done.ok, done.hooks, done.levelname) == (False, 4, "WARNING")  # type: ignore[attr-defined]
    assert "s3cr3t-value" not in caplog.text
    assert all("s3cr3t-value" not in str(vars(r)) for r in caplog.records)


# -- settings: the directories, the retired monitor keys ---------------------------------

def test_hook_dirs_from_settings(tmp_path: Path) -> None:
    base = {"MAILSTEAD_PATHS__DATA_DIR": str(tmp_path / "data")}
    default = load_settings(None, environ=base)
    assert hooks.hook_dirs(default) == [Path("/usr/lib/mailstead/firmware-hooks"),
                                        (tmp_path / "data" / "hooks").resolve()]
    assert default.get_int("hooks.timeout") == 300
    chosen = load_settings(None, environ={**base, "MAILSTEAD_HOOKS__IMAGE_DIR": "",
                                          "MAILSTEAD_HOOKS__ADMIN_DIR": "/srv/hooks"})
    assert hooks.hook_dirs(chosen) == [Path("/srv/hooks")]


def test_a_retired_monitor_hook_key_in_the_file_names_its_replacement(tmp_path: Path) -> None:
    conf = tmp_path / "mailstead.toml"
    conf.write_text('[monitor]\nhooks_dir = "/x"\n')
    with pytest.raises(SettingsError, match=r"monitor.hooks_dir was replaced by hooks.image_dir"):
        load_settings(conf, environ={})
    conf.write_text("[monitor]\nhook_timeout = 60\n")
    with pytest.raises(SettingsError, match=r"replaced by hooks.timeout"):
        load_settings(conf, environ={})


def test_a_retired_key_stored_in_the_database_does_not_stop_start_up() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT)")
    conn.execute("INSERT INTO settings VALUES ('monitor.hooks_dir', '/x'), "
                 "('monitor.hook_timeout', '5')")
    base = load_settings(None, environ={})
    effective = apply_rows(base, read_rows(conn))
    assert [i.name for i in effective.ignored] == ["monitor.hook_timeout", "monitor.hooks_dir"]
    assert effective.settings.get_int("hooks.timeout") == 300


# -- python -m appliance.update.hooks -----------------------------------------------------

def test_the_command_runs_a_stage(tmp_path: Path) -> None:
    data, image = tmp_path / "data", tmp_path / "image"
    seen = tmp_path / "seen"
    hook(image, "first-boot", "10-record",
         f'echo "$MAILSTEAD_DATA_DIR $MAILSTEAD_VERSION" > {seen}\n')
    conf = tmp_path / "mailstead.toml"
    conf.write_text(f'[paths]\ndata_dir = "{data}"\n[hooks]\nimage_dir = "{image}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSTEAD_")}
    done = subprocess.run([sys.executable, "-m", "appliance.update.hooks", "--config",
                           str(conf), "first-boot"], capture_output=True, text=True,
                          timeout=60, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert "first-boot: ok (1 hooks)" in done.stdout
    import appliance
    assert seen.read_text() == f"{data} {appliance.__version__}\n"
    hook(image, "first-boot", "20-fails", "exit 1\n")
    failed = subprocess.run([sys.executable, "-m", "appliance.update.hooks", "--config",
                             str(conf), "first-boot"], capture_output=True, text=True,
                            timeout=60, env=env, check=False)
    assert failed.returncode == 1
    assert "first-boot: FAILED" in failed.stdout


def test_hookrun_defaults() -> None:
    run = HookRun(Path("/x"), "skip")
    assert (run.returncode, run.output, run.failed) == (None, "", False)


# -- the hooks shipped in firmware-hooks/ ------------------------------------------------

def shipped() -> list[Path]:
    return sorted(SHIPPED.glob("*.d/*"))


def test_shipped_hooks_are_runnable_posix_sh() -> None:
    assert [str(p.relative_to(SHIPPED)) for p in shipped()] == [
        "health-check.d/50-data-writable", "post-install.d/50-fwupd",
        "pre-install.d/10-backup-trigger"]
    for path in shipped():
        assert path.parent.name.removesuffix(".d") in hooks.STAGES
        assert hooks.refusal(path) is None, path        # executable, not group/other-writable
        text = path.read_text()
        assert text.startswith("#!/bin/sh\n")
        assert "\nset -eu\n" in text
    shellcheck = ensure_package("shellcheck", "shellcheck")
    done = subprocess.run([shellcheck, "-s", "sh", *map(str, shipped())],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout


def fake_fwupdmgr(tmp_path: Path, refresh: int, update: int) -> dict[str, str]:
    """PATH with a fwupdmgr that records its arguments and exits as told."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "fwupdmgr"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {tmp_path / "calls"}\n'
                    f'case $1 in refresh) exit {refresh};; update) exit {update};; esac\n')
    fake.chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin"}


def test_fwupd_hook_is_skipped_without_fwupd(tmp_path: Path) -> None:
    if which("fwupdmgr") is not None:
        pytest.skip("fwupd is installed here")
    result = run_stage("post-install", {}, dirs=[SHIPPED], timeout=60)
    assert statuses(result) == [("50-fwupd", "skip")]
    assert "fwupd is not installed" in result.runs[0].output


@pytest.mark.parametrize(("refresh", "update", "code", "said"), [
    (0, 0, 0, "firmware updated"), (2, 2, 2, "no firmware updates"),
    (1, 2, 2, "cannot refresh the metadata (status 1)"),      # offline: not an error
    (0, 1, 1, "firmware update failed (status 1)")])
def test_fwupd_hook_with_fwupd(tmp_path: Path, refresh: int, update: int, code: int,
                               said: str) -> None:
    done = subprocess.run([str(SHIPPED / "post-install.d" / "50-fwupd")],
                          env=fake_fwupdmgr(tmp_path, refresh, update), capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == code
    assert said in done.stdout
    assert (tmp_path / "calls").read_text().splitlines() == [
        "refresh --assume-yes", "update --assume-yes --no-reboot-check --no-unreported-check"]


def backup(tmp_path: Path, config: str | None, mode: int = 0o644) -> StageResult:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    if config is not None:
        (data / "backup-command").write_text(config)
        (data / "backup-command").chmod(mode)
    env = {"MAILSTEAD_DATA_DIR": str(data), "MAILSTEAD_UPDATE_VERSION": "1.1.0",
           "MAILSTEAD_UPDATE_FROM_VERSION": "1.0.0"}
    return run_stage("pre-install", env, dirs=[SHIPPED], timeout=60)


def test_backup_trigger_skips_without_a_command(tmp_path: Path) -> None:
    assert statuses(backup(tmp_path, None)) == [("10-backup-trigger", "skip")]
    assert statuses(backup(tmp_path, "# nothing yet\n\n")) == [("10-backup-trigger", "skip")]


def test_backup_trigger_runs_the_command_with_its_arguments(tmp_path: Path) -> None:
    script = tmp_path / "do-backup"
    script.write_text(f'#!/bin/sh\necho "$# $1 $2 $MAILSTEAD_UPDATE_VERSION" > {tmp_path}/made\n')
    script.chmod(0o755)
    result = backup(tmp_path, f"# the NAS\n{script} --to nas*\n")
    assert statuses(result) == [("10-backup-trigger", "ok")], result.runs
    assert (tmp_path / "made").read_text() == "2 --to nas* 1.1.0\n"   # no globbing
    assert "backup before updating 1.0.0 to 1.1.0" in result.runs[0].output


@pytest.mark.parametrize(("config", "mode", "said"), [
    ("/bin/false\n", 0o644, "the backup command failed (status 1)"),
    ("false\n", 0o644, "must start with an absolute path"),
    ("/bin/true\n", 0o666, "writable by group or others"),
    ("/bin/true\n", 0o664, "writable by group or others")])
def test_backup_trigger_failures_stop_the_update(tmp_path: Path, config: str, mode: int,
                                                 said: str) -> None:
    result = backup(tmp_path, config, mode)
    assert statuses(result) == [("10-backup-trigger", "fail")]
    assert said in result.runs[0].output
    assert not result.ok


def test_backup_trigger_refuses_a_foreign_or_linked_config(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "real").write_text("/bin/true\n")
    (data / "backup-command").symlink_to(tmp_path / "real")
    result = backup(tmp_path, None)
    assert "is a symlink" in result.runs[0].output
    assert not result.ok
    if os.geteuid() == 0:
        (data / "backup-command").unlink()
        (data / "backup-command").write_text("/bin/true\n")
        os.chown(data / "backup-command", NOBODY, NOBODY)
        result = backup(tmp_path, None)
        assert f"owned by uid {NOBODY}" in result.runs[0].output
        assert not result.ok


def test_data_writable_health_check(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()

    def check() -> HookRun:
        result = run_stage("health-check", {"MAILSTEAD_DATA_DIR": str(data)}, dirs=[SHIPPED],
                           timeout=60)
        (run,) = result.runs
        return run

    missing_db = check()
    assert (missing_db.status, missing_db.output) == (
        "fail", f"{data}/mailstead.db is missing: this is not the appliance's data\n")
    (data / "mailstead.db").write_bytes(b"")
    good = check()
    assert (good.status, good.output) == ("ok", f"{data} is writable\n")
    assert sorted(p.name for p in data.iterdir()) == ["mailstead.db"]      # probe removed
    data.rename(tmp_path / "elsewhere")
    assert "is missing (is the data partition mounted?)" in check().output
