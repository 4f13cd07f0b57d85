"""RISC-V Vector target: `hwgen compile --target rvv` and `hwgen run --backend rvv`.

`compile` writes OUT/rvv/: model.h, model.c, kernels.h (RVV 1.0 intrinsics with
scalar fallbacks), main.c (a host test program), a Makefile, test vectors from the
golden model, and report.json. When clang-19 and qemu-riscv64 are installed it
also measures instruction counts per layer at VLEN 128, 256 and 512 for the report
(skip with --rvv-no-count); without them the report says why it has no counts.
`run` builds the test program (cached) and runs all samples in one QEMU process.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from .. import golden
from ..compiler import Compiled
from ..errors import ToolchainError
from ..ir import Graph
from ..names import identifier, terminal
from ..outdir import read_json, reading
from ..rvv import measure, program
from ..rvv.codegen import Generated, generate
from ..sim import qemu

__all__ = ["add_arguments", "emit", "run_core", "describe", "generate_for", "test_inputs"]

log = logging.getLogger("hwgen.rvv")

#: Samples in OUT/rvv/test_input.bin (random, seeded), checked by `make check`.
TEST_SAMPLES = 4
VLEN_CHOICES = (128, 256, 512, 1024)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("RISC-V vector backend (--target rvv, --backend rvv)")
    group.add_argument("--vlen", dest="rvv_vlen", type=int, choices=VLEN_CHOICES, default=128,
                       help="VLEN of the simulated vector unit for `hwgen run --backend rvv`")
    group.add_argument("--rvv-no-count", dest="rvv_no_count", action="store_true",
                       help="compile: do not measure instruction counts under QEMU for rvv/report.json")


def generate_for(compiled: Compiled) -> Generated:
    """The generated library of a compiled model, named after its file."""
    return generate(compiled.graph, compiled.source.stem, compiled.source.name, test_samples=TEST_SAMPLES)


def test_inputs(graph: Graph, samples: int = TEST_SAMPLES, seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic random inputs over each input's whole type range."""
    rng = np.random.default_rng(seed)
    inputs = {}
    for name in graph.inputs:
        t = graph.tensor(name)
        inputs[name] = rng.integers(t.dtype.lo, t.dtype.hi, (samples, *t.shape), endpoint=True)
    return inputs


def _missing_tools() -> str | None:
    missing = qemu.missing_rvv_tools()
    return f"RVV toolchain incomplete, missing: {', '.join(missing)}" if missing else None


def emit(compiled: Compiled, out_dir: Path, args: argparse.Namespace) -> None:
    generated = generate_for(compiled)
    out = out_dir / "rvv"
    program.write_sources(generated, out)
    inputs = test_inputs(compiled.graph)
    with open(out / "test_input.bin", "wb") as x_file, open(out / "test_expected.bin", "wb") as y_file:
        for i in range(TEST_SAMPLES):  # one sample at a time: large models' test vectors stay small in memory
            sample = {name: x[i:i + 1] for name, x in inputs.items()}
            x_file.write(program.encode_inputs(generated.inputs, sample)[0])
            y_file.write(program.encode_inputs(generated.outputs, golden.run_graph(compiled.graph, sample))[0])

    counts, reason = [], None
    if getattr(args, "rvv_no_count", False):
        reason = "skipped (--rvv-no-count)"
    else:
        reason = _missing_tools()
    if reason is None:
        first = {name: x[:1] for name, x in inputs.items()}
        counts = [measure.count(generated, first, vlen=vlen) for vlen in measure.VLENS]
        log.info("rvv: %s instructions per inference at VLEN 128", f"{counts[0].per_inference:,.0f}")
    else:
        log.info("rvv: no instruction counts: %s", reason)
    report = measure.report_json(generated, compiled.report.totals["macs"], counts, source=compiled.source.name,
                                 not_counted=reason)
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")


def run_core(compiled: Compiled, inputs: dict[str, np.ndarray], args: argparse.Namespace) -> dict[str, np.ndarray]:
    reason = _missing_tools()
    if reason is not None:
        raise ToolchainError(f"hwgen run --backend rvv needs clang-19 and qemu-riscv64: {reason}")
    vlen = getattr(args, "rvv_vlen", 128)
    result = program.run(generate_for(compiled), inputs, vlen=vlen)
    log.info("rvv: ran %d sample(s) of %s at VLEN %d", next(iter(inputs.values())).shape[0],
             identifier(compiled.source.stem), vlen)
    return result.outputs


def describe(out_dir: Path) -> str | None:
    """OUT/rvv/report.json as a table, for `hwgen report OUT`: instructions per layer and VLEN."""
    path = Path(out_dir) / "rvv" / "report.json"
    if not path.exists():
        return None
    report = read_json(path)
    with reading(path):
        return _rvv_table(report)


def _rvv_table(report: dict) -> str:
    vlens = sorted({v for layer in report["layers"] for v in layer.get("instructions", {})}, key=int)
    head = ["layer", "op", "kernel", "MACs"] + [f"instr VLEN {v}" for v in vlens] + (["/MAC"] if vlens else [])
    rows = []
    for layer in report["layers"]:
        counts = [layer["instructions"][v] for v in vlens]
        per_mac = f"{counts[0] / layer['macs']:.3f}" if vlens and layer["macs"] else ""
        rows.append([terminal(layer["node"]), layer["op"], layer["kernel"], f"{layer['macs']:,}"]
                    + [f"{c:,}" for c in counts] + ([per_mac] if vlens else []))
    if vlens:
        total = [report["per_inference"][v]["instructions"] for v in vlens]
        rows.append(["per inference", "", "", f"{report['macs']:,}"] + [f"{c:,}" for c in total]
                    + [f"{report['per_inference'][vlens[0]]['per_mac']:.3f}"])
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in [head, *rows]]
    lines.append(f"{report['function']}(): scratch {report['scratch_bytes']:,} bytes, constants "
                 f"{report['constant_bytes']:,} bytes"
                 + ("" if vlens else f"; not counted: {report.get('counted_with', 'no toolchain')}"))
    return "\n".join(lines)
