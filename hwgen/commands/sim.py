"""`hwgen sim OUT --input X`: the compiled accelerator in Verilator, against the golden model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .. import golden
from ..arrays import check_output_path, format_outputs, load_inputs, save_outputs
from ..backends.fpga import (
    cycles_line,
    load_output,
    measure,
    progress,
    report_files,
    require_verilator,
    run_core_output,
)
from ..errors import InvalidOptionError
from ..fpga.report import report_from_json
from ..outdir import read_json, reading, update_files
from ..sim.verilator import Trace
from .options import HelpFormatter


def register(sub) -> None:
    p = sub.add_parser("sim", help="simulate a compiled FPGA accelerator in Verilator against the golden model",
                       formatter_class=HelpFormatter)
    p.add_argument("out", type=Path, metavar="OUT", help="a directory written by hwgen compile --target fpga")
    p.add_argument("--input", type=Path, required=True, metavar="X.npy",
                   help="input array (.npy) in the model's ONNX layout, or arrays named as its inputs (.npz)")
    p.add_argument("--trace", type=Path, default=None, metavar="WAVES.fst|.vcd",
                   help="write a waveform: FST, or VCD if the name ends in .vcd")
    p.add_argument("--output", type=Path, default=None, metavar="Y.npy",
                   help="save the outputs (.npy; an .npz of arrays named as the outputs)")
    p.add_argument("--stall", type=float, default=0.0, metavar="P",
                   help="stall both streams at random with probability P (0 <= P < 1)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 0.0 <= args.stall < 1.0:
        raise InvalidOptionError(f"--stall must be in [0, 1), not {args.stall}")
    require_verilator()
    if args.trace is not None and not (args.trace.parent if str(args.trace.parent) else Path(".")).is_dir():
        raise InvalidOptionError(f"{args.trace}: cannot write the waveform: {args.trace.parent} is not a directory")
    show = progress("sim")
    out = load_output(args.out, trace=Trace.for_path(args.trace) if args.trace else None, progress=show)
    graph = out.model
    if args.output is not None:
        check_output_path(args.output, list(graph.model_outputs))
    feeds = load_inputs(args.input, graph)
    captured = {}

    def core(inputs):
        outputs, captured["run"] = run_core_output(out, inputs, stall_prob=args.stall, trace_path=args.trace)
        captured["inputs"] = inputs
        return outputs

    rtl = golden.run_model(graph, feeds, core=core)
    run, inputs = captured["run"], captured["inputs"]
    expected = golden.run_graph(out.graph, inputs)
    samples = len(inputs[graph.inputs[0]])
    show(cycles_line(run, samples, out.plan))
    if args.output is not None:
        save_outputs(args.output, rtl)
    print(format_outputs(rtl, args.output))
    bad = sum(int(np.count_nonzero(run.outputs[name] != y)) for name, y in expected.items())
    if bad:
        total = sum(y.size for y in expected.values())
        print(f"hwgen: sim: MISMATCH: {bad} of {total} outputs differ from the golden model", file=sys.stderr)
        return 1
    print(f"hwgen: sim: {samples} inference(s) equal to the golden model, bit for bit", file=sys.stderr)
    if args.stall == 0.0 and args.trace is None:
        with reading(out.fpga / "report.json"):
            report = report_from_json(read_json(out.fpga / "report.json"))
        measured, counters, _ = measure(out.graph, out.accelerator, inputs[graph.inputs[0]])
        update_files(out.root, {f"fpga/{name}": text.encode()
                                for name, text in report_files(report.with_measurement(measured, counters)).items()})
    return 0
