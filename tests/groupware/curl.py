"""curl against the DAV server: one request, its status, headers and body."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from .conftest import PASSWORDS, DavServer


@dataclass
class CurlReply:
    status: int
    headers: dict[str, str]
    body: str


def curl(server: DavServer, method: str, path: str, *, user: str | None = None,
         password: str | None = None, data: str | None = None,
         headers: dict[str, str] | None = None, path_as_is: bool = False) -> CurlReply:
    argv = ["curl", "-sS", "--cacert", str(server.cert), "-X", method, "-D", "-",
            "-o", "/dev/stdout", "--max-time", "30"]
    if path_as_is:
        argv.append("--path-as-is")
    if user is not None:
        argv += ["-u", f"{user}:{PASSWORDS[user] if password is None else password}"]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    if data is not None:
        argv += ["--data-binary", data]
    argv.append(server.url + path)
    out = subprocess.run(argv, capture_output=True, timeout=60, check=True).stdout.decode(
        "utf-8", "replace")
    head, _, body = out.partition("\r\n\r\n")
    lines = head.split("\r\n")
    found = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        found[name.strip().lower()] = value.strip()
    return CurlReply(int(lines[0].split()[1]), found, body)


PROPFIND_PRINCIPAL = """<?xml version="1.0" encoding="utf-8"?>
<propfind xmlns="DAV:"><prop><current-user-principal/></prop></propfind>"""

PROPFIND_HOMES = """<?xml version="1.0" encoding="utf-8"?>
<propfind xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"
          xmlns:A="urn:ietf:params:xml:ns:carddav">
  <prop><C:calendar-home-set/><A:addressbook-home-set/><displayname/></prop>
</propfind>"""


def event(uid: str, start: str = "20300105T100000Z", end: str = "20300105T110000Z") -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Mailstead tests//EN\r\n"
            f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20300101T000000Z\r\n"
            f"DTSTART:{start}\r\nDTEND:{end}\r\nSUMMARY:Meeting {uid}\r\n"
            "END:VEVENT\r\nEND:VCALENDAR\r\n")


def vcard(uid: str, name: str) -> str:
    return (f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{name}\r\nN:{name};;;;\r\n"
            "EMAIL:someone@example.test\r\nEND:VCARD\r\n")


def time_range_report(start: str, end: str) -> str:
    return f"""<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><D:getetag/><C:calendar-data/></D:prop>
  <C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">
    <C:time-range start="{start}" end="{end}"/>
  </C:comp-filter></C:comp-filter></C:filter>
</C:calendar-query>"""
