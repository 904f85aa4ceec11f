"""Mail client configuration documents (pure): Thunderbird autoconfig XML, Microsoft
Autodiscover POX request parsing and response, Apple configuration profiles.

All three describe the same servers: IMAP (993 TLS, 143 STARTTLS), POP3 (995, 110) and
submission (465 TLS, 587 STARTTLS), implicit TLS first (RFC 8314 5.1), with the full
address as login name and a password (never inside any document).
"""

from __future__ import annotations

import plistlib
import uuid
import xml.etree.ElementTree as ET  # builds XML only: requests are parsed by defusedxml

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from webui.dns_records import ServerFacts

# Outlook's POX Autodiscover namespaces ([MS-OXDSCLI] 2.2.4).
REQUEST_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
PROFILE_NAMESPACE = uuid.UUID("5d0b1c52-3f7e-4a58-9a0c-6b1f3b2f9d11")   # for uuid5 ids
MAX_ADDRESS_TEXT = 320


class BadRequestXmlError(ValueError):
    """An Autodiscover request that is not well-formed, hostile, or names no address."""


def _text(parent: ET.Element, tag: str, value: str | int) -> ET.Element:
    child = ET.SubElement(parent, tag)
    child.text = str(value)
    return child


def _server(parent: ET.Element, kind: str, protocol: str, host: str, port: int,
            socket_type: str) -> None:
    server = ET.SubElement(parent, kind, type=protocol)
    for tag, value in (("hostname", host), ("port", port), ("socketType", socket_type),
                       ("authentication", "password-cleartext"),
                       ("username", "%EMAILADDRESS%")):
        _text(server, tag, value)


def autoconfig_xml(domain: str, facts: ServerFacts) -> bytes:
    """Thunderbird's clientConfig 1.1 for `domain` (the client fills in %EMAILADDRESS%)."""
    root = ET.Element("clientConfig", version="1.1")
    provider = ET.SubElement(root, "emailProvider", id=domain)
    _text(provider, "domain", domain)
    _text(provider, "displayName", f"{domain} mail")
    _text(provider, "displayShortName", domain)
    host = facts.host
    _server(provider, "incomingServer", "imap", host, facts.port("imaps"), "SSL")
    _server(provider, "incomingServer", "imap", host, facts.port("imap"), "STARTTLS")
    _server(provider, "incomingServer", "pop3", host, facts.port("pop3s"), "SSL")
    _server(provider, "incomingServer", "pop3", host, facts.port("pop3"), "STARTTLS")
    _server(provider, "outgoingServer", "smtp", host, facts.port("submissions"), "SSL")
    _server(provider, "outgoingServer", "smtp", host, facts.port("submission"), "STARTTLS")
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def autodiscover_address(body: bytes) -> str:
    """The EMailAddress of a POX Autodiscover request (parsed with defusedxml: no entity
    expansion, no DTDs, no external references).

    Raises:
        BadRequestXmlError: malformed or hostile XML, or no address in it.
    """
    try:
        root = SafeET.fromstring(body, forbid_dtd=True)
    except (ET.ParseError, DefusedXmlException, ValueError) as exc:
        raise BadRequestXmlError(f"not a well-formed Autodiscover request: {exc}") from None
    found = root.find(f"{{{REQUEST_NS}}}Request/{{{REQUEST_NS}}}EMailAddress")
    if found is None:   # some clients send no namespace
        found = root.find("Request/EMailAddress")
    text = (found.text or "").strip() if found is not None else ""
    if not text or len(text) > MAX_ADDRESS_TEXT:
        raise BadRequestXmlError("the request names no EMailAddress")
    return text


def _protocol(account: ET.Element, kind: str, host: str, port: int, address: str,
              encryption: str) -> None:
    protocol = ET.SubElement(account, "Protocol")
    _text(protocol, "Type", kind)
    _text(protocol, "Server", host)
    _text(protocol, "Port", port)
    _text(protocol, "LoginName", address)
    _text(protocol, "DomainRequired", "off")
    _text(protocol, "SPA", "off")
    if encryption == "SSL":
        _text(protocol, "SSL", "on")
    else:
        _text(protocol, "Encryption", encryption)
    _text(protocol, "AuthRequired", "on")


def autodiscover_xml(address: str, facts: ServerFacts) -> bytes:
    """The POX Autodiscover response ([MS-OXDSCLI] 2.2.4.2) for `address`."""
    root = ET.Element("Autodiscover", xmlns=RESPONSE_NS)
    response = ET.SubElement(root, "Response", xmlns=OUTLOOK_NS)
    account = ET.SubElement(response, "Account")
    _text(account, "AccountType", "email")
    _text(account, "Action", "settings")
    _protocol(account, "IMAP", facts.host, facts.port("imaps"), address, "SSL")
    _protocol(account, "POP3", facts.host, facts.port("pop3s"), address, "SSL")
    _protocol(account, "SMTP", facts.host, facts.port("submissions"), address, "SSL")
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def _identifier(host: str) -> str:
    return ".".join(reversed(host.split("."))) + ".mailstead"


def mobileconfig(address: str, facts: ServerFacts) -> bytes:
    """An Apple configuration profile with one IMAP account (com.apple.mail.managed) for
    `address`; ids are derived from the address, so a new download replaces the old one.
    The device asks for the password."""
    identifier = f"{_identifier(facts.host)}.{uuid.uuid5(PROFILE_NAMESPACE, address)}"
    account = {
        "PayloadType": "com.apple.mail.managed", "PayloadVersion": 1,
        "PayloadIdentifier": f"{identifier}.mail",
        "PayloadUUID": str(uuid.uuid5(PROFILE_NAMESPACE, f"mail:{address}")).upper(),
        "PayloadDisplayName": f"Mail ({address})",
        "EmailAccountDescription": address, "EmailAccountType": "EmailTypeIMAP",
        "EmailAddress": address,
        "IncomingMailServerAuthentication": "EmailAuthPassword",
        "IncomingMailServerHostName": facts.host,
        "IncomingMailServerPortNumber": facts.port("imaps"),
        "IncomingMailServerUseSSL": True, "IncomingMailServerUsername": address,
        "OutgoingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingMailServerHostName": facts.host,
        "OutgoingMailServerPortNumber": facts.port("submissions"),
        "OutgoingMailServerUseSSL": True, "OutgoingMailServerUsername": address,
        "OutgoingPasswordSameAsIncomingPassword": True,
        "PreventMove": False, "PreventAppSheet": False, "SMIMEEnabled": False,
    }
    profile = {
        "PayloadType": "Configuration", "PayloadVersion": 1,
        "PayloadIdentifier": identifier,
        "PayloadUUID": str(uuid.uuid5(PROFILE_NAMESPACE, f"profile:{address}")).upper(),
        "PayloadDisplayName": f"Mail for {address}",
        "PayloadDescription": f"Sets up {address} on {facts.host} (IMAP and SMTP over TLS).",
        "PayloadOrganization": address.rpartition("@")[2],
        "PayloadRemovalDisallowed": False,
        "PayloadContent": [account],
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML)
