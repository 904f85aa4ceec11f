"""Certificates from an ACME CA (RFC 8555) through certbot's `acme` library, HTTP-01 only.

Owns the account key (`acme/account.pem`, EC P-256, 0600), the order for the appliance's
names, the HTTP-01 key authorizations (files in `acme/challenges/` that the console's
`webui/blueprints/acme.py` serves, so any console worker can answer), and writing the new
chain and key over `tls.cert_file`/`tls.key_file`. TLS-ALPN-01 (RFC 8737) is not offered:
it needs whoever holds port 443 to answer with a special certificate, and on the appliance
that is the console's gunicorn, which cannot switch certificates per handshake.
Every failure becomes an `AcmeError` whose text is for the admin; the old files stay.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.exception
import josepy.errors
import requests
from acme import challenges, client, errors, messages
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from josepy.jwa import ES256
from josepy.jwk import JWKEC

from appliance.checks.auth_dns import make_sync_resolver
from appliance.core import log
from appliance.core.fsio import atomic_write
from appliance.settings import Settings

LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
RENEW_BEFORE = datetime.timedelta(days=30)   # Let's Encrypt's advice for 90-day certificates
# The wizard waits for the order inside one console request: stay under gunicorn.conf.py's
# 60-second worker timeout so the admin sees our message, not a killed worker.
ORDER_TIMEOUT = datetime.timedelta(seconds=40)
HTTP_TIMEOUT = 10                              # seconds per request to the CA
ACCOUNT_KEY = Path("acme") / "account.pem"
CHALLENGES = Path("acme") / "challenges"
# RFC 8555 8.3: the token is base64url (no padding) with at least 128 bits of entropy
# (22 characters); 128 is a generous cap that keeps file names short.
TOKEN = re.compile(r"[A-Za-z0-9_-]{22,128}")
SERVICE_PREFIXES = ("mta-sts", "autoconfig")   # per-domain names the console answers


class AcmeError(Exception):
    """Getting a certificate failed; the message says why, in words for the admin."""


@dataclass(frozen=True)
class AcmeConfig:
    """Where the CA is and where our files go (from the `tls.*` settings)."""

    directory_url: str
    email: str
    data_dir: Path
    cert_file: Path
    key_file: Path
    ca_file: Path | None = None      # verifies the directory's HTTPS; None: system CAs

    @classmethod
    def from_settings(cls, current: Settings) -> AcmeConfig:
        ca = current.get_str("tls.acme_ca_file")
        return cls(current.get_str("tls.acme_directory"), current.get_str("tls.acme_email"),
                   current.data_dir, current.data_path("tls.cert_file"),
                   current.data_path("tls.key_file"),
                   current.data_path("tls.acme_ca_file") if ca else None)


@dataclass(frozen=True)
class CertInfo:
    """What the console and the renewal decision need to know about a certificate."""

    names: tuple[str, ...]
    not_after: datetime.datetime
    issuer: str
    self_signed: bool

    def remaining(self, now: datetime.datetime) -> datetime.timedelta:
        return self.not_after - now


def certificate_names(hostname: str, domains: Iterable[str],
                      resolve: Callable[[str], set[str]],
                      public: Iterable[str] = ()) -> list[str]:
    """The names to order: the host name, then `mta-sts.<d>` and `autoconfig.<d>` of each
    local domain whose DNS points here (an address of the host name or a `public` one):
    the CA would refuse the whole order if one name fails its challenge."""
    here = resolve(hostname) | {p for p in public if p}
    names = [hostname]
    for domain in sorted(set(domains)):
        for prefix in SERVICE_PREFIXES:
            name = f"{prefix}.{domain}"
            if name not in names and resolve(name) & here:
                names.append(name)
    return names


def dns_resolver(current: Settings) -> Callable[[str], set[str]]:
    """A lookup of a name's A and AAAA addresses through `outbound.resolver` (none on any
    DNS error: a name that does not resolve is not ordered)."""
    resolver = make_sync_resolver(current.get_str("outbound.resolver"),
                                  float(current.get_int("checks.dns_timeout")))

    def resolve(name: str) -> set[str]:
        found: set[str] = set()
        for rdtype in ("A", "AAAA"):
            try:
                found |= {r.to_text() for r in resolver.resolve(name, rdtype)}
            except dns.exception.DNSException:
                continue
        return found

    return resolve


def wanted_names(current: Settings, domains: Iterable[str]) -> list[str]:
    """`certificate_names` for this box: its host name, local domains, DNS and addresses."""
    public = (current.get_str("dns.public_ipv4"), current.get_str("dns.public_ipv6"))
    return certificate_names(current.get_str("server.hostname"), domains,
                             dns_resolver(current), public)


def challenge_path(data_dir: Path, token: str) -> Path | None:
    """Where the key authorization of `token` lives; None for a token we never write."""
    if not TOKEN.fullmatch(token):
        return None
    return data_dir / CHALLENGES / token


def read_challenge(data_dir: Path, token: str) -> bytes | None:
    """The key authorization the console answers for `token` (RFC 8555 8.3), or None."""
    path = challenge_path(data_dir, token)
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError:
        return None


def cert_info(path: Path) -> CertInfo | None:
    """Names, expiry and issuer of the first certificate in `path` (None if unreadable)."""
    try:
        return _info(x509.load_pem_x509_certificate(path.read_bytes()))
    except (OSError, ValueError):
        return None


def _info(cert: x509.Certificate) -> CertInfo:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = ()
    issuer = cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    return CertInfo(names, cert.not_valid_after_utc,
                    str(issuer[0].value) if issuer else cert.issuer.rfc4514_string(),
                    cert.issuer == cert.subject)


def needs_renewal(info: CertInfo | None, names: Iterable[str],
                  now: datetime.datetime) -> str | None:
    """Why the certificate must be replaced (None: it is a fresh CA one covering `names`)."""
    if info is None:
        return "there is no readable certificate"
    if info.self_signed:
        return "the certificate is self-signed"
    missing = sorted(set(names) - set(info.names))
    if missing:
        return "the certificate does not cover " + ", ".join(missing)
    if info.remaining(now) < RENEW_BEFORE:
        return f"the certificate expires on {info.not_after:%Y-%m-%d}"
    return None


def account_key(data_dir: Path) -> ec.EllipticCurvePrivateKey:
    """The ACME account key (EC P-256, RFC 7518 ES256), made on first use (mode 0600)."""
    path = data_dir / ACCOUNT_KEY
    if path.is_file():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key
    key = ec.generate_private_key(ec.SECP256R1())
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(path, _key_pem(key), mode=0o600)
    return key


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_csr(names: list[str]) -> tuple[rsa.RSAPrivateKey, bytes]:
    """A fresh RSA-2048 key (what every SMTP peer can use; ECDSA-only peers are not the
    problem, RSA-only ones still exist) and a PEM CSR for `names` (first is the CN)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                          critical=False)
           .sign(key, hashes.SHA256()))
    return key, csr.public_bytes(serialization.Encoding.PEM)


def _client(config: AcmeConfig) -> client.ClientV2:
    """A registered client: the directory fetched, our account created or found again."""
    jwk = JWKEC(key=account_key(config.data_dir))
    verify: Any = str(config.ca_file) if config.ca_file else True   # requests' `verify`
    net = client.ClientNetwork(jwk, alg=ES256, verify_ssl=verify,
                               user_agent="mailstead", timeout=HTTP_TIMEOUT)
    acme = client.ClientV2(client.ClientV2.get_directory(config.directory_url, net), net)
    try:
        acme.new_account(messages.NewRegistration.from_data(
            email=config.email or None, terms_of_service_agreed=True))
    except errors.ConflictError as exc:     # RFC 8555 7.3.1: this key has an account
        net.account = messages.RegistrationResource(uri=exc.location,
                                                    body=messages.Registration())
    return acme


def _answer_http01(acme: client.ClientV2, order: messages.OrderResource,
                   data_dir: Path) -> list[Path]:
    """Write each authorization's HTTP-01 key authorization and tell the CA to look."""
    written: list[Path] = []
    for authz in order.authorizations:
        if authz.body.status == messages.STATUS_VALID:
            continue
        challb = next((c for c in authz.body.challenges
                       if isinstance(c.chall, challenges.HTTP01)), None)
        if challb is None:
            raise AcmeError(f"the CA offers no HTTP-01 challenge for "
                            f"{authz.body.identifier.value}")
        response, validation = challb.response_and_validation(acme.net.key)
        path = challenge_path(data_dir, challb.chall.encode("token"))
        if path is None:
            raise AcmeError("the CA sent a challenge token we do not accept")
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write(path, validation.encode("ascii"), mode=0o644)
        written.append(path)
        acme.answer_challenge(challb, response)
    return written


def _failure_text(exc: Exception) -> str:
    """The CA's own words for a failure, which name the URL or DNS name it could not use."""
    if isinstance(exc, errors.ValidationError):
        details = [f"{a.body.identifier.value}: {c.error.detail or c.error.typ}"
                   for a in exc.failed_authzrs for c in a.body.challenges if c.error]
        return "the CA could not validate " + "; ".join(details)
    if isinstance(exc, errors.TimeoutError):
        return "the CA did not finish the order in time"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"the CA's HTTPS certificate is not trusted ({exc})"
    if isinstance(exc, requests.RequestException):
        return f"the CA cannot be reached ({exc})"
    return str(exc) or type(exc).__name__


def issue(config: AcmeConfig, names: list[str]) -> CertInfo:
    """Order a certificate for `names`, answer HTTP-01, and write chain and key (0600).

    Raises:
        AcmeError: anything went wrong; the current certificate and key are untouched.
    """
    written: list[Path] = []
    try:
        acme = _client(config)
        key, csr = make_csr(names)
        order = acme.new_order(csr)
        written = _answer_http01(acme, order, config.data_dir)
        deadline = datetime.datetime.now() + ORDER_TIMEOUT
        chain = acme.poll_and_finalize(order, deadline).fullchain_pem.encode("ascii")
        return _install(config, key, chain, names)
    except AcmeError as exc:
        log.event("tls.acme_failed", names=names, reason=str(exc))
        raise
    except (errors.Error, requests.RequestException, josepy.errors.Error, OSError) as exc:
        text = _failure_text(exc)
        log.event("tls.acme_failed", names=names, reason=text)
        raise AcmeError(text) from exc
    except Exception as exc:     # a library surprise must not take the console down
        log.error("tls.acme_failed", exc, names=names)
        raise AcmeError(f"unexpected error talking to the CA: {exc}") from exc
    finally:
        for path in written:
            path.unlink(missing_ok=True)


def _install(config: AcmeConfig, key: rsa.RSAPrivateKey, chain: bytes,
             names: list[str]) -> CertInfo:
    """Check the chain (our key, every name), then write key and chain, each atomically
    (temp, fsync, rename) with mode 0600. The engine and console read them at start."""
    try:
        leaf = x509.load_pem_x509_certificates(chain)[0]
    except (ValueError, IndexError) as exc:
        raise AcmeError("the CA sent a certificate that cannot be read") from exc
    info = _info(leaf)
    if leaf.public_key() != key.public_key() or not set(names) <= set(info.names):
        raise AcmeError("the CA sent a certificate for another key or other names")
    for path in (config.key_file, config.cert_file):
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(config.key_file, _key_pem(key), mode=0o600)
    atomic_write(config.cert_file, chain, mode=0o600)
    log.event("tls.acme_issued", names=list(info.names), issuer=info.issuer,
              not_after=info.not_after.isoformat())
    return info


@dataclass(frozen=True)
class RenewResult:
    """What `renew_if_due` did: "disabled", "fresh" or "renewed", and why."""

    outcome: str
    reason: str
    info: CertInfo | None


def renew_if_due(current: Settings, domains: Iterable[str],
                 now: datetime.datetime | None = None, force: bool = False) -> RenewResult:
    """The daily job: renew when ACME is on and the certificate is self-signed, misses a
    wanted name, or has less than 30 days left (`force`: renew anyway).

    Raises:
        AcmeError: the renewal failed (the old certificate stays).
    """
    config = AcmeConfig.from_settings(current)
    info = cert_info(config.cert_file)
    if not current.get_bool("tls.acme_enabled"):
        return RenewResult("disabled", "tls.acme_enabled is false", info)
    names = wanted_names(current, domains)
    reason = needs_renewal(info, names, now or datetime.datetime.now(datetime.UTC))
    if reason is None and not force:
        return RenewResult("fresh", f"valid until {info.not_after:%Y-%m-%d}"
                           if info else "", info)
    return RenewResult("renewed", reason or "forced", issue(config, names))
