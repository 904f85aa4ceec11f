"""Debian's vdirsyncer (a real sync client) against mailstead-dav under gunicorn with TLS:
a two-way sync of a calendar and an address book with local folders."""

from __future__ import annotations

import subprocess
from pathlib import Path

from harness.debian import ensure_package

from .conftest import ALICE, PASSWORDS, DavServer
from .curl import curl, event, vcard

ALICE_URL = "/alice%40example.test"


def _config(tmp: Path, server: DavServer) -> Path:
    lines = [f'[general]\nstatus_path = "{tmp / "status"}"\n']
    for kind, remote, collection in (("cal", "caldav", "calendar"),
                                     ("card", "carddav", "contacts")):
        ext = ".ics" if kind == "cal" else ".vcf"
        lines.append(f"""
[pair {kind}]
a = "{kind}_local"
b = "{kind}_remote"
collections = ["{collection}"]
conflict_resolution = "b wins"

[storage {kind}_local]
type = "filesystem"
path = "{tmp / kind}"
fileext = "{ext}"

[storage {kind}_remote]
type = "{remote}"
url = "{server.url}/"
username = "{ALICE}"
password = "{PASSWORDS[ALICE]}"
verify = "{server.cert}"
""")
    config = tmp / "config"
    config.write_text("".join(lines))
    return config


def _run(vdirsyncer: str, config: Path, *args: str) -> str:
    done = subprocess.run([vdirsyncer, "-c", str(config), *args], input="y\ny\ny\ny\n",
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_two_way_sync_of_a_calendar_and_an_address_book(dav_server: DavServer,
                                                         tmp_path: Path) -> None:
    vdirsyncer = ensure_package("vdirsyncer", "vdirsyncer")
    assert curl(dav_server, "PUT", f"{ALICE_URL}/calendar/from-server.ics", user=ALICE,
                data=event("from-server")).status == 201
    assert curl(dav_server, "PUT", f"{ALICE_URL}/contacts/srv.vcf", user=ALICE,
                data=vcard("srv", "Server Person")).status == 201
    config = _config(tmp_path, dav_server)
    _run(vdirsyncer, config, "discover")
    _run(vdirsyncer, config, "sync")
    local_cal, local_card = tmp_path / "cal" / "calendar", tmp_path / "card" / "contacts"
    assert any("UID:from-server" in p.read_text() for p in local_cal.glob("*.ics"))
    assert any("FN:Server Person" in p.read_text() for p in local_card.glob("*.vcf"))
    (local_cal / "from-local.ics").write_text(event("from-local", "20300201T080000Z",
                                                    "20300201T090000Z"))
    (local_card / "loc.vcf").write_text(vcard("loc", "Local Person"))
    _run(vdirsyncer, config, "sync")
    listing = curl(dav_server, "PROPFIND", f"{ALICE_URL}/calendar/", user=ALICE,
                   headers={"Depth": "1"})
    hrefs = [h for h in listing.body.split("<href>") if ".ics" in h]
    bodies = [curl(dav_server, "GET", h.split("</href>")[0], user=ALICE).body for h in hrefs]
    assert any("UID:from-local" in body for body in bodies)
    cards = curl(dav_server, "PROPFIND", f"{ALICE_URL}/contacts/", user=ALICE,
                 headers={"Depth": "1"})
    card_hrefs = [h.split("</href>")[0] for h in cards.body.split("<href>") if ".vcf" in h]
    assert any("FN:Local Person" in curl(dav_server, "GET", h, user=ALICE).body
               for h in card_hrefs)
    # a deletion on the server reaches the local folder
    assert curl(dav_server, "DELETE", f"{ALICE_URL}/calendar/from-server.ics",
                user=ALICE).status in (200, 204)
    _run(vdirsyncer, config, "sync")
    assert not any("UID:from-server" in p.read_text() for p in local_cal.glob("*.ics"))
