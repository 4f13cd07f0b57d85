"""Front end + golden model against onnxruntime on small models with hypothesis-drawn shapes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from hwgen.frontend import import_onnx
from hwgen.golden import run_model
from hwgen.ir import AvgPool, Conv2d, Dense, MaxPool, Requantize, verify
from hwgen.passes import run_passes

from ..conftest import ort_run
from .qmodels import GraphBuilder, Q, qdq_conv, qlinear_conv, random_weights

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def conv_geometry(draw):
    groups_kind = draw(st.sampled_from(["dense", "depthwise", "grouped"]))
    if groups_kind == "dense":
        cin, groups = draw(st.integers(1, 6)), 1
        cout = draw(st.integers(1, 6))
    elif groups_kind == "depthwise":
        cin = groups = draw(st.integers(1, 8))
        cout = cin * draw(st.integers(1, 2))
    else:
        groups = draw(st.integers(2, 3))
        cin, cout = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pads = tuple(draw(st.integers(0, k - 1)) for k in (kernel[0], kernel[1], kernel[0], kernel[1]))
    span = [dilation[i] * (kernel[i] - 1) + 1 for i in range(2)]
    hw = tuple(draw(st.integers(max(1, span[i] - pads[i] - pads[i + 2]), 9)) for i in range(2))
    return dict(cin=cin, cout=cout, hw=hw, kernel=kernel, stride=stride, dilation=dilation, pads=pads,
                groups=groups)


def _compare_float(model, x, max_lsb=1):
    graph = verify(run_passes(import_onnx(model)))
    ours = run_model(graph, {"x": x})
    out_name = model.graph.output[0].name
    theirs = ort_run(model, {"x": x}, batched=False)[0]
    # outputs are dequantized: compare in steps of the output scale
    qdq_scale = graph.tensor(graph.outputs[0]).scale[0]
    diff = np.rint((ours[out_name] - theirs) / qdq_scale)
    assert np.abs(diff).max(initial=0) <= max_lsb
    return graph, diff


@SETTINGS
@given(conv_geometry(), st.sampled_from([np.int8, np.uint8]), st.booleans(), st.sampled_from([None, "relu", "clip6"]),
       st.integers(0, 2**32 - 1))
def test_qdq_conv_any_geometry_matches_onnxruntime(geometry, act, per_channel, activation, seed):
    rng = np.random.default_rng(seed)
    model = qdq_conv(rng, **geometry, act=act, per_channel=per_channel, relu=activation == "relu",
                     clip6=activation == "clip6")
    x = rng.uniform(-1, 1.5, size=(1, geometry["cin"], *geometry["hw"])).astype(np.float32)
    graph, _ = _compare_float(model, x)
    conv = next(n for n in graph.nodes if isinstance(n, Conv2d))
    assert conv.groups == geometry["groups"] and conv.pads == geometry["pads"]


@SETTINGS
@given(conv_geometry(), st.sampled_from([np.int8, np.uint8]), st.integers(0, 2**32 - 1))
def test_qlinearconv_any_geometry_matches_onnxruntime(geometry, act, seed):
    rng = np.random.default_rng(seed)
    model = qlinear_conv(rng, **geometry, act=act)
    info = np.iinfo(act)
    x = rng.integers(info.min, info.max + 1, size=(1, geometry["cin"], *geometry["hw"])).astype(act)
    graph = verify(run_passes(import_onnx(model)))
    ours = next(iter(run_model(graph, {"x": x}).values()))
    theirs = ort_run(model, {"x": x}, batched=False)[0]
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1


def _pool_model(op, x_q, y_q, **attrs):
    b = GraphBuilder()
    y = b.qdq(b.node(op, [b.qdq("x", x_q)], **attrs), y_q)
    return b.model([("x", [1, 3, 7, 6])], y)


@pytest.mark.parametrize("attrs", [
    dict(kernel_shape=[2, 2], strides=[2, 2]),
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
    dict(kernel_shape=[3, 2], strides=[2, 2], ceil_mode=1),
    dict(kernel_shape=[2, 2], strides=[1, 1], dilations=[2, 2]),
    dict(kernel_shape=[3, 3], auto_pad="SAME_UPPER", strides=[2, 2]),
])
def test_maxpool(attrs):
    q = Q(0.03, -5)
    model = _pool_model("MaxPool", q, q, **attrs)
    x = np.random.default_rng(1).uniform(-2, 2, size=(1, 3, 7, 6)).astype(np.float32)
    graph, diff = _compare_float(model, x, max_lsb=0)  # max is exact
    assert any(isinstance(n, MaxPool) for n in graph.nodes)


def test_maxpool_with_another_output_scale_requantizes():
    model = _pool_model("MaxPool", Q(0.03, -5), Q(0.05, 3), kernel_shape=[2, 2], strides=[2, 2])
    x = np.random.default_rng(2).uniform(-2, 2, size=(1, 3, 7, 6)).astype(np.float32)
    graph, _ = _compare_float(model, x)
    assert [type(n) for n in graph.nodes] == [MaxPool, Requantize]


@pytest.mark.parametrize("attrs", [
    dict(kernel_shape=[2, 2], strides=[2, 2]),
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=0),
    dict(kernel_shape=[3, 3], strides=[1, 2], pads=[1, 0, 1, 1], count_include_pad=1),
])
def test_average_pool(attrs):
    model = _pool_model("AveragePool", Q(0.03, -5), Q(0.02, 4), **attrs)
    x = np.random.default_rng(3).uniform(-2, 2, size=(1, 3, 7, 6)).astype(np.float32)
    graph, _ = _compare_float(model, x)
    assert any(isinstance(n, AvgPool) for n in graph.nodes)


def test_global_average_pool_and_add_and_concat():
    b = GraphBuilder()
    qa, qb, qc, qd = Q(0.03, -5), Q(0.011, 9), Q(0.04, 0), Q(0.025, -3)
    a = b.qdq("x", qa)
    c = b.qdq(b.node("Relu", [b.qdq(b.node("Add", [a, b.qdq(b.node("Relu", [a]), qb)]), qc)]), qc)
    cat = b.qdq(b.node("Concat", [a, c], axis=1), qd)
    y = b.qdq(b.node("GlobalAveragePool", [cat]), Q(0.01, 2))
    model = b.model([("x", [1, 3, 7, 6])], y)
    x = np.random.default_rng(4).uniform(-2, 2, size=(1, 3, 7, 6)).astype(np.float32)
    graph, _ = _compare_float(model, x)
    # the Relu after the Add became a clamp that fold_clamps moved into the Add's requantization
    assert [n.op for n in graph.nodes] == ["Requantize", "Add", "Requantize", "Requantize", "Concat", "GlobalAvgPool"]


@pytest.mark.parametrize("variant", ["gemm_transB", "gemm_alpha_beta", "matmul_add"])
def test_fully_connected_forms(variant):
    rng = np.random.default_rng(5)
    b = GraphBuilder()
    qx, qy = Q(0.02, 3), Q(0.1, -2)
    w = random_weights(rng, (6, 12))
    ws = rng.uniform(0.002, 0.02, size=6).astype(np.float32)
    bias = rng.integers(-500, 500, size=6)
    x = b.qdq(b.node("Flatten", [b.qdq("x", qx)], axis=1), qx)
    if variant == "gemm_transB":
        y = b.node("Gemm", [x, b.weights(w, ws), b.bias(bias, np.float32(qx.scale) * ws)], transB=1)
    elif variant == "gemm_alpha_beta":
        y = b.node("Gemm", [x, b.weights(w.T, ws, axis=1), b.const(rng.normal(size=6).astype(np.float32))],
                   alpha=0.5, beta=2.0)
    else:
        y = b.node("Add", [b.node("MatMul", [x, b.weights(w.T, ws, axis=1)]),
                           b.bias(bias, np.float32(qx.scale) * ws)])
    model = b.model([("x", [1, 3, 2, 2])], b.qdq(y, qy))
    xs = rng.uniform(-1, 1, size=(1, 3, 2, 2)).astype(np.float32)
    graph, _ = _compare_float(model, xs)
    assert [n.op for n in graph.nodes] == ["Reshape", "Dense"]


def test_flatten_of_a_feature_map_permutes_the_dense_weights():
    """ONNX flattens NCHW; the IR keeps channels last, so the FC columns must follow."""
    rng = np.random.default_rng(6)
    b = GraphBuilder()
    qx = Q(0.02, 0)
    w = random_weights(rng, (4, 3 * 2 * 5), sparsity=0)
    x = b.qdq(b.node("Flatten", [b.qdq("x", qx)]), qx)
    y = b.node("Gemm", [x, b.weights(w, np.full(4, 0.01, np.float32)), b.bias(np.zeros(4), np.float32(0.0002))],
               transB=1)
    model = b.model([("x", [1, 3, 2, 5])], b.qdq(y, Q(0.05, 0)))
    xs = rng.uniform(-1, 1, size=(1, 3, 2, 5)).astype(np.float32)
    graph, diff = _compare_float(model, xs)
    dense = next(n for n in graph.nodes if isinstance(n, Dense))
    ir_order = np.arange(30).reshape(3, 2, 5).transpose(1, 2, 0).reshape(-1)
    assert np.array_equal(dense.weights, w[:, ir_order])


def test_batch_norm_after_a_quantized_conv_is_folded():
    rng = np.random.default_rng(8)
    b = GraphBuilder()
    qx = Q(0.02, 1)
    w = random_weights(rng, (4, 2, 3, 3))
    ws = rng.uniform(0.002, 0.02, size=4).astype(np.float32)
    conv = b.node("Conv", [b.qdq("x", qx), b.weights(w, ws)], pads=[1, 1, 1, 1], kernel_shape=[3, 3])
    gamma = np.array([1.5, -0.7, 0.2, 1.0], np.float32)
    bn = b.node("BatchNormalization", [conv, b.const(gamma), b.const(rng.normal(size=4).astype(np.float32)),
                                       b.const(rng.normal(size=4).astype(np.float32)),
                                       b.const(rng.uniform(0.5, 2, size=4).astype(np.float32))])
    model = b.model([("x", [1, 2, 5, 5])], b.qdq(bn, Q(0.05, 0)))
    xs = rng.uniform(-1, 1, size=(1, 2, 5, 5)).astype(np.float32)
    graph, _ = _compare_float(model, xs)
    assert [n.op for n in graph.nodes] == ["Conv2d"]
    assert np.array_equal(graph.nodes[0].weights[1], -w[1].transpose(1, 2, 0))  # gamma < 0 flips the filter


def test_input_quantize_and_output_dequantize_become_the_host_boundary():
    rng = np.random.default_rng(9)
    model = qdq_conv(rng, cin=2, cout=3, hw=(4, 4), kernel=(3, 3), stride=(1, 1), dilation=(1, 1), pads=(1, 1, 1, 1),
                     groups=1)
    graph = import_onnx(model)
    assert graph.input_ports[0].quantize is not None and graph.input_ports[0].onnx_dtype == "float32"
    assert graph.tail is not None and graph.tail.ops == ("DequantizeLinear",)
    assert graph.tensor(graph.inputs[0]).dtype.bits == 8


@SETTINGS
@given(st.sampled_from(["MaxPool", "AveragePool"]), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3),
       st.integers(0, 2), st.booleans(), st.booleans(), st.integers(4, 9), st.integers(0, 2**32 - 1))
def test_pool_any_geometry_matches_onnxruntime(op, kh, kw, stride, pad, ceil, include_pad, size, seed):
    pads = [min(pad, kh - 1), min(pad, kw - 1), min(pad, kh - 1), min(pad, kw - 1)]
    attrs = dict(kernel_shape=[kh, kw], strides=[stride, stride], pads=pads)
    if op == "MaxPool":
        for extent, k in ((size, kh), (size + 1, kw)):  # ONNX and onnxruntime disagree on the output size when
            span = extent + 2 * min(pad, k - 1) - k  # ceil_mode's last window starts in the end padding
            assume(not ceil or (-(-span // stride)) * stride < extent + min(pad, k - 1))
        attrs["ceil_mode"] = int(ceil)
        q_in = q_out = Q(0.03, -5)
    else:
        attrs["count_include_pad"] = int(include_pad)
        q_in, q_out = Q(0.03, -5), Q(0.02, 4)
    b = GraphBuilder()
    y = b.qdq(b.node(op, [b.qdq("x", q_in)], **attrs), q_out)
    model = b.model([("x", [1, 2, size, size + 1])], y)
    x = np.random.default_rng(seed).uniform(-2, 2, size=(1, 2, size, size + 1)).astype(np.float32)
    _compare_float(model, x, max_lsb=0 if op == "MaxPool" else 1)


def test_relu_of_an_integer_tensor_clamps_the_integers():
    """Found by the mutation fuzzer: Relu straight on int8 values (opset 14) crashed on its open top."""
    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.INT8, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.INT8, [1, 3, 4, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], ir_version=8)
    graph_ir = verify(run_passes(import_onnx(model)))
    x = np.random.default_rng(0).integers(-128, 128, size=(5, 1, 3, 4, 4), dtype=np.int8)
    ours = np.stack([run_model(graph_ir, {"x": s})["y"] for s in x])
    theirs = np.stack([ort_run(model, {"x": s}, batched=False)[0] for s in x])
    assert np.array_equal(ours, theirs) and ours.min() == 0
