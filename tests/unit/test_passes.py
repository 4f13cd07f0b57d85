"""IR passes: dead-channel removal must shrink pruned models and change no output bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwgen.compiler import compile_model
from hwgen.frontend import import_onnx
from hwgen.golden import run_graph, run_model
from hwgen.ir import Conv2d, Dense
from hwgen.passes import run_passes

from ..conftest import DIGITS
from .qmodels import GraphBuilder, Q, random_weights


def _same_outputs(before, after, seed=0, n=8):
    rng = np.random.default_rng(seed)
    t = before.tensor(before.inputs[0])
    x = rng.integers(t.dtype.lo, t.dtype.hi + 1, size=(n, *t.shape))
    a, b = run_graph(before, {before.inputs[0]: x}), run_graph(after, {after.inputs[0]: x})
    return all(np.array_equal(a[k], b[j]) for k, j in zip(before.outputs, after.outputs))


def test_structurally_pruned_tinycnn_shrinks_and_computes_the_same(digits_images):
    compiled = compile_model(DIGITS / "tinycnn_chanzero_qdq_s8s8_pc.onnx")
    totals = compiled.report.totals
    assert totals["imported_params"] == 9930  # the dense TinyCNN's tensor shapes
    assert totals["params"] == 3818 and totals["channels_removed"] == 24
    convs = [n for n in compiled.graph.nodes if isinstance(n, Conv2d)]
    assert [c.out_channels for c in convs] == [8, 16] and convs[1].weights.shape[3] == 8
    before = run_model(compiled.imported, {"input": digits_images})["logits"]
    after = run_model(compiled.graph, {"input": digits_images})["logits"]
    assert np.array_equal(before, after)


def test_unstructured_pruning_halves_the_nonzero_macs():
    report = compile_model(DIGITS / "tinycnn_unstruct50_qdq_s8s8_pc.onnx").report
    t = report.totals
    assert 0.45 <= t["nonzero_macs"] / t["macs"] <= 0.65
    assert t["channels_removed"] == 0


def _chain(rng, *, zero_first: list[int], bias_of_zeroed: int, pads: int, depthwise: bool, zero_inputs_of_last=()):
    """x -> conv a (filters `zero_first` all zero) -> [depthwise] -> conv b -> y, all QDQ int8."""
    b = GraphBuilder()
    q = Q(0.02, -3)
    wa = random_weights(rng, (6, 2, 3, 3))
    wa[zero_first] = 0
    ba = rng.integers(-200, 200, size=6)
    ba[zero_first] = bias_of_zeroed
    y = b.qdq(b.node("Conv", [b.qdq("x", q), b.weights(wa, np.full(6, 0.01, np.float32)),
                              b.bias(ba, np.float32(0.0002))], pads=[1] * 4, kernel_shape=[3, 3]), q)
    if depthwise:  # a structured pruner zeroes the pruned channels' depthwise biases too
        wd = random_weights(rng, (6, 1, 3, 3), sparsity=0)
        bd = rng.integers(-200, 200, size=6)
        bd[zero_first] = 0
        y = b.qdq(b.node("Conv", [y, b.weights(wd, np.full(6, 0.01, np.float32)),
                                  b.bias(bd, np.float32(0.0002))],
                         pads=[pads] * 4, kernel_shape=[3, 3], group=6), q)
    wb = random_weights(rng, (4, 6, 3, 3))
    wb[:, list(zero_inputs_of_last)] = 0
    y = b.qdq(b.node("Conv", [y, b.weights(wb, np.full(4, 0.01, np.float32)),
                              b.bias(rng.integers(-200, 200, size=4), np.float32(0.0002))],
                     pads=[pads] * 4, kernel_shape=[3, 3]), Q(0.05, 2))
    return import_onnx(b.model([("x", [1, 2, 6, 6])], y))


@pytest.mark.parametrize("depthwise", [False, True])
def test_zero_filters_whose_output_is_the_zero_point_are_removed_through_padding(depthwise):
    rng = np.random.default_rng(1)
    graph = _chain(rng, zero_first=[1, 4], bias_of_zeroed=0, pads=1, depthwise=depthwise)
    out = run_passes(graph)
    assert [n.out_channels for n in out.nodes if isinstance(n, Conv2d)] == [4] + ([4] if depthwise else []) + [4]
    assert _same_outputs(graph, out)


def test_zero_filters_with_a_bias_are_folded_only_where_no_padding_reads_them():
    rng = np.random.default_rng(2)
    padded = _chain(rng, zero_first=[0, 2], bias_of_zeroed=150, pads=1, depthwise=False)
    out = run_passes(padded)
    assert [n.out_channels for n in out.nodes if isinstance(n, Conv2d)] == [6, 4]  # kept: padding reads zx, not 150
    assert _same_outputs(padded, out)
    unpadded = _chain(rng, zero_first=[0, 2], bias_of_zeroed=150, pads=0, depthwise=True)
    out = run_passes(unpadded)
    assert [n.out_channels for n in out.nodes if isinstance(n, Conv2d)] == [4, 4, 4]
    assert _same_outputs(unpadded, out)


def test_channels_no_consumer_reads_are_removed_upstream():
    rng = np.random.default_rng(3)
    graph = _chain(rng, zero_first=[], bias_of_zeroed=0, pads=1, depthwise=False, zero_inputs_of_last=(0, 5))
    out = run_passes(graph)
    first, last = [n for n in out.nodes if isinstance(n, Conv2d)]
    assert first.out_channels == 4 and last.weights.shape[3] == 4
    assert _same_outputs(graph, out)


def test_graph_outputs_keep_their_channels():
    rng = np.random.default_rng(4)
    b = GraphBuilder()
    w = random_weights(rng, (5, 3))
    w[2] = 0
    x = b.qdq(b.node("Flatten", [b.qdq("x", Q(0.02, 0))]), Q(0.02, 0))
    y = b.node("Gemm", [x, b.weights(w, np.full(5, 0.01, np.float32))], transB=1)
    graph = import_onnx(b.model([("x", [1, 3, 1, 1])], b.qdq(y, Q(0.05, 1))))
    out = run_passes(graph)
    assert next(n for n in out.nodes if isinstance(n, Dense)).out_channels == 5


def test_clips_of_quantized_integers_fold_into_the_requantization_before_them():
    """QCDQ writes 4-bit activations as QuantizeLinear(uint8) -> Clip(0, 15): one narrowed requant."""
    brevitas = DIGITS.parent / "brevitas"
    qcdq = compile_model(brevitas / "brevitas_w4a4_qcdq_ts.onnx")
    assert [n.op for n in qcdq.imported.nodes].count("Requantize") == 2
    assert [n.op for n in qcdq.graph.nodes] == ["Conv2d", "Conv2d", "MaxPool", "Reshape", "Dense"]
    assert [qcdq.graph.nodes[i].requant.hi for i in (0, 1)] == [15, 15]
    assert _same_outputs(qcdq.imported, qcdq.graph)
    qonnx = compile_model(brevitas / "brevitas_w4a4_qonnx_ts_clean.onnx").graph
    assert _same_outputs(qonnx, qcdq.graph, n=16)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_passes_never_change_an_output_bit(data):
    """Random QDQ chains with pruned filters, pruned input channels, depthwise layers, pools and a
    final FC: whatever the passes remove, the integer outputs stay identical."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    b = GraphBuilder()
    q = Q(0.02, data.draw(st.integers(-10, 10)))
    channels = data.draw(st.integers(2, 6))
    x, cin, size = b.qdq("x", q), 2, 7
    for layer in range(data.draw(st.integers(1, 3))):
        kind = data.draw(st.sampled_from(["conv", "depthwise", "maxpool"]) if layer else st.just("conv"))
        if kind == "maxpool":
            x, size = b.qdq(b.node("MaxPool", [x], kernel_shape=[2, 2], strides=[1, 1]), q), size - 1
            continue
        cout, groups = (cin, cin) if kind == "depthwise" else (channels, 1)
        w = random_weights(rng, (cout, cin // groups, 3, 3))
        bias = rng.integers(-300, 300, size=cout)
        for k in data.draw(st.lists(st.integers(0, cout - 1), max_size=cout)):
            w[k] = 0  # a pruned filter, its bias zeroed or not
            bias[k] = 0 if data.draw(st.booleans()) else bias[k]
        if kind == "conv" and data.draw(st.booleans()):
            w[:, rng.integers(0, cin)] = 0  # an input channel nobody reads
        pad = data.draw(st.integers(0, 1))
        x = b.qdq(b.node("Conv", [x, b.weights(w, np.full(cout, 0.01, np.float32)),
                                  b.bias(bias, np.float32(0.0002))], pads=[pad] * 4, kernel_shape=[3, 3],
                         group=groups), Q(0.03, q.zero_point))
        if data.draw(st.booleans()):
            x = b.qdq(b.node("Relu", [x]), Q(0.03, q.zero_point))
        cin, size = cout, size + 2 * pad - 2
    flat = b.qdq(b.node("Flatten", [x]), Q(0.03, q.zero_point))
    fc = random_weights(rng, (3, cin * size * size))
    logits = b.node("Gemm", [flat, b.weights(fc, np.full(3, 0.01, np.float32))], transB=1)
    graph = import_onnx(b.model([("x", [1, 2, 7, 7])], b.qdq(logits, Q(0.05, 0))))
    assert _same_outputs(graph, run_passes(graph), seed=1, n=6)
