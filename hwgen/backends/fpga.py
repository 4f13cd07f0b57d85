"""The FPGA target: IR -> plan -> Amaranth accelerator -> Verilog, test bench and cycle report.

A thin orchestrator: planning lives in `hwgen.fpga`, hardware in `hwgen.hdl`, simulation in
`hwgen.sim.rtl`. `emit` makes the files of OUT/fpga/ (in memory):

* `<top>.v`: the Verilog (Amaranth's builtin Yosys: the same model and options give the same text);
* `manifest.json`: ports, data layout, the plan (engines, folds, lanes, memory placement),
  expected cycles and the Verilog's sha256 (what `hwgen synth` checks it synthesizes);
* `resources.json` (with a device): the resource estimate the folding was chosen by;
* `report.json`, `report.txt`: cycle accounting (modelled; measured too with `measure`);
* `accelerator.py`: the Amaranth top, importable into a user's design;
* `test_accelerator.py`: `pytest OUT/fpga` re-verifies the Verilog against the golden model.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.resources
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import irjson
from ..compiler import Compiled
from ..devices import DEVICES
from ..errors import InvalidOptionError, ToolchainError
from ..fpga.arch import Arch
from ..fpga.archfit import SeqFit, choose, fit_sequential
from ..fpga.fit import Fit, default_fit_note, fit_budget, fit_device, resources_text
from ..fpga.hardware import COUNTER_BITS
from ..fpga.manifest import load_plan, manifest
from ..fpga.outputs import HostConcat, assemble, hardware_graph, output_mux
from ..fpga.plan import Plan, engine_programs, make_plan, perf_counters
from ..fpga.report import CycleReport, Measured, cycle_report, report_from_json, sequential_cycle_report
from ..fpga.sequential import (
    FLASH_ADDRESS,
    FLASH_HEADER_BYTES,
    SeqPlan,
    WeightSource,
    cycle_model,
    default_lanes,
    flash_image,
    make_seq_plan,
    program_for,
    seq_perf_counters,
)
from ..ir import Graph
from ..logs import NOTICE, get_logger
from ..outdir import read_json, reading
from ..render import render

__all__ = ["FpgaOptions", "run_core_output",
           "emit", "run_core", "describe", "load_output", "build_accelerator", "to_verilog", "measure",
           "report_files", "cycles_line"]

log = get_logger("fpga")

#: The device a compile without --device is checked against (it is only a note: nothing is refused).
DEFAULT_DEVICE = "ice40-up5k"
MEASURE_SAMPLES = 4  # inferences back to back for `measure` (the steady state shows from the second)


@dataclass(frozen=True)
class FpgaOptions:
    """How the accelerator is folded and checked.

    `device`: fit it to this FPGA (the fastest folding whose estimated resources fit); `multipliers`:
    the multiplier budget the layers share (with a device: that budget, checked against it);
    `folds`: `LAYER=PE,SIMD` engines of their own; `measure`: also measure latency, interval and
    busy cycles in Verilator; `arch`: the architecture (None: the dataflow, or with a device, the
    one of the two that fit with the higher estimated inferences/s; the sequential engine's MAC
    array is L x L with L = floor(sqrt(multipliers)), 4 by default, or what fits the device);
    `weights`: where the sequential engine's weight stream comes from (None: a ROM, or with a device,
    a ROM if it fits, else QSPI flash holding OUT/fpga/weights.bin at `flash_address`).
    """

    device: str | None = None
    multipliers: int | None = None
    folds: tuple[str, ...] = ()
    measure: bool = False
    arch: Arch | None = None
    weights: WeightSource | None = None
    flash_address: int = FLASH_ADDRESS

    def __post_init__(self):
        for name, kind in (("arch", Arch), ("weights", WeightSource)):
            if getattr(self, name) is None:
                continue
            try:
                object.__setattr__(self, name, kind(getattr(self, name)))
            except ValueError:
                raise InvalidOptionError(f"unknown {name} {getattr(self, name)!r}; choose from "
                                         f"{', '.join(a.value for a in kind)}") from None
        if self.weights not in (None, WeightSource.ROM) and self.arch is not Arch.SEQUENTIAL:
            raise InvalidOptionError(f"--weights {self.weights.value} needs --arch sequential (the dataflow "
                                     "accelerator keeps its weights in its units)")
        if not 0 <= self.flash_address < (1 << 24) - FLASH_HEADER_BYTES:
            raise InvalidOptionError(f"--flash-address must be a 24-bit address, not {self.flash_address:#x}")
        if self.arch is Arch.SEQUENTIAL and self.folds:
            raise InvalidOptionError("--arch sequential takes no --fold (it has one MAC array); give --multipliers N "
                                     "for an array of floor(sqrt(N)) x floor(sqrt(N))")
        if self.device is not None and self.device not in DEVICES:
            raise InvalidOptionError(f"unknown device {self.device!r}; choose from {', '.join(DEVICES)}")
        if self.multipliers is not None and self.multipliers < 1:
            raise InvalidOptionError(f"--multipliers must be >= 1, not {self.multipliers}")
        object.__setattr__(self, "folds", tuple(self.folds))


# -- building blocks shared by emit, run_core, sim and the generated test bench ---------------


def _fit(graph: Graph, options: FpgaOptions) -> tuple[Fit | SeqFit | None, str | None]:
    """The device fit when a device is given (None otherwise), and why that architecture when
    `--device` chose it."""
    if options.device is None:
        return None, None
    if options.arch is Arch.SEQUENTIAL:
        lanes = default_lanes(options.multipliers) if options.multipliers is not None else None
        return fit_sequential(graph, options.device, lanes, options.weights, options.flash_address), None
    if options.multipliers is not None:
        return fit_budget(graph, options.device, options.multipliers, options.folds), None
    if options.arch is None and not options.folds:
        choice = choose(graph, options.device)
        return choice.fit, choice.why
    return fit_device(graph, options.device, options.folds), None


def plan_for(graph: Graph, options: FpgaOptions, fit: Fit | SeqFit | None = None) -> Plan | SeqPlan:
    fit = fit or _fit(graph, options)[0]
    if fit is not None:
        return fit.plan
    if options.arch is Arch.SEQUENTIAL:
        return make_seq_plan(graph, default_lanes(options.multipliers), 1, options.weights or WeightSource.ROM,
                             options.flash_address)[0]
    return make_plan(graph, budget=options.multipliers, folds=options.folds)


def to_verilog(graph: Graph, plan: Plan | SeqPlan) -> str:
    from amaranth.back import verilog

    from ..hdl import Accelerator, Standalone
    from ..hdl.sequential import SequentialAccelerator

    os.environ["AMARANTH_USE_YOSYS"] = "builtin"  # the bundled Yosys: reproducible text
    top = SequentialAccelerator(program_for(graph, plan)) if isinstance(plan, SeqPlan) else Accelerator(graph, plan)
    return verilog.convert(Standalone(top), name=plan.top, emit_src=False)


def counters_of(plan: Plan | SeqPlan) -> list:
    """The `perf` port's counters of either architecture."""
    return seq_perf_counters([n for n, _ in plan.layers]) if isinstance(plan, SeqPlan) else perf_counters(plan)


def progress(prefix: str):
    """A progress callback that logs `prefix: message` at NOTICE."""
    def show(message: str) -> None:
        log.log(NOTICE, "%s: %s", prefix, message)
    return show


def build_accelerator(graph: Graph, plan: Plan | SeqPlan, verilog: str, *, trace=None, progress=None,
                      cache_dir: Path | None = None):
    """The Verilated accelerator of a hardware graph (`hardware_graph`) and its plan; `trace`: a
    `sim.verilator.Trace` waveform format to compile in (None: no tracing)."""
    from ..sim.rtl import RtlAccelerator

    x = graph.tensor(graph.inputs[0])
    top = plan.top
    if isinstance(plan, SeqPlan) and plan.spram_banks and "module SB_SPRAM256KA" not in verilog:
        verilog += "\n" + (importlib.resources.files("hwgen.rtl") / "sb_spram256ka_model.v").read_text()
    if isinstance(plan, SeqPlan) and plan.weights is not WeightSource.ROM:   # with its flash
        from ..sim.flash import simulation_top
        mux = output_mux(graph, plan.output_lanes)
        ports = {"i": x.dtype.bits * plan.input_lanes, "o": mux.width,
                 "perf": COUNTER_BITS * len(counters_of(plan))}
        verilog, top = simulation_top(verilog, plan.top, flash_image(program_for(graph, plan)), plan.flash_address,
                                      ports)
    return RtlAccelerator.build(
        verilog, top, trace=trace, progress=progress, cache_dir=cache_dir, in_type=x.dtype,
        in_lanes=plan.input_lanes, in_shape=x.shape, outputs=output_mux(graph, plan.output_lanes),
        counter_names=[f"{c.kind}:{c.name}" for c in counters_of(plan)], expected_interval=plan.interval)


@dataclass
class Output:
    """A compiled OUT directory, loaded: its IR (`model`; `graph`, what the accelerator builds of it),
    plan, report and (built on demand) accelerator."""

    root: Path
    model: Graph
    graph: Graph
    concats: tuple[HostConcat, ...]
    plan: Plan | SeqPlan
    manifest: dict
    trace: object = None      # sim.verilator.Trace, or None
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


def load_output(root: str | Path, *, trace=None, progress=None) -> Output:
    root = Path(root)
    manifest_file = root / "fpga" / "manifest.json"
    if not manifest_file.is_file():
        raise InvalidOptionError(f"{root}: no fpga/manifest.json (compile with --target fpga)")
    data = read_json(manifest_file)
    with reading(manifest_file):
        plan = load_plan(data)
    model = irjson.load(root / "ir.json")
    graph, concats = hardware_graph(model)
    return Output(root, model, graph, concats, plan, data, trace, progress)


def require_verilator() -> None:
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


def report_files(report: CycleReport) -> dict[str, str]:
    """report.json and report.txt of a cycle report."""
    return {"report.json": json.dumps(report.to_json(), indent=1) + "\n", "report.txt": report.to_text() + "\n"}


def cycles_line(run, samples: int, plan: Plan | SeqPlan) -> str:
    """One line on a simulation's cycles, against the model's interval."""
    interval = "" if run.interval is None else f", interval {run.interval:,.1f} cycles/inference"
    stalls = run.counters.get("stall:weights")   # a sequential engine waiting for its weight stream
    waits = "" if stalls is None else f"; the MAC array waited {stalls / samples:,.0f} cycles/inference for weights"
    return (f"{samples} inference(s) in {run.cycles:,} cycles: first result after {run.latency:,} cycles{interval} "
            f"(model: {plan.interval:,}){waits}; {run.cycles_per_second / 1e6:.1f} M cycles/s")


# -- the backend protocol ----------------------------------------------------------------------


def _class_name(top: str) -> str:
    return "".join(part.capitalize() for part in top.split("_") if part) or "Accelerator"


def _report(graph: Graph, plan: Plan | SeqPlan) -> CycleReport:
    if isinstance(plan, SeqPlan):
        program = program_for(graph, plan)
        return sequential_cycle_report(graph.name, program, cycle_model(program))
    return cycle_report(graph, plan, engine_programs(graph, plan))


def emit(compiled: Compiled, options: FpgaOptions) -> dict[str, bytes]:
    """The files of OUT/fpga/, by name."""
    graph, concats = hardware_graph(compiled.graph)
    fit, why = _fit(graph, options)
    plan = plan_for(graph, options, fit)
    if why is not None:
        log.log(NOTICE, "fpga: --device chose %s", why)
    if isinstance(plan, SeqPlan):
        source = "a ROM" if plan.weights is WeightSource.ROM else \
            f"{plan.weights.value.upper()} flash at {plan.flash_address:#08x} (weights.bin)"
        log.log(NOTICE, "fpga: sequential engine, a %dx%d MAC array; %s weight-stream words from %s, banks of %s "
                "words; model %s cycles/inference", plan.lanes, plan.lanes, f"{plan.stream_words:,}", source,
                " and ".join(f"{w:,}" for w in plan.bank_words), f"{plan.interval:,}")
    if fit is not None:
        log.log(NOTICE, "fpga: %s", fit.summary())
    elif not isinstance(plan, SeqPlan):   # the UP5K is the smallest device hwgen knows: does it fit, and how
        log.log(NOTICE, "fpga: %s", default_fit_note(graph, plan, DEVICES[DEFAULT_DEVICE]))
    verilog = to_verilog(graph, plan)
    verilog_file = f"{plan.top}.v"
    files: dict[str, str] = {verilog_file: verilog}
    data = manifest(graph, plan, counters_of(plan), verilog_file, importlib.metadata.version("amaranth"), concats)
    data["verilog_sha256"] = hashlib.sha256(verilog.encode()).hexdigest()
    if fit is not None:
        data["device"] = fit.device.name
    if why is not None:
        data["device_choice"] = why
    files["manifest.json"] = json.dumps(data, indent=1) + "\n"
    if fit is not None:
        files["resources.json"] = json.dumps(fit.to_json(), indent=1) + "\n"
    report = _report(graph, plan)
    if options.measure:
        require_verilator()
        report = _measure(graph, build_accelerator(graph, plan, verilog, progress=progress("fpga")), report)
    files.update(report_files(report))
    x = graph.tensor(graph.inputs[0])
    mux = output_mux(graph, plan.output_lanes)
    if len(mux.streams) == 1:
        y = mux.streams[0]
        out_desc = f"{y.dtype}{list(y.shape)}, {y.lanes} per word"
    else:
        out_desc = (f"{len(mux.streams)} outputs, words tagged with the output's index (manifest.json: "
                    f"ports.o.outputs)")
    context = dict(
        version=importlib.metadata.version("hwgen"), model_name=graph.name, top=plan.top,
        class_name=_class_name(plan.top), verilog_file=verilog_file, fpga_dir="OUT/fpga",
        in_desc=f"{x.dtype}{list(x.shape)}, {plan.input_lanes} per word", out_desc=out_desc,
        seeds=[0, 1], batch=3, sequential=isinstance(plan, SeqPlan))
    files["accelerator.py"] = render("fpga", "accelerator.py.j2", context)
    files["test_accelerator.py"] = render("fpga", "test_accelerator.py.j2", context)
    out = {name: text.encode() for name, text in files.items()}
    if isinstance(plan, SeqPlan) and plan.weights is not WeightSource.ROM:
        out["weights.bin"] = flash_image(program_for(graph, plan))
    return out


def run_core(compiled: Compiled, inputs: dict[str, np.ndarray], options: FpgaOptions) -> dict[str, np.ndarray]:
    """The integer core on the Verilated accelerator."""
    require_verilator()
    graph, concats = hardware_graph(compiled.graph)
    plan = plan_for(graph, options)
    show = progress("rtl")
    accelerator = build_accelerator(graph, plan, to_verilog(graph, plan), progress=show)
    x = inputs[graph.inputs[0]]
    run = accelerator.run(x, progress=show)
    show(cycles_line(run, len(x), plan))
    return assemble(run.outputs, concats, compiled.graph)


def run_core_output(out: Output, inputs: dict[str, np.ndarray], *, stall_prob: float = 0.0,
                    trace_path: Path | None = None):
    """The integer core on a compile output's Verilated accelerator (its Verilog as written, no
    regeneration): (outputs in the model IR's tensors, the simulation run)."""
    run = out.accelerator.run(inputs[out.graph.inputs[0]], stall_prob=stall_prob, trace_path=trace_path,
                              progress=out.progress)
    return assemble(run.outputs, out.concats, out.model), run


def run_core_on_board(out: Output, inputs: dict[str, np.ndarray], port: str, baud: int, timeout: float):
    """The integer core on a board running OUT's accelerator behind `hwgen synth --board`'s UART
    bridge, at `port` (outputs in the model IR's tensors)."""
    from ..synth.host import BoardFormat, open_port, run_on_board

    x = out.graph.tensor(out.graph.inputs[0])
    fmt = BoardFormat(x.dtype, out.plan.input_lanes, x.shape, output_mux(out.graph, out.plan.output_lanes))
    link = open_port(port, baud, timeout)
    try:
        outputs = run_on_board(link, fmt, inputs[out.graph.inputs[0]], port=port, progress=out.progress)
    finally:
        link.close()
    return assemble(outputs, out.concats, out.model)


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
