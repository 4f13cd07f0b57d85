"""The `hwgen` subcommands, one module each: its arguments (`register`) and what it does.

They are a thin layer: options become typed options (`options`), and the work is the Python
API's (`hwgen.api`) or the targets'."""

from . import bench, compile, detect, report, run, sim, sweep, synth  # noqa: A004 - the `hwgen compile` command

__all__ = ["COMMANDS"]

#: In the order `hwgen --help` lists them.
COMMANDS = (compile, run, detect, report, sim, synth, bench, sweep)
