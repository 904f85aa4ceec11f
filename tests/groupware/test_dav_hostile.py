"""Hostile input against mailstead-dav under real gunicorn with TLS: a body over the limit
(413 before it is sent), malformed XML (400), a huge header (refused by gunicorn), `..` in
paths, plain HTTP on the TLS port, garbage Basic credentials (401, not 500), and a body
that never finishes (408 after dav.request_timeout), and TLS below 1.2."""

from __future__ import annotations

import base64
import socket
import ssl
import time

import pytest

from .conftest import ALICE, BOB, PASSWORDS, DavServer
from .curl import curl, event

ALICE_URL = "/alice%40example.test"


def _tls(server: DavServer) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(server.cert))
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=20)
    return context.wrap_socket(raw, server_hostname="localhost")


def _auth(user: str) -> str:
    return base64.b64encode(f"{user}:{PASSWORDS[user]}".encode()).decode()


def _status(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1])


def _read_reply(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_oversized_body_is_refused_before_it_is_sent(dav_server: DavServer) -> None:
    limit = dav_server.settings.get_int("dav.max_content_length")
    with _tls(dav_server) as sock:
        sock.sendall(f"PUT {ALICE_URL}/calendar/big.ics HTTP/1.1\r\nHost: localhost\r\n"
                     f"Authorization: Basic {_auth(ALICE)}\r\n"
                     f"Content-Length: {limit * 100}\r\n\r\n".encode())
        started = time.monotonic()
        reply = _read_reply(sock)                  # answered although no byte of body came
    assert _status(reply) == 413
    assert time.monotonic() - started < 5


def test_oversized_chunked_body_is_cut_off(dav_server: DavServer) -> None:
    limit = dav_server.settings.get_int("dav.max_content_length")
    with _tls(dav_server) as sock:
        sock.sendall(f"PUT {ALICE_URL}/calendar/big2.ics HTTP/1.1\r\nHost: localhost\r\n"
                     f"Authorization: Basic {_auth(ALICE)}\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n".encode())
        chunk = b"x" * 8192
        try:
            for _ in range(limit // len(chunk) + 2):
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        except OSError:
            pass                                    # the server may close while we send
        reply = _read_reply(sock)
    assert _status(reply) == 413


def test_malformed_xml_is_a_bad_request(dav_server: DavServer) -> None:
    reply = curl(dav_server, "PROPFIND", f"{ALICE_URL}/", user=ALICE,
                 data="<propfind xmlns='DAV:'><prop><unclosed></propfind",
                 headers={"Depth": "0", "Content-Type": "application/xml"})
    assert reply.status == 400
    entity = curl(dav_server, "PROPFIND", f"{ALICE_URL}/", user=ALICE,
                  data='<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">]><propfind xmlns="DAV:">'
                       "<prop><displayname>&a;</displayname></prop></propfind>",
                  headers={"Depth": "0", "Content-Type": "application/xml"})
    assert entity.status == 400                     # defusedxml: no entities


def test_huge_header_is_refused_by_gunicorn(dav_server: DavServer) -> None:
    reply = curl(dav_server, "PROPFIND", "/", user=ALICE, headers={"X-Big": "y" * 20000})
    assert reply.status in (400, 431)
    many = {f"X-H{i}": "v" for i in range(150)}
    assert curl(dav_server, "PROPFIND", "/", user=ALICE, headers=many).status in (400, 431)


def test_dot_dot_paths_reach_no_other_tree(dav_server: DavServer) -> None:
    curl(dav_server, "PUT", "/bob%40example.test/calendar/private.ics", user=BOB,
         data=event("private"))
    for path in (f"{ALICE_URL}/../bob%40example.test/calendar/private.ics",
                 f"{ALICE_URL}/%2e%2e/bob%40example.test/calendar/private.ics",
                 f"{ALICE_URL}/calendar/..%2f..%2fbob%40example.test/calendar/private.ics",
                 "//bob%40example.test//calendar/private.ics"):
        reply = curl(dav_server, "GET", path, user=ALICE, path_as_is=True)
        assert reply.status in (400, 403, 404), (path, reply.status)
        assert "UID:private" not in reply.body


def test_plain_http_on_the_tls_port_gets_nothing(dav_server: DavServer) -> None:
    with socket.create_connection(("127.0.0.1", dav_server.port), timeout=10) as sock:
        sock.sendall(b"PROPFIND / HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic "
                     + _auth(ALICE).encode() + b"\r\n\r\n")
        try:
            answer = sock.recv(4096)
        except ConnectionResetError:
            answer = b""
    assert b"207" not in answer
    assert b"multistatus" not in answer


def test_garbage_basic_credentials_are_401_not_500(dav_server: DavServer) -> None:
    for value in ("Basic !!!not base64!!!", "Basic " + base64.b64encode(b"nocolon").decode(),
                  "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(), "Basic",
                  "Basic " + "A" * 5):
        reply = curl(dav_server, "PROPFIND", "/", headers={"Authorization": value})
        assert reply.status == 401, (value, reply.status)
        assert "WWW-Authenticate".lower() in reply.headers


def test_unfinished_body_is_timed_out(dav_server: DavServer) -> None:
    timeout = dav_server.settings.get_int("dav.request_timeout")
    with _tls(dav_server) as sock:
        sock.sendall(f"PUT {ALICE_URL}/calendar/slow.ics HTTP/1.1\r\nHost: localhost\r\n"
                     f"Authorization: Basic {_auth(ALICE)}\r\n"
                     "Content-Length: 1000\r\n\r\nBEGIN:VCALENDAR\r\n".encode())
        started = time.monotonic()
        reply = _read_reply(sock)
        waited = time.monotonic() - started
    assert _status(reply) == 408
    assert timeout - 0.5 <= waited < timeout + 10


def test_server_still_answers_afterwards(dav_server: DavServer) -> None:
    assert curl(dav_server, "PROPFIND", f"{ALICE_URL}/", user=ALICE).status == 207
    assert curl(dav_server, "GET", f"{ALICE_URL}/calendar/slow.ics", user=ALICE).status == 404


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_tls_below_1_2_is_refused_and_1_2_is_served(dav_server: DavServer) -> None:
    """The engine's TLS policy (appliance.tls.contexts): a client that offers at most
    TLS 1.1 gets the server's protocol_version alert; TLS 1.2 with an AEAD cipher works."""
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname, old.verify_mode = False, ssl.CERT_NONE
    old.set_ciphers("ALL:@SECLEVEL=0")      # let this client offer what a server must refuse
    old.minimum_version = ssl.TLSVersion.TLSv1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    raw = socket.create_connection(("127.0.0.1", dav_server.port), timeout=20)
    with raw, pytest.raises(ssl.SSLError) as refused:
        old.wrap_socket(raw, server_hostname="localhost")
    # the alert came from the server: this client did offer TLS 1.0/1.1
    assert "ALERT_PROTOCOL_VERSION" in str(refused.value).upper(), refused.value
    modern = ssl.create_default_context(cafile=str(dav_server.cert))
    modern.maximum_version = ssl.TLSVersion.TLSv1_2
    with modern.wrap_socket(socket.create_connection(("127.0.0.1", dav_server.port),
                                                     timeout=20),
                            server_hostname="localhost") as sock:
        assert sock.version() == "TLSv1.2"
        cipher = sock.cipher()
        assert cipher is not None
        assert "GCM" in cipher[0] or "CHACHA20" in cipher[0], cipher
