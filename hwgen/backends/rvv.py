"""RISC-V Vector target: `hwgen compile --target rvv` and `hwgen run --backend rvv`.

`emit` makes the files of OUT/rvv/: model.h, model.c, kernels.h (RVV 1.0 intrinsics with
scalar fallbacks), main.c (a host test program), a Makefile, test vectors from the
golden model, and report.json. When clang-19 and qemu-riscv64 are installed it
also measures instruction counts per layer at VLEN 128, 256 and 512 for the report
(unless `count=False`); without them the report says why it has no counts.
`run_core` builds the test program (cached) and runs all samples in one QEMU process.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import golden
from ..compiler import Compiled
from ..errors import InvalidOptionError, ToolchainError
from ..ir import Graph
from ..logs import get_logger
from ..modelconfig import DetectConfig, config_for
from ..names import identifier, terminal
from ..outdir import read_json, reading
from ..rvv import measure, program
from ..rvv.codegen import Generated, generate
from ..rvv.postprocess import encode_detections, python_detections
from ..sim import qemu

__all__ = ["RvvOptions", "emit", "run_core", "run_core_graph", "describe", "generate_for", "test_inputs",
           "VLEN_CHOICES"]

log = get_logger("rvv")

#: Samples in OUT/rvv/test_input.bin (random, seeded), checked by `make check`.
TEST_SAMPLES = 4
VLEN_CHOICES = (128, 256, 512, 1024)


@dataclass(frozen=True)
class RvvOptions:
    """`vlen`: the simulated vector unit's VLEN when running; `count`: measure instruction counts
    under QEMU at compile time for rvv/report.json; `config`: the model's config file, whose
    `detect` section adds detect.h/detect.c (default: the .json beside the model, if there)."""

    vlen: int = 128
    count: bool = True
    config: Path | None = None

    def __post_init__(self):
        if self.vlen not in VLEN_CHOICES:
            raise InvalidOptionError(f"--vlen must be one of {', '.join(map(str, VLEN_CHOICES))}, not {self.vlen}")


def generate_for(compiled: Compiled, detect: DetectConfig | None = None) -> Generated:
    """The generated library of a compiled model, named after its file."""
    return generate(compiled.graph, compiled.source.stem, compiled.source.name, test_samples=TEST_SAMPLES,
                    detect=detect)


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


def emit(compiled: Compiled, options: RvvOptions) -> dict[str, bytes]:
    """The files of OUT/rvv/, by name."""
    detect = config_for(compiled.source, options.config).detect
    generated = generate_for(compiled, detect)
    files = {name: text.encode() for name, text in generated.files.items()}
    inputs = test_inputs(compiled.graph)
    x_file, y_file, detections = io.BytesIO(), io.BytesIO(), io.BytesIO()
    for i in range(TEST_SAMPLES):  # one sample at a time: large models' test vectors stay small in memory
        sample = {name: x[i:i + 1] for name, x in inputs.items()}
        x_file.write(program.encode_inputs(generated.inputs, sample)[0])
        outputs = golden.run_graph(compiled.graph, sample)
        y_file.write(program.encode_inputs(generated.outputs, outputs)[0])
        if detect is not None:
            core = {name: y[0] for name, y in outputs.items()}
            detections.write(encode_detections(python_detections(compiled.graph, core, detect), detect))
    files["test_input.bin"], files["test_expected.bin"] = x_file.getvalue(), y_file.getvalue()
    if detect is not None:
        files["test_detect_expected.bin"] = detections.getvalue()

    counts, reason = [], None
    reason = "skipped (--rvv-no-count)" if not options.count else _missing_tools()
    if reason is None:
        first = {name: x[:1] for name, x in inputs.items()}
        counts = [measure.count(generated, first, vlen=vlen) for vlen in measure.VLENS]
        log.info("rvv: %s instructions per inference at VLEN 128", f"{counts[0].per_inference:,.0f}")
    else:
        log.info("rvv: no instruction counts: %s", reason)
    report = measure.report_json(generated, compiled.report.totals["macs"], counts, source=compiled.source.name,
                                 not_counted=reason)
    tail = compiled.graph.tail
    report["after_run"] = {   # what runs on the host after hwgen_<model>_run, and what this library implements
        "host_tail": list(tail.ops) if tail is not None else [],
        "in_library": (["the float tail (tail.c)"] if "tail.c" in generated.files else [])
        + (["SSD post-processing, dequantization included (detect.c)"] if detect is not None else []),
    }
    files["report.json"] = (json.dumps(report, indent=1) + "\n").encode()
    return files


def run_core(compiled: Compiled, inputs: dict[str, np.ndarray], options: RvvOptions) -> dict[str, np.ndarray]:
    """The integer core as the generated C, built for RVV and run under QEMU at `options.vlen`."""
    reason = _missing_tools()
    if reason is not None:
        raise ToolchainError(f"hwgen run --backend rvv needs clang-19 and qemu-riscv64: {reason}")
    result = program.run(generate_for(compiled), inputs, vlen=options.vlen)
    log.info("rvv: ran %d sample(s) of %s at VLEN %d", next(iter(inputs.values())).shape[0],
             identifier(compiled.source.stem), options.vlen)
    return result.outputs


def run_core_graph(graph: Graph, name: str, inputs: dict[str, np.ndarray],
                   options: RvvOptions) -> dict[str, np.ndarray]:
    """The integer core of an IR graph (a compile output's ir.json) as generated C under QEMU: the
    C is generated from the IR again (fast, and identical to what compile wrote for it)."""
    reason = _missing_tools()
    if reason is not None:
        raise ToolchainError(f"hwgen run --backend rvv needs clang-19 and qemu-riscv64: {reason}")
    return program.run(generate(graph, name, name), inputs, vlen=options.vlen).outputs


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
    after = report.get("after_run")
    if after is not None:
        tail = " -> ".join(after["host_tail"]) or "nothing"
        lines.append(f"after it, on the host: {tail} (float; hwgen run uses onnxruntime, the library leaves it "
                     "to the caller)" + "".join(f"; in the library: {part}" for part in after["in_library"]))
    return "\n".join(lines)
