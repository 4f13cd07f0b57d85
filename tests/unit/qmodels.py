"""Small quantized ONNX models built directly, in QDQ and QOperator form, for front-end tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from onnx import TensorProto, helper, numpy_helper

OPSET = [helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)]


@dataclass
class Q:
    """Quantization of an activation."""

    scale: float
    zero_point: int
    dtype: type = np.int8

    @property
    def onnx_type(self) -> int:
        return TensorProto.INT8 if self.dtype == np.int8 else TensorProto.UINT8


class GraphBuilder:
    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, base: str) -> str:
        self.n += 1
        return f"{base}_{self.n}"

    def const(self, value, base="c") -> str:
        name = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs, domain: str = "", **attrs) -> str:
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=self.name(op), domain=domain, **attrs))
        return out

    def quantize(self, x: str, q: Q) -> str:
        return self.node("QuantizeLinear", [x, self.const(np.float32(q.scale)), self.const(q.dtype(q.zero_point))])

    def dequantize(self, x: str, q: Q) -> str:
        return self.node("DequantizeLinear", [x, self.const(np.float32(q.scale)), self.const(q.dtype(q.zero_point))])

    def qdq(self, x: str, q: Q) -> str:
        return self.dequantize(self.quantize(x, q), q)

    def weights(self, w: np.ndarray, scale: np.ndarray, axis: int = 0) -> str:
        """DequantizeLinear(int8 initializer), per channel when scale has several values."""
        zp = np.zeros(scale.shape, dtype=np.int8)
        attrs = {"axis": axis} if scale.ndim else {}
        return self.node("DequantizeLinear", [self.const(w.astype(np.int8), "w"), self.const(scale.astype(np.float32)),
                                              self.const(zp)], **attrs)

    def bias(self, b: np.ndarray, scale: np.ndarray) -> str:
        return self.node("DequantizeLinear", [self.const(b.astype(np.int32), "b"),
                                              self.const(np.broadcast_to(scale, b.shape).astype(np.float32)),
                                              self.const(np.zeros(b.shape, np.int32))], axis=0)

    def model(self, inputs: list[tuple[str, list[int]]], output: str, out_shape=None, elem=TensorProto.FLOAT):
        graph = helper.make_graph(
            self.nodes, "test",
            [helper.make_tensor_value_info(n, TensorProto.FLOAT if len(s) and s[0] >= 0 else elem, s)
             for n, s in inputs],
            [helper.make_tensor_value_info(output, elem, out_shape)], self.inits)
        return helper.make_model(graph, opset_imports=OPSET, ir_version=8)


def random_weights(rng, shape, sparsity=0.3) -> np.ndarray:
    w = rng.integers(-127, 128, size=shape)
    w[rng.random(shape) < sparsity] = 0
    return w


def qdq_conv(rng, *, cin, cout, hw, kernel, stride, dilation, pads, groups, act=np.int8, per_channel=True,
             relu=None, clip6=False):
    """x -> Q -> DQ -> Conv(DQ w, DQ b) [-> Relu | Clip] -> Q -> DQ -> y, float in and out."""
    b = GraphBuilder()
    qx = Q(float(rng.uniform(0.005, 0.05)), int(rng.integers(-20, 20)) if act == np.int8 else int(rng.integers(0, 40)),
           act)
    qy = Q(float(rng.uniform(0.02, 0.2)), int(rng.integers(-10, 10)) if act == np.int8 else int(rng.integers(0, 60)),
           act)
    w = random_weights(rng, (cout, cin // groups, *kernel))
    ws = rng.uniform(0.002, 0.02, size=cout if per_channel else ()).astype(np.float32)
    bias = rng.integers(-3000, 3000, size=cout)
    x = b.qdq("x", qx)
    y = b.node("Conv", [x, b.weights(w, ws), b.bias(bias, np.float32(qx.scale) * ws)], kernel_shape=list(kernel),
               strides=list(stride), dilations=list(dilation), pads=list(pads), group=groups)
    if relu:
        y = b.node("Relu", [y])
    if clip6:
        y = b.node("Clip", [y, b.const(np.float32(0)), b.const(np.float32(6))])
    y = b.qdq(y, qy)
    return b.model([("x", [1, cin, *hw])], y)


def qlinear_conv(rng, *, cin, cout, hw, kernel, stride, dilation, pads, groups, act=np.uint8):
    """QOperator: x(int) -> QLinearConv -> y(int)."""
    b = GraphBuilder()
    zx = int(rng.integers(0, 40)) if act == np.uint8 else int(rng.integers(-20, 20))
    zy = int(rng.integers(0, 60)) if act == np.uint8 else int(rng.integers(-10, 10))
    w = random_weights(rng, (cout, cin // groups, *kernel))
    sx = np.float32(rng.uniform(0.005, 0.05))
    ws = rng.uniform(0.002, 0.02, size=cout).astype(np.float32)
    bias = rng.integers(-3000, 3000, size=cout).astype(np.int32)
    y = b.node("QLinearConv", ["x", b.const(sx), b.const(act(zx)), b.const(w.astype(np.int8)), b.const(ws),
                               b.const(np.zeros(cout, np.int8)), b.const(np.float32(rng.uniform(0.02, 0.2))),
                               b.const(act(zy)), b.const(bias)],
               kernel_shape=list(kernel), strides=list(stride), dilations=list(dilation), pads=list(pads),
               group=groups)
    elem = TensorProto.UINT8 if act == np.uint8 else TensorProto.INT8
    graph = helper.make_graph(b.nodes, "test", [helper.make_tensor_value_info("x", elem, [1, cin, *hw])],
                              [helper.make_tensor_value_info(y, elem, None)], b.inits)
    return helper.make_model(graph, opset_imports=OPSET, ir_version=8)
