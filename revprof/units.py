"""Byte sizes: parse ``11GiB`` / ``12GB`` / ``512MiB`` and format bytes for people."""

from __future__ import annotations

import re

from revprof.bounds import MAX_MEMORY
from revprof.errors import RevprofError

_UNITS = {
    "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*$")


def parse_bytes(text: str) -> int:
    """Parse a memory size with a unit: ``11GiB``, ``11 GiB``, ``12GB``, ``800MiB``, ``1.5TiB``.

    Raises:
        RevprofError: a missing or unknown unit, no number, or more than
            :data:`revprof.bounds.MAX_MEMORY` (1 PiB).
    """
    match = _PATTERN.match(str(text))
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _UNITS:
        raise RevprofError(f"memory size must be a number with a unit such as 11GiB, 12GB or 800MiB "
                           f"(units: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB); got {text!r}")
    value = float(match.group(1)) * _UNITS[unit]
    if value > MAX_MEMORY:
        raise RevprofError(f"memory size must be at most 1 PiB (1024 TiB, {MAX_MEMORY:,} bytes); "
                           f"got {text!r}")
    return int(value)


def format_bytes(n: int | float) -> str:
    """``format_bytes(3 * 2**30) == '3.00 GiB'``; binary units, three significant digits."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def gib(n: int | float) -> float:
    """Bytes as GiB."""
    return float(n) / 2**30
