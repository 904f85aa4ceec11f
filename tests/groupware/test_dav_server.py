"""mailstead-dav under real gunicorn with TLS, spoken to with curl: discovery (RFC 6764
well-known, current-user-principal, home sets), events and vCards, a calendar-query with a
time range, DELETE, the login guard (401, lockout), other accounts' trees and the shared
area of a domain, and what the logs hold."""

from __future__ import annotations

import json
import re
import time

from .conftest import ALICE, BOB, EVE, MALLORY, MAX_FAILURES, PASSWORDS, DavServer
from .curl import (
    PROPFIND_HOMES,
    PROPFIND_PRINCIPAL,
    curl,
    event,
    time_range_report,
    vcard,
)

ALICE_URL = "/alice%40example.test"
SHARED = "/shared.example.test"


def test_well_known_redirects_to_the_root(dav_server: DavServer) -> None:
    for name in ("caldav", "carddav"):
        reply = curl(dav_server, "PROPFIND", f"/.well-known/{name}")
        assert reply.status == 301
        assert reply.headers["location"] == "/"


def test_discovery_names_own_principal_and_homes(dav_server: DavServer) -> None:
    root = curl(dav_server, "PROPFIND", "/", user=ALICE, data=PROPFIND_PRINCIPAL,
                headers={"Depth": "0", "Content-Type": "application/xml"})
    assert root.status == 207
    assert f"<href>{ALICE_URL}/</href>" in root.body
    homes = curl(dav_server, "PROPFIND", f"{ALICE_URL}/", user=ALICE, data=PROPFIND_HOMES,
                 headers={"Depth": "0", "Content-Type": "application/xml"})
    assert homes.status == 207
    assert "calendar-home-set" in homes.body
    assert "addressbook-home-set" in homes.body
    assert homes.body.count(f"{ALICE_URL}/</") >= 2
    listing = curl(dav_server, "PROPFIND", f"{ALICE_URL}/", user=ALICE,
                   headers={"Depth": "1"})
    for name in ("calendar", "tasks", "contacts"):        # provisioned at first login
        assert f"{ALICE_URL}/{name}/" in listing.body


def test_root_lists_only_own_principal(dav_server: DavServer) -> None:
    for user in (BOB, EVE):                     # their principals exist now
        assert curl(dav_server, "PROPFIND", "/", user=user, headers={"Depth": "0"}).status == 207
    listing = curl(dav_server, "PROPFIND", "/", user=ALICE, headers={"Depth": "1"})
    assert listing.status == 207
    assert f"{ALICE_URL}/" in listing.body
    hrefs = set(re.findall(r"<href>([^<]*)</href>", listing.body))
    # her principal and her domain's shared area; no other account, no other domain
    assert hrefs == {"/", f"{ALICE_URL}/", f"{SHARED}/"}


def test_event_put_report_delete(dav_server: DavServer) -> None:
    path = f"{ALICE_URL}/calendar/standup.ics"
    put = curl(dav_server, "PUT", path, user=ALICE, data=event("standup"),
               headers={"Content-Type": "text/calendar"})
    assert put.status == 201
    inside = curl(dav_server, "REPORT", f"{ALICE_URL}/calendar/", user=ALICE,
                  data=time_range_report("20300101T000000Z", "20300110T000000Z"),
                  headers={"Depth": "1", "Content-Type": "application/xml"})
    assert inside.status == 207
    assert "UID:standup" in inside.body
    outside = curl(dav_server, "REPORT", f"{ALICE_URL}/calendar/", user=ALICE,
                   data=time_range_report("20310101T000000Z", "20310110T000000Z"),
                   headers={"Depth": "1", "Content-Type": "application/xml"})
    assert outside.status == 207
    assert "standup" not in outside.body
    assert curl(dav_server, "DELETE", path, user=ALICE).status in (200, 204)
    assert curl(dav_server, "GET", path, user=ALICE).status == 404


def test_vcard_put_and_get(dav_server: DavServer) -> None:
    path = f"{ALICE_URL}/contacts/carol.vcf"
    assert curl(dav_server, "PUT", path, user=ALICE, data=vcard("carol", "Carol Example"),
                headers={"Content-Type": "text/vcard"}).status == 201
    got = curl(dav_server, "GET", path, user=ALICE)
    assert got.status == 200
    assert "FN:Carol Example" in got.body


def test_another_users_tree_is_refused(dav_server: DavServer) -> None:
    curl(dav_server, "PROPFIND", "/", user=ALICE)            # alice's tree exists
    for method, data in (("PROPFIND", None), ("GET", None), ("PUT", event("intrusion"))):
        reply = curl(dav_server, method, f"{ALICE_URL}/calendar/x.ics" if method == "PUT"
                     else f"{ALICE_URL}/calendar/", user=BOB, data=data)
        assert reply.status in (403, 404), (method, reply.status)


def test_shared_area_of_a_domain(dav_server: DavServer) -> None:
    path = f"{SHARED}/calendar/all-hands.ics"
    assert curl(dav_server, "PUT", path, user=ALICE, data=event("all-hands")).status == 201
    got = curl(dav_server, "GET", path, user=BOB)
    assert got.status == 200
    assert "UID:all-hands" in got.body
    assert curl(dav_server, "PUT", f"{SHARED}/calendar/party.ics", user=BOB,
                data=event("party")).status == 201
    assert curl(dav_server, "PUT", f"{SHARED}/contacts/dave.vcf", user=BOB,
                data=vcard("dave", "Dave Shared")).status == 201
    assert curl(dav_server, "GET", f"{SHARED}/contacts/dave.vcf", user=ALICE).status == 200
    # another domain: nothing, not even a listing
    assert curl(dav_server, "GET", path, user=EVE).status in (403, 404)
    assert curl(dav_server, "PUT", f"{SHARED}/calendar/evil.ics", user=EVE,
                data=event("evil")).status in (403, 404)
    assert curl(dav_server, "PROPFIND", f"{SHARED}/", user=EVE,
                headers={"Depth": "1"}).status in (403, 404)
    # members may not delete the shared collection itself
    assert curl(dav_server, "DELETE", f"{SHARED}/calendar/", user=BOB).status == 403
    assert curl(dav_server, "GET", path, user=ALICE).status == 200


def test_wrong_password_then_lockout(dav_server: DavServer) -> None:
    assert curl(dav_server, "PROPFIND", "/", user=MALLORY).status == 207
    for _ in range(MAX_FAILURES):
        assert curl(dav_server, "PROPFIND", "/", user=MALLORY,
                    password="guess").status == 401
    # locked: the right password is refused too, and the guard logs the lock
    assert curl(dav_server, "PROPFIND", "/", user=MALLORY,
                password=PASSWORDS[MALLORY] + " ").status == 401
    assert curl(dav_server, "PROPFIND", "/", user=MALLORY,
                password=PASSWORDS[MALLORY] + "!").status == 401
    events = _guard_events(dav_server, MALLORY)
    assert any(e["result"] == "locked" for e in events), events
    assert all(e["protocol"] == "dav" for e in events)


def test_logs_hold_no_secret_and_no_query(dav_server: DavServer) -> None:
    curl(dav_server, "GET", f"{ALICE_URL}/calendar/?token=sekrit", user=ALICE)
    time.sleep(0.5)                                     # gunicorn's access log line
    text = dav_server.log_text()
    assert "sekrit" not in text
    for password in PASSWORDS.values():
        assert password not in text
    assert "Authorization" not in text
    assert "Basic " not in text
    assert f'"GET /{ALICE}/calendar/ HTTP/1.1"' in text


def _guard_events(server: DavServer, account: str) -> list[dict[str, object]]:
    found = []
    for line in server.log_text().splitlines():
        if line.startswith("{") and '"auth.login"' in line:
            entry = json.loads(line)
            if entry.get("username") == account:
                found.append(entry)
    return found
