"""The `hwgen` command: parses the command line, runs a subcommand (`hwgen.commands`), and turns
every way it can end into an exit code and, on error, one line."""

from __future__ import annotations

import argparse
import sys

from .commands import COMMANDS
from .commands.options import HelpFormatter
from .console import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERNAL,
    configure_logging,
    error_line,
    one_line,
    safe_output,
    silence_broken_stdout,
)
from .logs import get_logger
from .version import __version__

log = get_logger("cli")


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line that says where the help is, not a page of usage; and -v/-vv
    accepted after the subcommand too."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.prog != "hwgen":  # a subcommand
            self.add_argument("-v", "--verbose", dest="verbose_after", action="count", default=0,
                              help="more logging (-vv for debug)")

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {one_line(message)}; see {self.prog} --help\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hwgen", formatter_class=HelpFormatter,
        description="Compile pruned, quantized ONNX models to bit-exact FPGA accelerators and RISC-V Vector C.")
    parser.add_argument("--version", action="version", version=f"hwgen {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    parser.set_defaults(verbose_after=0)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The `hwgen` command. Every way it ends is an exit code and, on error, one line on stderr."""
    try:
        with safe_output():
            return _main(argv)
    except BrokenPipeError:
        silence_broken_stdout()
        return EXIT_BROKEN_PIPE


def _main(argv: list[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed as one line
        return exc.code if isinstance(exc.code, int) else 2
    configure_logging(args.verbose + args.verbose_after)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("hwgen: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        raise
    except Exception as exc:  # noqa: BLE001 - the one place every failure becomes one line
        line, code = error_line(exc)
        if code == EXIT_INTERNAL:
            log.debug("internal error", exc_info=True)
        print(f"hwgen: {one_line(line)}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
