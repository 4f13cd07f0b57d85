"""The golden model's ops against naive loop implementations written from the IR's docstrings."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwgen.fixed import IntType, Rounding
from hwgen.golden import run_graph
from hwgen.ir import AvgPool, Conv2d, Graph, MaxPool, Requant, Tensor, conv_output_hw, verify
from hwgen.passes.accumulators import with_derived_accumulator

I8 = IntType(8, True)


def _graph(node, x: Tensor, out: Tensor) -> Graph:
    tensors = {x.name: x, out.name: out}
    node = with_derived_accumulator(node, tensors) if hasattr(node, "acc") else node
    return verify(Graph("g", tensors, (node,), (x.name,), (out.name,)))


def _naive_conv(x, node: Conv2d, zx):
    b, h, w, c = x.shape
    cout, kh, kw, cin_g = node.weights.shape
    oh, ow = conv_output_hw((h, w), (kh, kw), node.stride, node.dilation, node.pads)
    out = np.zeros((b, oh, ow, cout), dtype=np.int64)
    per_group = cout // node.groups
    for n in range(b):
        for i in range(oh):
            for j in range(ow):
                for o in range(cout):
                    g = o // per_group
                    acc = int(node.bias[o])
                    for u in range(kh):
                        for v in range(kw):
                            y = i * node.stride[0] + u * node.dilation[0] - node.pads[0]
                            xx = j * node.stride[1] + v * node.dilation[1] - node.pads[1]
                            for k in range(cin_g):
                                inside = 0 <= y < h and 0 <= xx < w
                                value = int(x[n, y, xx, g * cin_g + k]) if inside else zx
                                acc += value * int(node.weights[o, u, v, k])
                    out[n, i, j, o] = acc
    return out


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_conv2d_matches_naive_loops(data):
    groups = data.draw(st.integers(1, 3))
    cin = groups * data.draw(st.integers(1, 2))
    cout = groups * data.draw(st.integers(1, 2))
    kh, kw = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    stride = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2)))
    dilation = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2)))
    pads = tuple(data.draw(st.integers(0, 2)) for _ in range(4))
    h = data.draw(st.integers(max(1, dilation[0] * (kh - 1) + 1 - pads[0] - pads[2]), 6))
    w = data.draw(st.integers(max(1, dilation[1] * (kw - 1) + 1 - pads[1] - pads[3]), 6))
    zx = data.draw(st.integers(-128, 127))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    weights = rng.integers(-128, 128, size=(cout, kh, kw, cin // groups))
    node = Conv2d("conv", ("x",), ("y",), weights=weights, bias=rng.integers(-1000, 1000, size=cout),
                  stride=stride, dilation=dilation, pads=pads, groups=groups, requant=None)
    oh, ow = conv_output_hw((h, w), (kh, kw), stride, dilation, pads)
    g = _graph(node, Tensor("x", (h, w, cin), I8, zx, (1.0,)),
               Tensor("y", (oh, ow, cout), IntType(32, True), 0, (1.0,)))
    x = rng.integers(-128, 128, size=(2, h, w, cin))
    assert np.array_equal(run_graph(g, {"x": x})["y"], _naive_conv(x, g.nodes[0], zx))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 2), st.integers(0, 1), st.integers(0, 2**32 - 1))
def test_maxpool_padding_never_wins(k, s, d, pad, seed):
    pad = min(pad, k - 1)  # a window never lies wholly in the padding
    rng = np.random.default_rng(seed)
    h = w = 5
    pads = (pad, pad, pad, pad)
    oh, ow = conv_output_hw((h, w), (k, k), (s, s), (d, d), pads)
    node = MaxPool("mp", ("x",), ("y",), kernel=(k, k), stride=(s, s), dilation=(d, d), pads=pads)
    g = _graph(node, Tensor("x", (h, w, 2), I8, 0, (1.0,)), Tensor("y", (oh, ow, 2), I8, 0, (1.0,)))
    x = rng.integers(-128, -100, size=(1, h, w, 2))  # all negative: a zero pad would win
    y = run_graph(g, {"x": x})["y"]
    for i in range(oh):
        for j in range(ow):
            rows = [i * s + u * d - pad for u in range(k)]
            cols = [j * s + v * d - pad for v in range(k)]
            window = [x[0, r, c] for r in rows for c in cols if 0 <= r < h and 0 <= c < w]
            assert (y[0, i, j] == np.max(window, axis=0)).all()


def test_avgpool_divides_border_windows_by_their_valid_count():
    rq = {n: Requant((2**30 // n * 2,), (31,), 0, -128, 127, Rounding.RNE) for n in (4, 6, 9)}
    node = AvgPool("ap", ("x",), ("y",), kernel=(3, 3), stride=(1, 1), pads=(1, 1, 1, 1), count_include_pad=False,
                   requants=rq)
    g = _graph(node, Tensor("x", (3, 3, 1), I8, 0, (1.0,)), Tensor("y", (3, 3, 1), I8, 0, (1.0,)))
    y = run_graph(g, {"x": np.full((1, 3, 3, 1), 90)})["y"]
    assert np.all(np.abs(y - 90) <= 1)  # an average of 90s is 90 everywhere, corners included


def test_accumulator_overflow_is_caught():
    node = Conv2d("conv", ("x",), ("y",), weights=np.full((1, 1, 1, 1), 127), bias=np.zeros(1), requant=None)
    g = _graph(node, Tensor("x", (1, 1, 1), I8, 0, (1.0,)), Tensor("y", (1, 1, 1), IntType(32, True), 0, (1.0,)))
    narrow = replace(g, nodes=(replace(g.nodes[0], acc=IntType(8, True)),))
    with pytest.raises(AssertionError, match=r"node 'conv' \(Conv2d\): accumulator range \[-16256, -16256\]"):
        run_graph(narrow, {"x": np.full((1, 1, 1, 1), -128)})
    assert run_graph(g, {"x": np.full((1, 1, 1, 1), -128)})["y"].item() == -16256


def test_inputs_out_of_type_are_refused():
    node = MaxPool("mp", ("x",), ("y",), kernel=(1, 1))
    g = _graph(node, Tensor("x", (1, 1, 1), I8, 0, (1.0,)), Tensor("y", (1, 1, 1), I8, 0, (1.0,)))
    with pytest.raises(ValueError, match="values outside i8"):
        run_graph(g, {"x": np.full((1, 1, 1, 1), 200)})
