"""The FPGA target: IR -> plan -> Amaranth accelerator -> Verilog, test bench and cycle report.

A thin orchestrator: planning lives in `hwgen.fpga`, hardware in `hwgen.hdl`, simulation in
`hwgen.sim.rtl`. `emit` writes OUT/fpga/:

* `<top>.v`: the Verilog (Amaranth's builtin Yosys: the same model and options give the same text);
* `manifest.json`: ports, data layout, the plan (engines, folds, lanes, memory placement),
  expected cycles and the Verilog's sha256 (what `hwgen synth` checks it synthesizes);
* `resources.json` (with --device): the resource estimate the folding was chosen by;
* `report.json`, `report.txt`: cycle accounting (modelled; measured too with --measure);
* `accelerator.py`: the Amaranth top, importable into a user's design;
* `test_accelerator.py`: `pytest OUT/fpga` re-verifies the Verilog against the golden model.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import golden, irjson
from ..compiler import Compiled
from ..errors import InvalidOptionError, ToolchainError
from ..fpga.fit import Fit, fit_budget, fit_device, resources_text
from ..fpga.folding import DEFAULT_MULTIPLIERS
from ..fpga.manifest import load_plan, manifest
from ..fpga.plan import Plan, make_plan
from ..fpga.report import CycleReport, Measured, cycle_report, report_from_json
from ..ir import Graph
from ..outdir import read_json, reading, update_files
from ..render import render

__all__ = ["add_arguments", "emit", "run_core", "register_commands", "describe", "load_output", "build_accelerator"]

log = logging.getLogger("hwgen.fpga")

MEASURE_SAMPLES = 4  # inferences back to back for --measure (the steady state shows from the second)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("FPGA target (--target fpga / --backend rtl)")
    group.add_argument("--multipliers", dest="fpga_multipliers", type=int, default=argparse.SUPPRESS, metavar="N",
                       help=f"multiplier budget the layers share, balanced so every engine takes about the same "
                            f"cycles (default: {DEFAULT_MULTIPLIERS}, the iCE40 UP5K's DSPs)")
    group.add_argument("--fold", dest="fpga_folds", action="append", default=argparse.SUPPRESS, metavar="LAYER=PE,SIMD",
                       help="give LAYER (node name or identifier) its own engine of PE output channels x SIMD "
                            "inputs in parallel (repeatable; PE must divide Cout, SIMD the fan-in K)")
    group.add_argument("--device", dest="fpga_device", default=argparse.SUPPRESS, choices=_device_names(),
                       help="fit the accelerator to this FPGA: the fastest folding whose estimated DSPs, block RAM "
                            "and logic fit it (with --multipliers N: that budget, checked against the device)")
    group.add_argument("--measure", dest="fpga_measure", action="store_true",
                       help="compile: also measure latency, interval and busy cycles in Verilator")


def _device_names() -> list[str]:
    from ..synth.devices import DEVICES

    return list(DEVICES)


# -- building blocks shared by emit, run_core, sim and the generated test bench ---------------


def _fit(compiled_graph: Graph, args: argparse.Namespace) -> Fit | None:
    """The device fit when --device is given (None otherwise)."""
    device = getattr(args, "fpga_device", None)
    if device is None:
        return None
    folds = getattr(args, "fpga_folds", [])
    budget = getattr(args, "fpga_multipliers", None)
    return fit_budget(compiled_graph, device, budget, folds) if budget is not None else \
        fit_device(compiled_graph, device, folds)


def _plan(compiled_graph: Graph, args: argparse.Namespace, fit: Fit | None = None) -> Plan:
    fit = fit or _fit(compiled_graph, args)
    if fit is not None:
        return fit.plan
    return make_plan(compiled_graph, budget=getattr(args, "fpga_multipliers", None),
                     folds=getattr(args, "fpga_folds", []))


def to_verilog(graph: Graph, plan: Plan) -> str:
    from amaranth.back import verilog

    from ..hdl import Accelerator, Standalone

    os.environ["AMARANTH_USE_YOSYS"] = "builtin"  # the bundled Yosys: reproducible text
    return verilog.convert(Standalone(Accelerator(graph, plan)), name=plan.top, emit_src=False)


def _stderr_progress(prefix: str):
    def show(message: str) -> None:
        print(f"hwgen: {prefix}: {message}", file=sys.stderr, flush=True)
    return show


def build_accelerator(graph: Graph, plan: Plan, verilog: str, *, trace: bool = False, progress=None,
                      cache_dir: Path | None = None):
    from ..hdl import perf_counters
    from ..sim.rtl import RtlAccelerator

    x, y = graph.tensor(graph.inputs[0]), graph.tensor(graph.outputs[0])
    return RtlAccelerator.build(
        verilog, plan.top, trace=trace, progress=progress, cache_dir=cache_dir, in_type=x.dtype,
        in_lanes=plan.input_lanes,
        in_shape=x.shape, out_type=y.dtype, out_lanes=plan.output_lanes, out_shape=y.shape,
        counter_names=[f"{c.kind}:{c.name}" for c in perf_counters(plan)], expected_interval=plan.interval)


@dataclass
class Output:
    """A compiled OUT directory, loaded: its IR, plan, report and (built on demand) accelerator."""

    root: Path
    graph: Graph
    plan: Plan
    manifest: dict
    trace: bool = False
    progress: object = None
    _accelerator: object = None

    @property
    def fpga(self) -> Path:
        return self.root / "fpga"

    @property
    def verilog(self) -> Path:
        return self.fpga / self.manifest["verilog"]

    @property
    def accelerator(self):
        if self._accelerator is None:
            self._accelerator = build_accelerator(self.graph, self.plan, self.verilog.read_text(), trace=self.trace,
                                                  progress=self.progress)
        return self._accelerator


def load_output(root: str | Path, *, trace: bool = False, progress=None) -> Output:
    root = Path(root)
    manifest_file = root / "fpga" / "manifest.json"
    if not manifest_file.is_file():
        raise InvalidOptionError(f"{root}: no fpga/manifest.json (compile with --target fpga)")
    data = read_json(manifest_file)
    with reading(manifest_file):
        plan = load_plan(data)
    return Output(root, irjson.load(root / "ir.json"), plan, data, trace, progress)


def _require_verilator() -> None:
    if shutil.which("verilator") is None:
        raise ToolchainError("verilator not found on PATH (install Debian's 'verilator' package, 5.006 or newer)")


def measure(graph: Graph, accelerator, x: np.ndarray) -> tuple[Measured, dict[str, float], object]:
    """Latency of one inference alone, then interval and busy cycles of `x` back to back.

    (The timing does not depend on the data: every schedule is fixed at compile time.)
    """
    alone = accelerator.run(x[:1])
    run = accelerator.run(x)
    counters = {name: value / len(x) for name, value in run.counters.items()}
    return Measured(len(x), alone.latency, run.interval, run.cycles_per_second), counters, run


def _measure(graph: Graph, accelerator, report: CycleReport, samples: int = MEASURE_SAMPLES) -> CycleReport:
    x = np.full((samples, *graph.tensor(graph.inputs[0]).shape), graph.tensor(graph.inputs[0]).zero_point)
    measured, counters, _ = measure(graph, accelerator, x)
    return report.with_measurement(measured, counters)


# -- the backend protocol ----------------------------------------------------------------------


def _class_name(top: str) -> str:
    return "".join(part.capitalize() for part in top.split("_") if part) or "Accelerator"


def emit(compiled: Compiled, out_dir: Path, args: argparse.Namespace) -> None:
    from ..hdl import perf_counters
    from ..hdl.accelerator import engine_programs

    graph = compiled.graph
    fit = _fit(graph, args)
    plan = _plan(graph, args, fit)
    if fit is not None:
        print(f"hwgen: fpga: {fit.summary()}", file=sys.stderr)
    verilog = to_verilog(graph, plan)
    fpga = Path(out_dir) / "fpga"
    fpga.mkdir(parents=True, exist_ok=True)
    verilog_file = f"{plan.top}.v"
    (fpga / verilog_file).write_text(verilog)
    counters = perf_counters(plan)
    version = importlib.metadata.version("amaranth")
    data = manifest(graph, plan, counters, verilog_file, version)
    data["verilog_sha256"] = hashlib.sha256(verilog.encode()).hexdigest()
    if fit is not None:
        data["device"] = fit.device.name
    (fpga / "manifest.json").write_text(json.dumps(data, indent=1) + "\n")
    if fit is not None:
        (fpga / "resources.json").write_text(json.dumps(fit.to_json(), indent=1) + "\n")
    report = cycle_report(graph, plan, engine_programs(graph, plan))
    if getattr(args, "fpga_measure", False):
        _require_verilator()
        report = _measure(graph, build_accelerator(graph, plan, verilog, progress=_stderr_progress("fpga")), report)
    _write_report(fpga, report)
    x, y = graph.tensor(graph.inputs[0]), graph.tensor(graph.outputs[0])
    context = dict(
        version=importlib.metadata.version("hwgen"), model_name=graph.name, top=plan.top,
        class_name=_class_name(plan.top), verilog_file=verilog_file, fpga_dir="OUT/fpga",
        in_desc=f"{x.dtype}{list(x.shape)}, {plan.input_lanes} per word",
        out_desc=f"{y.dtype}{list(y.shape)}, {plan.output_lanes} per word",
        seeds=[0, 1], batch=3)
    (fpga / "accelerator.py").write_text(render("fpga", "accelerator.py.j2", context))
    (fpga / "test_accelerator.py").write_text(render("fpga", "test_accelerator.py.j2", context))


def _report_files(report: CycleReport) -> dict[str, str]:
    return {"report.json": json.dumps(report.to_json(), indent=1) + "\n", "report.txt": report.to_text() + "\n"}


def _write_report(fpga: Path, report: CycleReport) -> None:
    for name, text in _report_files(report).items():
        (fpga / name).write_text(text)


def run_core(compiled: Compiled, inputs: dict[str, np.ndarray], args: argparse.Namespace) -> dict[str, np.ndarray]:
    _require_verilator()
    graph = compiled.graph
    plan = _plan(graph, args)
    progress = _stderr_progress("rtl")
    accelerator = build_accelerator(graph, plan, to_verilog(graph, plan), progress=progress)
    run = accelerator.run(inputs[graph.inputs[0]], progress=progress)
    _print_cycles(run, len(inputs[graph.inputs[0]]), plan)
    return {graph.outputs[0]: run.outputs}


def _print_cycles(run, samples: int, plan: Plan, prefix: str = "rtl") -> None:
    interval = "" if run.interval is None else f", interval {run.interval:,.1f} cycles/inference"
    print(f"hwgen: {prefix}: {samples} inference(s) in {run.cycles:,} cycles: first result after {run.latency:,} "
          f"cycles{interval} (model: {plan.interval:,}); {run.cycles_per_second / 1e6:.1f} M cycles/s",
          file=sys.stderr)


# -- hwgen sim OUT ------------------------------------------------------------------------------


def register_commands(subparsers) -> None:
    p = subparsers.add_parser("sim", help="simulate a compiled FPGA accelerator in Verilator against the golden "
                                          "model", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("out", type=Path, metavar="OUT", help="a directory written by hwgen compile --target fpga")
    p.add_argument("--input", type=Path, required=True, metavar="X.npy",
                   help="input array (.npy) in the model's ONNX layout, or arrays named as its inputs (.npz)")
    p.add_argument("--trace", type=Path, default=None, metavar="OUT.fst", help="write an FST waveform")
    p.add_argument("--stall", type=float, default=0.0, metavar="P",
                   help="stall both streams at random with probability P (0 <= P < 1)")
    p.set_defaults(func=cmd_sim)


def cmd_sim(args: argparse.Namespace) -> int:
    from ..arrays import load_inputs

    if not 0.0 <= args.stall < 1.0:
        raise InvalidOptionError(f"--stall must be in [0, 1), not {args.stall}")
    _require_verilator()
    progress = _stderr_progress("sim")
    out = load_output(args.out, trace=args.trace is not None, progress=progress)
    graph = out.graph
    feeds = load_inputs(args.input, graph)
    captured = {}

    def core(inputs):
        run = out.accelerator.run(inputs[graph.inputs[0]], stall_prob=args.stall, trace_path=args.trace,
                                  progress=progress)
        captured["run"], captured["inputs"] = run, inputs
        return {graph.outputs[0]: run.outputs}

    rtl = golden.run_model(graph, feeds, core=core)
    run, inputs = captured["run"], captured["inputs"]
    expected = golden.run_graph(graph, inputs)[graph.outputs[0]]
    samples = len(inputs[graph.inputs[0]])
    _print_cycles(run, samples, out.plan, "sim")
    for name, y in rtl.items():
        print(f"{name}: {np.array2string(y, threshold=64)}")
    if not np.array_equal(run.outputs, expected):
        bad = int(np.count_nonzero(run.outputs != expected))
        print(f"hwgen: sim: MISMATCH: {bad} of {expected.size} outputs differ from the golden model", file=sys.stderr)
        return 1
    print(f"hwgen: sim: {samples} inference(s) equal to the golden model, bit for bit", file=sys.stderr)
    if args.stall == 0.0 and args.trace is None:
        with reading(out.fpga / "report.json"):
            report = report_from_json(read_json(out.fpga / "report.json"))
        measured, counters, _ = measure(graph, out.accelerator, inputs[graph.inputs[0]])
        update_files(out.root, {f"fpga/{name}": text.encode()
                                for name, text in _report_files(report.with_measurement(measured, counters)).items()})
    return 0


def describe(out_dir: str | Path) -> str | None:
    """The cycle report of a compiled accelerator (None if OUT has no fpga/ output)."""
    path = Path(out_dir) / "fpga" / "report.json"
    if not path.is_file():
        return None
    with reading(path):
        text = report_from_json(read_json(path)).to_text()
    resources = path.parent / "resources.json"
    if resources.is_file():
        with reading(resources):
            text += "\n" + resources_text(read_json(resources))
    return text
