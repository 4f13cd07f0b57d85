"""Small float CNNs drawn by hypothesis, pruned, and quantized by onnxruntime's quantize_static:
the models hwgen's users bring, in miniature, for the differential fuzzer."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

OPSET = 13


@dataclass
class FloatNet:
    model: onnx.ModelProto
    shape: tuple[int, ...]      # the input's NCHW shape
    description: str


class _Builder:
    def __init__(self, rng: np.random.Generator):
        self.rng, self.nodes, self.inits, self.n, self.ops = rng, [], [], 0, []

    def name(self, base: str) -> str:
        self.n += 1
        return f"{base}{self.n}"

    def const(self, array: np.ndarray, base: str) -> str:
        name = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(array, dtype=np.float32), name))
        return name

    def node(self, op: str, inputs: list[str], **attrs) -> str:
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=self.name(op), **attrs))
        self.ops.append(op)
        return out


def _pruned(rng, w: np.ndarray, sparsity: float, dead_channels: int) -> np.ndarray:
    """Element pruning (the smallest |w| set to zero) and whole output channels zeroed."""
    w = w.copy()
    if sparsity > 0:
        w[np.abs(w) < np.quantile(np.abs(w), sparsity)] = 0
    if dead_channels:
        w[rng.choice(len(w), size=min(dead_channels, len(w) - 1), replace=False)] = 0
    return w


@st.composite
def _conv(draw, b: _Builder, x: str, c: int, h: int, w: int, *, same: bool = False, keep_channels: bool = False):
    """A Conv (with optional Relu / Relu6), its output name and shape. `same`: stride 1 and the
    padding that keeps H and W; `keep_channels`: as many outputs as inputs (for a residual Add)."""
    kinds = ["dense", "depthwise", "grouped"] if c > 1 else ["dense"]
    kind = draw(st.sampled_from(kinds[:2] if keep_channels else kinds))
    if kind == "dense":
        groups, cout = 1, (c if keep_channels else draw(st.integers(1, 6)))
    elif kind == "depthwise":
        groups, cout = c, c * (1 if keep_channels else draw(st.integers(1, 2)))
    else:
        groups = draw(st.sampled_from([g for g in range(2, c + 1) if c % g == 0]))
        cout = groups * draw(st.integers(1, 2))
    if same:
        kh = kw = draw(st.sampled_from([1, 3]))
        stride, dilation, pads = (1, 1), (1, 1), [kh // 2, kw // 2, kh // 2, kw // 2]
    else:
        kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
        dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
        pads = [draw(st.integers(0, k - 1)) for k in (kh, kw, kh, kw)]
    span_h, span_w = dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1
    if h + pads[0] + pads[2] < span_h or w + pads[1] + pads[3] < span_w:
        stride, dilation, pads, kh, kw = (1, 1), (1, 1), [0, 0, 0, 0], 1, 1
        span_h = span_w = 1
    oh = (h + pads[0] + pads[2] - span_h) // stride[0] + 1
    ow = (w + pads[1] + pads[3] - span_w) // stride[1] + 1
    rng = b.rng
    weights = rng.normal(0, 1 / np.sqrt(kh * kw * c / groups), size=(cout, c // groups, kh, kw))
    weights = _pruned(rng, weights, draw(st.sampled_from([0.0, 0.3, 0.6])),
                      draw(st.sampled_from([0, 0, 1])) if cout > 1 else 0)
    bias = rng.normal(0, 0.1, size=cout)
    y = b.node("Conv", [x, b.const(weights, "w"), b.const(bias, "b")], kernel_shape=[kh, kw], strides=list(stride),
               dilations=list(dilation), pads=pads, group=groups)
    act = draw(st.sampled_from([None, "Relu", "Relu6"]))
    if act == "Relu":
        y = b.node("Relu", [y])
    elif act == "Relu6":
        y = b.node("Clip", [y, b.const(np.float32(0), "lo"), b.const(np.float32(6), "hi")])
    return y, cout, oh, ow


@st.composite
def _pool(draw, b: _Builder, x: str, c: int, h: int, w: int):
    op = draw(st.sampled_from(["MaxPool", "AveragePool"]))
    k = (draw(st.integers(1, min(3, h))), draw(st.integers(1, min(3, w))))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pads = [draw(st.integers(0, kk - 1)) for kk in (k[0], k[1], k[0], k[1])]
    attrs = dict(kernel_shape=list(k), strides=list(stride), pads=pads)
    if op == "AveragePool":
        attrs["count_include_pad"] = draw(st.integers(0, 1))
    y = b.node(op, [x], **attrs)
    oh = (h + pads[0] + pads[2] - k[0]) // stride[0] + 1
    ow = (w + pads[1] + pads[3] - k[1]) // stride[1] + 1
    return y, c, oh, ow


@st.composite
def float_nets(draw, max_blocks: int = 4, max_hw: int = 10) -> FloatNet:
    seed = draw(st.integers(0, 2**32 - 1))
    b = _Builder(np.random.default_rng(seed))
    c, h, w = draw(st.integers(1, 4)), draw(st.integers(3, max_hw)), draw(st.integers(3, max_hw))
    shape = (1, c, h, w)
    x = "input"
    for i in range(draw(st.integers(1, max_blocks))):  # the first is a Conv: quantize_static leaves a lone pool float
        block = draw(st.sampled_from(["conv", "conv", "pool", "residual", "concat"])) if i else "conv"
        if block == "conv" or (block == "pool" and (h < 2 or w < 2)):
            x, c, h, w = draw(_conv(b, x, c, h, w))
        elif block == "pool":
            x, c, h, w = draw(_pool(b, x, c, h, w))
        elif block == "residual":
            y, _, _, _ = draw(_conv(b, x, c, h, w, same=True, keep_channels=True))
            x = b.node("Add", [x, y])
        else:
            y1, c1, _, _ = draw(_conv(b, x, c, h, w, same=True))
            y2, c2, _, _ = draw(_conv(b, x, c, h, w, same=True))
            x, c = b.node("Concat", [y1, y2], axis=1), c1 + c2
    head = draw(st.sampled_from(["map", "gap_fc", "flatten_fc"]))
    if head == "gap_fc":
        x = b.node("GlobalAveragePool", [x])
        x = b.node("Flatten", [x], axis=1)
        k = c
    elif head == "flatten_fc":
        x = b.node("Flatten", [x], axis=1)
        k = c * h * w
    if head != "map":
        n = draw(st.integers(1, 6))
        fc = _pruned(b.rng, b.rng.normal(0, 1 / np.sqrt(k), size=(n, k)), draw(st.sampled_from([0.0, 0.5])), 0)
        x = b.node("Gemm", [x, b.const(fc, "fc"), b.const(b.rng.normal(0, 0.1, size=n), "fcb")], transB=1)
    graph = helper.make_graph(b.nodes, "fuzz", [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, None)], b.inits)
    model = onnx.shape_inference.infer_shapes(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8), strict_mode=True)
    onnx.checker.check_model(model)
    return FloatNet(model, shape, f"seed {seed}: {' '.join(b.ops)} on {list(shape)}")


def quantize(net: FloatNet, *, activation: str, per_channel: bool, seed: int = 0) -> onnx.ModelProto:
    """quantize_static (QDQ), calibrated on random inputs, as a user would quantize the net."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    rng = np.random.default_rng(seed)
    samples = [{"input": rng.normal(0, 1, size=net.shape).astype(np.float32)} for _ in range(8)]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(samples)

        def get_next(self):
            return next(self.it, None)

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "f.onnx", Path(tmp) / "q.onnx"
        onnx.save(net.model, src)
        logging.disable(logging.WARNING)  # its advice to pre-process, once per model
        try:
            quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                            activation_type=QuantType.QInt8 if activation == "int8" else QuantType.QUInt8,
                            weight_type=QuantType.QInt8)
        finally:
            logging.disable(logging.NOTSET)
        return onnx.load(dst)
