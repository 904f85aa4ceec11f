"""Installing the Debian packages a test needs, when they are missing (tests install what
they need or fail; they never skip)."""

from __future__ import annotations

import os
import shutil
import subprocess


def ensure_package(command: str, package: str) -> str:
    """The path of `command` (a name on PATH or an absolute path), installing Debian's
    `package` with apt-get first when it is missing (needs root); raises RuntimeError when
    that is impossible or did not bring the command."""
    found = _find(command)
    if found is not None:
        return found
    if os.geteuid() != 0:
        raise RuntimeError(f"{command} is missing; install Debian's {package!r} as root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", package]
    if subprocess.run(install, env=env, capture_output=True, timeout=600).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True,
                       timeout=600, check=True)
        subprocess.run(install, env=env, capture_output=True, timeout=600, check=True)
    found = _find(command)
    if found is None:
        raise RuntimeError(f"installed {package!r} but {command} is still missing")
    return found


def _find(command: str) -> str | None:
    if os.path.isabs(command):
        return command if os.path.exists(command) else None
    return shutil.which(command)
