#!/usr/bin/env python3
"""The layer-sequential engine: cycles per inference by weight source and array size, and what limits it.

For each model, array size L (L x L multipliers) and weight source (an on-chip ROM, a quad or a
single-line SPI flash with sck = clk / 2): the MAC array's steps, the cycle model's interval and
the cycles it waits for weights, the MAC utilization (non-zero MACs / (L^2 x interval)), the
flash bytes read per inference, inferences/s at the given clock, and what bounds it (compute:
the array's steps; flash: the weight stream). With --measure, each design also runs in Verilator
(its flash in the loop, rtl/spi_flash_model.v) on seeded random inputs, checked bit for bit
against the golden model, and the measured interval is printed next to the model's.

    python bench/sequential.py                               # model numbers, seconds
    python bench/sequential.py --measure --models tinycnn    # + Verilator (person_detect: minutes per build)
    python bench/sequential.py --clock 24 --lanes 4,8
    python bench/sequential.py --models person_detect --lanes 2 --weights qspi --multiplier-bits 16 --clock 28.24
                                                             # the UP5K build (Fmax from hwgen synth)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import hwgen  # noqa: E402
from hwgen import golden  # noqa: E402
from hwgen.backends.fpga import build_accelerator, to_verilog  # noqa: E402
from hwgen.fpga.outputs import hardware_graph  # noqa: E402
from hwgen.fpga.sequential import WeightSource, cycle_model, flash_image, make_seq_plan  # noqa: E402

MODELS = {
    "tinycnn": ROOT / "examples/models/digits/tinycnn_fp32_qdq_s8s8_pc.onnx",
    "tinycnn_unstruct50": ROOT / "examples/models/digits/tinycnn_unstruct50_qdq_s8s8_pc.onnx",
    "person_detect": ROOT / "examples/models/person_detect/person_detect_qdq.onnx",
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated: " + ", ".join(MODELS))
    p.add_argument("--lanes", default="4,8", help="array sizes L (L x L multipliers), comma-separated")
    p.add_argument("--weights", default="rom,qspi,spi", help="weight sources, comma-separated")
    p.add_argument("--clock", type=float, default=24.0, help="MHz, for inferences/s")
    p.add_argument("--measure", action="store_true", help="also run each design in Verilator (exact check)")
    p.add_argument("--samples", type=int, default=3)
    p.add_argument("--multiplier-bits", type=int, default=None,
                   help="requantization multipliers' bits (a compile option)")
    args = p.parse_args()

    head = ("model", "L", "weights", "steps", "interval", "stalls", "util", "flash KB", f"inf/s@{args.clock:g}",
            "bound", "measured")
    rows = []
    for name in args.models.split(","):
        options = {} if args.multiplier_bits is None else {"multiplier_bits": args.multiplier_bits}
        graph, _ = hardware_graph(hwgen.compile(MODELS[name], **options).graph)
        nonzero = sum(n.macs(graph)[1] for n in graph.nodes)
        for lanes in map(int, args.lanes.split(",")):
            for source in map(WeightSource, args.weights.split(",")):
                plan, program = make_seq_plan(graph, lanes, 1, source)
                cycles = cycle_model(program)
                steps = sum(x.steps for x in program.layers)
                flash = len(flash_image(program)) / 1024 if source is not WeightSource.ROM else 0
                bound = "flash" if cycles.stalls > 0.1 * cycles.interval else "compute"
                measured = "-"
                if args.measure:
                    measured = _measure(graph, plan, args.samples)
                rows.append((name, str(lanes), source.value, f"{steps:,}", f"{cycles.interval:,}",
                             f"{cycles.stalls:,}", f"{nonzero / (lanes * lanes * cycles.interval):.3f}",
                             f"{flash:,.0f}" if flash else "-", f"{args.clock * 1e6 / cycles.interval:,.1f}", bound,
                             measured))
                print("  ".join(rows[-1]), file=sys.stderr, flush=True)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    line = lambda r: "  ".join(c.ljust(w) if i < 3 or i == 9 else c.rjust(w)  # noqa: E731
                               for i, (c, w) in enumerate(zip(r, widths)))
    print(line(head))
    print(line(tuple("-" * w for w in widths)))
    for r in rows:
        print(line(r))
    return 0


def _measure(graph, plan, samples: int) -> str:
    accelerator = build_accelerator(graph, plan, to_verilog(graph, plan))
    t = graph.tensor(graph.inputs[0])
    x = np.random.default_rng(0).integers(t.dtype.lo, t.dtype.hi + 1, (samples, *t.shape))
    run = accelerator.run(x)
    want = golden.run_graph(graph, {graph.inputs[0]: x})[graph.outputs[0]]
    exact = "exact" if np.array_equal(run.outputs[graph.outputs[0]], want) else "MISMATCH"
    return f"{run.interval:,.0f} {exact}"


if __name__ == "__main__":
    sys.exit(main())
