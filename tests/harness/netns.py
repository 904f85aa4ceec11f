"""Two network namespaces joined by a veth pair (`ip netns`, as root), for tests that load
the image's firewall and talk across it; and `tool()`, a Debian tool found on PATH or in
/usr/sbin, or the test fails (build.sh installs it)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence

import pytest


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        pytest.fail(f"{name} is missing: ./build.sh test installs it (Debian)")
    return found


@contextlib.contextmanager
def veth_pair(prefix: str, a_addresses: Sequence[str],
              b_addresses: Sequence[str]) -> Iterator[tuple[str, str]]:
    """Namespaces `<prefix>A<pid>` (link vA) and `<prefix>B<pid>` (link vB) with the given
    `address/prefixlen`s, both links and loopback up; deleted afterwards."""
    ip = tool("ip")
    a, b = f"{prefix}A{os.getpid()}", f"{prefix}B{os.getpid()}"
    commands = [[ip, "netns", "add", a], [ip, "netns", "add", b],
                [ip, "-n", a, "link", "add", "vA", "type", "veth", "peer", "name", "vB",
                 "netns", b]]
    commands += [[ip, "-n", a, "addr", "add", address, "dev", "vA"] for address in a_addresses]
    commands += [[ip, "-n", b, "addr", "add", address, "dev", "vB"] for address in b_addresses]
    commands += [[ip, "-n", a, "link", "set", "vA", "up"], [ip, "-n", b, "link", "set", "vB", "up"],
                 [ip, "-n", a, "link", "set", "lo", "up"], [ip, "-n", b, "link", "set", "lo", "up"]]
    try:
        for command in commands:
            subprocess.run(command, check=True, capture_output=True, timeout=30)
        yield a, b
    finally:
        for name in (a, b):
            subprocess.run([ip, "netns", "del", name], capture_output=True, timeout=30,
                           check=False)
