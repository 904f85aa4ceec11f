"""The pure parts of appliance/tls/acme_client.py: which names to order, the settings'
validators, the challenge token rule, reading certificates and the renewal decision."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from appliance.settings import SettingsError, load_settings, render_toml
from appliance.tls import acme_client, acme_settings
from appliance.tls.acme_client import CertInfo, certificate_names, needs_renewal
from appliance.tls.certs import make_self_signed
from peers.ca import TestCA

NOW = datetime.datetime(2026, 11, 27, 12, 0, tzinfo=datetime.UTC)
TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"    # RFC 8555 8.3's example


def _dns(table: dict[str, set[str]]) -> Callable[[str], set[str]]:
    return lambda name: table.get(name, set())


def test_names_are_the_host_and_the_service_names_that_point_here() -> None:
    table = {"mail.a.test": {"192.0.2.1"}, "mta-sts.a.test": {"192.0.2.1"},
             "autoconfig.a.test": {"198.51.100.9"},           # elsewhere
             "mta-sts.b.test": {"2001:db8::1"}, "autoconfig.b.test": {"192.0.2.1"}}
    names = certificate_names("mail.a.test", ["b.test", "a.test", "c.test"], _dns(table))
    assert names == ["mail.a.test", "mta-sts.a.test", "autoconfig.b.test"]


def test_a_configured_public_address_counts_as_here() -> None:
    table = {"mta-sts.a.test": {"2001:db8::1"}}
    assert certificate_names("mail.a.test", ["a.test"], _dns(table)) == ["mail.a.test"]
    assert certificate_names("mail.a.test", ["a.test"], _dns(table),
                             public=["", "2001:db8::1"]) == ["mail.a.test", "mta-sts.a.test"]


def test_no_duplicate_when_the_host_is_a_service_name() -> None:
    table = {"mta-sts.a.test": {"192.0.2.1"}}
    names = certificate_names("mta-sts.a.test", ["a.test", "a.test"], _dns(table))
    assert names == ["mta-sts.a.test"]


def test_host_name_alone_when_nothing_resolves() -> None:
    assert certificate_names("mail.a.test", ["a.test"], _dns({})) == ["mail.a.test"]


@pytest.mark.parametrize("url", ["https://acme-v02.api.letsencrypt.org/directory",
                                 "https://127.0.0.1:14000/dir"])
def test_directory_url_accepted(url: str) -> None:
    assert acme_settings.parse_directory_url(url) == url


@pytest.mark.parametrize("url", ["http://acme.test/dir", "acme.test/dir", "https:///dir", "",
                                 "ftp://acme.test/"])
def test_directory_url_refused(url: str) -> None:
    with pytest.raises(ValueError, match="https://"):
        acme_settings.parse_directory_url(url)


def test_contact_is_empty_or_an_address() -> None:
    assert acme_settings.parse_contact("") == ""
    assert acme_settings.parse_contact(" Admin@Example.TEST ") == "Admin@example.test"
    for bad in ("not an address", "a@", "@b.test", "x" * 300 + "@b.test"):
        with pytest.raises(ValueError, match="not an email address"):
            acme_settings.parse_contact(bad)


def test_settings_schema_uses_the_validators(tmp_path: Path) -> None:
    config = tmp_path / "mailstead.toml"
    config.write_text(render_toml({"tls.acme_directory": "http://acme.test/dir"}))
    with pytest.raises(SettingsError, match=r"tls\.acme_directory.*https:// URL"):
        load_settings(config, environ={})
    config.write_text(render_toml({"tls.acme_email": "nobody"}))
    with pytest.raises(SettingsError, match=r"tls\.acme_email"):
        load_settings(config, environ={})
    defaults = load_settings(None, environ={})
    assert defaults["tls.acme_directory"] == acme_client.LETS_ENCRYPT
    assert defaults["tls.acme_enabled"] is False
    assert defaults["tls.acme_email"] == ""
    assert defaults["tls.acme_ca_file"] == ""


@pytest.mark.parametrize("token", [TOKEN, "A" * 22, "a-b_" * 32])
def test_good_tokens_have_a_path_inside_the_challenge_directory(token: str,
                                                                tmp_path: Path) -> None:
    path = acme_client.challenge_path(tmp_path, token)
    assert path == tmp_path / "acme" / "challenges" / token
    assert acme_client.read_challenge(tmp_path, token) is None      # nothing written
    path.parent.mkdir(parents=True)
    path.write_bytes(b"key.authorization")
    assert acme_client.read_challenge(tmp_path, token) == b"key.authorization"


@pytest.mark.parametrize("token", ["", "short", "A" * 21, "A" * 129, "../../../etc/passwd",
                                   f"{TOKEN}/x", f"{TOKEN}.", f"{TOKEN}=", f"{TOKEN}\n",
                                   "..", f"%2e%2e{TOKEN}", f"{TOKEN[:-1]}é"])
def test_bad_tokens_have_no_path(token: str, tmp_path: Path) -> None:
    assert acme_client.challenge_path(tmp_path, token) is None
    assert acme_client.read_challenge(tmp_path, token) is None


def test_cert_info_of_a_self_signed_certificate(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    make_self_signed("mail.a.test", cert, key)
    info = acme_client.cert_info(cert)
    assert info is not None
    assert info.names == ("mail.a.test", "localhost")
    assert info.issuer == "mail.a.test"
    assert info.self_signed
    assert acme_client.cert_info(tmp_path / "missing.pem") is None
    (tmp_path / "junk.pem").write_text("not a certificate")
    assert acme_client.cert_info(tmp_path / "junk.pem") is None


def _info(days: int, names: tuple[str, ...] = ("mail.a.test",),
          self_signed: bool = False) -> CertInfo:
    return CertInfo(names, NOW + datetime.timedelta(days=days), "Some CA", self_signed)


def test_renewal_decision() -> None:
    wanted = ["mail.a.test"]
    assert needs_renewal(_info(60), wanted, NOW) is None
    assert needs_renewal(_info(30), wanted, NOW) is None            # 30 days left: not yet
    assert needs_renewal(_info(29), wanted, NOW) == "the certificate expires on 2026-12-26"
    assert needs_renewal(_info(-1), wanted, NOW) is not None
    assert needs_renewal(None, wanted, NOW) == "there is no readable certificate"
    assert needs_renewal(_info(60, self_signed=True), wanted, NOW) == (
        "the certificate is self-signed")
    assert needs_renewal(_info(60), [*wanted, "mta-sts.a.test"], NOW) == (
        "the certificate does not cover mta-sts.a.test")


def test_csr_names_and_fresh_key() -> None:
    key, pem = acme_client.make_csr(["mail.a.test", "mta-sts.a.test"])
    csr = x509.load_pem_x509_csr(pem)
    assert csr.is_signature_valid
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["mail.a.test", "mta-sts.a.test"]
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 2048
    assert csr.public_key() == key.public_key()
    other, _ = acme_client.make_csr(["mail.a.test"])
    assert other.public_key() != key.public_key()


def test_account_key_is_made_once_with_mode_0600(tmp_path: Path) -> None:
    first = acme_client.account_key(tmp_path)
    path = tmp_path / acme_client.ACCOUNT_KEY
    assert path.stat().st_mode & 0o777 == 0o600
    again = acme_client.account_key(tmp_path)
    pem = serialization.PublicFormat.SubjectPublicKeyInfo
    assert (first.public_key().public_bytes(serialization.Encoding.PEM, pem)
            == again.public_key().public_bytes(serialization.Encoding.PEM, pem))


def test_a_chain_for_another_key_or_names_is_refused_and_nothing_written(
        tmp_path: Path) -> None:
    config = acme_client.AcmeConfig("https://ca.test/dir", "", tmp_path,
                                    tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem")
    make_self_signed("mail.a.test", config.cert_file, config.key_file)
    before = (config.cert_file.read_bytes(), config.key_file.read_bytes())
    ca = TestCA()
    chain_file, _ = ca.issue(["mail.a.test"], tmp_path / "other", "leaf")   # another key
    key, _ = acme_client.make_csr(["mail.a.test"])
    with pytest.raises(acme_client.AcmeError, match="another key or other names"):
        acme_client._install(config, key, chain_file.read_bytes(), ["mail.a.test"])
    with pytest.raises(acme_client.AcmeError, match="cannot be read"):
        acme_client._install(config, key, b"garbage", ["mail.a.test"])
    assert (config.cert_file.read_bytes(), config.key_file.read_bytes()) == before
