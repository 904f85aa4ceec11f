"""The virus check: a clamd client speaking INSTREAM over clamd's UNIX socket (or TCP).

Framing and reply parsing are pure functions; `ClamavCheck.check` is the thin asyncio driver
with one timeout around connect, send and receive. clamd itself decodes MIME (`ScanMail`)
and unpacks archives, nested ones included (`ScanArchive`, up to `MaxRecursion`), so the
whole message is sent as it arrived. Protocol: clamd(8) "INSTREAM": `zINSTREAM\\0`, then
chunks each preceded by its length as a 4-byte big-endian integer, then a zero length; the
reply is one NUL-terminated line: `stream: OK`, `stream: NAME FOUND` or `... ERROR`.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from appliance.checks.context import MessageContext
from appliance.checks.result import CheckResult, Verdict
from appliance.settings import Settings
from appliance.smtp import replies

NAME = "clamav"
COMMAND = b"zINSTREAM\x00"
CHUNK_SIZE = 64 * 1024           # well under clamd's default StreamMaxLength (25 MiB)
MAX_REPLY = 4096                 # a clamd reply line is short; more is a protocol error
UNAVAILABLE_HEADER = "X-Virus-Scan: unavailable"
SKIPPED_HEADER = "X-Virus-Scan: skipped, message larger than the scan limit"


@dataclass(frozen=True)
class Scan:
    """What clamd said: `infected` with the signature name, or an error text, or clean."""

    infected: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class ClamdAddress:
    """Where clamd listens: a UNIX socket path, or a TCP host and port."""

    path: str | None = None
    host: str = ""
    port: int = 0


def parse_address(text: str) -> ClamdAddress:
    """`/run/clamav/clamd.ctl` (a socket path) or `HOST:PORT` (`[v6]:PORT` for IPv6).

    Raises:
        ValueError: for anything else.
    """
    if text.startswith("/"):
        return ClamdAddress(path=text)
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not a socket path or HOST:PORT: {text!r}")
    return ClamdAddress(host=host, port=int(port))


def frames(message: bytes, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """The INSTREAM byte stream for `message`: command, length-prefixed chunks, terminator."""
    yield COMMAND
    for start in range(0, len(message), chunk_size):
        chunk = message[start:start + chunk_size]
        yield struct.pack(">I", len(chunk)) + chunk
    yield struct.pack(">I", 0)


def parse_reply(raw: bytes) -> Scan:
    """Interpret clamd's reply to one INSTREAM (the bytes up to its NUL, or all it sent)."""
    line = raw.split(b"\x00", 1)[0].decode("utf-8", "replace").strip()
    if not line:
        return Scan(error="clamd closed the connection without a reply")
    if line.endswith(" ERROR"):      # e.g. "INSTREAM size limit exceeded. ERROR"
        return Scan(error=line)
    source, sep, verdict = line.partition(": ")
    if not sep or source != "stream":       # anything else must not pass for "clean"
        return Scan(error=f"unexpected clamd reply: {line[:200]}")
    if verdict == "OK":
        return Scan()
    if verdict.endswith(" FOUND") and len(verdict) > len(" FOUND"):
        return Scan(infected=verdict[:-len(" FOUND")])
    return Scan(error=f"unexpected clamd reply: {line[:200]}")


def scan_result(scan: Scan, fail_open: bool) -> CheckResult:
    """The check result for what clamd said (STYLE.md 9; the reply stays generic)."""
    if scan.infected is not None:
        return CheckResult(NAME, Verdict.REJECT, replies.POLICY_REJECTED,
                           f"virus found: {scan.infected}")
    if scan.error is None:
        return CheckResult(NAME, Verdict.ACCEPT, reason="clean")
    reason = f"scan unavailable: {scan.error}"
    if fail_open:     # the admin chose delivery over safety: say so in the message
        return CheckResult(NAME, Verdict.TAG, reason=reason, headers=(UNAVAILABLE_HEADER,))
    return CheckResult(NAME, Verdict.TEMPFAIL, replies.POLICY_DEFERRED, reason)


class ClamavCheck:
    """Scan each message with clamd; never raise, never accept silently when clamd fails."""

    name = NAME

    def __init__(self, address: ClamdAddress, *, timeout: float, fail_open: bool,
                 max_scan_size: int) -> None:
        self._address = address
        self._timeout = timeout
        self._fail_open = fail_open
        self._max_scan_size = max_scan_size

    @classmethod
    def from_settings(cls, settings: Settings) -> ClamavCheck:
        return cls(parse_address(settings.get_str("antivirus.clamd_socket")),
                   timeout=settings.get_int("antivirus.timeout"),
                   fail_open=settings.get_bool("antivirus.fail_open"),
                   max_scan_size=settings.get_int("antivirus.max_scan_size"))

    async def check(self, message: bytes, context: MessageContext) -> CheckResult:
        if len(message) > self._max_scan_size:
            return CheckResult(NAME, Verdict.TAG, headers=(SKIPPED_HEADER,),
                               reason=f"not scanned: {len(message)} octets is over "
                                      f"antivirus.max_scan_size ({self._max_scan_size})")
        try:
            scan = await asyncio.wait_for(self._scan(message), self._timeout)
        except TimeoutError:
            scan = Scan(error=f"no reply from clamd within {self._timeout:g}s")
        except OSError as exc:
            scan = Scan(error=f"clamd unreachable: {exc.strerror or exc}")
        return scan_result(scan, self._fail_open)

    async def _scan(self, message: bytes) -> Scan:
        reader, writer = await self._connect()
        cut = False
        try:
            try:
                for frame in frames(message):
                    writer.write(frame)
                    await writer.drain()
            except (BrokenPipeError, ConnectionResetError):
                cut = True     # clamd stops reading past StreamMaxLength; its reply says why
            raw, reset = await _read_reply(reader)
            scan = parse_reply(raw)
        finally:
            writer.close()
        if (cut or reset) and scan.error is not None and "limit" not in scan.error:
            # The reset can discard clamd's reply: say what most likely happened.
            scan = Scan(error="clamd cut the stream off (INSTREAM size limit exceeded?)")
        return scan

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._address.path is not None:
            return await asyncio.open_unix_connection(self._address.path)
        return await asyncio.open_connection(self._address.host, self._address.port)


async def _read_reply(reader: asyncio.StreamReader) -> tuple[bytes, bool]:
    """Read up to the reply's NUL (or end of stream), at most `MAX_REPLY` octets; also
    say whether the connection was reset."""
    raw = b""
    while b"\x00" not in raw and len(raw) < MAX_REPLY:
        try:
            chunk = await reader.read(MAX_REPLY - len(raw))
        except (ConnectionResetError, BrokenPipeError):   # the write's EPIPE, seen again
            return raw, True                                # when the transport closed
        if not chunk:
            break
        raw += chunk
    return raw, False
