"""The golden model: executable integer semantics of the IR, one function per op.

This is the definition every backend must match bit for bit. Arrays are int64
with a leading batch axis: (B, *tensor.shape). Every accumulator is checked
against the width the IR derived for it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from . import budget, fixed
from .errors import InvalidOptionError
from .ir import (
    REQUANT_SLICE,
    Add,
    Affine,
    AvgPool,
    Concat,
    Conv2d,
    Dense,
    DepthToSpace,
    GlobalAvgPool,
    Graph,
    HostQuantize,
    Lookup,
    MaxPool,
    Mul,
    Node,
    Pad,
    Requantize,
    Reshape,
    Resize,
    Slice,
    Transpose,
    conv_output_hw,
)

__all__ = ["run_graph", "run_model", "OPS"]

_EXACT_FLOAT = 2.0**53  # float64 sums of integers are exact below this


def _exact_in_float(a: np.ndarray, b: np.ndarray, terms: int) -> bool:
    """Whether sums of `terms` products of a and b stay below 2**53, where float64 integer
    arithmetic is exact in any order."""
    return float(np.abs(a).max(initial=0)) * float(np.abs(b).max(initial=0)) * terms < _EXACT_FLOAT


def _dot(a: np.ndarray, b: np.ndarray, subscripts: str, terms: int) -> np.ndarray:
    """Integer einsum summing `terms` products per output: float64 (BLAS) where that is exact,
    int64 otherwise."""
    if _exact_in_float(a, b, terms):
        out = np.einsum(subscripts, a.astype(np.float64), b.astype(np.float64), optimize=True)
        return np.rint(out).astype(np.int64)
    return np.einsum(subscripts, a.astype(np.int64), b.astype(np.int64))


def _check_acc(node: Node, acc: np.ndarray) -> np.ndarray:
    if acc.size and (acc.min() < node.acc.lo or acc.max() > node.acc.hi):
        raise AssertionError(f"node {node.name!r} ({node.op}): accumulator range [{acc.min()}, {acc.max()}] "
                             f"exceeds its derived type {node.acc}")
    return acc


def _taps(x: np.ndarray, kernel, stride, dilation, pads, pad_value):
    """(B, H, W, C) -> each window tap in turn: a (B, OH, OW, C) view of the padded input.

    Windowed ops combine the taps one at a time, so memory grows with the output, not with
    kernel size x output.
    """
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    pt, pl, pb, pr = pads
    b, h, w, c = x.shape
    oh, ow = conv_output_hw((h, w), kernel, stride, dilation, pads)
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=pad_value) if any(pads) else x
    for i in range(kh):
        for j in range(kw):
            yield xp[:, i * dh: i * dh + sh * (oh - 1) + 1: sh, j * dw: j * dw + sw * (ow - 1) + 1: sw, :]


def conv2d(node: Conv2d, x: np.ndarray, graph: Graph) -> np.ndarray:
    zp = graph.tensor(node.inputs[0]).zero_point  # padding is the real value 0
    g, cout = node.groups, node.out_channels
    kh, kw = node.kernel
    cg, og = x.shape[-1] // g, cout // g
    w = node.weights.reshape(g, og, kh * kw, cg)
    dtype = np.float64 if _exact_in_float(x, node.weights, kh * kw * cg) else np.int64
    oh, ow = conv_output_hw(x.shape[1:3], node.kernel, node.stride, node.dilation, node.pads)
    acc = np.zeros((x.shape[0], oh, ow, g, og), dtype=dtype)
    part = np.empty_like(acc)
    for k, tap in enumerate(_taps(x, node.kernel, node.stride, node.dilation, node.pads, zp)):
        wk = w[:, :, k, :].astype(dtype)  # (groups, outputs per group, inputs per group)
        if not wk.any():
            continue
        t = tap.astype(dtype).reshape(*tap.shape[:3], g, cg)
        if g == 1:
            np.matmul(t[..., 0, :], wk[0].T, out=part[..., 0, :])
        elif cg == 1:  # depthwise: one input channel per group
            np.multiply(t, wk[:, :, 0], out=part)
        else:
            part[...] = np.einsum("bxygc,goc->bxygo", t, wk)
        acc += part
    del part
    if dtype is np.float64:
        acc = np.rint(acc, out=acc).astype(np.int64)
    acc = acc.reshape(*acc.shape[:3], cout)
    acc += node.bias
    _check_acc(node, acc)
    return acc if node.requant is None else node.requant.apply(acc)


def dense(node: Dense, x: np.ndarray, graph: Graph) -> np.ndarray:
    subscripts = "...k,ok->...o" if node.weights.ndim == 2 else "...grk,gok->...gro"
    acc = _dot(x, node.weights, subscripts, node.weights.shape[-1]) + node.bias
    _check_acc(node, acc)
    return acc if node.requant is None else node.requant.apply(acc)


def maxpool(node: MaxPool, x: np.ndarray, graph: Graph) -> np.ndarray:
    lowest = graph.tensor(node.inputs[0]).dtype.lo  # padding never wins
    out = None
    for tap in _taps(x, node.kernel, node.stride, node.dilation, node.pads, lowest):
        out = tap.copy() if out is None else np.maximum(out, tap, out=out)
    return out


def avgpool(node: AvgPool, x: np.ndarray, graph: Graph) -> np.ndarray:
    zp = graph.tensor(node.inputs[0]).zero_point
    acc = None
    for tap in _taps(x, node.kernel, node.stride, (1, 1), node.pads, zp):
        acc = tap - zp if acc is None else acc.__iadd__(tap - zp)
    _check_acc(node, acc)
    if node.count_include_pad:
        counts = np.full(acc.shape[1:3], node.kernel[0] * node.kernel[1])
    else:
        ones = np.ones((1, *x.shape[1:3], 1), dtype=np.int64)
        counts = sum(_taps(ones, node.kernel, node.stride, (1, 1), node.pads, 0))[0, :, :, 0]
    out = np.empty_like(acc)
    for count, requant in node.requants.items():
        at = counts == count
        out[:, at, :] = requant.apply(acc[:, at, :])
    return out


def global_avgpool(node: GlobalAvgPool, x: np.ndarray, graph: Graph) -> np.ndarray:
    zp = graph.tensor(node.inputs[0]).zero_point
    acc = (x - zp).sum(axis=(1, 2), keepdims=True)
    _check_acc(node, acc)
    return node.requant.apply(acc)


def add(node: Add, a: np.ndarray, b: np.ndarray, graph: Graph) -> np.ndarray:
    acc = node.lhs_multiplier * a + node.rhs_multiplier * b + node.bias
    _check_acc(node, acc)
    return node.requant.apply(acc)


def concat(node: Concat, *xs: np.ndarray, graph: Graph) -> np.ndarray:
    return np.concatenate(xs, axis=node.axis % (xs[0].ndim - 1) + 1)


def requantize(node: Requantize, x: np.ndarray, graph: Graph) -> np.ndarray:
    acc = x - graph.tensor(node.inputs[0]).zero_point
    return node.requant.apply(acc)


def reshape(node: Reshape, x: np.ndarray, graph: Graph) -> np.ndarray:
    return x.reshape((x.shape[0], *graph.tensor(node.output).shape))


def lookup(node: Lookup, x: np.ndarray, graph: Graph) -> np.ndarray:
    index = x - graph.tensor(node.inputs[0]).dtype.lo
    if not node.channel_tables:
        return node.tables[0][index]
    per_channel = node.tables[list(node.channel_tables)]      # (C, entries)
    return per_channel[np.arange(x.shape[-1]), index]


def mul(node: Mul, a: np.ndarray, b: np.ndarray, graph: Graph) -> np.ndarray:
    za, zb = (graph.tensor(n).zero_point for n in node.inputs)
    if b.shape != a.shape:  # one value per channel, broadcast over the positions
        b = b.reshape(b.shape[0], *([1] * (a.ndim - 2)), a.shape[-1])
    acc = (a - za) * (b - zb)
    _check_acc(node, acc)
    return node.requant.apply(acc)


def affine(node: Affine, x: np.ndarray, graph: Graph) -> np.ndarray:
    zx = graph.tensor(node.inputs[0]).zero_point
    acc = np.array(node.scale, dtype=np.int64) * (x - zx) + np.array(node.offset, dtype=np.int64)
    _check_acc(node, acc)
    return node.requant.apply(acc)


def pad(node: Pad, x: np.ndarray, graph: Graph) -> np.ndarray:
    return np.pad(x, ((0, 0), *node.pads), constant_values=node.value)


def resize(node: Resize, x: np.ndarray, graph: Graph) -> np.ndarray:
    if node.requant is None:  # nearest: every output reads one input, unchanged
        rows = [taps[0][0] for taps in node.rows]
        cols = [taps[0][0] for taps in node.cols]
        return x[:, rows][:, :, cols]
    zx = graph.tensor(node.inputs[0]).zero_point
    d = x - zx
    by_rows = np.stack([sum(w * d[:, r] for r, w in taps) for taps in node.rows], axis=1)
    acc = np.stack([sum(w * by_rows[:, :, c] for c, w in taps) for taps in node.cols], axis=2)
    _check_acc(node, acc)
    return node.requant.apply(acc)


def depth_to_space(node: DepthToSpace, x: np.ndarray, graph: Graph) -> np.ndarray:
    b, h, w, _ = x.shape
    by, bx = node.block
    y = x[..., list(node.channels)].reshape(b, h, w, by, bx, -1)
    return y.transpose(0, 1, 3, 2, 4, 5).reshape(b, h * by, w * bx, -1)


def slice_(node: Slice, x: np.ndarray, graph: Graph) -> np.ndarray:
    return x[(slice(None), *(slice(s, e) for s, e in zip(node.starts, node.ends)))]


def transpose(node: Transpose, x: np.ndarray, graph: Graph) -> np.ndarray:
    return x.transpose(0, *(p + 1 for p in node.perm))


OPS = {
    Conv2d: conv2d,
    Dense: dense,
    MaxPool: maxpool,
    AvgPool: avgpool,
    GlobalAvgPool: global_avgpool,
    Add: add,
    Concat: concat,
    Requantize: requantize,
    Reshape: reshape,
    Lookup: lookup,
    Mul: mul,
    Affine: affine,
    Pad: pad,
    Resize: resize,
    DepthToSpace: depth_to_space,
    Slice: slice_,
    Transpose: transpose,
}


def sample_bytes(graph: Graph) -> int:
    """Estimated peak memory of `run_graph` per sample: the tensors alive at each node (int64)
    plus the node's temporaries (float64 copies of its operands and result, and the
    requantization's temporaries of one slice), at the worst node."""
    last_use = {name: len(graph.nodes) for name in graph.outputs}
    for k, node in enumerate(graph.nodes):
        for name in node.inputs:
            last_use[name] = max(last_use.get(name, 0), k)
    alive = {name: graph.tensor(name).size for name in graph.inputs}
    peak = sum(alive.values())
    for k, node in enumerate(graph.nodes):
        ins = sum(graph.tensor(n).size for n in node.inputs)
        out = graph.tensor(node.output).size
        peak = max(peak, sum(alive.values()) + out + 2 * (ins + out) + 8 * min(out, REQUANT_SLICE))
        alive[node.output] = out
        alive = {name: size for name, size in alive.items() if last_use.get(name, -1) > k}
    return 8 * peak


def run_graph(graph: Graph, inputs: Mapping[str, np.ndarray], *, keep_all: bool = False) -> dict[str, np.ndarray]:
    """Run the integer core. `inputs` maps IR input names to (B, *shape) integer arrays.

    Returns the graph outputs (every tensor with keep_all=True), each int64 (B, *shape). A batch
    larger than the memory budget allows at once runs in chunks of samples.
    """
    batch = len(next(iter(inputs.values()))) if inputs else 1
    kept_names = list(graph.tensors) if keep_all else list(dict.fromkeys(graph.outputs))
    per_sample = sample_bytes(graph) + (8 * sum(graph.tensor(n).size for n in kept_names) if keep_all else 0)
    if per_sample * batch <= budget.limit():
        return _run_samples(graph, inputs, keep_all)
    kept = 8 * sum(graph.tensor(n).size for n in kept_names)  # per sample, held for the whole batch
    budget.require(kept * batch + per_sample, f"running the golden model of {graph.name!r} on {batch} sample(s)")
    chunk = max(1, (budget.limit() - kept * batch) // per_sample)
    results = {name: np.empty((batch, *graph.tensor(name).shape), dtype=np.int64) for name in kept_names}
    for i in range(0, batch, chunk):
        part = _run_samples(graph, {n: x[i:i + chunk] for n, x in inputs.items()}, keep_all)
        for name in kept_names:
            results[name][i:i + chunk] = part[name]
    return results


def _run_samples(graph: Graph, inputs: Mapping[str, np.ndarray], keep_all: bool) -> dict[str, np.ndarray]:
    env: dict[str, np.ndarray] = {}
    for name in graph.inputs:
        t = graph.tensor(name)
        x = np.asarray(inputs[name])
        if x.shape[1:] != t.shape:
            raise ValueError(f"input {name!r}: expected samples of shape {t.shape}, got {x.shape[1:]}")
        if not t.dtype.contains(x):
            raise ValueError(f"input {name!r}: values outside {t.dtype}")
        env[name] = x.astype(np.int64)
    last_use = {name: len(graph.nodes) for name in graph.outputs}
    for k, node in enumerate(graph.nodes):
        for name in node.inputs:
            last_use[name] = max(last_use.get(name, 0), k)
    for k, node in enumerate(graph.nodes):
        args = [env[i] for i in node.inputs]
        out = OPS[type(node)](node, *args, graph=graph)
        t = graph.tensor(node.output)
        if out.shape[1:] != t.shape or not t.dtype.contains(out):
            raise AssertionError(f"node {node.name!r} ({node.op}): result {out.shape[1:]} "
                                 f"[{out.min()}, {out.max()}] does not fit {t}")
        env[node.output] = out
        del args
        if not keep_all:  # free what no later node reads
            for name in node.inputs:
                if last_use.get(name, -1) <= k:
                    env.pop(name, None)
    return env if keep_all else {name: env[name] for name in graph.outputs}


class _TailRunner:
    """Runs the float host tail: onnxruntime (the reference hwgen is measured against), or
    onnx's reference evaluator for opsets onnxruntime does not implement yet."""

    def __init__(self, model: bytes):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 4
        try:
            self.session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
            self.input_names = [i.name for i in self.session.get_inputs()]
        except Exception:  # onnxruntime refuses the opset or IR version
            from onnx import load_model_from_string
            from onnx.reference import ReferenceEvaluator

            self.session = ReferenceEvaluator(load_model_from_string(model))
            self.input_names = list(self.session.input_names)

    def run(self, outputs, feeds):
        return self.session.run(list(outputs), feeds)


def _run_tail(graph: Graph, outputs: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
    tail = graph.tail
    runner = _TailRunner(tail.model)
    batched = {p.onnx_name: p.layout.batched for p in graph.output_ports}
    per_sample = []
    for i in range(batch):  # the tail was exported for one sample
        feeds = {n: outputs[n][i:i + 1] if batched[n] else outputs[n] for n in runner.input_names}
        per_sample.append(runner.run(tail.outputs, feeds))
    if batch == 1:
        return dict(zip(tail.outputs, per_sample[0]))
    return {name: np.concatenate([s[k] for s in per_sample], axis=0) for k, name in enumerate(tail.outputs)}


def run_model(graph: Graph, feeds: Mapping[str, np.ndarray], *, core=None) -> dict[str, np.ndarray]:
    """Run the whole model as ONNX defines it: host quantization, integer core, float host tail.

    `feeds` maps the ONNX model's input names to arrays in its layout (optionally with
    a batch of B samples on a leading axis of size 1); returns its outputs likewise.
    `core(inputs) -> outputs` runs the integer core (default: the golden model); a
    backend passes its generated code here, so host head and tail stay shared.
    """
    core_inputs, batch = {}, None
    for port in graph.input_ports:
        x = np.asarray(feeds[port.onnx_name])
        n = port.batch_of(x)
        if batch not in (None, n):
            raise InvalidOptionError(f"the inputs hold different numbers of samples ({batch} and {n})")
        batch = n
    ends = sum(graph.tensor(p.tensor).size for p in (*graph.input_ports, *graph.output_ports))
    budget.require(16 * ends * (batch or 1), f"holding the inputs and outputs of {batch} sample(s)")
    for port in graph.input_ports:
        x = port.through_head(np.asarray(feeds[port.onnx_name]))
        if port.quantize is not None:
            x = quantize_host(x, port.quantize, graph.tensor(port.tensor).dtype)
        core_inputs[port.tensor] = port.layout.to_ir(np.asarray(x))
    results = run_graph(graph, core_inputs) if core is None else core(core_inputs)
    outputs = {}
    for port in graph.output_ports:
        outputs[port.onnx_name] = port.layout.to_onnx(results[port.tensor]).astype(port.onnx_dtype)
    if graph.tail is not None:
        outputs.update(_run_tail(graph, outputs, batch or 1))
    return {name: outputs[name] for name in graph.model_outputs}


def quantize_host(x: np.ndarray, quant: HostQuantize, dtype: fixed.IntType) -> np.ndarray:
    """QuantizeLinear in ONNX layout: per tensor, per axis or per block."""
    scale = np.asarray(quant.scale, dtype=np.float32).reshape(quant.shape)
    zp = np.asarray(quant.zero_point, dtype=np.int64).reshape(quant.shape)
    if quant.block_size:
        axis = quant.axis % x.ndim
        scale = np.repeat(scale, quant.block_size, axis=axis).take(range(x.shape[axis]), axis=axis)
        zp = np.repeat(zp, quant.block_size, axis=axis).take(range(x.shape[axis]), axis=axis)
    elif scale.ndim == 1:
        shape = [1] * x.ndim
        shape[quant.axis % x.ndim] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return fixed.quantize_float(x, scale, zp, dtype)
