"""Mail client self-configuration (webui/blueprints/clients.py, webui/client_config.py):
Thunderbird autoconfig, Outlook Autodiscover (POX), the Apple profile; 404s and hostile XML."""

from __future__ import annotations

import plistlib
import xml.etree.ElementTree as ET

from flask.testing import FlaskClient

from console.conftest import USER
from webui.client_config import OUTLOOK_NS, REQUEST_NS, RESPONSE_NS

HOST = "mail.example.test"
AUTOCONFIG = "/.well-known/autoconfig/mail/config-v1.1.xml"


def servers(xml: bytes) -> list[tuple[str, str, str, str, str]]:
    root = ET.fromstring(xml)
    assert root.tag == "clientConfig"
    assert root.get("version") == "1.1"
    provider = root.find("emailProvider")
    assert provider is not None
    assert provider.findtext("domain") == "example.test"
    return [(s.tag, s.get("type", ""), s.findtext("hostname", ""), s.findtext("port", ""),
             s.findtext("socketType", "")) for s in provider
            if s.tag in ("incomingServer", "outgoingServer")]


def test_autoconfig_by_address(client: FlaskClient) -> None:
    response = client.get(AUTOCONFIG, query_string={"emailaddress": USER})
    assert response.status_code == 200
    assert response.mimetype == "application/xml"
    found = servers(response.data)
    assert found[0] == ("incomingServer", "imap", HOST, "993", "SSL")
    assert ("outgoingServer", "smtp", HOST, "465", "SSL") in found
    assert ("outgoingServer", "smtp", HOST, "587", "STARTTLS") in found
    assert ("incomingServer", "pop3", HOST, "995", "SSL") in found
    root = ET.fromstring(response.data)
    assert {u.text for u in root.iter("username")} == {"%EMAILADDRESS%"}


def test_autoconfig_by_host(client: FlaskClient) -> None:
    response = client.get("/mail/config-v1.1.xml", headers={"Host": "autoconfig.example.test"})
    assert response.status_code == 200
    assert servers(response.data)
    response = client.get(AUTOCONFIG, headers={"Host": "example.test"})
    assert response.status_code == 200


def test_autoconfig_unknown_or_bad_is_404(client: FlaskClient) -> None:
    for query in ("bob@other.test", "not an address", "x@" + "a" * 300, "<b>@example.test"):
        assert client.get(AUTOCONFIG, query_string={"emailaddress": query}
                          ).status_code == 404, query
    for host in ("autoconfig.other.test", "localhost", "[::1]:8080"):
        assert client.get("/mail/config-v1.1.xml", headers={"Host": host}
                          ).status_code == 404, host


def request_xml(address: str) -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="{REQUEST_NS}">'
            f"<Request><EMailAddress>{address}</EMailAddress><AcceptableResponseSchema>"
            f"{OUTLOOK_NS}</AcceptableResponseSchema></Request></Autodiscover>").encode()


def protocols(xml: bytes) -> dict[str, dict[str, str]]:
    root = ET.fromstring(xml)
    assert root.tag == f"{{{RESPONSE_NS}}}Autodiscover"
    account = root.find(f"{{{OUTLOOK_NS}}}Response/{{{OUTLOOK_NS}}}Account")
    assert account is not None
    assert account.findtext(f"{{{OUTLOOK_NS}}}Action") == "settings"
    return {p.findtext(f"{{{OUTLOOK_NS}}}Type", ""): {c.tag.split("}")[1]: c.text or ""
                                                       for c in p}
            for p in account.findall(f"{{{OUTLOOK_NS}}}Protocol")}


def test_autodiscover_request_and_response(client: FlaskClient) -> None:
    for path in ("/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml"):
        response = client.post(path, data=request_xml(USER), content_type="text/xml")
        assert response.status_code == 200, response.data
        found = protocols(response.data)
        assert found["IMAP"]["Server"] == HOST
        assert found["IMAP"]["Port"] == "993"
        assert found["IMAP"]["SSL"] == "on"
        assert found["SMTP"]["Port"] == "465"
        assert {p["LoginName"] for p in found.values()} == {USER}


def test_autodiscover_escapes_what_it_echoes(client: FlaskClient) -> None:
    odd = '"a&lt;b&gt;c"@example.test'          # the local part is "a<b>c" (quoted)
    response = client.post("/autodiscover/autodiscover.xml", data=request_xml(odd))
    assert response.status_code == 200
    assert b"<b>" not in response.data
    assert protocols(response.data)["IMAP"]["LoginName"] == '"a<b>c"@example.test'


def test_autodiscover_refuses_hostile_input(client: FlaskClient) -> None:
    path = "/autodiscover/autodiscover.xml"
    assert client.post(path, data=request_xml("bob@other.test")).status_code == 404
    assert client.post(path, data=b"<Autodiscover><Request>").status_code == 400
    assert client.post(path, data=b"").status_code == 400
    assert client.post(path, data=b"<Autodiscover/>").status_code == 400
    laughs = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
              b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
              b"<Autodiscover><Request><EMailAddress>&lol2;</EMailAddress></Request>"
              b"</Autodiscover>")
    assert client.post(path, data=laughs).status_code == 400
    external = (b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">'
                b"]><Autodiscover><Request><EMailAddress>&x;</EMailAddress></Request>"
                b"</Autodiscover>")
    assert client.post(path, data=external).status_code == 400
    huge = request_xml(USER) + b" " * (20 * 1024)
    assert client.post(path, data=huge).status_code == 413


def test_mobileconfig_for_the_logged_in_user(user_client: FlaskClient) -> None:
    response = user_client.get("/clients/apple.mobileconfig")
    assert response.status_code == 200
    assert response.mimetype == "application/x-apple-aspen-config"
    assert "attachment" in response.headers["Content-Disposition"]
    profile = plistlib.loads(response.data)
    assert profile["PayloadType"] == "Configuration"
    (account,) = profile["PayloadContent"]
    assert account["PayloadType"] == "com.apple.mail.managed"
    assert account["EmailAddress"] == USER
    assert account["IncomingMailServerHostName"] == HOST
    assert account["IncomingMailServerPortNumber"] == 993
    assert account["OutgoingMailServerPortNumber"] == 465
    assert not [k for k in account if "Password" in k and k != (
        "OutgoingPasswordSameAsIncomingPassword")]
    again = plistlib.loads(user_client.get("/clients/apple.mobileconfig").data)
    assert again["PayloadUUID"] == profile["PayloadUUID"]     # replaces, not duplicates
    page = user_client.get("/clients")
    assert page.status_code == 200
    assert HOST in page.get_data(as_text=True)


def test_mobileconfig_for_admins_and_visitors(admin_client: FlaskClient,
                                              client: FlaskClient) -> None:
    response = admin_client.get("/clients/apple.mobileconfig", query_string={"address": USER})
    assert plistlib.loads(response.data)["PayloadContent"][0]["EmailAddress"] == USER
    for address in ("nobody@example.test", "x@other.test", ""):
        assert admin_client.get("/clients/apple.mobileconfig",
                                query_string={"address": address}).status_code == 404
    assert client.get("/clients/apple.mobileconfig").status_code == 302


def test_public_endpoints_answer_the_internet_over_plain_http(client: FlaskClient) -> None:
    """Mail clients and sending MTAs fetch these from anywhere, Thunderbird also over HTTP:
    they are `@security.public`, while the console's own pages stay LAN/HTTPS only."""
    client.environ_base["REMOTE_ADDR"] = "203.0.113.7"
    assert client.get("/login").status_code == 403
    response = client.get(AUTOCONFIG, query_string={"emailaddress": USER})
    assert response.status_code == 200
    assert servers(response.data)
    response = client.post("/autodiscover/autodiscover.xml", data=request_xml(USER),
                           content_type="text/xml")
    assert response.status_code == 200
    assert protocols(response.data)
    policy = client.get("/.well-known/mta-sts.txt", headers={"Host": "mta-sts.example.test"})
    assert policy.status_code == 200
    assert b"version: STSv1" in policy.data
