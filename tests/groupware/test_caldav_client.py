"""The `caldav` library (a real CalDAV client) against mailstead-dav under gunicorn with
TLS: it discovers the principal from the server's root, lists the provisioned calendars,
saves an event and a todo, and finds the event by date."""

from __future__ import annotations

import datetime

import caldav

from .conftest import BOB, PASSWORDS, DavServer
from .curl import event

TODO = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Mailstead tests//EN\r\n"
        "BEGIN:VTODO\r\nUID:todo-2031\r\nDTSTAMP:20310301T000000Z\r\n"
        "DUE;VALUE=DATE:20310310\r\nSUMMARY:File the report\r\nEND:VTODO\r\n"
        "END:VCALENDAR\r\n")


def _client(server: DavServer, user: str) -> caldav.DAVClient:
    return caldav.DAVClient(url=server.url + "/", username=user, password=PASSWORDS[user],
                            ssl_verify_cert=str(server.cert))


def test_discover_list_save_and_search(dav_server: DavServer) -> None:
    with _client(dav_server, BOB) as client:
        principal = client.principal()  # type: ignore[no-untyped-call]
        calendars = {c.name: c for c in principal.calendars()}
        assert {"Calendar", "Tasks"} <= set(calendars)
        calendar, tasks = calendars["Calendar"], calendars["Tasks"]
        calendar.save_event(event("review-2031", "20310304T090000Z", "20310304T100000Z"))
        tasks.save_todo(TODO)
        found = calendar.search(start=datetime.datetime(2031, 3, 1, tzinfo=datetime.UTC),
                                end=datetime.datetime(2031, 3, 31, tzinfo=datetime.UTC),
                                event=True, expand=False)
        assert [e.icalendar_component["uid"] for e in found] == ["review-2031"]
        none = calendar.search(start=datetime.datetime(2032, 1, 1, tzinfo=datetime.UTC),
                               end=datetime.datetime(2032, 2, 1, tzinfo=datetime.UTC),
                               event=True, expand=False)
        assert none == []
        todos = tasks.todos()
        assert [t.icalendar_component["summary"] for t in todos] == ["File the report"]


def test_wrong_password_is_refused(dav_server: DavServer) -> None:
    client = caldav.DAVClient(url=dav_server.url + "/", username=BOB, password="not it",
                              ssl_verify_cert=str(dav_server.cert))
    try:
        client.principal()  # type: ignore[no-untyped-call]
    except caldav.lib.error.AuthorizationError:
        return
    raise AssertionError("a wrong password reached the principal")
