"""The admin's LAN in the firewall: console.allowed_networks -> the nft sets lan4/lan6 of the
image's real ruleset, loaded in a private network namespace (unshare -n, as root) by the
real `mailstead firewall apply` (the console's side: tests/console/test_firewall_trigger.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.net.firewall_lan import lan_networks, lan_script
from appliance.settings import render_toml

RULESET = Path(__file__).resolve().parents[2] / "image" / "overlay" / "etc" / "nftables.conf"


def test_networks_are_split_by_family_without_loopback() -> None:
    found = lan_networks("127.0.0.0/8, ::1, 10.0.0.0/8, fd00::/8, 192.168.1.7/24, 10.0.0.0/8")
    assert found.ipv4 == ("10.0.0.0/8", "192.168.1.0/24")
    assert found.ipv6 == ("fd00::/8",)
    with pytest.raises(ValueError, match="does not appear to be"):
        lan_networks("10.0.0.0/8, the office")


def test_script_replaces_both_sets_and_merges_overlaps() -> None:
    script = lan_script(lan_networks("10.0.0.0/8, 10.1.0.0/16, 192.168.0.0/16"))
    assert script.splitlines() == [
        "flush set inet mailstead lan4",
        "add element inet mailstead lan4 { 10.0.0.0/8, 192.168.0.0/16 }",
        "flush set inet mailstead lan6",
    ]


def nft_in_namespace(tmp_path: Path, allowed: str) -> subprocess.CompletedProcess[str]:
    """Load the image's ruleset in a new network namespace, run `mailstead firewall apply`
    there with `allowed`, and list the two sets."""
    nft = shutil.which("nft") or "/usr/sbin/nft"
    config = tmp_path / "mailstead.toml"
    config.write_text(render_toml({"paths.data_dir": str(tmp_path / "data"),
                                   "console.allowed_networks": allowed}), encoding="utf-8")
    (tmp_path / "data").mkdir(exist_ok=True)
    script = (f"{nft} -f {RULESET} && "
              f"{sys.executable} -m appliance --config {config} firewall apply; "
              f"echo applied=$?; {nft} list set inet mailstead lan4; "
              f"{nft} list set inet mailstead lan6")
    return subprocess.run(["unshare", "-n", "sh", "-c", script], capture_output=True,
                          text=True, timeout=60, check=False)


def test_apply_loads_the_setting_into_the_running_ruleset(tmp_path: Path) -> None:
    done = nft_in_namespace(tmp_path, "127.0.0.0/8, 192.168.50.0/24, 10.9.0.0/16, fd12::/16")
    assert "applied=0" in done.stdout, done.stderr
    lan4, _, lan6 = done.stdout.partition("set lan6")
    assert "elements = { 10.9.0.0/16, 192.168.50.0/24 }" in lan4
    assert "172.16.0.0/12" not in lan4                   # the image's default is replaced
    assert "elements = { fd12::/16 }" in lan6


def test_a_refused_script_leaves_the_sets_and_exits_1(tmp_path: Path) -> None:
    # a valid setting, but no `inet mailstead` table to put it in (an empty ruleset)
    nft = shutil.which("nft") or "/usr/sbin/nft"
    config = tmp_path / "mailstead.toml"
    config.write_text(render_toml({"paths.data_dir": str(tmp_path)}), encoding="utf-8")
    done = subprocess.run(["unshare", "-n", "sh", "-c",
                           f"{nft} flush ruleset && {sys.executable} -m appliance "
                           f"--config {config} firewall apply"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert "nft refused the LAN networks" in done.stderr


def test_dry_run_prints_the_script(tmp_path: Path) -> None:
    config = tmp_path / "mailstead.toml"
    config.write_text(render_toml({"paths.data_dir": str(tmp_path),
                                   "console.allowed_networks": "10.0.0.0/8"}),
                      encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "appliance", "--config", str(config),
                           "firewall", "apply", "--dry-run"], capture_output=True, text=True,
                          timeout=60, check=True)
    assert "add element inet mailstead lan4 { 10.0.0.0/8 }" in done.stdout
