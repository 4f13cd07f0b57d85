"""What the generated RISC-V code costs: dynamic instructions per inference and per MAC.

For each model, three builds of the same generated C, all counted in this one run by
qemu-riscv64's TCG plugin (exact and repeatable) and all checked equal to the golden model:

* rvv      the RVV 1.0 intrinsic kernels     clang-19 -O2 -march=rv64gcv, at VLEN 128, 256, 512
* scalar   the portable scalar kernels       clang-19 -O2 -march=rv64gc (no vector unit)
* autovec  the same scalar kernels           clang-19 -O3 -march=rv64gcv: clang auto-vectorizes them

MACs are the dense multiply-accumulates of the model (`hwgen report`). Inputs are real
samples (person_detect's two images, 16 test digits); the scalar kernels' clamps branch, so
their counts are averaged over them.

    python bench/rvv.py             all bundled benchmark models
    python bench/rvv.py --layers    also person_detect per layer at VLEN 128
    python bench/rvv.py MODEL.onnx  other models (random inputs)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

import hwgen
from hwgen import golden
from hwgen.backends.rvv import generate_for, test_inputs
from hwgen.rvv import measure, program
from hwgen.sim.qemu import missing_rvv_tools

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "examples" / "models" / "digits"
PERSON = ROOT / "examples" / "models" / "person_detect"
MODELS = [PERSON / "person_detect_qdq.onnx", PERSON / "person_detect_unstruct50_qdq.onnx",
          DIGITS / "mobilenet" / "mobilenet_fp32_qdq_s8s8_pc_intio.onnx",
          DIGITS / "mobilenet" / "mobilenet_fp32_qop_u8s8_pc_intio.onnx",
          DIGITS / "tinycnn_fp32_qdq_s8s8_pc_intio.onnx", DIGITS / "tinycnn_pruned_qdq_u8s8_pt_intio.onnx"]
VLENS = measure.VLENS


def inputs_for(path: Path, compiled) -> dict[str, np.ndarray]:
    port = compiled.graph.input_ports[0]
    if path.parent == PERSON:
        tensor = onnx.TensorProto()
        images = []
        for case in (0, 1):
            tensor.ParseFromString((PERSON / "cases" / f"test_data_set_{case}" / "input_0.pb").read_bytes())
            images.append(numpy_helper.to_array(tensor))
        return {port.tensor: port.layout.to_ir(np.concatenate(images))}
    golden_file = Path(str(path).replace(".onnx", "_golden.npz"))
    if golden_file.exists():
        return {port.tensor: port.layout.to_ir(np.load(golden_file)["x_q"][:16])}
    return test_inputs(compiled.graph, samples=4)


def measure_model(path: Path) -> dict:
    compiled = hwgen.compile(path)
    generated = generate_for(compiled)
    inputs = inputs_for(path, compiled)
    want = golden.run_graph(compiled.graph, inputs)
    runs = [(program.RVV, v) for v in VLENS] + [(program.SCALAR, 128)] + [(program.AUTOVEC, v) for v in VLENS]
    counts = {}
    for flavour, vlen in runs:
        binary = program.build(generated, flavour)
        got = program.run(generated, inputs, flavour=flavour, vlen=vlen, binary=binary).outputs
        if not all(np.array_equal(got[k], want[k]) for k in want):
            raise AssertionError(f"{path.name}: the {flavour.name} build differs from the golden model at VLEN {vlen}")
        counts[flavour.name, vlen] = measure.count(generated, inputs, flavour=flavour, vlen=vlen, binary=binary)
    return dict(name=path.stem, macs=compiled.report.totals["macs"], counts=counts, generated=generated,
                graph=compiled.graph,
                samples=len(next(iter(inputs.values()))))


def print_model_tables(results: list[dict]) -> None:
    print("Instructions per inference (and per MAC), RVV kernels against the scalar kernels built for rv64gc\n"
          "and the same scalar kernels auto-vectorized by clang-19 -O3 for rv64gcv:\n")
    head = f"{'model':34s} {'MACs':>10s} {'VLEN':>5s} {'rvv':>12s} {'/MAC':>6s} {'scalar':>13s} {'/MAC':>6s} " \
           f"{'autovec':>12s} {'/MAC':>6s} {'scalar/rvv':>10s} {'autovec/rvv':>11s}"
    print(head)
    print("-" * len(head))
    for r in results:
        scalar = r["counts"]["scalar", 128].per_inference
        for vlen in VLENS:
            rvv = r["counts"]["rvv", vlen].per_inference
            auto = r["counts"]["autovec", vlen].per_inference
            macs = r["macs"]
            name = r["name"] if vlen == VLENS[0] else ""
            macs_text = f"{macs:,}" if vlen == VLENS[0] else ""
            print(f"{name:34s} {macs_text:>10s} {vlen:5d} {rvv:12,.0f} {rvv / macs:6.3f} "
                  f"{scalar:13,.0f} {scalar / macs:6.2f} {auto:12,.0f} {auto / macs:6.3f} "
                  f"{scalar / rvv:9.1f}x {auto / rvv:10.1f}x")
    print()
    print("Memory: the scratch arena, and the constants (weights, biases, requantization parameters, tables)\n"
          "against the weights at their bit width plus 4 bytes per bias:\n")
    print(f"{'model':34s} {'scratch bytes':>14s} {'live peak':>10s} {'constants':>10s} {'w+4/bias':>10s} "
          f"{'ratio':>6s} {'samples':>8s}")
    for r in results:
        m = r["generated"].memory
        constants = measure.constant_bytes(r["generated"])
        params = measure.parameter_bytes(r["graph"])
        print(f"{r['name']:34s} {m.scratch_bytes:14,d} {m.live_peak:10,d} {constants:10,d} {params:10,d} "
              f"{constants / params:6.3f} {r['samples']:8d}")


def print_layers(r: dict) -> None:
    rvv, auto = r["counts"]["rvv", 128], r["counts"]["autovec", 128]
    print(f"\n{r['name']} per layer at VLEN 128:\n")
    head = (f"{'layer':26s} {'kernel':36s} {'MACs':>9s} {'rvv':>9s} {'/MAC':>6s} {'autovec':>10s} {'/MAC':>6s} "
            f"{'ratio':>6s}")
    print(head)
    print("-" * len(head))
    for layer in r["generated"].layers:
        a, b = rvv.per_layer[layer.function], auto.per_layer[layer.function]
        per = (lambda n, macs=layer.macs: f"{n / macs:6.3f}") if layer.macs else (lambda n: f"{'':6s}")
        print(f"{layer.function:26s} {layer.variant.name:36s} {layer.macs:9,d} {a:9,.0f} {per(a)} {b:10,.0f} "
              f"{per(b)} {b / a:5.1f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", type=Path, help="ONNX models (default: the bundled benchmark set)")
    parser.add_argument("--layers", action="store_true", help="per-layer table for the first model")
    args = parser.parse_args()
    missing = missing_rvv_tools()
    if missing:
        print(f"bench/rvv.py needs the RVV toolchain; missing: {', '.join(missing)}", file=sys.stderr)
        return 1
    results = [measure_model(path) for path in (args.models or MODELS)]
    print_model_tables(results)
    if args.layers:
        print_layers(results[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
