"""How much memory hwgen may use, and the check that refuses work that would need more.

Work that scales with the data (golden-model runs, test vectors, input files) is estimated before
anything is allocated; what does not fit the limit is split into smaller pieces where it can be
(samples run in chunks), and refused with one line saying how much it would need where it cannot.
The limit is 2 GiB, or HWGEN_MEMORY_LIMIT (bytes, or with a K/M/G suffix).
"""

from __future__ import annotations

import os
import re

from .errors import ResourceLimitError

__all__ = ["limit", "require", "human"]

DEFAULT_LIMIT = 2 << 30


def limit() -> int:
    text = os.environ.get("HWGEN_MEMORY_LIMIT", "").strip()
    if not text:
        return DEFAULT_LIMIT
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMG]i?B?)?", text, flags=re.I)
    if not m:
        raise ResourceLimitError(f"HWGEN_MEMORY_LIMIT={text!r} is not a size (e.g. 4G, 512M, 1073741824)")
    unit = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[(m.group(2) or "")[:1].upper()]
    return int(float(m.group(1)) * unit)


def human(nbytes: float) -> str:
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if nbytes >= size:
            return f"{nbytes / size:.1f} {unit}"
    return f"{int(nbytes)} bytes"


def require(nbytes: int, what: str) -> None:
    """Refuse `what` if it needs more than the memory limit."""
    if nbytes > limit():
        raise ResourceLimitError(f"{what} needs about {human(nbytes)} of memory, more than hwgen's limit of "
                                 f"{human(limit())} (set HWGEN_MEMORY_LIMIT to allow more)")
