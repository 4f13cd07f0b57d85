"""How closely hwgen's golden model follows onnxruntime on the bundled real models.

onnxruntime requantizes in float32; hwgen in exact integer arithmetic with 31-bit
multipliers. They may differ by one step where a value falls within float32 error
of a rounding tie. Two measures per model:

* end to end: the integer core's outputs (the quantized tensors before any float
  host tail) for the same inputs; a 1-step difference in an early layer can grow
  as it propagates through a deep network;
* per layer: every IR op fed onnxruntime's own input tensor, so each difference is
  that op's arithmetic alone.

    python bench/onnxruntime_agreement.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
from onnx import numpy_helper

from hwgen import golden
from hwgen.compiler import compile_model
from hwgen.ir import Reshape

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "examples" / "models" / "digits"
PERSON = ROOT / "examples" / "models" / "person_detect"


def ort_tensors(path: Path, feeds_name: str, x: np.ndarray, tensors: list[str]) -> dict[str, np.ndarray]:
    """onnxruntime's values of the named tensors, one sample at a time (the models have batch 1)."""
    model = onnx.load(path)
    known = {o.name for o in model.graph.output}
    produced = {o for n in model.graph.node for o in n.output} | {i.name for i in model.graph.input}
    wanted = [t for t in tensors if t in produced]
    model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(t) for t in wanted if t not in known)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    runs = [session.run(None, {feeds_name: x[i:i + 1]}) for i in range(len(x))]
    return {n: np.concatenate([r[k] for r in runs]) for k, n in enumerate(names) if n in wanted}


def to_ir(value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """An ONNX activation (NCHW, batch first) in IR layout (B, *shape)."""
    if value.ndim == 4:
        value = value.transpose(0, 2, 3, 1)
    return value.reshape((len(value), *shape)).astype(np.int64)


def measure(path: Path, x: np.ndarray, labels: np.ndarray | None) -> dict:
    compiled = compile_model(path)
    graph = compiled.graph
    port = graph.input_ports[0]
    ir_input = port.layout.to_ir(x if port.quantize is None else
                                 golden._quantize_host(x, port.quantize, graph.tensor(port.tensor).dtype))
    ours = golden.run_graph(graph, {port.tensor: ir_input}, keep_all=True)
    theirs = ort_tensors(path, port.onnx_name, x, [n.output for n in compiled.imported.nodes] + list(graph.inputs))
    end = np.concatenate([(ours[t].reshape(len(x), -1) - to_ir(theirs[t], graph.tensor(t).shape).reshape(len(x), -1))
                          for t in graph.outputs], axis=1)
    layer_outputs = layer_differ = 0
    imported = compiled.imported  # before dead channels are removed: tensors shaped as in ONNX

    def ort_ir(name: str) -> np.ndarray:
        """onnxruntime's tensor in IR layout; a flattening's order is its input's raster order."""
        producer = imported.producer(name)
        if isinstance(producer, Reshape):
            return ort_ir(producer.inputs[0]).reshape((len(x), *imported.tensor(name).shape))
        return to_ir(theirs[name], imported.tensor(name).shape)

    for node in imported.nodes:
        if not isinstance(node, Reshape) and node.output in theirs and all(i in theirs for i in node.inputs):
            mine = golden.OPS[type(node)](node, *[ort_ir(i) for i in node.inputs], graph=imported)
            want = ort_ir(node.output)
            layer_differ += int(np.count_nonzero(mine != want))
            layer_outputs += mine.size
    final = ours[graph.outputs[0]].reshape(len(x), -1).argmax(axis=1)
    final_ort = to_ir(theirs[graph.outputs[0]], graph.tensor(graph.outputs[0]).shape).reshape(len(x), -1).argmax(axis=1)
    return dict(outputs=end.size, worst=int(np.abs(end).max()), differ=int(np.count_nonzero(end)),
                top1=float(np.mean(final == final_ort)), layer_outputs=layer_outputs, layer_differ=layer_differ,
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
