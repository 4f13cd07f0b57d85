"""QONNX beyond Quant: Trunc (Brevitas' truncating average pool), BipolarQuant (binary weights and
activations), and files without an opset import for the QONNX domain (as the QONNX zoo ships them),
against numpy transcriptions of qonnx's reference implementations."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from hwgen.compiler import compile_model
from hwgen.errors import UnsupportedModelError
from hwgen.golden import run_model

from ..conftest import ort_run

DOMAIN = "qonnx.custom_op.general"


def _const(name: str, value) -> TensorProto:
    return numpy_helper.from_array(np.asarray(value, np.float32), name)


def _model(nodes, inits, in_shape, out_shape, import_domain: bool = True):
    graph = helper.make_graph(nodes, "q", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                              [helper.make_tensor_value_info("o", TensorProto.FLOAT, out_shape)], inits)
    opsets = [helper.make_opsetid("", 13)] + ([helper.make_opsetid(DOMAIN, 1)] if import_domain else [])
    return helper.make_model(graph, opset_imports=opsets, ir_version=8)


def _quant(x: np.ndarray, scale: float, bits: int = 8) -> np.ndarray:
    """qonnx's Quant, signed, ROUND (ties to even)."""
    return np.clip(np.round(x / scale), -(1 << (bits - 1)), (1 << (bits - 1)) - 1) * scale


def _trunc_v1(x, scale, zero_point, in_bits, out_bits, mode):
    """qonnx's Trunc of opset 1."""
    y = np.round(x / scale + zero_point) / 2.0 ** (in_bits - out_bits)
    y = {"FLOOR": np.floor, "CEIL": np.ceil, "ROUND": np.round}[mode](y)
    return (y - zero_point) * scale


@pytest.mark.parametrize("mode", ["FLOOR", "CEIL", "ROUND"])
@pytest.mark.parametrize("import_domain", [True, False])
def test_truncating_average_pool(mode, import_domain):
    """Quant -> AveragePool -> Mul(4) (the window's sum) -> Trunc(10 -> 8 bits) -> Quant."""
    nodes = [helper.make_node("Quant", ["x", "s", "z", "b8"], ["q"], domain=DOMAIN, signed=1, narrow=0,
                              rounding_mode="ROUND"),
             helper.make_node("AveragePool", ["q"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Mul", ["p", "four"], ["sum"]),
             helper.make_node("Trunc", ["sum", "s", "z", "b10", "b8"], ["t"], domain=DOMAIN, rounding_mode=mode),
             helper.make_node("Quant", ["t", "s", "z", "b8"], ["o"], domain=DOMAIN, signed=1, narrow=0,
                              rounding_mode="ROUND")]
    inits = [_const("s", 0.1), _const("z", 0.0), _const("b8", 8), _const("b10", 10), _const("four", 4)]
    model = _model(nodes, inits, [1, 2, 4, 4], [1, 2, 2, 2], import_domain)
    x = np.random.default_rng(0).normal(0, 5, (6, 2, 4, 4)).astype(np.float32)
    sums = _quant(x, 0.1).reshape(6, 2, 2, 2, 2, 2).sum(axis=(3, 5))
    want = _quant(_trunc_v1(sums, 0.1, 0, 10, 8, mode), 0.1)
    compiled = compile_model(model)
    assert [n.op for n in compiled.graph.nodes] == ["AvgPool", "Affine"]
    assert np.allclose(run_model(compiled.graph, {"x": x})["o"], want, atol=1e-6)


def test_bipolar_weights_and_activations():
    """A binary activation of a quantized input (a lookup table) convolved with binary weights."""
    rng = np.random.default_rng(1)
    w = rng.normal(0, 1, (4, 2, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Quant", ["x", "s", "z", "b8"], ["q"], domain=DOMAIN, signed=1, narrow=0,
                              rounding_mode="ROUND"),
             helper.make_node("BipolarQuant", ["q", "one"], ["bq"], domain=DOMAIN),
             helper.make_node("BipolarQuant", ["w", "ws"], ["wq"], domain=DOMAIN),
             helper.make_node("Conv", ["bq", "wq"], ["y"], pads=[1, 1, 1, 1]),
             helper.make_node("Quant", ["y", "ys", "z", "b8"], ["o"], domain=DOMAIN, signed=1, narrow=0,
                              rounding_mode="ROUND")]
    inits = [_const("s", 0.1), _const("z", 0.0), _const("b8", 8), _const("one", 1.0), _const("w", w),
             _const("ws", 0.5), _const("ys", 0.25)]
    model = _model(nodes, inits, [1, 2, 5, 5], [1, 4, 5, 5])
    x = rng.normal(0, 1, (3, 2, 5, 5)).astype(np.float32)
    compiled = compile_model(model)
    assert [n.op for n in compiled.graph.nodes] == ["Lookup", "Conv2d"]
    signs = np.where(_quant(x, 0.1) >= 0, 1.0, -1.0).astype(np.float32)
    conv = helper.make_model(helper.make_graph(
        [helper.make_node("Conv", ["b", "w"], ["y"], pads=[1, 1, 1, 1])], "c",
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 2, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [_const("w", np.where(w >= 0, 0.5, -0.5))]),
        opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    want = _quant(ort_run(conv, {"b": signs})[0], 0.25)
    assert np.allclose(run_model(compiled.graph, {"x": x})["o"], want, atol=1e-6)


def test_bipolar_of_a_layer_output_is_refused():
    nodes = [helper.make_node("Quant", ["x", "s", "z", "b8"], ["q"], domain=DOMAIN, signed=1, narrow=0,
                              rounding_mode="ROUND"),
             helper.make_node("BipolarQuant", ["w", "one"], ["wq"], domain=DOMAIN),
             helper.make_node("Conv", ["q", "wq"], ["y"]),
             helper.make_node("BipolarQuant", ["y", "one"], ["o"], domain=DOMAIN, name="binary")]
    inits = [_const("s", 0.1), _const("z", 0.0), _const("b8", 8), _const("one", 1.0),
             _const("w", np.ones((2, 2, 1, 1)))]
    with pytest.raises(UnsupportedModelError, match=r"^node 'binary' \(BipolarQuant\): binarizes the float result "
                                                    r"of node"):
        compile_model(_model(nodes, inits, [1, 2, 3, 3], [1, 2, 3, 3]))
