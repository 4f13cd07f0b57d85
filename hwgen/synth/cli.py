"""``hwgen synth``: synthesize a compiled accelerator for a device, or build it for a board.

    hwgen synth OUT --device ice40-up5k [--clock 48]   -> OUT/synth/ice40-up5k/report.json, top.bin
    hwgen synth OUT --board icebreaker [--baud 115200] -> OUT/synth/icebreaker/report.json, hwgen_board.bin
    hwgen synth acc.v --top acc --device ecp5-85k      -> synth/ecp5-85k/ beside acc.v (or --output DIR)

``OUT`` is a ``hwgen compile ... --target fpga`` output; :func:`find_accelerator` is the one
place that knows where the FPGA backend leaves its Verilog.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import InvalidOptionError
from ..outdir import OutputDir, read_json, reading
from .devices import DEVICES
from .flow import PLACERS, ROUTERS, SEED, synthesize
from .harness import StreamPorts, stream_ports
from .report import SynthReport

__all__ = ["register_commands", "cmd_synth", "describe", "Accelerator", "find_accelerator"]


@dataclass(frozen=True)
class Accelerator:
    """The Verilog to synthesize, its top module, its stream ports, and (when the FPGA backend
    recorded it) the sha256 of the Verilog that passed co-simulation."""

    verilog: Path
    top: str
    ports: StreamPorts
    verified_sha256: str | None = None


def find_accelerator(out: Path) -> Accelerator:
    """The accelerator in a compile output ``OUT``, from ``OUT/fpga/manifest.json``: its ``top``,
    ``verilog`` file name and payload widths (the FPGA backend's ``ports.i.signals.i__payload``,
    or plain ``in_width`` / ``out_width``), and ``verilog_sha256`` if recorded. Without a
    manifest, the single ``OUT/fpga/*.v``, its top module named as the file."""
    fpga = out / "fpga"
    if not fpga.is_dir():
        raise InvalidOptionError(f"{out}: no fpga/ directory; run `hwgen compile MODEL -o {out} --target fpga` "
                                 "first, or pass a Verilog file with --top")
    manifest = fpga / "manifest.json"
    if manifest.is_file():
        data = read_json(manifest)
        try:
            top = data["top"]
            if "ports" in data:
                widths = (data["ports"]["i"]["signals"]["i__payload"], data["ports"]["o"]["signals"]["o__payload"])
            else:
                widths = (data["in_width"], data["out_width"])
        except KeyError as exc:
            raise InvalidOptionError(f"{manifest}: no {exc.args[0]!r}") from None
        return Accelerator(fpga / data.get("verilog", f"{top}.v"), top, StreamPorts(int(widths[0]), int(widths[1])),
                           data.get("verilog_sha256"))
    files = sorted(fpga.glob("*.v"))
    if len(files) != 1:
        raise InvalidOptionError(f"{fpga}: expected manifest.json or exactly one .v file, found "
                                 f"{[f.name for f in files]}")
    return _verilog_accelerator(files[0], files[0].stem)


def _verilog_accelerator(path: Path, top: str) -> Accelerator:
    try:
        return Accelerator(path, top, stream_ports(path.read_text(), top))
    except ValueError as exc:
        raise InvalidOptionError(f"{path}: {exc}") from None


def register_commands(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``hwgen synth`` to the CLI's subcommands."""
    p = subparsers.add_parser(
        "synth", help="synthesize the FPGA accelerator (yosys + nextpnr) for a device or a board",
        description="Synthesize, place and route the accelerator of a `hwgen compile --target fpga` output "
                    "(or a Verilog file) with yosys and nextpnr, pack a bitstream, and write "
                    "synth/<device or board>/report.json: resources, Fmax and where memories went.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("out", type=Path, metavar="OUT", help="compile output directory, or a Verilog file")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--device", choices=list(DEVICES), help="synthesize for this FPGA (bitstream not for a board)")
    where.add_argument("--board", choices=["icebreaker", "ulx3s-85f"],
                       help="build a programmable bitstream with a UART host bridge for this board")
    p.add_argument("--clock", type=float, default=None, metavar="MHZ",
                   help="timing target for --device (default: the device's, 48 MHz UP5K, 80 MHz ECP5)")
    p.add_argument("--top", default=None, help="top module when OUT is a Verilog file (default: the file's name)")
    p.add_argument("--output", type=Path, default=None, metavar="DIR",
                   help="where products go (default: OUT/synth/<device or board>)")
    p.add_argument("--seed", type=int, default=SEED, help="nextpnr placement seed")
    p.add_argument("--router", choices=ROUTERS, default=ROUTERS[0],
                   help="nextpnr's router for --device (router2 finishes large, congested ECP5 designs sooner)")
    p.add_argument("--placer", choices=PLACERS, default=None,
                   help="nextpnr's placer for --device (default: the device's, heap on iCE40 and static on ECP5)")
    p.add_argument("--baud", type=int, default=115_200, help="UART rate for --board")
    p.add_argument("--fifo-bytes", type=int, default=None, metavar="N",
                   help="RX FIFO of the --board bridge, in bytes (default: 2048); no byte is lost if one input "
                        "tensor fits")
    p.set_defaults(func=cmd_synth)


def _progress(message: str) -> None:
    print(f"hwgen synth: {message}", file=sys.stderr, flush=True)


def cmd_synth(args: argparse.Namespace) -> int:
    if args.out.is_file():
        acc = _verilog_accelerator(args.out, args.top or args.out.stem)
        base = args.out.parent / "synth"
    elif args.out.is_dir():
        acc = find_accelerator(args.out)
        base = args.out / "synth"
    else:
        raise InvalidOptionError(f"{args.out}: no such directory or file")
    if not acc.verilog.is_file():
        raise InvalidOptionError(f"{acc.verilog}: no such Verilog file")
    target = args.device or args.board
    out_dir = OutputDir.prepare(args.output or base / target, what="synthesis directory")
    with out_dir.in_place():
        result = _run(args, acc, out_dir.path)
        report = result.report
        if args.device and args.out.is_dir():
            report = _with_model(report, args.out, args.device)
            report.write(result.report_path)
    print(report.to_text())
    if args.board:
        program = "iceprog" if args.board == "icebreaker" else "openFPGALoader -b ulx3s"
        print(f"  program it: {program} {result.bitstream}; then, at {args.baud} baud 8N1, send each input word "
              f"as {(acc.ports.in_width + 7) // 8} bytes and read each output word as "
              f"{(acc.ports.out_width + 7) // 8} bytes, least significant first, one tensor at a time")
    print(f"wrote {result.report_path}")
    return 0


def _run(args: argparse.Namespace, acc: Accelerator, out_dir: Path):
    if args.board:
        from .board import DEFAULT_FIFO_DEPTH, VerilogAccelerator, build_board
        result = build_board(VerilogAccelerator.from_file(acc.verilog, acc.top, acc.ports), args.board,
                             out_dir=out_dir, baud=args.baud, fifo_depth=args.fifo_bytes or DEFAULT_FIFO_DEPTH,
                             seed=args.seed, verified_sha256=acc.verified_sha256, progress=_progress)
    else:
        result = synthesize(acc.verilog, acc.top, args.device, out_dir=out_dir, clock_mhz=args.clock,
                            seed=args.seed, ports=acc.ports, verified_sha256=acc.verified_sha256, router=args.router,
                            placer=args.placer, progress=_progress)
    return result


def _with_model(report: SynthReport, out: Path, device: str) -> SynthReport:
    """The report with hwgen's resource estimate for the device and the accelerator's interval
    (measured in co-simulation if `hwgen sim` or --measure ran, else the plan's)."""
    from ..backends.fpga import load_output
    from ..fpga.report import report_from_json
    from ..fpga.resources import estimate
    from ..hdl.accelerator import engine_programs

    if not (out / "ir.json").is_file():
        return report
    compiled = load_output(out)
    dev = DEVICES[device]
    fitted_for = compiled.manifest.get("device")
    same_family = fitted_for is not None and DEVICES[fitted_for].family is dev.family
    est = estimate(compiled.graph, compiled.plan, engine_programs(compiled.graph, compiled.plan), dev,
                   placement=None if same_family else {})
    interval = compiled.plan.interval
    cycles = compiled.fpga / "report.json"
    if cycles.is_file():
        with reading(cycles):
            measured = report_from_json(read_json(cycles)).measured
        if measured is not None and measured.interval is not None:
            interval = round(measured.interval)
    return replace(report, estimate={"logic": est.logic, "ff": est.ff, "dsp": est.dsp, "bram": est.bram},
                   interval=interval)


def describe(out: Path) -> str | None:
    """The synthesis reports under ``OUT/synth/``, as text for ``hwgen report OUT`` (None if none)."""
    reports = sorted((out / "synth").glob("*/report.json"))
    return "\n".join(SynthReport.read(path).to_text() for path in reports) or None
