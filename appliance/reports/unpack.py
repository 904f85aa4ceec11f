"""Bounded decompression of report attachments: gzip (streamed) and zip (one member).

Report senders compress: Google zips, Microsoft and most others gzip, TLS-RPT is gzip
(RFC 8460 5.3). A small attachment may expand to gigabytes (a "zip bomb"), so nothing here
trusts a size header: output stops one byte past `Limits.max_uncompressed`, and a zip with
more than `Limits.max_zip_members` entries is refused before any is read.
"""

from __future__ import annotations

import io
import zipfile
import zlib

from appliance.reports.model import DEFAULT_LIMITS, Limits, ReportError

GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"
CHUNK = 64 * 1024


def decompress(data: bytes, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """`data` gunzipped or unzipped when it is compressed (by its magic bytes), else as is.

    Raises:
        ReportError: the archive is damaged, encrypted, holds no single report file, or
            expands past the limit.
    """
    if data.startswith(GZIP_MAGIC):
        return gunzip(data, limits.max_uncompressed)
    if data.startswith(ZIP_MAGIC):
        return unzip_one(data, limits)
    if len(data) > limits.max_uncompressed:
        raise ReportError(f"report larger than {limits.max_uncompressed} bytes")
    return data


def gunzip(data: bytes, cap: int) -> bytes:
    """Every gzip member of `data` (RFC 1952 2.2 allows several), at most `cap` bytes."""
    out = bytearray()
    rest = data
    while rest.startswith(GZIP_MAGIC):
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            _inflate(inflater, rest, out, cap)
        except zlib.error as exc:
            raise ReportError(f"damaged gzip data: {exc}") from None
        if not inflater.eof:
            raise ReportError("truncated gzip data")
        rest = inflater.unused_data
    return bytes(out)


def _inflate(inflater: zlib._Decompress, data: bytes, out: bytearray, cap: int) -> None:
    """Feed `data` to `inflater` in chunks, never producing more than `cap` bytes in all."""
    for start in range(0, len(data), CHUNK):
        pending = data[start:start + CHUNK]
        while pending and not inflater.eof:
            out += inflater.decompress(pending, cap + 1 - len(out))
            if len(out) > cap:
                raise ReportError(f"report expands past {cap} bytes")
            pending = inflater.unconsumed_tail
        if inflater.eof:
            return


def unzip_one(data: bytes, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """The one report file inside a zip archive, read with the size cap."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            if len(members) > limits.max_zip_members:
                raise ReportError(f"zip holds {len(members)} entries, more than "
                                  f"{limits.max_zip_members}")
            files = [m for m in members if not m.is_dir()]
            if len(files) != 1:
                raise ReportError(f"zip holds {len(files)} files, not one report")
            with archive.open(files[0]) as member:
                content = member.read(limits.max_uncompressed + 1)
    except ReportError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError,
            RuntimeError, NotImplementedError, ValueError) as exc:
        # RuntimeError: encrypted; NotImplementedError: unknown compression method
        raise ReportError(f"unreadable zip: {type(exc).__name__}: {exc}") from None
    if len(content) > limits.max_uncompressed:
        raise ReportError(f"report expands past {limits.max_uncompressed} bytes")
    return content
