"""The RVV backend's per-layer choices: kernels, LMUL, tiles, window geometry, and what it refuses."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hwgen.compiler import compile_model
from hwgen.errors import UnsupportedModelError
from hwgen.fixed import IntType, Rounding
from hwgen.ir import Concat, Conv2d, Dense, Graph, Requant, Requantize, Tensor, conv_output_hw, verify
from hwgen.rvv.kernels import acc_lmul, conv_tile, e8_lmul
from hwgen.rvv.plan import _interior, plan_layers, window

from ..conftest import DIGITS, PERSON

I8, I16 = IntType(8, True), IntType(16, True)


def rq(channels=1, zp=0, lo=-128, hi=127):
    return Requant((1 << 30,) * channels, (31,) * channels, zp, lo, hi, Rounding.RNE)


def single(node_cls, x_shape, y_shape, x_type=I8, y_type=I8, **fields) -> Graph:
    tensors = {"x": Tensor("x", x_shape, x_type, 0, (1.0,)), "y": Tensor("y", y_shape, y_type, 0, (1.0,))}
    return Graph("g", tensors, (node_cls("layer", ("x",), ("y",), **fields),), ("x",), ("y",))


def conv(x_shape, cout, kernel=(1, 1), groups=1, **fields) -> Graph:
    h, w, cin = x_shape
    fields = dict(stride=(1, 1), dilation=(1, 1), pads=(0, 0, 0, 0)) | fields
    oh, ow = conv_output_hw((h, w), kernel, fields["stride"], fields["dilation"], fields["pads"])
    weights = np.ones((cout, *kernel, cin // groups), np.int64)
    return verify(single(Conv2d, x_shape, (oh, ow, cout), weights=weights, bias=np.zeros(cout, np.int64),
                         groups=groups, acc=IntType(24, True), requant=rq(cout), **fields))


@pytest.mark.parametrize("channels, lmul", [(1, 1), (4, 1), (5, 2), (8, 2), (16, 4), (17, 8), (32, 8), (1000, 8)])
def test_accumulator_lmul_covers_the_channels_at_vlen_128(channels, lmul):
    assert acc_lmul(channels) == lmul


def test_e8_lmul_and_tiles():
    assert [e8_lmul(c) for c in (1, 16, 17, 64, 65, 500)] == [1, 1, 2, 4, 8, 8]
    assert conv_tile(8, 100) == 3 and conv_tile(2, 100) == 12 and conv_tile(8, 2) == 2 and conv_tile(4, 0) == 1


def test_kernel_choice_by_layer_shape():
    pointwise, = plan_layers(conv((6, 6, 64), 128))
    assert (pointwise.kind, pointwise.variant.lmul, pointwise.variant.tile) == ("conv", 8, 3)
    win = pointwise.args.window
    assert (win.in_h, win.in_w, win.out_w) == (1, 36, 36)  # 1x1 stride 1: one long row, tiles span rows
    depthwise, = plan_layers(conv((12, 12, 32), 32, (3, 3), groups=32, pads=(1, 1, 1, 1)))
    assert (depthwise.kind, depthwise.variant.lmul, depthwise.variant.tile) == ("depthwise", 4, 3)
    assert depthwise.args.line == 3 * 14 * 32  # 3 rows of 12 + 2 padded pixels x 32 channels
    strided, = plan_layers(conv((12, 12, 16), 16, (3, 3), groups=16, stride=(2, 2)))
    assert (strided.kind, strided.variant.lmul) == ("depthwise", 4)
    # Few channels, stride 1: vectorized over pixels and channels, with tables repeating every 8 lanes.
    rows, = plan_layers(conv((12, 12, 8), 8, (3, 3), groups=8, pads=(1, 1, 1, 1)))
    assert (rows.kind, rows.variant.lmul, rows.args.pattern) == ("depthwise_rows", 8, 256)
    assert len(rows.args.weights.values) == 9 * 256 and rows.args.bias.values[:16] == (0,) * 16
    multiplier, = plan_layers(conv((5, 5, 4), 8, (3, 3), groups=4))  # depthwise with 2 outputs per channel
    assert (multiplier.kind, multiplier.args.groups) == ("conv", 4)
    strided, = plan_layers(conv((9, 9, 3), 8, (3, 3), stride=(2, 2)))
    assert strided.args.window.in_w == 9 and strided.args.line == 0


def _conv_layer(w, acc_bits=24):
    cout = w.shape[0]
    g = verify(single(Conv2d, (4, 4, 3), (3, 3, cout), weights=w, bias=np.arange(cout, dtype=np.int64),
                      stride=(1, 1), dilation=(1, 1), pads=(0, 0, 0, 0), groups=1, acc=IntType(acc_bits, True),
                      requant=rq(cout)))
    layer, = plan_layers(g)
    return layer


def test_8bit_weights_of_channel_pairs_are_packed_output_channel_fastest():
    """[kh][kw][input channel pair][output channel], lo | hi << 8 (3 channels: the second pair's hi
    is 0); the bias is stored times 256 and the shifts are 8 more, which the 256 * w cancel."""
    w = np.arange(5 * 2 * 2 * 3).reshape(5, 2, 2, 3) - 30
    layer = _conv_layer(w)
    assert layer.variant.packed and layer.variant.w.bits == 8 and layer.args.weights.ctype == "int16_t"
    packed = np.array(layer.args.weights.values).reshape(2, 2, 2, 5)
    lo = (packed & 0xFF) - ((packed & 0x80) << 1)
    hi = (packed - (packed & 0xFF)) // 256
    unpacked = np.stack([lo, hi], axis=3).reshape(2, 2, 4, 5)
    want = np.concatenate([w.transpose(1, 2, 3, 0), np.zeros((2, 2, 1, 5), np.int64)], axis=2)
    assert np.array_equal(unpacked, want)
    assert layer.args.bias.values == tuple(256 * b for b in range(5))
    assert layer.args.requant.shift.values == tuple(s + 8 for s in rq(5).shift)


def test_weights_are_bytes_unpacked_when_the_scaled_accumulator_would_not_fit_and_int16_past_8_bits():
    w = np.arange(5 * 2 * 2 * 3).reshape(5, 2, 2, 3)
    layer = _conv_layer(w, acc_bits=25)   # 25 + 8 > 32 bits
    assert not layer.variant.packed and layer.args.weights.ctype == "int8_t"
    assert np.array_equal(np.array(layer.args.weights.values).reshape(2, 2, 3, 5), w.transpose(1, 2, 3, 0))
    assert layer.args.bias.values == tuple(range(5))
    layer = _conv_layer(w * 10)   # up to 590: int16
    assert not layer.variant.packed and layer.args.weights.ctype == "int16_t"


@given(n_in=st.integers(1, 12), k=st.integers(1, 5), stride=st.integers(1, 3), dilation=st.integers(1, 3),
       pad=st.integers(0, 4), pad_after=st.integers(0, 4))
def test_interior_is_exactly_the_positions_that_read_no_padding(n_in, k, stride, dilation, pad, pad_after):
    n_out = (n_in + pad + pad_after - dilation * (k - 1) - 1) // stride + 1
    if n_out < 1:
        return
    lo, hi = _interior(n_in, n_out, k, stride, dilation, pad)
    inside = [all(0 <= o * stride - pad + i * dilation < n_in for i in range(k)) for o in range(n_out)]
    assert [lo <= o < hi for o in range(n_out)] == inside


def test_window_of_a_padded_strided_conv():
    w = window((96, 96), 1, 1, 8, 8, (3, 3), (2, 2), (1, 1), (0, 0, 1, 1))  # person_detect's first layer
    assert (w.out_h, w.out_w) == (48, 48)
    assert (w.interior_top, w.interior_bottom, w.interior_left, w.interior_right) == (0, 47, 0, 47)
    assert (w.line_w, w.line_left, w.line_middle) == (97, 0, 96) and w.line_elements == 3 * 97
    tiny = window((1, 1), 1, 1, 1, 1, (4, 4), (1, 1), (1, 1), (3, 3, 0, 0))  # windows reach one input column
    assert (tiny.out_w, tiny.line_w, tiny.line_left, tiny.line_middle) == (1, 4, 3, 1)


def test_real_models_plan_without_refusals():
    for path in [PERSON / "person_detect_qdq.onnx", DIGITS / "mobilenet" / "mobilenet_fp32_qop_u8s8_pc.onnx",
                 DIGITS / "tinycnn_prunedfcconv_qop_u8s8_pc.onnx"]:
        layers = plan_layers(compile_model(path).graph)
        assert layers and all(layer.variant.name.startswith("hwgen_") for layer in layers)


# -- refusals: one line naming the node and the reason ------------------------------------------


def test_refuses_16_bit_activations():
    g = single(Requantize, (4,), (4,), x_type=I16, requant=rq())
    with pytest.raises(UnsupportedModelError, match=r"^node 'layer' \(Requantize\): input 'x' is i16; the RVV "
                                                    r"kernels read 8-bit activations"):
        plan_layers(g)


def test_refuses_batched_matmul():
    g = single(Dense, (2, 3, 4), (2, 3, 5), weights=np.ones((2, 5, 4), np.int64), bias=np.zeros(5, np.int64),
               acc=IntType(16, True), requant=rq())
    with pytest.raises(UnsupportedModelError, match=r"^node 'layer' \(Dense\): batched MatMul"):
        plan_layers(g)


def test_refuses_weights_beyond_int16():
    g = single(Dense, (4,), (2,), weights=np.full((2, 4), 40000), bias=np.zeros(2, np.int64), acc=IntType(32, True),
               requant=rq())
    with pytest.raises(UnsupportedModelError, match=r"weights in \[40000, 40000\] do not fit int16"):
        plan_layers(g)


def test_concat_on_another_axis_copies_whole_blocks():
    """Concatenating (2, 3) and (1, 3) on axis 0 is one block each: their 6 and 3 bytes, one after the other."""
    tensors = {n: Tensor(n, s, I8, 0, (1.0,)) for n, s in (("a", (2, 3)), ("b", (1, 3)), ("y", (3, 3)))}
    g = Graph("g", tensors, (Concat("cat", ("a", "b"), ("y",), axis=0),), ("a", "b"), ("y",))
    (layer,) = plan_layers(g)
    assert (layer.args.pixels, layer.args.parts, layer.args.out_bytes, layer.args.offsets) == (1, (6, 3), 9, (0, 6))


def test_refuses_a_clamp_that_saturation_cannot_reproduce():
    g = single(Requantize, (4,), (4,), y_type=IntType(32, True), requant=rq(zp=5, lo=-(1 << 31), hi=(1 << 31) - 1))
    with pytest.raises(UnsupportedModelError, match=r"clamp \[-2147483648, 2147483647\] with zero point 5 does not "
                                                    r"fit int32 lanes"):
        plan_layers(g)


def test_refuses_raw_accumulators_narrower_than_int32():
    g = single(Dense, (4,), (2,), y_type=IntType(16, True), weights=np.ones((2, 4), np.int64),
               bias=np.zeros(2, np.int64), acc=IntType(16, True), requant=None)
    with pytest.raises(UnsupportedModelError, match=r"raw accumulator output must be int32 in C, not int16_t"):
        plan_layers(g)
