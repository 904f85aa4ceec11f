"""The firewall's LAN: `console.allowed_networks` applied to the appliance's nftables sets.

The image's ruleset (image/overlay/etc/nftables.conf) lets only the sets `lan4` and `lan6`
of table `inet mailstead` reach the console (443) and DAV (5232); everyone else gets the
public paths only. This module turns the admin's setting into the nft script that replaces
the sets' elements in one transaction (pure: `lan_script`), and runs it as root
(`apply_lan`, from `mailstead firewall apply`: at boot after nftables.service, and when the
console saves the setting, through a trigger file that a path unit watches). Loopback is
left out of the sets: the ruleset accepts `lo` before it looks at them. The console checks
the same setting for every request as well (webui/security.py), so a LAN the firewall lets
through is never wider than what the console answers.
"""

from __future__ import annotations

import ipaddress
import tempfile
from dataclasses import dataclass
from pathlib import Path

from appliance.core import log
from appliance.core.run import run_tool

TABLE = "inet mailstead"
TRIGGER_NAME = "firewall.apply"      # in data_dir: the console touches it after a change
NFT_TIMEOUT = 30.0


@dataclass(frozen=True)
class LanNetworks:
    """The allowed networks split by family, loopback removed, in the setting's order."""

    ipv4: tuple[str, ...]
    ipv6: tuple[str, ...]


def lan_networks(allowed: str) -> LanNetworks:
    """Parse `console.allowed_networks` (comma-separated networks).

    Raises:
        ValueError: a part is not an IP network.
    """
    v4: list[str] = []
    v6: list[str] = []
    for part in (p.strip() for p in allowed.split(",")):
        if not part:
            continue
        net = ipaddress.ip_network(part, strict=False)
        if net.is_loopback:
            continue
        (v4 if net.version == 4 else v6).append(str(net))
    return LanNetworks(tuple(dict.fromkeys(v4)), tuple(dict.fromkeys(v6)))


def lan_script(networks: LanNetworks) -> str:
    """The nft script: flush both sets, then add the networks (nft -f runs it atomically).

    The sets have `flags interval`, so overlapping networks would be refused by nft; they
    are merged first (ipaddress.collapse_addresses)."""
    merged4 = ipaddress.collapse_addresses(ipaddress.IPv4Network(n) for n in networks.ipv4)
    merged6 = ipaddress.collapse_addresses(ipaddress.IPv6Network(n) for n in networks.ipv6)
    lines = []
    for name, merged in (("lan4", [str(n) for n in merged4]),
                         ("lan6", [str(n) for n in merged6])):
        lines.append(f"flush set {TABLE} {name}")
        if merged:
            lines.append(f"add element {TABLE} {name} {{ {', '.join(merged)} }}")
    return "\n".join(lines) + "\n"


def apply_lan(allowed: str, nft: str = "nft") -> None:
    """Load the networks into the running ruleset as root.

    Raises:
        ValueError: the setting is not a list of networks.
        RuntimeError: nft refused the script (the sets keep their old elements).
    """
    networks = lan_networks(allowed)
    with tempfile.NamedTemporaryFile("w", suffix=".nft", encoding="ascii") as script:
        script.write(lan_script(networks))
        script.flush()
        done = run_tool([nft, "-f", script.name], NFT_TIMEOUT)
    if done.returncode != 0:
        message = (done.stderr or done.stdout).decode(errors="replace").strip()[:500]
        log.event("firewall.lan_refused", status=done.returncode, error=message)
        raise RuntimeError(f"nft refused the LAN networks: {message}")
    log.event("firewall.lan_applied", ipv4=",".join(networks.ipv4),
              ipv6=",".join(networks.ipv6))


def request_apply(data_dir: Path) -> None:
    """The console's side: touch the trigger file (its content is never read)."""
    (data_dir / TRIGGER_NAME).write_bytes(b"")
