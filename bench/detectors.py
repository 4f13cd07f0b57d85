#!/usr/bin/env python3
"""The bundled detectors (PP-OCRv4 det, BlazeFace) on every backend: a table per measure.

* agreement with onnxruntime on the bundled input: every layer fed onnxruntime's own inputs
  (values that differ, the worst difference in steps) and end to end;
* the FPGA accelerator's plan at 8 and 32 multipliers: the cycle model's interval and the
  multiplier utilization (non-zero MACs / (multipliers x interval)); `--rtl` also runs it in
  Verilator (bit for bit against the golden model) and measures latency and interval;
* which devices each fits (the resource estimate hwgen fits with), at what interval, and the
  inferences per second that interval gives at 50 MHz (a clock, not a timing result);
* the RVV C: dynamic instructions per inference and per dense MAC at VLEN 128 (qemu-riscv64's
  counting plugin), checked equal to the golden model.

    python bench/detectors.py          # agreement, FPGA plans, RVV counts (about a minute)
    python bench/detectors.py --rtl    # also Verilator runs of the FPGA designs (PP-OCRv4: an hour)
    python bench/detectors.py --devices  # also which FPGA each fits
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import hwgen  # noqa: E402
from hwgen import golden  # noqa: E402
from hwgen.backends.rvv import generate_for  # noqa: E402
from hwgen.devices import DEVICES  # noqa: E402
from hwgen.errors import HwgenError  # noqa: E402
from hwgen.fpga.fit import fit_device  # noqa: E402
from hwgen.fpga.outputs import assemble, hardware_graph  # noqa: E402
from hwgen.fpga.plan import engine_programs, make_plan  # noqa: E402
from hwgen.fpga.report import cycle_report  # noqa: E402
from hwgen.reference import agreement, core_inputs  # noqa: E402
from hwgen.rvv import measure, program  # noqa: E402
from hwgen.sim.qemu import missing_rvv_tools  # noqa: E402

DETECT = ROOT / "examples" / "models" / "detect"
MODELS = {"ppocrv4_det": (DETECT / "ppocrv4_det_qdq_s8s8_pc.onnx", DETECT / "text_160.npy"),
          "blazeface": (DETECT / "blazeface_qdq_s8s8_pc.onnx", DETECT / "astronaut_128.npy")}
BUDGETS = (8, 32)


def feeds_of(path: Path, data: Path) -> dict[str, np.ndarray]:
    x = np.load(data).astype(np.float32)
    return {onnx.load(path).graph.input[0].name: x if x.ndim == 4 else x[None]}


def agreement_table(compiled: dict) -> None:
    print("Golden model against onnxruntime on the bundled input (values that differ / compared, worst in steps):\n")
    head = (f"{'model':14s} {'per layer':>22s} {'worst':>6s} {'end to end':>16s} {'worst':>6s}   "
            "per op (differ/compared)")
    print(head)
    print("-" * len(head))
    for name, c in compiled.items():
        path, data = MODELS[name]
        a = agreement(c, onnx.load(path), feeds_of(path, data))
        ops = ", ".join(f"{op} {d:,}/{n:,}" for op, d, n in a.by_op)
        print(f"{name:14s} {a.layer_differ:>9,d}/{a.layer_outputs:<12,d} {a.layer_worst:6d} "
              f"{a.differ:>7,d}/{a.outputs:<8,d} {a.worst:6d}   {ops}")
    print()


def fpga_table(compiled: dict, rtl: bool) -> None:
    print("FPGA accelerator (cycle model; --rtl: measured in Verilator, equal to the golden model):\n")
    head = (f"{'model':14s} {'budget':>6s} {'MACs':>12s} {'nz MACs':>12s} {'multipliers':>11s} {'interval':>12s} "
            f"{'utilization':>11s} {'latency':>12s}")
    print(head)
    print("-" * len(head))
    for name, c in compiled.items():
        graph, _ = hardware_graph(c.graph)
        for budget in BUDGETS:
            try:
                plan = make_plan(graph, budget=budget)
            except HwgenError as exc:
                print(f"{name:14s} {budget:6d}   not built: {exc}")
                continue
            cycles = cycle_report(graph, plan, engine_programs(graph, plan))
            measured = _measure(name, c, plan) if rtl else ""
            print(f"{name:14s} {budget:6d} {c.report.totals['macs']:12,d} {cycles.nonzero_macs:12,d} "
                  f"{cycles.multipliers:11d} {cycles.expected_interval:12,d} {cycles.expected_utilization:11.3f} "
                  f"{measured:>12s}")
    print()


def _measure(name: str, compiled, plan) -> str:
    from hwgen.backends.fpga import build_accelerator, to_verilog

    graph, concats = hardware_graph(compiled.graph)
    path, data = MODELS[name]
    inputs = core_inputs(compiled.graph, feeds_of(path, data))
    start = time.time()
    accelerator = build_accelerator(graph, plan, to_verilog(graph, plan))
    run = accelerator.run(inputs[graph.inputs[0]])
    got = assemble(run.outputs, concats, compiled.graph)
    want = golden.run_graph(compiled.graph, inputs)
    if not all(np.array_equal(got[k], want[k]) for k in want):
        raise AssertionError(f"{name}: the RTL differs from the golden model")
    return f"{run.latency:,} ({time.time() - start:.0f} s)"


CLOCK_HZ = 50e6


def device_table(compiled: dict) -> None:
    print(f"FPGA devices (resource estimate; inferences/s from the modelled interval at {CLOCK_HZ / 1e6:.0f} MHz):\n")
    head = f"{'model':14s} {'device':11s} {'fits':4s} {'multipliers':>11s} {'interval':>12s} {'inf/s':>7s}   estimate"
    print(head)
    print("-" * len(head))
    for name, c in compiled.items():
        graph, _ = hardware_graph(c.graph)
        for device in DEVICES:
            try:
                fit = fit_device(graph, device, ())
            except HwgenError as exc:
                why = str(exc).split(": ", 1)[-1]
                print(f"{name:14s} {device:11s} {'no':4s} {'':>11s} {'':>12s} {'':>7s}   {why[:150]}")
                continue
            print(f"{name:14s} {device:11s} {'yes':4s} {fit.plan.multipliers:11d} {fit.plan.interval:12,d} "
                  f"{CLOCK_HZ / fit.plan.interval:7.1f}   {fit.summary().split('; ', 1)[-1]}")
    print()


def rvv_table(compiled: dict) -> None:
    print("RVV C at VLEN 128 (qemu-riscv64 instruction counts, equal to the golden model):\n")
    head = f"{'model':14s} {'MACs':>12s} {'instructions':>14s} {'per MAC':>8s}"
    print(head)
    print("-" * len(head))
    for name, c in compiled.items():
        path, data = MODELS[name]
        generated = generate_for(c)
        inputs = core_inputs(c.graph, feeds_of(path, data))
        binary = program.build(generated, program.RVV)
        got = program.run(generated, inputs, vlen=128, binary=binary).outputs
        want = golden.run_graph(c.graph, inputs)
        if not all(np.array_equal(got[k], want[k]) for k in want):
            raise AssertionError(f"{name}: the RVV build differs from the golden model")
        counts = measure.count(generated, inputs, vlen=128, binary=binary)
        macs = c.report.totals["macs"]
        print(f"{name:14s} {macs:12,d} {counts.per_inference:14,.0f} {counts.per_inference / macs:8.3f}")
    print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rtl", action="store_true", help="also run the FPGA designs in Verilator (slow)")
    parser.add_argument("--devices", action="store_true", help="also fit each model to each device (minutes)")
    args = parser.parse_args()
    compiled = {name: hwgen.compile(path) for name, (path, _) in MODELS.items()}
    agreement_table(compiled)
    fpga_table(compiled, args.rtl)
    if args.devices:
        device_table(compiled)
    if missing_rvv_tools():
        print(f"RVV: toolchain incomplete ({', '.join(missing_rvv_tools())})")
        return 1
    rvv_table(compiled)
    return 0


if __name__ == "__main__":
    sys.exit(main())
