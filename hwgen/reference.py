"""onnxruntime as the reference: how closely hwgen's golden model follows it on a model.

onnxruntime requantizes in float32, hwgen in exact integer arithmetic, so the two may differ by one
step where a value lies within float32 error of a rounding tie. Two measures:

* end to end: the integer core's outputs for the same inputs (a one-step difference in an early
  layer can grow as it propagates);
* per layer: every IR op fed onnxruntime's own input tensors, so each difference is that op's
  arithmetic alone (the spec allows 1 step there).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from . import fixed, golden
from .compiler import Compiled
from .ir import Graph, Tensor

__all__ = ["Agreement", "agreement", "ort_tensors", "to_ir", "core_inputs"]


@dataclass(frozen=True)
class Agreement:
    outputs: int          # integer core output values compared
    worst: int            # largest end-to-end difference, in steps
    differ: int           # end-to-end values that differ
    layer_outputs: int    # per-layer values compared
    layer_worst: int      # largest per-layer difference, in steps
    layer_differ: int     # per-layer values that differ
    by_op: tuple[tuple[str, int, int], ...] = ()  # per IR op: (op, values that differ, values compared)

    def __add__(self, other: Agreement) -> Agreement:
        ops: dict[str, tuple[int, int]] = {}
        for op, differ, outputs in (*self.by_op, *other.by_op):
            d, n = ops.get(op, (0, 0))
            ops[op] = (d + differ, n + outputs)
        return Agreement(self.outputs + other.outputs, max(self.worst, other.worst), self.differ + other.differ,
                         self.layer_outputs + other.layer_outputs, max(self.layer_worst, other.layer_worst),
                         self.layer_differ + other.layer_differ,
                         tuple((op, d, n) for op, (d, n) in sorted(ops.items())))


def ort_tensors(model: onnx.ModelProto, feeds: dict[str, np.ndarray], tensors: list[str]) -> dict[str, np.ndarray]:
    """onnxruntime's values of the named tensors (those the graph computes), one sample at a time."""
    import onnxruntime

    model = _with_outputs(model, tensors)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    batch = len(next(iter(feeds.values())))
    runs = [session.run(None, {k: v[i:i + 1] for k, v in feeds.items()}) for i in range(batch)]
    wanted = set(tensors)
    return {n: np.concatenate([r[k] for r in runs]) for k, n in enumerate(names) if n in wanted}


def _with_outputs(model: onnx.ModelProto, tensors: list[str]) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    known = {o.name for o in out.graph.output}
    produced = {o for n in out.graph.node for o in n.output} | {i.name for i in out.graph.input}
    out.graph.output.extend(onnx.helper.make_empty_tensor_value_info(t) for t in dict.fromkeys(tensors)
                            if t in produced and t not in known)
    return out


def to_ir(value: np.ndarray, tensor: Tensor) -> np.ndarray:
    """An ONNX activation (batch first; NCHW for a map) in IR layout (B, *shape), as the IR tensor's integers.

    An IR tensor may carry the name of a float ONNX tensor that is exactly a dequantized integer
    one (a MaxPool's output before its QuantizeLinear); that value is quantized back, exactly.
    """
    if value.dtype.kind == "f":
        value = fixed.quantize_float(value, tensor.scale[0], tensor.zero_point, tensor.dtype)
    if value.ndim == 4 and tensor.shape == (value.shape[2], value.shape[3], value.shape[1]):
        value = value.transpose(0, 2, 3, 1)  # an NCHW map, held channels-last (else: held in ONNX order)
    return value.reshape((len(value), *tensor.shape)).astype(np.int64)


def core_inputs(graph: Graph, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The integer core's inputs for ONNX feeds (host quantization and layout applied)."""
    core = {}
    for port in graph.input_ports:
        x = port.through_head(np.asarray(feeds[port.onnx_name]))
        q = x if port.quantize is None else golden.quantize_host(x, port.quantize, graph.tensor(port.tensor).dtype)
        core[port.tensor] = port.layout.to_ir(q)
    return core


def agreement(compiled: Compiled, model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> Agreement:
    """Golden model against onnxruntime on `feeds` (ONNX inputs, batch first), end to end and per layer."""
    graph, imported = compiled.graph, compiled.imported
    core = core_inputs(graph, feeds)
    batch = len(next(iter(core.values())))
    ours = golden.run_graph(graph, core)
    onnx_name = {p.tensor: p.onnx_name for p in graph.output_ports}   # an output the IR renamed (ConvTranspose's)
    theirs = ort_tensors(model, feeds, [n.output for n in imported.nodes] + list(imported.inputs)
                         + list(onnx_name.values()))
    end = np.concatenate([np.zeros((batch, 0), np.int64)]
                         + [ours[t].reshape(batch, -1) - to_ir(theirs[onnx_name.get(t, t)],
                                                                graph.tensor(t)).reshape(batch, -1)
                            for t in graph.outputs if onnx_name.get(t, t) in theirs], axis=1)

    def ort_ir(name: str) -> np.ndarray:
        """onnxruntime's tensor in IR layout; a flattening's order is its input's raster order."""
        producer = imported.producer(name)
        if producer is not None and producer.is_view:
            return ort_ir(producer.inputs[0]).reshape((batch, *imported.tensor(name).shape))
        if name in core and name not in theirs:
            return core[name]
        return to_ir(theirs[name], imported.tensor(name))

    found = Agreement(end.size, int(np.abs(end).max(initial=0)), int(np.count_nonzero(end)), 0, 0, 0)
    available = set(theirs) | set(core)
    for node in imported.nodes:
        if node.is_view or node.output not in theirs or not all(i in available for i in node.inputs):
            continue
        mine = golden.OPS[type(node)](node, *[ort_ir(i) for i in node.inputs], graph=imported)
        diff = np.abs(mine - ort_ir(node.output))
        differ = int(np.count_nonzero(diff))
        found = found + Agreement(0, 0, 0, mine.size, int(diff.max(initial=0)), differ,
                                  ((node.op, differ, mine.size),))
    return found
