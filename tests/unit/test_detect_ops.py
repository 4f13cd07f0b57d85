"""The detector ops against onnxruntime: lookup tables, resize index maps and interpolation weights,
ConvTranspose as phases, affine constants, and the refusals."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from hwgen import fixed, golden
from hwgen.compiler import compile_model
from hwgen.errors import UnsupportedModelError
from hwgen.fixed import IntType
from hwgen.frontend import import_onnx
from hwgen.frontend.conv_transpose import phase_channels, phase_weights
from hwgen.frontend.lower import affine_constants
from hwgen.frontend.movement import COORDINATES, NEAREST, linear_taps, nearest_taps
from hwgen.ir import Conv2d, DepthToSpace, Tensor
from hwgen.reference import agreement

from ..conftest import ort_run
from .qmodels import GraphBuilder, Q, random_weights


def _ort(nodes, inputs: dict[str, np.ndarray], output: str, inits=(), opset: int = 19) -> np.ndarray:
    graph = helper.make_graph(nodes, "t", [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype),
                                                                         a.shape) for n, a in inputs.items()],
                              [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)], list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    return ort_run(model, inputs)[0]


# -- resize ------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 9), st.sampled_from([0.5, 0.75, 1.5, 2.0, 2.5, 3.0, 4.0, 8.0]),
       st.sampled_from(sorted(COORDINATES)), st.sampled_from(sorted(set(NEAREST) - {"simple"})))
def test_nearest_taps_are_onnxruntimes(n, scale, transform, rule):
    """Our float32 emulation of onnxruntime's coordinate rules picks the same input as it does."""
    out = int(np.float32(scale) * np.float32(n))
    if out < 1 or (transform == "half_pixel_symmetric" and out != scale * n):  # refused: see test_refusals
        return
    x = np.arange(n, dtype=np.float32).reshape(1, 1, 1, n)
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest",
                            coordinate_transformation_mode=transform, nearest_mode=rule)
    scales = numpy_helper.from_array(np.array([1, 1, 1, scale], np.float32), "scales")
    want = _ort([node], {"x": x}, "y", [scales]).reshape(-1).astype(int).tolist()
    assert [t[0][0] for t in nearest_taps(n, out, scale, transform, rule)] == want


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 7), st.sampled_from([2, 3, 4, Fraction(1, 2)]),
       st.sampled_from(["asymmetric", "half_pixel", "align_corners", "pytorch_half_pixel", "half_pixel_symmetric"]),
       st.integers(0, 2**32 - 1))
def test_linear_taps_interpolate_as_onnxruntime(n, factor, transform, seed):
    """The exact rational weights give onnxruntime's float result (to float32 precision), and every
    output's weights sum to the common denominator."""
    out = int(n * factor)
    if out < 1:
        return
    x = np.random.default_rng(seed).normal(0, 10, size=(1, 1, 1, n)).astype(np.float32)
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="linear",
                            coordinate_transformation_mode=transform)
    scales = numpy_helper.from_array(np.array([1, 1, 1, float(factor)], np.float32), "scales")
    want = _ort([node], {"x": x}, "y", [scales]).reshape(-1)
    taps = linear_taps(n, out, Fraction(factor), transform)
    total = sum(w for _, w in taps[0])
    assert all(sum(w for _, w in t) == total for t in taps)
    got = np.array([sum(w * float(x.reshape(-1)[i]) for i, w in t) / total for t in taps])
    assert np.allclose(got, want, rtol=1e-5, atol=1e-4)


# -- ConvTranspose ------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 5), st.integers(1, 5), st.integers(2, 4),
       st.integers(1, 3), st.data())
def test_conv_transpose_is_phase_convolution(cin, cog, h, w, k, stride, data):
    """Conv2d of the phase weights, DepthToSpace and the crop equal onnxruntime's ConvTranspose (integer
    values: float32 is exact)."""
    groups = data.draw(st.sampled_from([g for g in (1, cin) if cin % g == 0]))
    pads = [data.draw(st.integers(0, k - 1)) for _ in range(4)]
    out_pad = [data.draw(st.integers(0, stride - 1)) for _ in range(2)]
    if any((n - 1) * stride + k + op - pads[i] - pads[i + 2] <= 0 for i, (n, op) in enumerate(zip((h, w), out_pad))):
        return
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    wt = rng.integers(-3, 4, size=(cin, cog, k, k))
    x = rng.integers(-3, 4, size=(1, cin, h, w))
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[stride, stride], pads=pads,
                            output_padding=out_pad, group=groups)
    want = _ort([node], {"x": x.astype(np.float32)}, "y",
                [numpy_helper.from_array(wt.astype(np.float32), "w")]).astype(np.int64)
    weights = phase_weights(wt, (stride, stride), groups)
    channels = phase_channels(groups, stride * stride, cog)
    jh, jw = weights.shape[2:]
    oh, ow = want.shape[2:]
    rows, cols = -(-(pads[0] + oh) // stride), -(-(pads[1] + ow) // stride)
    conv = Conv2d("c", ("x",), ("p",), weights=weights.transpose(0, 2, 3, 1), bias=np.zeros(len(weights)),
                  pads=(jh - 1, jw - 1, max(0, rows - h), max(0, cols - w)), groups=groups, acc=IntType(32, True))
    t = {"x": Tensor("x", (h, w, cin), IntType(8, True), 0, (1.0,))}
    graph = type("G", (), {"tensor": lambda self, n: t[n]})()
    phases = golden.conv2d(conv, x.transpose(0, 2, 3, 1), graph)
    full = golden.depth_to_space(DepthToSpace("d", ("p",), ("f",), block=(stride, stride), channels=tuple(channels)),
                                 phases, graph)
    got = full[:, pads[0]:pads[0] + oh, pads[1]:pads[1] + ow, :].transpose(0, 3, 1, 2)
    assert np.array_equal(got, want)


# -- affine constants and lookup tables -----------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.floats(-300, 300, allow_nan=False), st.floats(-3000, 3000, allow_nan=False), st.integers(1, 255),
       st.integers(-255, 255))
def test_affine_constants_reproduce_the_real_map(ratio, offset, x_range, d):
    """round((scale*d + offset_int) * |ratio|/2**k) is round(ratio*d + offset) unless the real value is
    within the constants' tiny error of a tie."""
    d = max(-x_range, min(x_range, d))
    if ratio and abs(ratio) * x_range >= 2**-24 and abs(offset / ratio) + x_range >= 2**31:
        with pytest.raises(UnsupportedModelError, match=r"input steps exceed 32-bit arithmetic"):
            affine_constants(np.array([ratio]), np.array([offset]), x_range, "n", "Mul")
        return
    scale, offset_int, multiplier = affine_constants(np.array([ratio]), np.array([offset]), x_range, "n", "Mul")
    acc = int(scale[0]) * d + int(offset_int[0])
    assert abs(acc) < 2**31
    m, s = fixed.quantize_multiplier(float(multiplier[0]))
    got = int(fixed.requantize(np.array([acc]), m, s, 0, -2**40, 2**40, fixed.Rounding.RNE)[0])
    exact = ratio * d + offset
    if abs(exact - math.floor(exact) - 0.5) > 1e-4 and abs(ratio) * x_range >= 2**-24:
        assert got == round(exact)


def test_lookup_table_is_the_float_path():
    """An identity function on the same grid is the identity; a monotone one is monotone; NaN is refused."""
    i8 = IntType(8, True)
    assert np.array_equal(fixed.lookup_table(lambda v: v, i8, 0.05, 3, i8, 0.05, 3), np.arange(-128, 128))
    table = fixed.lookup_table(lambda v: 1 / (1 + np.exp(-v)), i8, 0.1, 0, IntType(8, False), 1 / 255, 0)
    assert np.all(np.diff(table) >= 0) and table[0] == 0 and table[-1] == 255
    with pytest.raises(ValueError, match="NaN for input -128"):
        fixed.lookup_table(np.sqrt, i8, 0.1, 0, i8, 0.1, 0)


# -- whole ops, quantized, against onnxruntime --------------------------------------------------------


def _qdq_model(op: str, attrs: dict, extra_inputs=(), shape=(1, 3, 5, 4), q_in=Q(0.05, 3), q_out=Q(0.04, -5),
               opset: int = 17):
    b = GraphBuilder()
    x = b.qdq("x", q_in)
    y = b.qdq(b.node(op, [x, *[b.const(v) if v is not None else "" for v in extra_inputs]], **attrs), q_out)
    model = b.model([("x", list(shape))], y)
    model.opset_import[0].version = opset
    return model


def _agree(model, shape, seed=0):
    x = np.random.default_rng(seed).normal(0, 1.5, size=(4, *shape[1:])).astype(np.float32)
    compiled = compile_model(model)
    found = agreement(compiled, model, {"x": x})
    return compiled, found


@pytest.mark.parametrize("op,attrs,extra", [
    ("Sigmoid", {}, ()), ("HardSigmoid", {"alpha": 0.2, "beta": 0.5}, ()), ("HardSwish", {}, ()), ("Tanh", {}, ()),
    ("LeakyRelu", {"alpha": 0.1}, ()), ("Elu", {}, ()), ("Softplus", {}, ()), ("Exp", {}, ()), ("Erf", {}, ()),
    ("PRelu", {}, (np.array([0.1, 0.2, 0.3], np.float32).reshape(3, 1, 1),)),
    ("Gelu", {"approximate": "tanh"}, ()),
])
def test_functions_are_exact_tables(op, attrs, extra):
    model = _qdq_model(op, attrs, extra, opset=20 if op == "Gelu" else 17)
    compiled, found = _agree(model, (1, 3, 5, 4))
    (node,) = [n for n in compiled.graph.nodes if n.op == "Lookup"]
    assert len(node.tables) == (3 if op == "PRelu" else 1)
    assert found.layer_worst == 0 and found.worst == 0, found


@pytest.mark.parametrize("op,value", [("Mul", np.array([0.5, -1.5, 2.0], np.float32).reshape(1, 3, 1, 1)),
                                      ("Add", np.float32(3.0)), ("Sub", np.float32(-0.7)), ("Div", np.float32(6.0))])
def test_arithmetic_with_constants_is_affine(op, value):
    """Within 1 step, and rarely off: calibrated scales, unlike round ones, seldom put values on ties."""
    compiled, found = _agree(_qdq_model(op, {}, (value,), q_in=Q(0.0473, 3), q_out=Q(0.0391, -5)), (1, 3, 5, 4))
    assert [n.op for n in compiled.graph.nodes] == ["Affine"]
    assert found.layer_worst <= 1 and found.layer_differ <= found.layer_outputs * 0.02, found


def test_standalone_batch_normalization_is_affine():
    params = [np.array(v, np.float32) for v in ([1.5, 0.5, -1.0], [0.1, -0.2, 0.3], [0.2, 0.0, -0.1], [2.0, 0.5, 1.0])]
    compiled, found = _agree(_qdq_model("BatchNormalization", {}, params), (1, 3, 5, 4))
    assert [n.op for n in compiled.graph.nodes] == ["Affine"]
    assert found.layer_worst <= 1, found


@pytest.mark.parametrize("pads,value", [([0, 0, 1, 2, 0, 0, 2, 0], 0.0), ([0, 2, 0, 0, 0, 1, 0, 0], 0.0),
                                        ([0, 0, 1, 1, 0, 0, 1, 1], 0.3), ([0, 0, -1, 0, 0, 1, 0, -2], 0.0)])
def test_pad_moves_values_exactly(pads, value):
    model = _qdq_model("Pad", {"mode": "constant"}, (np.array(pads, np.int64), np.float32(value)), q_out=Q(0.05, 3))
    compiled, found = _agree(model, (1, 3, 5, 4))
    assert found.worst == 0 and found.layer_worst == 0, found


@pytest.mark.parametrize("attrs,scales", [
    ({"mode": "nearest"}, [1, 1, 2, 2]),
    ({"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}, [1, 1, 3, 2]),
    ({"mode": "nearest", "coordinate_transformation_mode": "align_corners"}, [1, 1, 0.5, 1.5]),
    ({"mode": "linear"}, [1, 1, 2, 2]),
    ({"mode": "linear", "coordinate_transformation_mode": "align_corners"}, [1, 1, 2, 4]),
    ({"mode": "linear", "coordinate_transformation_mode": "asymmetric"}, [1, 1, 4, 2]),
])
def test_resize(attrs, scales):
    model = _qdq_model("Resize", attrs, (None, np.array(scales, np.float32)), q_out=Q(0.05, 3))
    compiled, found = _agree(model, (1, 3, 5, 4))
    assert found.layer_worst <= 1, found
    if attrs["mode"] == "nearest":
        assert found.worst == 0


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_depth_to_space(mode):
    compiled, found = _agree(_qdq_model("DepthToSpace", {"blocksize": 2, "mode": mode}, (), shape=(1, 8, 3, 2),
                                        q_out=Q(0.05, 3)), (1, 8, 3, 2))
    assert found.worst == 0, found


def test_ssd_head_moves_no_data():
    """Transpose(0, 2, 3, 1) of a map is its channels-last order: views, then a Concat of the heads."""
    b = GraphBuilder()
    q = Q(0.05, 0)
    x = b.qdq("x", q)
    heads = []
    for i in range(2):
        w = b.weights(random_weights(np.random.default_rng(i), (4, 3, 1, 1)), np.full(4, 0.01, np.float32))
        y = b.qdq(b.node("Conv", [x, w]), q)
        y = b.qdq(b.node("Transpose", [y], perm=[0, 2, 3, 1]), q)
        heads.append(b.qdq(b.node("Reshape", [y, b.const(np.array([1, -1, 2], np.int64))]), q))
    out = b.qdq(b.node("Concat", heads, axis=1), q)
    model = b.model([("x", [1, 3, 4, 5])], out)
    compiled, found = _agree(model, (1, 3, 4, 5))
    assert found.layer_worst <= 1 and {op: d for op, d, _ in found.by_op}["Concat"] == 0, found
    assert [n.op for n in compiled.graph.nodes].count("Transpose") == 0


# -- refusals ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("op,attrs,extra,message", [
    ("Resize", {"mode": "linear"}, (None, np.array([1, 1, 1.5, 2], np.float32)),
     r"linear resize by 1.5 x 2: hwgen interpolates exactly with integer factors"),
    ("Resize", {"mode": "cubic"}, (None, np.array([1, 1, 2, 2], np.float32)), r"mode 'cubic'"),
    ("Resize", {"mode": "nearest", "coordinate_transformation_mode": "half_pixel_symmetric"},
     (None, np.array([1, 1, 1.5, 2], np.float32)),
     r"coordinate_transformation_mode 'half_pixel_symmetric' with a scale"),
    ("Resize", {"mode": "nearest", "coordinate_transformation_mode": "tf_crop_and_resize"},
     (np.array([0, 0, 0, 0, 1, 1, 1, 1], np.float32), np.array([1, 1, 2, 2], np.float32)), r".*tf_crop_and_resize"),
    ("Pad", {"mode": "reflect"}, (np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64),), r"mode 'reflect'"),
    ("Pad", {"mode": "edge"}, (np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64),), r"mode 'edge'"),
])
def test_refusals_name_the_node(op, attrs, extra, message):
    with pytest.raises(UnsupportedModelError, match=rf"^node '{op}_\d+' \({op}\): {message}"):
        import_onnx(_qdq_model(op, attrs, extra))


def test_a_table_of_a_16_bit_input_is_refused():
    model = _qdq_model("Sigmoid", {}, (), q_in=Q(0.001, 0, np.int16), opset=21)
    with pytest.raises(UnsupportedModelError, match=r"^node 'Sigmoid_\d+' \(Sigmoid\): input is i16: a lookup table "
                                                    r"needs an input of at most 8 bits"):
        import_onnx(model)


def test_dynamic_resize_is_refused():
    b = GraphBuilder()
    q = Q(0.05, 0)
    x = b.qdq("x", q)
    size = b.node("Cast", [b.node("Shape", [x], start=2)], to=TensorProto.FLOAT)
    scales = b.node("Concat", [b.const(np.array([1, 1], np.float32)), size], axis=0)
    y = b.qdq(b.node("Resize", [x, "", scales], mode="nearest"), q)
    model = b.model([("x", [1, 3, 2, 2])], y)
    model.opset_import[0].version = 17
    compiled = compile_model(model)  # a Shape of a static tensor folds to a constant: the scales are known
    assert [n.op for n in compiled.graph.nodes] == ["Resize"]
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "h"
    with pytest.raises(UnsupportedModelError, match="dynamic"):
        import_onnx(model)


def test_float_movement_before_the_first_quantizer_runs_on_the_host():
    """A TFLite conversion's Transpose of its NHWC float input (and a Reshape) run on the host as an
    index map: the model keeps its NHWC input, and agrees with onnxruntime."""
    from hwgen import irjson
    from hwgen.ir import verify

    b = GraphBuilder()
    q = Q(0.05, 0)
    x = b.node("Reshape", [b.node("Transpose", ["x"], perm=[0, 3, 1, 2]), b.const(np.array([1, 3, 5, 6], np.int64))])
    w = b.weights(random_weights(np.random.default_rng(0), (4, 3, 3, 3)), np.full(4, 0.01, np.float32))
    y = b.qdq(b.node("Conv", [b.qdq(x, q), w], pads=[1, 1, 1, 1]), q)
    model = b.model([("x", [1, 5, 6, 3])], y)
    compiled = compile_model(model)
    (port,) = compiled.graph.input_ports
    assert (port.onnx_name, port.shape, port.head.ops) == ("x", (1, 5, 6, 3), ("Transpose", "Reshape"))
    assert irjson.dumps(verify(irjson.from_json(irjson.to_json(compiled.graph)))) == irjson.dumps(compiled.graph)
    found = agreement(compiled, model, {"x": np.random.default_rng(1).normal(0, 1, (3, 5, 6, 3)).astype(np.float32)})
    assert found.layer_worst <= 1 and found.worst <= 1, found


def test_data_movement_of_an_unquantized_result_waits_for_its_quantizer():
    """DQ -> Div -> Resize -> Q (quantize_static leaves no QuantizeLinear after a Div whose reader it
    does not quantize): the resize moves the Div's quantized result, which is the same."""
    b = GraphBuilder()
    q = Q(0.0473, 3)
    y = b.node("Div", [b.qdq("x", q), b.const(np.float32(6.0))])
    y = b.node("Resize", [y, "", b.const(np.array([1, 1, 2, 2], np.float32))], mode="nearest")
    model = b.model([("x", [1, 3, 4, 5])], b.qdq(y, Q(0.0113, -7)))
    model.opset_import[0].version = 17
    compiled = compile_model(model)
    assert [n.op for n in compiled.graph.nodes] == ["Affine", "Resize"]
    x = np.random.default_rng(2).normal(0, 2, (4, 3, 4, 5)).astype(np.float32)
    ours = golden.run_model(compiled.graph, {"x": x})
    theirs = ort_run(model, {"x": x})[0]
    assert np.abs(np.rint((next(iter(ours.values())) - theirs) / 0.0113)).max() <= 1


@pytest.mark.parametrize("chain", ["swish", "exp_softplus", "hardswish_by_hand"])
def test_float_function_chains_are_one_table(chain):
    """Float functions of one activation with no QuantizeLinear between them are one table, exactly the
    float path: x * Sigmoid(x), Softplus(Exp(x)), x * HardSigmoid(x) / 1 + 0."""
    b = GraphBuilder()
    x = b.qdq("x", Q(0.0473, 3))
    if chain == "swish":
        y = b.node("Mul", [x, b.node("Sigmoid", [x])])
    elif chain == "exp_softplus":
        y = b.node("Softplus", [b.node("Exp", [x])])
    else:
        y = b.node("Add", [b.node("Div", [b.node("Mul", [x, b.node("HardSigmoid", [x], alpha=1 / 6, beta=0.5)]),
                                          b.const(np.float32(1.0))]), b.const(np.float32(0.0))])
    model = b.model([("x", [1, 3, 4, 5])], b.qdq(y, Q(0.0391, -5)))
    compiled, found = _agree(model, (1, 3, 4, 5))
    assert [n.op for n in compiled.graph.nodes] == ["Lookup"]
    assert found.worst == 0, found
