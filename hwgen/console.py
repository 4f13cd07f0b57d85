"""What the `hwgen` command prints: safe text, one logger hierarchy, one line per error.

* Everything written to stdout and stderr while a command runs passes `names.terminal`: names
  from an ONNX file cannot move the cursor, clear the screen or reorder a line.
* The `hwgen` logger (and its children `hwgen.fpga`, `hwgen.rvv`, ...) prints `hwgen: message`
  lines to the current stderr, once each; `-v` shows info, `-vv` debug.
* `error_line` turns any exception that reaches the command into its one line and exit code.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
from collections.abc import Iterator

from .errors import HwgenError
from .logs import NOTICE
from .names import terminal

__all__ = ["safe_output", "configure_logging", "error_line", "silence_broken_stdout", "EXIT_BROKEN_PIPE",
           "EXIT_INTERNAL", "one_line"]

#: What a Unix tool killed by SIGPIPE reports (128 + 13).
EXIT_BROKEN_PIPE = 141
#: sysexits.h's EX_SOFTWARE: a bug in hwgen, not the user's input.
EXIT_INTERNAL = 70


class _SafeStream:
    """A text stream that shows control characters as escapes (newlines and tabs pass)."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(terminal(text, newlines=True))
        return len(text)

    def __getattr__(self, name):  # flush, fileno, isatty, encoding, ...
        return getattr(self._stream, name)


@contextlib.contextmanager
def safe_output() -> Iterator[None]:
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _SafeStream(out), _SafeStream(err)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err


class _CurrentStderr(logging.Handler):
    """Writes each record to whatever sys.stderr is when it arrives (a test's capture, a pipe)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def configure_logging(verbosity: int) -> None:
    """The `hwgen` logger prints its records (and its children's) once: NOTICE and above by
    default, INFO with -v, DEBUG with -vv."""
    logger = logging.getLogger("hwgen")
    for handler in [h for h in logger.handlers if isinstance(h, _CurrentStderr)]:
        logger.removeHandler(handler)
    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter("hwgen: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel({0: NOTICE, 1: logging.INFO}.get(verbosity, logging.DEBUG))
    logger.propagate = False


def error_line(exc: BaseException) -> tuple[str, int]:
    """The one line (without 'hwgen: ') and exit code an exception ends a command with."""
    if isinstance(exc, HwgenError):
        return f"error: {exc}", exc.exit_code
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename is not None else ""
        reason = exc.strerror or str(exc)
        if exc.errno == errno.ENOSPC:
            reason = "no space left on the device"
        return f"error: {where}{reason}", 2
    if isinstance(exc, MemoryError):
        return "error: out of memory (try fewer samples, or a machine with more memory)", 2
    if isinstance(exc, RecursionError):
        return "error: the model is too deeply nested to process", 2
    return (f"internal error: {type(exc).__name__}: {exc}; this is a bug in hwgen, please report it "
            "(run with -vv to see where it happened)", EXIT_INTERNAL)


def one_line(text: str) -> str:
    return terminal(str(text)).strip()


def silence_broken_stdout() -> None:
    """After EPIPE on stdout (`hwgen report ... | head`): point stdout at /dev/null so the
    interpreter's final flush does not complain, as a Unix tool that got SIGPIPE stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
