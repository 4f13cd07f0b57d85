"""``hwgen synth``: synthesize a compiled accelerator for a device, or build it for a board.

    hwgen synth OUT --device ice40-up5k [--clock 48]   -> OUT/synth/ice40-up5k/report.json, top.bin
    hwgen synth OUT --board icebreaker [--baud 115200] -> OUT/synth/icebreaker/report.json, hwgen_board.bin
    hwgen synth acc.v --top acc --device ecp5-85k      -> synth/ecp5-85k/ beside acc.v (or --output DIR)

``OUT`` is a ``hwgen compile ... --target fpga`` output (see `hwgen.synth.accelerator`).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from ..backends.fpga import load_output
from ..devices import DEVICES, DoesNotFitError
from ..errors import InvalidOptionError
from ..fpga.fit import overflows
from ..fpga.plan import engine_programs
from ..fpga.report import report_from_json
from ..fpga.resources import estimate
from ..fpga.seqresources import seq_estimate
from ..fpga.sequential import SeqPlan, program_for
from ..logs import NOTICE, get_logger
from ..outdir import OutputDir, read_json, reading
from ..synth.accelerator import Accelerator, find_accelerator, verilog_accelerator
from ..synth.flow import PLACERS, ROUTERS, SEED, synthesize
from ..synth.host import board_script
from ..synth.pll import PLL_MIN_MHZ
from ..synth.report import SynthReport
from .options import HelpFormatter

log = get_logger("synth")


def register(sub) -> None:
    p = sub.add_parser(
        "synth", help="synthesize the FPGA accelerator (yosys + nextpnr) for a device or a board",
        description="Synthesize, place and route the accelerator of a `hwgen compile --target fpga` output "
                    "(or a Verilog file) with yosys and nextpnr, pack a bitstream, and write "
                    "synth/<device or board>/report.json: resources, Fmax and where memories went.",
        formatter_class=HelpFormatter)
    p.add_argument("out", type=Path, metavar="OUT", help="compile output directory, or a Verilog file")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--device", choices=list(DEVICES), help="synthesize for this FPGA (bitstream not for a board)")
    where.add_argument("--board", choices=["icebreaker", "ulx3s-85f"],
                       help="build a programmable bitstream with a UART host bridge for this board")
    p.add_argument("--clock", type=float, default=None, metavar="MHZ",
                   help="timing target for --device (default: the device's, 48 MHz UP5K, 80 MHz ECP5); with "
                        "--board icebreaker, the design's clock, made by the iCE40 PLL from the board's 12 MHz "
                        "(the fastest it makes at or below MHZ; default: the 12 MHz itself)")
    p.add_argument("--top", default=None, help="top module when OUT is a Verilog file (default: the file's name)")
    p.add_argument("--output", type=Path, default=None, metavar="DIR",
                   help="where products go (default: OUT/synth/<device or board>)")
    p.add_argument("--seed", type=int, default=SEED, help="nextpnr placement seed")
    p.add_argument("--router", choices=ROUTERS, default=ROUTERS[0],
                   help="nextpnr's router for --device (router2 finishes large, congested ECP5 designs sooner)")
    p.add_argument("--placer", choices=PLACERS, default=None,
                   help="nextpnr's placer for --device (default: the device's, heap on iCE40 and static on ECP5)")
    p.add_argument("--baud", type=int, default=115_200, help="UART rate for --board")
    p.add_argument("--no-fit-check", dest="fit_check", action="store_false",
                   help="run the tools even when hwgen's estimate says the accelerator does not fit the device")
    p.add_argument("--fifo-bytes", type=int, default=None, metavar="N",
                   help="RX FIFO of the --board bridge, in bytes (default: 2048); no byte is lost if one input "
                        "tensor fits")
    p.set_defaults(func=run)


def _progress(message: str) -> None:
    log.log(NOTICE, "synth: %s", message)


def run(args: argparse.Namespace) -> int:
    if args.out.is_file():
        acc = verilog_accelerator(args.out, args.top or args.out.stem)
        base = args.out.parent / "synth"
    elif args.out.is_dir():
        acc = find_accelerator(args.out)
        base = args.out / "synth"
    else:
        raise InvalidOptionError(f"{args.out}: no such directory or file")
    if not acc.verilog.is_file():
        raise InvalidOptionError(f"{acc.verilog}: no such Verilog file")
    target = args.device or args.board
    if args.board and acc.flash is not None and args.board != "icebreaker":
        raise InvalidOptionError(f"{args.out}: its weights stream from SPI flash, and only the icebreaker build wires "
                                 "the board's flash; compile with --weights rom for this board")
    device = args.device or _board_device(args.board)
    # hwgen's model of OUT's accelerator (once): for the fit check, and the report of a --device run
    model = _estimate(args.out, device) if args.out.is_dir() and (args.fit_check or args.device) else None
    if model is not None and args.fit_check:
        _check_fit(args.out, model[1], device)
    out_dir = OutputDir.prepare(args.output or base / target, what="synthesis directory")
    with out_dir.in_place():
        result = _run(args, acc, out_dir.path)
        report = result.report
        if args.device and args.out.is_dir():
            if model is not None:
                report = _with_model(report, *model)
            report.write(result.report_path)
        if args.board:
            commands = _program_commands(args.board, acc, result.bitstream)
            script = _write_board_script(args, out_dir.path, commands)
    print(report.to_text())
    if args.board:
        fmax = report.fmax_mhz
        if args.clock is None and args.board == "icebreaker" and fmax is not None and fmax >= PLL_MIN_MHZ:
            print(f"  it runs at the board's 12 MHz and closes at {fmax:.1f} MHz here: --clock {int(0.9 * fmax)} "
                  "would run it faster (the iCE40 PLL; leave a margin, placement changes with the clock)")
        for command in commands:
            print(f"  program: {' '.join(map(str, command))}")
        if acc.flash is not None and acc.flash["lines"] == 4:
            print("  (the weights are read in quad mode: the flash's quad-enable bit must be set)")
        print(f"  then, at {args.baud} baud 8N1, send each input word as {(acc.ports.in_width + 7) // 8} bytes and "
              f"read each output word as {(acc.ports.out_width + 7) // 8} bytes, least significant first, one tensor "
              "at a time" + (f"; or: sh {script} program, then sh {script} run INPUT --check" if script else ""))
    print(f"wrote {result.report_path}")
    return 0


def _program_commands(board: str, acc: Accelerator, bitstream: Path) -> list[list[str | Path]]:
    """The commands that write the bitstream, and a flash design's weights past it, into the board's flash."""
    if board != "icebreaker":
        return [["openFPGALoader", "-b", "ulx3s", bitstream]]
    commands: list[list[str | Path]] = [["iceprog", bitstream]]
    if acc.flash is not None:   # the weights go into the same flash, past the bitstream
        commands.append(["iceprog", "-o", f"{acc.flash['address']:#x}", acc.verilog.parent / acc.flash["image"]])
    return commands


def _write_board_script(args: argparse.Namespace, out_dir: Path, commands) -> Path | None:
    """board.sh (program the board, run inputs on it), when OUT is a compile output and board.sh is
    not a file of the user's."""
    path = out_dir / "board.sh"
    if not args.out.is_dir():
        return None
    if path.exists():   # in_place removed hwgen's earlier one: this one is the user's
        log.warning("synth: %s is not hwgen's: left as it is (no board script written)", path)
        return None
    path.write_text(board_script(args.board, args.out, out_dir, commands, args.baud))
    return path


def _run(args: argparse.Namespace, acc: Accelerator, out_dir: Path):
    if args.board:
        from ..synth.board import DEFAULT_FIFO_DEPTH, VerilogAccelerator, build_board
        result = build_board(VerilogAccelerator.from_file(acc.verilog, acc.top, acc.ports), args.board,
                             out_dir=out_dir, baud=args.baud, fifo_depth=args.fifo_bytes or DEFAULT_FIFO_DEPTH,
                             seed=args.seed, verified_sha256=acc.verified_sha256, progress=_progress,
                             flash_lines=(acc.flash or {}).get("lines", 0), clock_mhz=args.clock)
    else:
        result = synthesize(acc.verilog, acc.top, args.device, out_dir=out_dir, clock_mhz=args.clock,
                            seed=args.seed, ports=acc.ports, verified_sha256=acc.verified_sha256, router=args.router,
                            placer=args.placer, progress=_progress)
    return result


def _estimate(out: Path, device: str):
    """OUT's accelerator and hwgen's resource estimate of it on the device (None without ir.json)."""
    if not (out / "ir.json").is_file():
        return None
    compiled = load_output(out)
    dev = DEVICES[device]
    if isinstance(compiled.plan, SeqPlan):
        return compiled, seq_estimate(program_for(compiled.graph, compiled.plan), dev)
    fitted_for = compiled.manifest.get("device")
    same_family = fitted_for is not None and DEVICES[fitted_for].family is dev.family
    return compiled, estimate(compiled.graph, compiled.plan, engine_programs(compiled.graph, compiled.plan), dev,
                              placement=None if same_family else {})


def _board_device(board: str) -> str:
    from ..synth.board import BOARDS

    return BOARDS[board].device


def _check_fit(out: Path, est, device: str) -> None:
    """Refuse, in seconds rather than after minutes of yosys and nextpnr, an accelerator whose
    estimated DSPs or block RAMs (counted exactly) or logic exceed the device."""
    dev = DEVICES[device]
    found = overflows(est, dev, margin=1.0)
    if found:
        name, need, have = found[0]
        error = DoesNotFitError(dev, name, need, have, " by hwgen's estimate")
        raise InvalidOptionError(f"{out}: {error}; compile with --device {device} for the fastest folding that "
                                 "fits, or a smaller --multipliers (--no-fit-check runs the tools anyway)")


def _with_model(report: SynthReport, compiled, est) -> SynthReport:
    """The report with hwgen's resource estimate for the device and the accelerator's interval
    (measured in co-simulation if `hwgen sim` or --measure ran, else the plan's)."""
    interval = compiled.plan.interval
    cycles = compiled.fpga / "report.json"
    if cycles.is_file():
        with reading(cycles):
            measured = report_from_json(read_json(cycles)).measured
        if measured is not None and measured.interval is not None:
            interval = round(measured.interval)
    return replace(report, estimate={"logic": est.logic, "ff": est.ff, "dsp": est.dsp, "bram": est.bram},
                   interval=interval)
