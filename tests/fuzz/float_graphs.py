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

    def int_const(self, values, base: str) -> str:
        name = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(values, dtype=np.int64), name))
        return name

    def node(self, op: str, inputs: list[str], **attrs) -> str:
        return self.node_outputs(op, inputs, 1, **attrs)[0]

    def node_outputs(self, op: str, inputs: list[str], n: int, **attrs) -> list[str]:
        outs = [self.name(op.lower()) for _ in range(n)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=self.name(op), **attrs))
        self.ops.append(op)
        return outs


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


# -- detectors: the ops of SSD heads, FPN necks and MobileNetV3 backbones ---------------------------------

DETECTOR_OPSET = 17

#: Elementwise functions (with their attributes drawn) that become lookup tables.
FUNCTIONS = ("Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "LeakyRelu", "PRelu", "Elu", "Softplus", "Softsign",
             "Erf", "Exp")


@st.composite
def _function(draw, b: _Builder, x: str, c: int):
    op = draw(st.sampled_from(FUNCTIONS))
    if op == "LeakyRelu":
        return b.node(op, [x], alpha=draw(st.sampled_from([0.01, 0.1, 0.2])))
    if op == "HardSigmoid":
        return b.node(op, [x], alpha=draw(st.sampled_from([0.2, 1 / 6])), beta=0.5)
    if op == "Elu":
        return b.node(op, [x], alpha=draw(st.sampled_from([0.5, 1.0])))
    if op == "PRelu":
        return b.node(op, [x, b.const(b.rng.uniform(0, 0.5, size=(c, 1, 1)), "slope")])
    return b.node(op, [x])


@st.composite
def _affine(draw, b: _Builder, x: str, c: int):
    """A multiply or add by constants, or a BatchNormalization no Conv absorbs."""
    kind = draw(st.sampled_from(["mul", "add", "sub", "div", "batchnorm"]))
    per_channel = draw(st.booleans())
    shape = (1, c, 1, 1) if per_channel else ()
    if kind == "batchnorm":
        x = b.node("Relu", [x])  # between the Conv and it: it stays standalone
        params = [b.rng.uniform(0.5, 1.5, c), b.rng.normal(0, 0.2, c), b.rng.normal(0, 0.2, c),
                  b.rng.uniform(0.5, 2, c)]
        return b.node("BatchNormalization", [x] + [b.const(p, "bn") for p in params], epsilon=1e-5)
    value = b.rng.uniform(0.5, 2.0, size=shape) * np.where(b.rng.random(size=shape) < 0.3, -1, 1)
    inputs = [x, b.const(value, "k")]
    return b.node({"mul": "Mul", "add": "Add", "sub": "Sub", "div": "Div"}[kind],
                  inputs[::-1] if kind in ("add", "mul") and draw(st.booleans()) else inputs)


@st.composite
def _detector_block(draw, b: _Builder, x: str, c: int, h: int, w: int, fpga: bool):
    """One block of a detector; `fpga`: only what the FPGA accelerator builds."""
    kinds = ["function", "se", "swish", "affine", "pad", "resize", "deconv", "concat_hw", "slice", "split",
             "depth_to_space", "transpose"]
    if fpga:
        kinds = ["function", "se", "swish", "affine", "pad", "resize", "deconv", "slice", "depth_to_space"]
    kind = draw(st.sampled_from(kinds))
    if kind == "function":
        return draw(_function(b, x, c)), c, h, w
    if kind == "swish":
        return b.node("Mul", [x, b.node("Sigmoid", [x])]), c, h, w
    if kind == "affine":
        return draw(_affine(b, x, c)), c, h, w
    if kind == "se":
        r = draw(st.integers(1, max(1, c)))
        g = b.node("GlobalAveragePool", [x])
        s = b.node("Relu", [b.node("Conv", [g, b.const(b.rng.normal(0, 1, (r, c, 1, 1)), "w"),
                                            b.const(b.rng.normal(0, 0.1, r), "b")])])
        s = b.node("Conv", [s, b.const(b.rng.normal(0, 1, (c, r, 1, 1)), "w"), b.const(b.rng.normal(0, 0.1, c), "b")])
        s = b.node(draw(st.sampled_from(["HardSigmoid", "Sigmoid"])), [s])
        return b.node("Mul", [x, s]), c, h, w
    if kind == "pad":
        spatial = [draw(st.integers(0, 2)) for _ in range(4)]
        channels = [draw(st.integers(0, 3)), draw(st.integers(0, 3))] if not fpga or c % 2 == 0 else [0, 0]
        pads = [0, channels[0], spatial[0], spatial[1], 0, channels[1], spatial[2], spatial[3]]
        y = b.node("Pad", [x, b.int_const(pads, "pads")], mode="constant")
        return y, c + sum(channels), h + spatial[0] + spatial[2], w + spatial[1] + spatial[3]
    if kind == "resize":
        mode = "nearest" if fpga else draw(st.sampled_from(["nearest", "linear"]))
        scale = draw(st.sampled_from([2, 3] if mode == "nearest" else [2]))
        if mode == "nearest" and h >= 4 and w >= 4 and draw(st.booleans()):
            scale = 0.5
        transform = draw(st.sampled_from(["asymmetric", "half_pixel", "align_corners", "pytorch_half_pixel"]))
        attrs = dict(mode=mode, coordinate_transformation_mode=transform)
        if mode == "nearest":
            attrs["nearest_mode"] = draw(st.sampled_from(["floor", "round_prefer_floor", "round_prefer_ceil", "ceil"]))
            if fpga:
                attrs["coordinate_transformation_mode"] = "asymmetric"
        y = b.node("Resize", [x, "", b.const(np.array([1, 1, scale, scale], np.float32), "scales")], **attrs)
        return y, c, int(h * scale), int(w * scale)
    if kind == "deconv":
        k, stride = draw(st.integers(2, 4)), 2
        groups = 1 if fpga or c == 1 else draw(st.sampled_from([1, c]))
        cout = draw(st.integers(1, 4)) * groups
        pads = [draw(st.integers(0, k // 2)) for _ in range(4)]
        out_pad = [draw(st.integers(0, 1)), draw(st.integers(0, 1))]
        weights = b.rng.normal(0, 1 / np.sqrt(k * k * c / groups), size=(c, cout // groups, k, k))
        # no bias when grouped: quantize_static's per-channel bias scales of a grouped ConvTranspose
        # have cout / groups entries, and it fails (an onnxruntime quantizer bug, not the model's)
        bias = [b.const(b.rng.normal(0, 0.1, cout), "b")] if groups == 1 else []
        y = b.node("ConvTranspose", [x, b.const(weights, "w"), *bias],
                   kernel_shape=[k, k], strides=[stride, stride], pads=pads, output_padding=out_pad, group=groups)
        oh = (h - 1) * stride + k + out_pad[0] - pads[0] - pads[2]
        ow = (w - 1) * stride + k + out_pad[1] - pads[1] - pads[3]
        return y, cout, oh, ow
    if kind == "concat_hw":
        y1, c1, _, _ = draw(_conv(b, x, c, h, w, same=True, keep_channels=True))
        y2, _, _, _ = draw(_conv(b, x, c, h, w, same=True, keep_channels=True))
        axis = draw(st.sampled_from([2, 3]))
        return b.node("Concat", [y1, y2], axis=axis), c, h * (2 if axis == 2 else 1), w * (2 if axis == 3 else 1)
    if kind == "slice":
        axis = draw(st.sampled_from([1, 2, 3] if c > 1 and not fpga else [2, 3]))
        n = (c, h, w)[axis - 1]
        start = draw(st.integers(0, max(0, n - 2)))
        end = draw(st.integers(start + 1, n))
        y = b.node("Slice", [x, b.int_const([start], "s"), b.int_const([end], "e"), b.int_const([axis], "a")])
        shape = [c, h, w]
        shape[axis - 1] = end - start
        return y, *shape
    if kind == "split":
        if c % 2:
            return draw(_conv(b, x, c, h, w))
        y1, y2 = b.node_outputs("Split", [x, b.int_const([c // 2, c // 2], "split")], 2, axis=1)
        return b.node("Add", [y1, y2]), c // 2, h, w
    if kind == "depth_to_space":
        q = draw(st.integers(1, 2))
        y = b.node("Conv", [x, b.const(b.rng.normal(0, 1 / np.sqrt(c), (4 * q, c, 1, 1)), "w")])
        mode = "DCR" if fpga else draw(st.sampled_from(["DCR", "CRD"]))
        return b.node("DepthToSpace", [y], blocksize=2, mode=mode), q, 2 * h, 2 * w
    # transpose: height and width change places
    return b.node("Transpose", [x], perm=[0, 1, 3, 2]), c, w, h


@st.composite
def detector_nets(draw, max_blocks: int = 3, max_hw: int = 6, fpga: bool = False) -> FloatNet:
    """A conv, then detector blocks each followed by a conv (so each block's output is quantized
    the way quantize_static quantizes a layer's), then a map or SSD heads: Conv -> Transpose(0, 2,
    3, 1) -> Reshape(1, -1, k) of two scales, concatenated along the anchors, one or two outputs
    (scores, boxes), and sometimes the map as an output too."""
    seed = draw(st.integers(0, 2**32 - 1))
    b = _Builder(np.random.default_rng(seed))
    c, h, w = draw(st.integers(1, 4)), draw(st.integers(2, max_hw)), draw(st.integers(2, max_hw))
    shape = (1, c, h, w)
    x, c, h, w = draw(_conv(b, "input", c, h, w, same=True))
    for _ in range(draw(st.integers(1, max_blocks))):
        x, c, h, w = draw(_detector_block(b, x, c, h, w, fpga))
        if h * w > 400:
            x = b.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
            h, w = h // 2, w // 2
        x, c, h, w = draw(_conv(b, x, c, h, w, same=True))
    outputs = [x]
    if draw(st.booleans()):   # SSD heads: scores (and boxes) of two scales, each an output of its own
        outputs = []
        sources = (x, b.node("MaxPool", [x], kernel_shape=[1, 1], strides=[2, 2]))
        for k in draw(st.sampled_from([[1], [1, 4], [draw(st.integers(1, 4))]])):
            heads = []
            for source in sources:
                y = b.node("Conv", [source, b.const(b.rng.normal(0, 1 / np.sqrt(c), (2 * k, c, 1, 1)), "w")])
                y = b.node("Transpose", [y], perm=[0, 2, 3, 1])
                heads.append(b.node("Reshape", [y, b.int_const([1, -1, k], "shape")]))
            outputs.append(b.node("Concat", heads, axis=1))
        if draw(st.booleans()):
            outputs.append(x)   # an output from inside the graph (the heads read it too)
    graph = helper.make_graph(b.nodes, "detector", [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs], b.inits)
    model = onnx.shape_inference.infer_shapes(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", DETECTOR_OPSET)], ir_version=8),
        strict_mode=True)
    onnx.checker.check_model(model)
    return FloatNet(model, shape, f"seed {seed}: {' '.join(b.ops)} on {list(shape)}")
