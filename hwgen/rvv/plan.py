"""Lower each IR node to a layer of the generated C: its kernel variant and constants.

Python computes every value here (weight layouts, window geometry, interior
regions, requantization parameters, LMUL and tile); the templates only lay them out.
Everything the RVV backend cannot do exactly is refused with UnsupportedModelError
naming the node.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import numpy as np

from .. import golden
from ..errors import UnsupportedModelError
from ..fixed import Rounding
from ..ir import (
    Add,
    Affine,
    AvgPool,
    Concat,
    Conv2d,
    Dense,
    DepthToSpace,
    GlobalAvgPool,
    Graph,
    Lookup,
    MaxPool,
    Mul,
    Node,
    Pad,
    Requant,
    Requantize,
    Reshape,
    Resize,
    Slice,
    Transpose,
    conv_output_hw,
)
from ..names import unique_identifiers
from .kernels import (
    DOT_MAX_OUTPUTS,
    ROWS_MAX_CHANNELS,
    ROWS_MAX_LANES,
    Kind,
    Store,
    Variant,
    acc_lmul,
    conv_tile,
    depthwise_lmul,
    depthwise_tile,
    e8_lmul,
)
from .types import CType, ctype_of

__all__ = ["CArray", "RequantParams", "Window", "ConvArgs", "DotArgs", "MaxPoolArgs", "AvgPoolArgs",
           "GlobalAvgPoolArgs", "AddArgs", "RequantizeArgs", "CopyArgs", "LookupArgs", "MulArgs", "AffineArgs",
           "GatherArgs", "ResizeArgs", "Layer", "plan_layers", "copy_layer", "window", "gather_map", "INT32",
           "weight_ctype"]

INT32 = CType(32, True)
_I32_MIN, _I32_MAX = -(1 << 31), (1 << 31) - 1


@dataclass(frozen=True)
class CArray:
    """A constant array of model.c."""

    name: str
    ctype: str      # int8_t, int16_t, int32_t, uint32_t, ...
    values: tuple[int, ...]
    layout: str     # what the index means, for the comment


@dataclass(frozen=True)
class RequantParams:
    """hwgen_requant_t: y = clamp(zero_point + round_shift(acc * multiplier, shift), lo, hi)."""

    multiplier: CArray
    shift: CArray
    per_channel: bool
    zero_point: int
    lo: int
    hi: int
    clamp: bool  # False: [lo, hi] is the whole signed output type, which saturating narrowing gives


@dataclass(frozen=True)
class Window:
    """hwgen_window_t: a sliding window over a channels-last map (convolutions and pools).

    Output pixels in rows [interior_top, interior_bottom) and columns [interior_left,
    interior_right) read no padding. Rows of windows that do are copied into a line
    buffer with the zero point in the padding first.
    """

    in_h: int
    in_w: int
    in_c: int
    x_stride: int  # elements from one input pixel to the next (the group's channels are a slice)
    out_h: int
    out_w: int
    out_c: int
    y_stride: int
    kernel_h: int
    kernel_w: int
    stride_h: int
    stride_w: int
    dilation_h: int
    dilation_w: int
    pad_top: int
    pad_left: int
    interior_top: int
    interior_bottom: int
    interior_left: int
    interior_right: int
    line_w: int       # padded input columns one row of windows reads (the line buffer's width)
    line_left: int    # of which padding on the left,
    line_middle: int  # then input columns (the rest is padding on the right)

    def initializer(self) -> list[str]:
        """Designated initializers, four fields a line."""
        items = [f".{f.name} = {getattr(self, f.name)}," for f in fields(self)]
        return [" ".join(items[i:i + 4]) for i in range(0, len(items), 4)]

    @property
    def has_padding(self) -> bool:
        return (self.interior_top, self.interior_bottom, self.interior_left, self.interior_right) != \
            (0, self.out_h, 0, self.out_w)

    @property
    def line_elements(self) -> int:
        """Size of the line buffer (kernel_h padded rows), or 0 when no window reads padding."""
        return self.kernel_h * self.line_w * self.x_stride if self.has_padding else 0


@dataclass(frozen=True)
class ConvArgs:
    """Convolution, depthwise convolution and fully connected layers."""

    window: Window
    weights: CArray
    bias: CArray
    requant: RequantParams | None  # None: store the int32 accumulators
    zero_point: int                # the input's: the line buffer's padding
    line: int                      # line buffer elements (0: no window reads padding)
    groups: int = 1
    group_weights: int = 0         # weights per group
    pattern: int = 0               # depthwise_rows: the tables' lanes


@dataclass(frozen=True)
class DotArgs:
    """A single-pixel layer with few outputs: one dot product each."""

    inputs: int
    outputs: int
    weights: CArray  # [output][input]
    bias: CArray
    requant: RequantParams | None


@dataclass(frozen=True)
class MaxPoolArgs:
    window: Window
    lowest: int  # the input type's minimum: padding never wins


@dataclass(frozen=True)
class AvgPoolArgs:
    window: Window
    zero_point: int
    include_pad: bool
    requants: tuple[RequantParams | None, ...]  # by the number of positions averaged


@dataclass(frozen=True)
class GlobalAvgPoolArgs:
    pixels: int
    channels: int
    zero_point: int
    requant: RequantParams


@dataclass(frozen=True)
class AddArgs:
    pixels: int    # per-tensor requantization treats the tensor as one row of channels
    channels: int
    a: int
    b: int
    bias: int
    requant: RequantParams


@dataclass(frozen=True)
class RequantizeArgs:
    pixels: int
    channels: int
    zero_point: int
    requant: RequantParams


@dataclass(frozen=True)
class CopyArgs:
    """Concatenation on channels: each input's pixels go to a byte range of the output's."""

    pixels: int
    parts: tuple[int, ...]   # bytes per pixel of each input
    out_bytes: int           # bytes per output pixel
    port: int | None = None  # a whole-tensor copy into this output port

    @property
    def offsets(self) -> tuple[int, ...]:
        return tuple(int(o) for o in np.cumsum((0, *self.parts))[:-1])


@dataclass(frozen=True)
class LookupArgs:
    """y = table[t][x] with x's bits as the index (its signed values offset by 128): one table for all
    channels, or `bases` (element offsets of each channel's table) per channel."""

    pixels: int
    channels: int
    table: CArray            # [table][256]
    bases: CArray | None     # [channel]


@dataclass(frozen=True)
class MulArgs:
    """acc = (a - za) * (b - zb); b moves on by b_step elements a pixel (0: one vector for every pixel)."""

    pixels: int
    channels: int
    b_step: int
    za: int
    zb: int
    requant: RequantParams


@dataclass(frozen=True)
class AffineArgs:
    """acc = scale[c] * (x - zero_point) + offset[c] (per channel, or one value each)."""

    pixels: int
    channels: int
    zero_point: int
    scale: CArray
    offset: CArray
    per_channel: bool
    requant: RequantParams


@dataclass(frozen=True)
class GatherArgs:
    """Data movement as an index map: output row r, element i is the input element at byte offset
    rows[r] + cols[tables[r] + i], or `fill` where rows[r] < 0 or the col entry is the largest value."""

    out_rows: int
    row_length: int          # elements per output row
    rows: CArray             # [output row]: byte offset of its source, -1: all fill
    cols: CArray             # byte offsets within the source, per distinct row pattern
    tables: CArray | None    # [output row]: where its pattern starts in cols (None: all use the first)
    fill: int


@dataclass(frozen=True)
class ResizeArgs:
    """Linear resizing: acc = bias + sum over the row taps and column taps of wy * wx * x."""

    out_h: int
    out_w: int
    channels: int
    row_source: CArray   # [output row][2]: element offset of the input row
    row_weight: CArray   # [output row][2]
    col_source: CArray   # [output column][2]: element offset of the input pixel in its row
    col_weight: CArray   # [output column][2]
    bias: int            # -zero_point * the weights' total
    requant: RequantParams


LayerArgs = (ConvArgs | DotArgs | MaxPoolArgs | AvgPoolArgs | GlobalAvgPoolArgs | AddArgs | RequantizeArgs | CopyArgs
             | LookupArgs | MulArgs | AffineArgs | GatherArgs | ResizeArgs)


@dataclass(frozen=True)
class Layer:
    """One step of the schedule: a function of model.c calling one kernel.

    kind selects the template block and `args` its constants. Reshape has no layer:
    its output aliases its input.
    """

    index: int
    kind: Kind
    node: str             # IR node name (ONNX-derived: comments only)
    op: str
    function: str         # C identifier
    inputs: tuple[str, ...]
    output: str | None    # None: a copy into output port args.port
    variant: Variant
    arrays: tuple[CArray, ...]
    args: LayerArgs
    macs: int = 0

    @property
    def line(self) -> int:
        return self.args.line if isinstance(self.args, ConvArgs) else 0


def _fail(node: Node, reason: str):
    raise UnsupportedModelError(reason, node=node.name, op=node.op)


def _activation(graph: Graph, name: str, node: Node) -> CType:
    """The C type of a kernel's input: the kernels read 8-bit activations."""
    t = graph.tensor(name)
    ct = ctype_of(t.dtype, f"input {name!r}", node)
    if ct.bits != 8:
        _fail(node, f"input {name!r} is {t.dtype}; the RVV kernels read 8-bit activations (int8 or uint8)")
    return ct


def _rounding(rq: Requant) -> str:
    return Store.RNU if rq.rounding is Rounding.RNU else Store.RNE


def _requant(node: Node, rq: Requant, y: CType, prefix: str) -> RequantParams:
    if y.bits == 32 and not y.signed:
        _fail(node, "a uint32 output does not fit the kernels' int32 lanes")
    # vnclip saturates round_shift(acc * M, s) to int32 and the zero point is added with
    # saturation; clamping that to [lo, hi] equals the exact formula when [lo, hi] lies in
    # zero_point + int32 (always so for outputs of at most 16 bits).
    if not (max(_I32_MIN, rq.zero_point + _I32_MIN) <= rq.lo and rq.hi <= min(_I32_MAX, rq.zero_point + _I32_MAX)):
        _fail(node, f"clamp [{rq.lo}, {rq.hi}] with zero point {rq.zero_point} does not fit int32 lanes")
    per_channel = rq.channels > 1
    layout = "[output channel]" if per_channel else "[1] (all channels)"
    return RequantParams(
        multiplier=CArray(f"{prefix}_multiplier", "uint32_t", tuple(rq.multiplier), layout),
        shift=CArray(f"{prefix}_shift", "uint32_t", tuple(rq.shift), layout),
        per_channel=per_channel, zero_point=rq.zero_point, lo=rq.lo, hi=rq.hi,
        clamp=not (y.signed and rq.lo == y.lo and rq.hi == y.hi))


def _requant_arrays(*params: RequantParams | None) -> tuple[CArray, ...]:
    return tuple(a for p in params if p is not None for a in (p.multiplier, p.shift))


def _interior(n_in: int, n_out: int, k: int, stride: int, dilation: int, pad: int) -> tuple[int, int]:
    """Output positions [lo, hi) whose k taps all fall inside the input."""
    lo = min(n_out, -(-pad // stride))
    last = (n_in - 1 + pad - (k - 1) * dilation)
    hi = min(n_out, last // stride + 1) if last >= 0 else 0
    return lo, max(lo, hi)


def window(in_hw, in_c, x_stride, out_c, y_stride, kernel, stride, dilation, pads) -> Window:
    (h, w), (kh, kw), (sh, sw), (dh, dw) = in_hw, kernel, stride, dilation
    pt, pl, _, _ = pads
    oh, ow = conv_output_hw((h, w), kernel, stride, dilation, pads)
    top, bottom = _interior(h, oh, kh, sh, dh, pt)
    left, right = _interior(w, ow, kw, sw, dw, pl)
    line_w = (ow - 1) * sw + (kw - 1) * dw + 1
    line_left = min(pl, line_w)
    return Window(h, w, in_c, x_stride, oh, ow, out_c, y_stride, kh, kw, sh, sw, dh, dw, pt, pl,
                  top, bottom, left, right, line_w, line_left, min(w, line_w - line_left))


def _flatten_pointwise(node_kernel, stride, pads, in_hw):
    """A 1x1 convolution with stride 1 and no padding is one long row of pixels: tiles may span rows."""
    if tuple(node_kernel) == (1, 1) and tuple(stride) == (1, 1) and not any(pads):
        return (1, in_hw[0] * in_hw[1])
    return tuple(in_hw)


def _check_weights(node: Node, w: np.ndarray, bias: np.ndarray):
    if w.size and (w.min() < -(1 << 15) or w.max() >= 1 << 15):
        _fail(node, f"weights in [{w.min()}, {w.max()}] do not fit int16")
    if bias.size and (bias.min() < _I32_MIN or bias.max() > _I32_MAX):
        _fail(node, "bias does not fit int32")


def weight_ctype(weights: np.ndarray) -> CType:
    """The narrowest C type that holds the weights: int8 for 8-bit weights (the kernels widen them
    in registers), int16 otherwise (_check_weights refuses wider ones)."""
    fits8 = weights.size == 0 or (weights.min() >= -128 and weights.max() <= 127)
    return CType(8, True) if fits8 else CType(16, True)


def _weights(fn: str, weights: np.ndarray, layout: str) -> tuple[CArray, CType]:
    """The weights as a C array of their weight_ctype."""
    ctype = weight_ctype(weights)
    return CArray(f"{fn}_weights", ctype.name, tuple(np.asarray(weights).reshape(-1).tolist()), layout), ctype


#: Packed weight pairs scale the accumulator by 2**PAIR_SHIFT (see _conv_weights).
PAIR_SHIFT = 8


def _conv_weights(node: Conv2d | Dense, fn: str, weights: np.ndarray, bias: CArray, rq: RequantParams | None,
                  layout: str) -> tuple[CArray, CType, bool, CArray, RequantParams | None]:
    """The weights of the convolution kernel, (groups, kh, kw, cin, cout): (array, type, packed,
    bias, requant).

    8-bit weights of input channels 2i and 2i+1 are packed into one int16 `lo & 0xFF | hi << 8`
    (an odd channel count pads a zero): one vle16 loads both rows, and `vsll 8` and `vand -256`
    give 256*lo and 256*hi exactly, as an int16 weight costs, at one byte per weight. The
    accumulator is then 256 times the true one, so the bias is stored times 256 and the
    requantization shifts 8 more (round_shift(256 * acc * M, s + 8) == round_shift(acc * M, s),
    rounding included). Packed only when that fits: the accumulator times 256 in int32 and the
    shifts at most 63; otherwise bytes sign-extended in registers (or int16 weights)."""
    fits8 = weight_ctype(weights).bits == 8
    shifts_fit = rq is not None and max(rq.shift.values) + PAIR_SHIFT <= 63
    if not (fits8 and shifts_fit and node.acc.bits + PAIR_SHIFT <= 32):
        wa, wt = _weights(fn, weights, layout)
        return wa, wt, False, bias, rq
    g, kh, kw, cin, cout = weights.shape
    w = np.zeros((g, kh, kw, cin + cin % 2, cout), np.int64)
    w[:, :, :, :cin] = weights
    pairs = w.reshape(g, kh, kw, -1, 2, cout)
    packed = (pairs[:, :, :, :, 0] & 0xFF) + pairs[:, :, :, :, 1] * 256
    scaled = replace(bias, values=tuple(int(b) << PAIR_SHIFT for b in bias.values),
                     layout=bias.layout + f", times {1 << PAIR_SHIFT} (packed weights)")
    rq = replace(rq, shift=replace(rq.shift, values=tuple(s + PAIR_SHIFT for s in rq.shift.values)))
    wa = CArray(f"{fn}_weights", "int16_t", tuple(packed.reshape(-1).tolist()),
                layout.replace("[input channel]", "[input channel pair]") + ": channel 2i | 2i+1 << 8")
    return wa, CType(8, True), True, scaled, rq


def _output_and_rounding(graph: Graph, node: Conv2d | Dense, prefix: str):
    """(y type, rounding, requant params) of a multiply-accumulate node."""
    y = ctype_of(graph.tensor(node.output).dtype, f"output {node.output!r}", node)
    if node.acc.bits > 32:
        _fail(node, f"accumulator {node.acc} is wider than the kernels' int32 lanes")
    if node.requant is None:
        if y != INT32:
            _fail(node, f"a raw accumulator output must be int32 in C, not {y.name}")
        return y, Store.RAW, None
    return y, _rounding(node.requant), _requant(node, node.requant, y, prefix)


def _plan_conv(graph: Graph, node: Conv2d, fn: str) -> tuple[str, Variant, tuple[CArray, ...], ConvArgs]:
    x = _activation(graph, node.inputs[0], node)
    xt = graph.tensor(node.inputs[0])
    h, w_, cin = xt.shape
    cout, kh, kw, cin_g = node.weights.shape
    _check_weights(node, node.weights, node.bias)
    y, rounding, rq = _output_and_rounding(graph, node, fn)
    bias = CArray(f"{fn}_bias", "int32_t", tuple(node.bias.tolist()), "[output channel]")
    if node.is_depthwise and cout == cin:
        win = window((h, w_), cin, cin, cout, cout, (kh, kw), node.stride, node.dilation, node.pads)
        weights = node.weights.reshape(cout, kh * kw).T
        if node.stride[1] == 1 and cin <= ROWS_MAX_CHANNELS:
            return _plan_depthwise_rows(fn, x, y, rounding, win, weights, node.bias, rq, xt.zero_point)
        # Vectorized over channels; weights [kh][kw][channel].
        lmul = depthwise_lmul(cin)
        wa, wt = _weights(fn, weights, "[kh][kw][channel]")
        variant = Variant(Kind.DEPTHWISE, x, y, lmul, depthwise_tile(lmul, win.out_w), rounding, w=wt)
        return Kind.DEPTHWISE, variant, (wa, bias, *_requant_arrays(rq)), ConvArgs(
            win, wa, bias, rq, xt.zero_point, win.line_elements)
    one_pixel = (h, w_) == (1, 1) and (kh, kw) == (1, 1) and not any(node.pads)
    if one_pixel and node.groups == 1 and cout <= DOT_MAX_OUTPUTS:
        return _plan_dot(fn, x, y, rounding, node.weights.reshape(cout, cin), bias, rq)
    # Dense or grouped convolution: vectorized over each group's output channels;
    # weights [group][kh][kw][input channel][output channel].
    groups = node.groups
    cout_g = cout // groups
    in_hw = _flatten_pointwise((kh, kw), node.stride, node.pads, (h, w_))
    win = window(in_hw, cin_g, cin, cout_g, cout, (kh, kw), node.stride, node.dilation, node.pads)
    weights = node.weights.reshape(groups, cout_g, kh, kw, cin_g).transpose(0, 2, 3, 4, 1)
    lmul = acc_lmul(cout_g)
    wa, wt, packed, bias, rq = _conv_weights(node, fn, weights, bias, rq,
                                             "[group][kh][kw][input channel][output channel]")
    variant = Variant(Kind.CONV, x, y, lmul, conv_tile(lmul, win.out_w), rounding, w=wt, packed=packed)
    per_group = kh * kw * (-(-cin_g // 2) if packed else cin_g) * cout_g
    return Kind.CONV, variant, (wa, bias, *_requant_arrays(rq)), ConvArgs(
        win, wa, bias, rq, xt.zero_point, win.line_elements, groups, per_group)


def _plan_depthwise_rows(fn, x, y, rounding, win, weights, bias, rq, zero_point):
    """Depthwise, stride 1, few channels: vectorized over (pixel, channel) lanes of a row. Every
    per-channel table repeats with period C for `pattern` lanes, so strips of whole pixels
    read them from lane 0."""
    c = win.out_c
    pattern = -(-ROWS_MAX_LANES // c) * c
    tile = lambda a: np.tile(np.asarray(a).reshape(-1, c), (1, pattern // c))  # noqa: E731
    wa, wt = _weights(fn, tile(weights), f"[kh][kw][lane]: channel lane % {c}")
    ba = CArray(f"{fn}_bias", "int32_t", tuple(tile(bias).reshape(-1).tolist()), f"[lane]: channel lane % {c}")
    if rq is not None and rq.per_channel:
        layout = f"[lane]: channel lane % {c}"
        rq = replace(rq, multiplier=replace(rq.multiplier,
                                            values=tuple(tile(rq.multiplier.values).reshape(-1).tolist()),
                                            layout=layout),
                     shift=replace(rq.shift, values=tuple(tile(rq.shift.values).reshape(-1).tolist()), layout=layout))
    variant = Variant(Kind.DEPTHWISE_ROWS, x, y, 8, 1, rounding, w=wt)
    return Kind.DEPTHWISE_ROWS, variant, (wa, ba, *_requant_arrays(rq)), ConvArgs(
        win, wa, ba, rq, zero_point, win.line_elements, pattern=pattern)


def _plan_dot(fn, x, y, rounding, weights: np.ndarray, bias: CArray, rq):
    cout, k = weights.shape
    wa, wt = _weights(fn, weights, "[output][input]")
    variant = Variant(Kind.DOT, x, y, 8, 1, rounding, w=wt)
    return Kind.DOT, variant, (wa, bias, *_requant_arrays(rq)), DotArgs(k, cout, wa, bias, rq)


def _plan_dense(graph: Graph, node: Dense, fn: str):
    if node.weights.ndim != 2:
        _fail(node, f"batched MatMul (weights {node.weights.shape}) is not supported by the RVV backend")
    x = _activation(graph, node.inputs[0], node)
    xt = graph.tensor(node.inputs[0])
    cout, k = node.weights.shape
    _check_weights(node, node.weights, node.bias)
    y, rounding, rq = _output_and_rounding(graph, node, fn)
    rows = math.prod(xt.shape[:-1])
    bias = CArray(f"{fn}_bias", "int32_t", tuple(node.bias.tolist()), "[output]")
    if rows == 1 and cout <= DOT_MAX_OUTPUTS:
        return _plan_dot(fn, x, y, rounding, node.weights, bias, rq)
    # A fully connected layer is a 1x1 convolution over its rows; weights [input][output].
    win = window((1, rows), k, k, cout, cout, (1, 1), (1, 1), (1, 1), (0, 0, 0, 0))
    lmul = acc_lmul(cout)
    wa, wt, packed, bias, rq = _conv_weights(node, fn, node.weights.T[None, None, None], bias, rq, "[input][output]")
    variant = Variant(Kind.CONV, x, y, lmul, conv_tile(lmul, rows), rounding, w=wt, packed=packed)
    return Kind.CONV, variant, (wa, bias, *_requant_arrays(rq)), ConvArgs(win, wa, bias, rq, xt.zero_point, 0)


def _plan_maxpool(graph: Graph, node: MaxPool, fn: str):
    x = _activation(graph, node.inputs[0], node)
    h, w, c = graph.tensor(node.inputs[0]).shape
    win = window((h, w), c, c, c, c, node.kernel, node.stride, node.dilation, node.pads)
    lowest = graph.tensor(node.inputs[0]).dtype.lo
    return Kind.MAXPOOL, Variant(Kind.MAXPOOL, x, None, e8_lmul(c)), (), MaxPoolArgs(win, lowest)


def _plan_avgpool(graph: Graph, node: AvgPool, fn: str):
    x = _activation(graph, node.inputs[0], node)
    t = graph.tensor(node.inputs[0])
    h, w, c = t.shape
    y = ctype_of(graph.tensor(node.output).dtype, f"output {node.output!r}", node)
    win = window((h, w), c, c, c, c, node.kernel, node.stride, (1, 1), node.pads)
    roundings = {_rounding(rq) for rq in node.requants.values()}
    if len(roundings) != 1:
        _fail(node, "window counts with different rounding modes")
    taps = node.kernel[0] * node.kernel[1]
    counts = _window_counts(win, node.count_include_pad)
    missing = sorted(set(counts) - set(node.requants))
    if missing:
        _fail(node, f"no requantization for windows of {missing[0]} valid positions")
    requants = tuple(_requant(node, node.requants[n], y, f"{fn}_count{n}") if n in node.requants and n in counts
                     else None for n in range(taps + 1))
    variant = Variant(Kind.AVGPOOL, x, y, acc_lmul(c), 1, roundings.pop())
    return Kind.AVGPOOL, variant, _requant_arrays(*requants), AvgPoolArgs(win, t.zero_point, node.count_include_pad,
                                                                       requants)


def _window_counts(win: Window, include_pad: bool) -> set[int]:
    """The distinct numbers of positions the windows average over."""
    if include_pad:
        return {win.kernel_h * win.kernel_w}

    def valid(n_in, n_out, k, s, p):
        return {sum(0 <= o * s - p + i < n_in for i in range(k)) for o in range(n_out)}
    rows = valid(win.in_h, win.out_h, win.kernel_h, win.stride_h, win.pad_top)
    cols = valid(win.in_w, win.out_w, win.kernel_w, win.stride_w, win.pad_left)
    return {r * c for r in rows for c in cols}


def _plan_global_avgpool(graph: Graph, node: GlobalAvgPool, fn: str):
    x = _activation(graph, node.inputs[0], node)
    t = graph.tensor(node.inputs[0])
    h, w, c = t.shape
    y = ctype_of(graph.tensor(node.output).dtype, f"output {node.output!r}", node)
    rq = _requant(node, node.requant, y, fn)
    variant = Variant(Kind.GLOBAL_AVGPOOL, x, y, acc_lmul(c), 1, _rounding(node.requant))
    return Kind.GLOBAL_AVGPOOL, variant, _requant_arrays(rq), GlobalAvgPoolArgs(h * w, c, t.zero_point, rq)


def _elementwise_shape(shape: tuple[int, ...], per_channel: bool) -> tuple[int, int]:
    """(pixels, channels): per-tensor requantization treats the whole tensor as one row."""
    size = math.prod(shape)
    return (size // shape[-1], shape[-1]) if per_channel else (1, size)


def _plan_add(graph: Graph, node: Add, fn: str):
    a = _activation(graph, node.inputs[0], node)
    b = _activation(graph, node.inputs[1], node)
    out = graph.tensor(node.output)
    y = ctype_of(out.dtype, f"output {node.output!r}", node)
    rq = _requant(node, node.requant, y, fn)
    pixels, channels = _elementwise_shape(out.shape, rq.per_channel)
    variant = Variant(Kind.ADD, a, y, acc_lmul(channels), 1, _rounding(node.requant), x2=b)
    return Kind.ADD, variant, _requant_arrays(rq), AddArgs(pixels, channels, node.lhs_multiplier, node.rhs_multiplier,
                                                        node.bias, rq)


def _plan_requantize(graph: Graph, node: Requantize, fn: str):
    x = _activation(graph, node.inputs[0], node)
    t = graph.tensor(node.inputs[0])
    y = ctype_of(graph.tensor(node.output).dtype, f"output {node.output!r}", node)
    rq = _requant(node, node.requant, y, fn)
    pixels, channels = _elementwise_shape(t.shape, rq.per_channel)
    variant = Variant(Kind.REQUANTIZE, x, y, acc_lmul(channels), 1, _rounding(node.requant))
    return Kind.REQUANTIZE, variant, _requant_arrays(rq), RequantizeArgs(pixels, channels, t.zero_point, rq)


def _plan_concat(graph: Graph, node: Concat, fn: str):
    """Each input's blocks (everything from the axis on) go to a byte range of the output's blocks."""
    out = graph.tensor(node.output)
    axis = node.axis % len(out.shape)
    elem = ctype_of(out.dtype, f"output {node.output!r}", node).bytes
    inner = math.prod(out.shape[axis + 1:]) * elem
    blocks = math.prod(out.shape[:axis])
    parts = tuple(graph.tensor(i).shape[axis] * inner for i in node.inputs)
    variant = Variant(Kind.COPY, None, None, e8_lmul(max(parts)))
    return Kind.CONCAT, variant, (), CopyArgs(blocks, parts, out.shape[axis] * inner)


def _plan_lookup(graph: Graph, node: Lookup, fn: str):
    x = _activation(graph, node.inputs[0], node)
    xt, out = graph.tensor(node.inputs[0]), graph.tensor(node.output)
    y = ctype_of(out.dtype, f"output {node.output!r}", node)
    if y.bits > 16:
        _fail(node, f"a {y.name} lookup table; the RVV kernel looks up 8- and 16-bit values")
    # The kernel indexes with x's byte (signed values offset by 128): entry of value v at (v - lo) in
    # the IR's table sits at byte(v) here.
    values = np.arange(xt.dtype.lo, xt.dtype.hi + 1)
    byte = (values & 0xFF) ^ (0x80 if x.signed else 0)
    tables = np.zeros((len(node.tables), 256), dtype=np.int64)
    tables[:, byte] = node.tables
    if len(tables) * 256 * y.bytes > 1 << 16:
        _fail(node, f"{len(tables)} tables of {y.name} exceed the kernel's 16-bit offsets")
    table = CArray(f"{fn}_table", y.name, tuple(tables.reshape(-1).tolist()), "[table][x as an index]")
    bases = None
    pixels, channels = _elementwise_shape(out.shape, bool(node.channel_tables))
    if node.channel_tables:
        bases = CArray(f"{fn}_bases", "uint16_t", tuple(256 * t for t in node.channel_tables),
                       "[channel]: its table's first entry")
    variant = Variant(Kind.LOOKUP, x, y, min(4, e8_lmul(channels)) if bases else 4)
    return Kind.LOOKUP, variant, (table, *([bases] if bases else [])), LookupArgs(pixels, channels, table, bases)


def _plan_mul(graph: Graph, node: Mul, fn: str):
    a = _activation(graph, node.inputs[0], node)
    b = _activation(graph, node.inputs[1], node)
    at, bt, out = (graph.tensor(n) for n in (*node.inputs, node.output))
    y = ctype_of(out.dtype, f"output {node.output!r}", node)
    rq = _requant(node, node.requant, y, fn)
    broadcast = bt.shape != at.shape
    pixels, channels = _elementwise_shape(out.shape, rq.per_channel or broadcast)
    variant = Variant(Kind.MUL, a, y, acc_lmul(channels), 1, _rounding(node.requant), x2=b)
    return Kind.MUL, variant, _requant_arrays(rq), MulArgs(pixels, channels, 0 if broadcast else channels,
                                                        at.zero_point, bt.zero_point, rq)


def _plan_affine(graph: Graph, node: Affine, fn: str):
    x = _activation(graph, node.inputs[0], node)
    xt, out = graph.tensor(node.inputs[0]), graph.tensor(node.output)
    y = ctype_of(out.dtype, f"output {node.output!r}", node)
    rq = _requant(node, node.requant, y, fn)
    per_channel = rq.per_channel or len(node.scale) > 1 or len(node.offset) > 1
    pixels, channels = _elementwise_shape(out.shape, per_channel)
    n = channels if per_channel else 1
    scale = CArray(f"{fn}_scale", "int32_t", tuple(np.resize(node.scale, n).tolist()),
                   "[channel]" if per_channel else "[1] (all channels)")
    offset = CArray(f"{fn}_offset", "int32_t", tuple(np.resize(node.offset, n).tolist()),
                    "[channel]" if per_channel else "[1] (all channels)")
    variant = Variant(Kind.AFFINE, x, y, acc_lmul(channels), 1, _rounding(node.requant))
    return Kind.AFFINE, variant, (scale, offset, *_requant_arrays(rq)), AffineArgs(
        pixels, channels, xt.zero_point, scale, offset, per_channel, rq)


def gather_map(graph: Graph, node: Node) -> np.ndarray:
    """The flat input index each output element copies (-1: the fill value), from the golden model run
    on the input's indices, so the map is the op's definition."""
    x = graph.tensor(node.inputs[0])
    index = np.arange(x.size, dtype=np.int64).reshape((1, *x.shape))
    if isinstance(node, Pad):
        node = replace(node, value=-1)
    return golden.OPS[type(node)](node, index, graph=graph)[0]


def _plan_gather(graph: Graph, node: Node, fn: str):
    """Pad, Slice, Transpose, DepthToSpace and nearest Resize: rows of gathered elements."""
    out = graph.tensor(node.output)
    elem = ctype_of(out.dtype, f"output {node.output!r}", node)
    source = gather_map(graph, node)
    row_length = out.shape[-1] * (out.shape[-2] if len(out.shape) >= 2 else 1)
    rows_of = source.reshape(-1, row_length)
    rows, patterns, tables = [], {}, []
    for row in rows_of:
        used = row[row >= 0]
        if not used.size:
            rows.append(-1)
            tables.append(0)
            continue
        base = int(used.min())
        pattern = tuple(int(i - base) * elem.bytes if i >= 0 else -1 for i in row)
        rows.append(base * elem.bytes)
        tables.append(patterns.setdefault(pattern, len(patterns) * row_length))
    if not patterns:
        patterns[(-1,) * row_length] = 0
    largest = max(max(p) for p in patterns)
    index = CType(16 if largest < 0xFFFF else 32, False)
    none = (1 << index.bits) - 1
    cols = CArray(f"{fn}_cols", index.name, tuple(none if i < 0 else i for p in patterns for i in p),
                  "[row pattern][element]: byte offset in the source row (largest value: fill)")
    row_array = CArray(f"{fn}_rows", "int32_t", tuple(rows), "[output row]: byte offset of the source row, -1: fill")
    table_array = CArray(f"{fn}_tables", "uint32_t", tuple(tables), "[output row]: its pattern in cols") \
        if len(patterns) > 1 else None
    fill = int(node.value) & ((1 << elem.bits) - 1) if isinstance(node, Pad) else 0
    unsigned = CType(elem.bits, False)
    lmul = min(8, max(1, 8 * elem.bits // index.bits))  # the index vector's group stays within LMUL 8
    variant = Variant(Kind.GATHER, unsigned, unsigned, lmul, index_bits=index.bits)
    arrays = (row_array, cols, *([table_array] if table_array else []))
    return Kind.GATHER, variant, arrays, GatherArgs(len(rows), row_length, row_array, cols, table_array, fill)


def _plan_resize(graph: Graph, node: Resize, fn: str):
    if node.requant is None:
        return _plan_gather(graph, node, fn)
    x = _activation(graph, node.inputs[0], node)
    xt, out = graph.tensor(node.inputs[0]), graph.tensor(node.output)
    y = ctype_of(out.dtype, f"output {node.output!r}", node)
    rq = _requant(node, node.requant, y, fn)
    h, w, c = xt.shape
    if any(len(t) > 2 for t in (*node.rows, *node.cols)):
        _fail(node, "more than two taps per row or column (the RVV kernel interpolates linearly)")

    def taps(axis_taps, step, what):
        source = [i * step for t in axis_taps for i, _ in t + ((t[0][0], 0),) * (2 - len(t))]
        weight = [wt for t in axis_taps for _, wt in t + ((t[0][0], 0),) * (2 - len(t))]
        return (CArray(f"{fn}_{what}_source", "int32_t", tuple(source), f"[output {what}][tap]: element offset"),
                CArray(f"{fn}_{what}_weight", "int32_t", tuple(weight), f"[output {what}][tap]"))

    row_source, row_weight = taps(node.rows, w * c, "row")
    col_source, col_weight = taps(node.cols, c, "col")
    total = sum(wt for _, wt in node.rows[0]) * sum(wt for _, wt in node.cols[0])
    variant = Variant(Kind.RESIZE, x, y, acc_lmul(c), 1, _rounding(node.requant))
    return Kind.RESIZE, variant, (row_source, row_weight, col_source, col_weight, *_requant_arrays(rq)), ResizeArgs(
        len(node.rows), len(node.cols), c, row_source, row_weight, col_source, col_weight, -xt.zero_point * total, rq)


def _view(graph: Graph, node: Node, fn: str):
    raise AssertionError("a view has no layer: its output aliases its input's storage (memory.storage_roots)")


#: op type -> planner(graph, node, function name) -> (kernel kind, variant, constant arrays, arguments).
PLANNERS = {
    Conv2d: _plan_conv,
    Dense: _plan_dense,
    MaxPool: _plan_maxpool,
    AvgPool: _plan_avgpool,
    GlobalAvgPool: _plan_global_avgpool,
    Add: _plan_add,
    Requantize: _plan_requantize,
    Concat: _plan_concat,
    Reshape: _view,
    Lookup: _plan_lookup,
    Mul: _plan_mul,
    Affine: _plan_affine,
    Pad: _plan_gather,
    Slice: _plan_gather,
    Transpose: _plan_gather,
    DepthToSpace: _plan_gather,
    Resize: _plan_resize,
}


def plan_layers(graph: Graph) -> list[Layer]:
    """One Layer per IR node except views (reshapes), in schedule order."""
    nodes = [n for n in graph.nodes if not n.is_view]
    names = unique_identifiers([f"layer{i:02d}_{n.name}" for i, n in enumerate(nodes)], prefix="layer")
    layers = []
    for i, (node, fn) in enumerate(zip(nodes, names)):
        planner = PLANNERS.get(type(node))
        if planner is None:
            _fail(node, "not supported by the RVV backend")
        kind, variant, arrays, args = planner(graph, node, fn)
        layers.append(Layer(i, kind, node.name, node.op, fn, node.inputs, node.output, variant, arrays, args,
                            node.macs(graph)[0]))
    return layers


def copy_layer(index: int, source: str, port: int, nbytes: int) -> Layer:
    """Copy a whole tensor into output port `port` (an output that is an input, or another output)."""
    return Layer(index, Kind.CONCAT, f"copy of {source}", "Copy", f"layer{index:02d}_copy_to_output{port}", (source,),
                 None, Variant(Kind.COPY, None, None, 8), (), CopyArgs(1, (nbytes,), nbytes, port))
