"""The one firmware-hook runner: finds the executables of a stage in the image's and the
admin's hook directories, checks that they are safe to run, runs them one after another
through `core.run` and says what each did. The contract is firmware-hooks/README.md.

Used by the updater (first-boot, pre-install, post-install, health-check, rollback) and by
the hardware monitor (disk-added, disk-failed). Deciding what a stage's result means is the
caller's business; this module only runs and reports.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from appliance.core import log
from appliance.core.run import NOT_STARTED, TIMED_OUT, ToolResult, run_tool
from appliance.settings import Settings

STAGES = ("first-boot", "pre-install", "post-install", "health-check", "rollback",
          "disk-added", "disk-failed")
# pre-install stops at the first failure: the update is aborted, and a later hook must not
# act on (say, announce or prepare) an update that will not happen. Every other stage runs
# all its hooks, so the log shows every failing check, and its result is the AND.
STOP_AT_FIRST_FAILURE = frozenset({"pre-install"})
# Names the runner sets itself; a caller may not pass them (MAILSTEAD_HOOK_STAGE only with
# the stage's own name).
FIXED_ENV = frozenset({"PATH", "LANG", "LC_ALL", "MAILSTEAD_HOOK_DEADLINE"})
KEPT_OUTPUT = 16 * 1024         # bytes kept of the start and of the end of a hook's output
LOGGED_OUTPUT = 4000            # characters of that in the log line and in HookRun.output
# run-parts(8)-like names; editor and package-manager leftovers are not hooks
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
LEFTOVER_SUFFIXES = ("~", ".bak", ".orig", ".rej", ".swp", ".tmp", ".dpkg-old", ".dpkg-new",
                     ".dpkg-dist", ".dpkg-tmp", ".ucf-old", ".ucf-new", ".ucf-dist")
MASKED = Path("/dev/null")      # a later symlink to it masks an earlier hook (systemd-like)

Status = Literal["ok", "fail", "skip", "timeout", "error"]
FAILED: frozenset[str] = frozenset({"fail", "timeout", "error"})


@dataclass(frozen=True)
class HookRun:
    """One hook of a stage: what happened to it."""

    path: Path
    status: Status
    returncode: int | None = None    # the exit status; None when it did not run
    output: str = ""                 # stdout and stderr, merged; an excerpt when long
    seconds: float = 0.0
    reason: str = ""                 # why it was skipped or refused

    @property
    def failed(self) -> bool:
        return self.status in FAILED


@dataclass(frozen=True)
class StageResult:
    """Every hook of one stage, in the order they were considered."""

    stage: str
    runs: list[HookRun] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No hook failed, timed out or was refused (skipped hooks count as passed)."""
        return not any(run.failed for run in self.runs)

    @property
    def failures(self) -> list[HookRun]:
        return [run for run in self.runs if run.failed]


def hook_dirs(settings: Settings) -> list[Path]:
    """The image's hook directory, then the admin's (`hooks.image_dir`, `hooks.admin_dir`;
    an empty admin_dir means `<data_dir>/hooks`, an empty image_dir leaves it out)."""
    dirs = []
    if settings.get_str("hooks.image_dir"):
        dirs.append(settings.data_path("hooks.image_dir"))
    admin = settings.get_str("hooks.admin_dir")
    dirs.append(settings.data_path("hooks.admin_dir") if admin else settings.data_dir / "hooks")
    return dirs


def run_stage(stage: str, env: Mapping[str, str], *, dirs: Sequence[Path],
              timeout: float) -> StageResult:
    """Run the hooks of `stage` found in `dirs`, one after another in name order.

    Args:
        stage: one of STAGES.
        env: the stage's variables (firmware-hooks/README.md); the hook gets only these
            plus PATH, LANG=C, LC_ALL=C, MAILSTEAD_HOOK_STAGE and MAILSTEAD_HOOK_DEADLINE.
        dirs: hook directories, earliest first; `<dir>/<stage>.d/NAME` in a later one
            replaces NAME of an earlier one.
        timeout: seconds each hook may run before its process group is killed.
    Returns:
        The StageResult; `.ok` is False when a hook failed, timed out or was refused.
    Raises:
        ValueError: an unknown stage, or `env` sets a name the runner owns.
    """
    _check_call(stage, env)
    started = time.monotonic()
    result = StageResult(stage)
    folders = _stage_dirs(stage, dirs, result)
    for _name, path in sorted(_merged(folders, result).items()):
        if stage in STOP_AT_FIRST_FAILURE and not result.ok:
            run = HookRun(path, "skip", reason=f"not run: an earlier {stage} hook failed")
        else:
            run = _run_one(stage, path, env, timeout)
        _record(result, run)
    log.event("stage.done", logging.INFO if result.ok else logging.WARNING, stage=stage,
              ok=result.ok, hooks=len(result.runs),
              failed=[str(run.path) for run in result.failures],
              seconds=round(time.monotonic() - started, 3))
    return result


def _check_call(stage: str, env: Mapping[str, str]) -> None:
    if stage not in STAGES:
        raise ValueError(f"unknown hook stage {stage!r}: expected one of {', '.join(STAGES)}")
    fixed = FIXED_ENV.intersection(env)
    if fixed or env.get("MAILSTEAD_HOOK_STAGE", stage) != stage:
        raise ValueError(f"the hook runner sets {sorted(fixed) or 'MAILSTEAD_HOOK_STAGE'} "
                         "itself")


def _stage_dirs(stage: str, dirs: Sequence[Path], result: StageResult) -> list[Path]:
    """The existing `<dir>/<stage>.d` folders that are safe. One that someone other than
    root or this process's user could change (or replace) is refused as a whole, recorded
    in `result`: its hooks would run code that anyone wrote."""
    folders = []
    for base in dirs:
        folder = base / f"{stage}.d"
        try:
            if not os.path.lexists(folder):
                continue
            reason = (_unsafe_parent(base.parent) or _unsafe_dir(base)
                      or _unsafe_dir(folder))
        except OSError as exc:
            reason = f"cannot inspect: {exc.strerror}"
        if reason:
            _record(result, HookRun(folder, "error", reason=reason))
        else:
            folders.append(folder)
    return folders


def _merged(folders: Sequence[Path], result: StageResult) -> dict[str, Path]:
    """NAME -> the path that wins (the last folder that has NAME); names that are not
    hooks are recorded as skipped in `result`."""
    found: dict[str, Path] = {}
    for folder in folders:
        try:
            names = sorted(entry.name for entry in os.scandir(folder))
        except OSError as exc:
            _record(result, HookRun(folder, "error", reason=f"cannot list: {exc.strerror}"))
            continue
        for name in names:
            if name.startswith("."):
                continue                        # hidden: an editor's swap file, a temp file
            if not NAME.fullmatch(name) or name.endswith(LEFTOVER_SUFFIXES):
                _record(result, HookRun(folder / name, "skip", reason="not a hook name"))
                continue
            found[name] = folder / name
    return found


def _trusted_owner(uid: int) -> bool:
    return uid in (0, os.geteuid())


def _unsafe_dir(path: Path) -> str:
    info = path.stat()
    if not stat.S_ISDIR(info.st_mode):
        return f"{path} is not a directory"
    if not _trusted_owner(info.st_uid):
        return f"{path} is owned by uid {info.st_uid}, not root or this user"
    if info.st_mode & 0o022:
        return f"{path} is writable by group or others"
    return ""


def _unsafe_parent(path: Path) -> str:
    """The directory holding a hook directory: whoever may write it may replace ours (a
    sticky directory such as /tmp lets nobody replace what they do not own)."""
    info = path.stat()
    if not _trusted_owner(info.st_uid):
        return f"{path} is owned by uid {info.st_uid}, who could replace the hooks"
    if info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:
        return f"{path} is writable by group or others, who could replace the hooks"
    return ""


def refusal(path: Path) -> tuple[Status, str] | None:
    """Why `path` must not run: ("skip", reason) for a masked or non-executable hook,
    ("error", reason) for one that is unsafe or broken; None when it may run."""
    try:
        link = path.lstat()
        if stat.S_ISLNK(link.st_mode):
            if not _trusted_owner(link.st_uid):
                return "error", f"symlink owned by uid {link.st_uid}, not root or this user"
            if path.resolve() == MASKED:
                return "skip", "masked (a symlink to /dev/null)"
        info = path.stat()
    except FileNotFoundError:
        return "error", "dangling symlink"
    except OSError as exc:
        return "error", f"cannot inspect: {exc.strerror}"
    if not stat.S_ISREG(info.st_mode):
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        return "error", kind
    if not info.st_mode & 0o111 or not os.access(path, os.X_OK):
        return "skip", "not executable"
    if info.st_mode & 0o022:
        return "error", "writable by group or others"
    if not _trusted_owner(info.st_uid):
        return "error", f"owned by uid {info.st_uid}, not root or this user"
    return None


def _run_one(stage: str, path: Path, env: Mapping[str, str],
             timeout: float) -> HookRun:
    refused = refusal(path)
    if refused is not None:
        return HookRun(path, refused[0], reason=refused[1])
    hook_env = {**env, "MAILSTEAD_HOOK_STAGE": stage,
                "MAILSTEAD_HOOK_DEADLINE": str(int(time.time() + timeout))}
    done = run_tool([str(path)], timeout, hook_env, cwd=Path("/"), kill_group=True,
                    merge_stderr=True, max_output=KEPT_OUTPUT, tail_output=KEPT_OUTPUT)
    return HookRun(path, _status(done), done.returncode if done.started else None,
                   excerpt(done.stdout + done.stderr), round(done.seconds, 3),
                   _reason(done, timeout))


def _status(done: ToolResult) -> Status:
    """Exit codes: 0 ok, 2 skip, anything else (1, other codes, a signal) fail."""
    if done.returncode == TIMED_OUT:
        return "timeout"
    if done.returncode == NOT_STARTED:
        return "error"
    if done.returncode == 0:
        return "ok"
    return "skip" if done.returncode == 2 else "fail"


def _reason(done: ToolResult, timeout: float) -> str:
    if done.returncode == TIMED_OUT:
        return f"ran past the {timeout:g} s limit: its process group was killed"
    if done.returncode == NOT_STARTED:
        return "could not start: " + done.stderr.decode("utf-8", "replace")
    if done.returncode < 0:
        return f"killed by signal {-done.returncode}"
    return ""


def excerpt(output: bytes) -> str:
    """The output as text for the log: its start and end when it is long."""
    text = output.decode("utf-8", "replace")
    if len(text) <= LOGGED_OUTPUT:
        return text
    half = LOGGED_OUTPUT // 2
    return f"{text[:half]}\n[...]\n{text[-half:]}"


def _record(result: StageResult, run: HookRun) -> None:
    """Log `run` and add it to `result`. Events: `hook.ran` (ok, fail), `hook.skipped`,
    `hook.timeout`, `hook.refused` (error: unsafe, broken or not startable); never the
    environment, which may carry secrets."""
    name = {"skip": "hook.skipped", "timeout": "hook.timeout",
            "error": "hook.refused"}.get(run.status, "hook.ran")
    level = logging.WARNING if run.failed else logging.INFO
    log.event(name, level, stage=result.stage, path=str(run.path), status=run.status,
              returncode=run.returncode, seconds=run.seconds, output=run.output,
              reason=run.reason)
    result.runs.append(run)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m appliance.update.hooks [--config FILE] STAGE`: run one stage's hooks with
    MAILSTEAD_DATA_DIR and MAILSTEAD_VERSION (the running release) set; how first boot runs
    the first-boot stage, and how an admin tries a hook. Exit status 0 when the stage
    passed, 1 when not."""
    import argparse

    import appliance
    from appliance.settings import load_settings

    parser = argparse.ArgumentParser(prog="python -m appliance.update.hooks",
                                     description=main.__doc__)
    parser.add_argument("--config", type=Path, help="mailstead.toml")
    parser.add_argument("stage", choices=STAGES)
    args = parser.parse_args(argv)
    settings = load_settings(args.config)
    log.configure(settings.get_str("log.level"))
    env = {"MAILSTEAD_DATA_DIR": str(settings.data_dir),
           "MAILSTEAD_VERSION": appliance.__version__}
    result = run_stage(args.stage, env, dirs=hook_dirs(settings),
                       timeout=settings.get_int("hooks.timeout"))
    for run in result.runs:
        print(f"{run.status:8} {run.path}  {run.reason or f'{run.seconds:.1f} s'}")
    print(f"{args.stage}: {'ok' if result.ok else 'FAILED'} ({len(result.runs)} hooks)")
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
