"""A received IMAP literal's data: small ones as bytes, large ones in a (spooled) file.

The receiver makes these; the grammar reads small ones as strings and hands APPEND's message
data on as is, so a 50 MiB message is never one growing bytes object.
"""

from __future__ import annotations

from typing import IO


class LiteralData:
    """`size` octets of literal data (`binary`: a literal8, RFC 3516)."""

    __slots__ = ("_data", "_file", "binary", "size")

    def __init__(self, size: int, binary: bool = False, data: bytes | None = None,
                 file: IO[bytes] | None = None) -> None:
        self.size, self.binary = size, binary
        self._data, self._file = data, file

    @property
    def in_memory(self) -> bool:
        return self._file is None

    def read(self) -> bytes:
        """All the data (reads the file for a spooled literal)."""
        if self._file is None:
            return self._data or b""
        self._file.seek(0)
        return self._file.read()

    def open(self) -> IO[bytes]:
        """The spooled file, rewound; `ValueError` for an in-memory literal."""
        if self._file is None:
            raise ValueError("literal is held in memory; use read()")
        self._file.seek(0)
        return self._file

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LiteralData):
            return NotImplemented
        return (self.size, self.binary, self.read()) == (other.size, other.binary, other.read())

    def __hash__(self) -> int:
        return hash((self.size, self.binary))

    def __repr__(self) -> str:
        where = "memory" if self._file is None else "file"
        return f"LiteralData(size={self.size}, binary={self.binary}, in {where})"
