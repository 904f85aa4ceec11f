"""MTA-STS, the I/O part: the `_mta-sts` TXT lookup, the HTTPS policy fetch, the cache.

`current_policy` is what the transport calls: it follows RFC 8461 5.1 (fetch when the TXT id
changed or the cached policy expired, keep an unexpired cached policy when the TXT record or
the fetch fails). The policy host is resolved through our own resolver, its certificate is
verified against `outbound.ca_file`, redirects are not followed and the body is bounded.
Cached policies are one JSON file per domain under data_dir, written atomically by fsio.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from dataclasses import dataclass
from pathlib import Path

import dns.asyncresolver
import dns.exception
import dns.resolver

from appliance.core import log
from appliance.core.fsio import atomic_write, safe_component
from appliance.outbound.mtasts import (
    MAX_POLICY_BYTES,
    Policy,
    PolicyError,
    needs_fetch,
    parse_policy,
    parse_txt,
    usable,
)
from appliance.outbound.mx import host_addresses
from appliance.tls.contexts import shared_client_context

WELL_KNOWN = "/.well-known/mta-sts.txt"      # RFC 8461 3.3
MAX_HEADER_BYTES = 16 * 1024
MAX_RESPONSE_BYTES = MAX_HEADER_BYTES + 2 * MAX_POLICY_BYTES   # room for chunk framing
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,8})[ \t]*(?:;[^\r\n]*)?")


@dataclass(frozen=True)
class StsConfig:
    """Where and how to fetch policies (from the `outbound.mta_sts*` settings)."""

    port: int
    timeout: float
    ca_file: Path | None
    cache_dir: Path


class PolicyCache:
    """One JSON file per domain: `<cache_dir>/<domain>.json`, replaced atomically."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, domain: str) -> Path:
        return self.directory / f"{safe_component(domain)}.json"

    def load(self, domain: str) -> Policy | None:
        """The cached policy, or None when there is none or it cannot be read."""
        try:
            return Policy.from_json(self._path(domain).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, PolicyError):
            return None

    def save(self, domain: str, policy: Policy) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write(self._path(domain), policy.to_json().encode("utf-8"), mode=0o600)


async def current_policy(domain: str, resolver: dns.asyncresolver.Resolver,
                         config: StsConfig, now: float) -> Policy | None:
    """The MTA-STS policy to apply to `domain` now, or None when it has none."""
    cache = PolicyCache(config.cache_dir)
    cached = cache.load(domain)
    txt_id = await txt_policy_id(domain, resolver)
    if not needs_fetch(cached, txt_id, now):
        return usable(cached, now)
    try:
        text = await fetch_policy_text(domain, resolver, config)
        policy = parse_policy(text, policy_id=txt_id or "", fetched_at=now)
    except (PolicyError, FetchError) as exc:
        log.event("mta_sts_fetch_failed", domain=domain, reason=str(exc),
                  using_cache=usable(cached, now) is not None)
        return usable(cached, now)
    await asyncio.to_thread(_save_quietly, cache, domain, policy)
    log.event("mta_sts_policy", domain=domain, mode=policy.mode.value, id=policy.policy_id,
              max_age=policy.max_age)
    return policy


def _save_quietly(cache: PolicyCache, domain: str, policy: Policy) -> None:
    try:
        cache.save(domain, policy)
    except OSError as exc:     # the policy still applies to this attempt
        log.error("mta_sts_cache_write_failed", exc, domain=domain)


async def txt_policy_id(domain: str, resolver: dns.asyncresolver.Resolver) -> str | None:
    """The id of the `_mta-sts.<domain>` TXT record, or None (absent, invalid, failed)."""
    try:
        answer = await resolver.resolve(f"_mta-sts.{domain}", "TXT", search=False)
    except dns.exception.DNSException:
        return None
    records = [b"".join(rdata.strings).decode("ascii", "replace") for rdata in answer]
    try:
        return parse_txt(records)
    except PolicyError as exc:
        log.event("mta_sts_txt_invalid", domain=domain, reason=str(exc))
        return None


class FetchError(Exception):
    """The policy could not be fetched (connection, TLS, HTTP status, size, type)."""


async def fetch_policy_text(domain: str, resolver: dns.asyncresolver.Resolver,
                            config: StsConfig) -> str:
    """GET https://mta-sts.<domain>/.well-known/mta-sts.txt within `config.timeout`.

    Raises:
        FetchError: no address, no connection, an unverified certificate, a status other
            than 200 (redirects are not followed), a type other than text/plain, or a body
            over 64 KB.
    """
    host = f"mta-sts.{domain}"
    try:
        async with asyncio.timeout(config.timeout):
            raw = await _get(host, resolver, config)
    except TimeoutError:
        raise FetchError(f"fetching from {host} took longer than {config.timeout}s") from None
    except (OSError, ssl.SSLError) as exc:      # e.g. an unreadable outbound.ca_file
        raise FetchError(f"cannot fetch from {host}: {exc}") from exc
    return parse_http_response(raw)


async def _get(host: str, resolver: dns.asyncresolver.Resolver, config: StsConfig) -> bytes:
    found = await host_addresses(host, resolver)
    if not found.addresses:
        raise FetchError(f"no address for {host} ({found.error or 'no A/AAAA record'})")
    context = shared_client_context(verify=True, ca_file=config.ca_file)
    request = (f"GET {WELL_KNOWN} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Mailstead\r\n"
               "Accept: text/plain\r\nConnection: close\r\n\r\n").encode("ascii")
    errors: list[str] = []
    for address in found.addresses:
        try:
            reader, writer = await asyncio.open_connection(
                address, config.port, ssl=context, server_hostname=host)
        except (OSError, ssl.SSLError) as exc:
            errors.append(f"{address}: {exc}")
            continue
        try:
            writer.write(request)
            await writer.drain()
            return await _read_all(reader)
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
    raise FetchError(f"cannot connect to {host}: " + "; ".join(errors))


async def _read_all(reader: asyncio.StreamReader) -> bytes:
    data = bytearray()
    while True:
        try:
            chunk = await reader.read(16 * 1024)
        except (OSError, ssl.SSLError) as exc:
            if data:     # a server that closes without TLS close_notify: judge what came
                return bytes(data)
            raise FetchError(f"connection failed while reading: {exc}") from exc
        if not chunk:
            return bytes(data)
        data += chunk
        if len(data) > MAX_RESPONSE_BYTES:
            raise FetchError(f"response larger than {MAX_RESPONSE_BYTES} octets")


def parse_http_response(raw: bytes) -> str:
    """The body of a complete HTTP/1.x response that must be `200` and `text/plain`.

    Raises:
        FetchError: a malformed response, another status, another type, or too large.
    """
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep or len(head) > MAX_HEADER_BYTES:
        raise FetchError("malformed HTTP response head")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or parts[1] != "200":
        raise FetchError(f"HTTP status {status_line[:60]!r} (only 200 is accepted)")
    headers = _headers(header_lines)
    if not headers.get("content-type", "").lower().startswith("text/plain"):
        raise FetchError("policy is not served as text/plain")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _dechunk(body)
    elif "content-length" in headers:
        length = headers["content-length"]
        if not length.isdigit() or len(body) < int(length):
            raise FetchError("body shorter than its Content-Length")
        body = body[:int(length)]
    if len(body) > MAX_POLICY_BYTES:
        raise FetchError(f"policy larger than {MAX_POLICY_BYTES} octets")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FetchError("policy is not UTF-8") from exc


def _headers(lines: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise FetchError("malformed HTTP header line")
        headers.setdefault(name.lower(), value.strip())
    return headers


def _dechunk(body: bytes) -> bytes:
    """Decode `Transfer-Encoding: chunked` (RFC 9112 7.1); trailers are ignored."""
    out = bytearray()
    while True:
        line, sep, body = body.partition(b"\r\n")
        match = _CHUNK_SIZE.fullmatch(line)
        if not sep or match is None:
            raise FetchError("malformed chunked body")
        size = int(match.group(1), 16)
        if size == 0:
            return bytes(out)
        if len(body) < size + 2 or body[size:size + 2] != b"\r\n":
            raise FetchError("truncated chunked body")
        out += body[:size]
        body = body[size + 2:]
        if len(out) > MAX_POLICY_BYTES:
            raise FetchError(f"policy larger than {MAX_POLICY_BYTES} octets")
