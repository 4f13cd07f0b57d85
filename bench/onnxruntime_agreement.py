"""How closely hwgen's golden model follows onnxruntime on the bundled real models.

onnxruntime requantizes in float32; hwgen in exact integer arithmetic with 31-bit
multipliers. They may differ by one step where a value falls within float32 error
of a rounding tie. The two measures of `hwgen.reference` per model (end to end, and
per layer fed onnxruntime's own inputs), and top-1 agreement.

    python bench/onnxruntime_agreement.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

import hwgen
from hwgen import golden
from hwgen.reference import agreement, core_inputs, ort_tensors, to_ir

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "examples" / "models" / "digits"
PERSON = ROOT / "examples" / "models" / "person_detect"


def measure(path: Path, x: np.ndarray, labels: np.ndarray | None) -> dict:
    compiled = hwgen.compile(path)
    graph = compiled.graph
    model = onnx.load(path)
    feeds = {graph.input_ports[0].onnx_name: x}
    found = agreement(compiled, model, feeds)
    ours = golden.run_graph(graph, core_inputs(graph, feeds))[graph.outputs[0]].reshape(len(x), -1)
    theirs = to_ir(ort_tensors(model, feeds, [graph.outputs[0]])[graph.outputs[0]], graph.tensor(graph.outputs[0]))
    final, final_ort = ours.argmax(axis=1), theirs.reshape(len(x), -1).argmax(axis=1)
    return dict(outputs=found.outputs, worst=found.worst, differ=found.differ, top1=float(np.mean(final == final_ort)),
                layer_outputs=found.layer_outputs, layer_differ=found.layer_differ,
                acc=float(np.mean(final == labels)) if labels is not None else None)


def main() -> int:
    data = np.load(DIGITS / "digits_test.npz")
    rows = []
    for path in sorted(DIGITS.glob("*_q*.onnx")) + sorted((DIGITS / "mobilenet").glob("*_q*.onnx")):
        if "intio" in path.name:
            continue  # the same graphs as the float-input models, which measure them already
        rows.append((path.name, measure(path, data["X"], data["y"])))
    tensor = onnx.TensorProto()
    images = []
    for case in (0, 1):
        tensor.ParseFromString((PERSON / "cases" / f"test_data_set_{case}" / "input_0.pb").read_bytes())
        images.append(numpy_helper.to_array(tensor))
    rows.append(("person_detect_qdq.onnx (person, no_person)",
                 measure(PERSON / "person_detect_qdq.onnx", np.concatenate(images), None)))
    random = np.random.default_rng(0).integers(-128, 128, size=(8, 1, 96, 96), dtype=np.int8)
    rows.append(("person_detect_qdq.onnx (8 random inputs)", measure(PERSON / "person_detect_qdq.onnx", random, None)))

    print(f"{'':46s} {'end to end (core outputs)':^33s}   {'per layer (ORT inputs)':^24s}")
    print(f"{'model':46s} {'outputs':>8s} {'max':>4s} {'differ':>7s} {'/10k':>6s} {'top-1=':>7s}   "
          f"{'outputs':>10s} {'differ':>7s} {'/10k':>6s}   {'accuracy':>8s}")
    for name, r in rows:
        acc = f"{r['acc']:8.2%}" if r["acc"] is not None else ""
        print(f"{name:46s} {r['outputs']:8d} {r['worst']:4d} {r['differ']:7d} {r['differ'] / r['outputs'] * 1e4:6.2f} "
              f"{r['top1']:7.1%}   {r['layer_outputs']:10d} {r['layer_differ']:7d} "
              f"{r['layer_differ'] / r['layer_outputs'] * 1e4:6.3f}   {acc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
