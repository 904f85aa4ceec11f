"""image-test: calendars and contacts (mailstead-dav) from the host over the loopback forward.

Owns the image test's CalDAV/CardDAV client: the RFC 6764 well-known redirect, discovery as a
phone does it (current-user-principal, then calendar-home-set and addressbook-home-set,
RFC 5397, RFC 4791 6.2.1, RFC 6352 7.1.1), an event PUT into the account's calendar and read
back, a vCard into its address book, and a wrong password refused. TLS is verified against
the certificate pinned from the guest's IMAPS (the same appliance certificate must be served
here), and it must name the wizard's hostname. Standard library only (runs under the host's
python3).
"""

from __future__ import annotations

import base64
import http.client
import ssl
import uuid
from collections.abc import Callable
from typing import Protocol
from urllib.parse import urljoin, urlsplit
from xml.etree import ElementTree

from mail_checks import check_names

TIMEOUT = 120.0
NS = {"d": "DAV:", "c": "urn:ietf:params:xml:ns:caldav", "a": "urn:ietf:params:xml:ns:carddav"}
PROPFIND = """<?xml version="1.0" encoding="utf-8"?>
<d:propfind xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"
 xmlns:a="urn:ietf:params:xml:ns:carddav"><d:prop>{}</d:prop></d:propfind>"""


class Results(Protocol):
    def check(self, name: str, test: Callable[[], str]) -> None: ...


class Dav:
    """One user's HTTPS connection to the guest's DAV port (a new one per request)."""

    def __init__(self, port: int, context: ssl.SSLContext, hostname: str, user: str,
                 password: str) -> None:
        self.port, self.context, self.hostname = port, context, hostname
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.auth = f"Basic {token}"

    def request(self, method: str, path: str, body: str = "",
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context,
                                           timeout=TIMEOUT)
        try:
            conn.connect()
            check_names(conn.sock, self.hostname)
            conn.request(method, path, body.encode(), {
                "Host": self.hostname, "Authorization": self.auth,
                "Content-Type": "application/xml; charset=utf-8", **(headers or {})})
            response = conn.getresponse()
            return (response.status, {k.lower(): v for k, v in response.getheaders()},
                    response.read())
        finally:
            conn.close()

    def propfind(self, path: str, props: str, depth: str = "0") -> ElementTree.Element:
        status, _, body = self.request("PROPFIND", path, PROPFIND.format(props),
                                       {"Depth": depth})
        assert status == 207, f"PROPFIND {path}: {status} {body[:200]!r}"
        return ElementTree.fromstring(body)

    def href(self, path: str, prop: str) -> str:
        """The href inside `prop` (e.g. d:current-user-principal) of `path`."""
        tree = self.propfind(path, f"<{prop}/>")
        found = tree.find(f".//{prop}/d:href", NS)
        assert found is not None, f"no {prop} on {path}"
        assert found.text, f"an empty {prop} on {path}"
        return urlsplit(urljoin(path, found.text.strip())).path


def collection_of(dav: Dav, home: str, kind: str, component: str | None) -> str:
    """The first collection of `kind` (c:calendar or a:addressbook) under `home` that holds
    `component` (VEVENT) when it is a calendar."""
    tree = dav.propfind(home, "<d:resourcetype/><c:supported-calendar-component-set/>", "1")
    for response in tree.findall("d:response", NS):
        href = response.findtext("d:href", "", NS).strip()
        if response.find(f".//d:resourcetype/{kind}", NS) is None:
            continue
        names = {c.get("name") for c in response.findall(".//c:comp", NS)}
        if component is None or not names or component in names:
            return urlsplit(urljoin(home, href)).path
    raise AssertionError(f"no {kind} collection under {home}: {ElementTree.tostring(tree)!r}")


def dav_checks(port: int, context: ssl.SSLContext, hostname: str, user: str, password: str,
               results: Results) -> None:
    """What a phone does with the account the wizard made: discover, write, read back."""
    dav = Dav(port, context, hostname, user, password)
    found: dict[str, str] = {}

    def well_known() -> str:
        status, headers, _ = dav.request("PROPFIND", "/.well-known/caldav",
                                         PROPFIND.format("<d:current-user-principal/>"))
        assert status in (301, 308), status
        return f"/.well-known/caldav -> {headers.get('location')}"

    def discover() -> str:
        principal = dav.href("/", "d:current-user-principal")
        found["calendars"] = dav.href(principal, "c:calendar-home-set")
        found["contacts"] = dav.href(principal, "a:addressbook-home-set")
        found["calendar"] = collection_of(dav, found["calendars"], "c:calendar", "VEVENT")
        found["addressbook"] = collection_of(dav, found["contacts"], "a:addressbook", None)
        return f"principal {principal}, calendar {found['calendar']}, " \
               f"address book {found['addressbook']}"

    def event() -> str:
        uid = f"{uuid.uuid4()}@image-test"
        ics = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Mailstead//image-test//EN\r\n"
               f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20261127T120000Z\r\n"
               "DTSTART:20261201T090000Z\r\nDTEND:20261201T100000Z\r\n"
               "SUMMARY:image-test meeting\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
        path = found["calendar"] + f"{uid}.ics"
        status, _, body = dav.request("PUT", path, ics,
                                      {"Content-Type": "text/calendar; charset=utf-8"})
        assert status in (201, 204), f"PUT {path}: {status} {body[:200]!r}"
        status, _, body = dav.request("GET", path)
        assert status == 200, (status, body[:200])
        assert uid.encode() in body, body[:200]
        return f"PUT and GET {path}"

    def vcard() -> str:
        uid = str(uuid.uuid4())
        card = (f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:Image Test\r\n"
                "N:Test;Image;;;\r\nEMAIL:image-test@example.test\r\nEND:VCARD\r\n")
        path = found["addressbook"] + f"{uid}.vcf"
        status, _, body = dav.request("PUT", path, card,
                                      {"Content-Type": "text/vcard; charset=utf-8"})
        assert status in (201, 204), f"PUT {path}: {status} {body[:200]!r}"
        status, _, body = dav.request("GET", path)
        assert status == 200, (status, body[:200])
        assert b"Image Test" in body, body[:200]
        return f"PUT and GET {path}"

    def wrong_password() -> str:
        other = Dav(port, context, hostname, user, password + " wrong")
        status, _, _ = other.request("PROPFIND", "/", PROPFIND.format(
            "<d:current-user-principal/>"), {"Depth": "0"})
        assert status == 401, status
        return "401"

    results.check("DAV: /.well-known/caldav redirects (RFC 6764)", well_known)
    results.check("DAV: principal, calendar and address book discovered", discover)
    if "addressbook" in found:
        results.check("DAV: an event stored and read back (CalDAV)", event)
        results.check("DAV: a contact stored and read back (CardDAV)", vcard)
    results.check("DAV: a wrong password is refused", wrong_password)
