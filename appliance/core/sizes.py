"""Parsing sizes written by admins (pure): `512MiB`, `2G`, `1048576`, or a share like `5%`."""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}
_SIZE = re.compile(r"\s*(\d+)\s*([KMGTP]?)(?:I?B)?\s*", re.IGNORECASE)
_PERCENT = re.compile(r"\s*(\d+(?:\.\d+)?)\s*%\s*")


@dataclass(frozen=True)
class SpaceAmount:
    """A number of bytes, or a percentage of a file system's size."""

    bytes: int = 0
    percent: float | None = None

    def of(self, total: int) -> int:
        """The amount in bytes on a file system of `total` bytes."""
        return int(total * self.percent / 100) if self.percent is not None else self.bytes


def parse_space(text: str) -> SpaceAmount:
    """`0`, `1048576`, `500K`, `512MiB`, `2GB`, `1T` (binary units), or `0`-`100%`.

    Raises:
        ValueError: anything else.
    """
    percent = _PERCENT.fullmatch(text)
    if percent:
        value = float(percent.group(1))
        if value > 100:
            raise ValueError(f"{text!r}: a percentage above 100")
        return SpaceAmount(percent=value)
    size = _SIZE.fullmatch(text)
    if not size:
        raise ValueError(f"{text!r}: expected bytes (e.g. 512MiB) or a percentage (e.g. 5%)")
    return SpaceAmount(bytes=int(size.group(1)) * _UNITS[size.group(2).upper()])
