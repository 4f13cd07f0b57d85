"""hwgen's loggers: one hierarchy under `hwgen`, and a NOTICE level for what a user of the command
wants to see by default (a fit's choice, cycles measured, build steps) without -v.

Library code logs and never prints; the `hwgen` command shows NOTICE and above (`-v` adds INFO,
`-vv` DEBUG). A program using the Python API sees them as any other log records.
"""

from __future__ import annotations

import logging

__all__ = ["NOTICE", "get_logger"]

#: Between INFO and WARNING: progress and results the command shows by default.
NOTICE = 25
logging.addLevelName(NOTICE, "NOTICE")


def get_logger(name: str) -> logging.Logger:
    """The logger `hwgen.<name>` (name: "fpga", "rvv.build", ...)."""
    return logging.getLogger(f"hwgen.{name}")
