"""Ops that move values without changing them (Pad, Slice, Split, Transpose, DepthToSpace, nearest
Resize / Upsample) and linear Resize, whose weights are exact rationals.

Data movement works on integer tensors directly. On a dequantized input its result is the
dequantization of the moved integers, on the same grid, so a QuantizeLinear with the same
parameters after it costs nothing. The one exception is a pad value the input's grid cannot hold:
then the padded result waits for its QuantizeLinear, which fixes the grid it is padded on.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np
import onnx

from .. import fixed
from .graph import attribute
from .lower import Act, OutQuant, ir_shape_of
from .values import Deq, Pending

if TYPE_CHECKING:  # the importer calls these handlers
    from .importer import Importer


def _source(ctx: Importer, node: onnx.NodeProto, index: int = 0, *, as_map: bool = False) -> tuple[Act, float | None]:
    """Input `index` as (integer activation, its dequantization scale or None for an integer input);
    `as_map` moves a 4-D input into channels-last order first."""
    v = ctx.value(node, index)
    if isinstance(v, Deq):
        return (ctx.deq(node, index).act if as_map else v.act), v.scale
    return ctx.act(node, index, as_map=as_map), None


def _result(ctx: Importer, node: onnx.NodeProto, act: Act, scale: float | None, index: int = 0) -> None:
    ctx.set(node, Deq(act, scale) if scale is not None else act, index)


def _ints(ctx: Importer, node: onnx.NodeProto, index: int, default=None) -> list[int] | None:
    values = ctx.const(node, index, None)
    if values is None:
        return default
    if values.dtype.kind not in "iu":
        ctx.fail(node, f"input {node.input[index]!r} must hold integers")
    return [int(v) for v in values.reshape(-1)]


def _axes(ctx: Importer, node: onnx.NodeProto, axes, rank: int) -> list[int]:
    out = []
    for a in axes:
        if not -rank <= a < rank:
            ctx.fail(node, f"axis {a} is outside a {rank}-D tensor")
        out.append(a % rank)
    if len(set(out)) != len(out):
        ctx.fail(node, f"axes {list(axes)} repeat an axis")
    return out


def _check_batch(ctx: Importer, node: onnx.NodeProto, x: Act, changed: list[int]) -> None:
    for axis in changed:
        if x.ir_axis(axis) is None:
            ctx.fail(node, "changes the batch axis; hwgen compiles one sample")


# -- Pad ---------------------------------------------------------------------------------------


def pad(ctx: Importer, node: onnx.NodeProto) -> None:
    mode = attribute(node, "mode", "constant")
    if mode != "constant":
        ctx.fail(node, f"mode {mode!r}: hwgen pads with a constant (reflect, edge and wrap are not supported)")
    x, scale = _source(ctx, node)
    rank = len(x.onnx_shape)
    if ctx.g.opset < 11:
        pads, value = list(attribute(node, "pads", [])), float(attribute(node, "value", 0.0))
        axes = list(range(rank))
    else:
        pads = _ints(ctx, node, 1)
        if pads is None:
            ctx.fail(node, "pads must be a constant")
        value = ctx.scalar(node, 2, 0)
        axes = _axes(ctx, node, _ints(ctx, node, 3, list(range(rank))), rank)
    if len(pads) != 2 * len(axes):
        ctx.fail(node, f"{len(pads)} pads for {len(axes)} axes")
    before, after = [0] * rank, [0] * rank
    for k, a in enumerate(axes):
        before[a], after[a] = pads[k], pads[k + len(axes)]
    _check_batch(ctx, node, x, [a for a in range(rank) if before[a] or after[a]])
    shape = [d + b + e for d, b, e in zip(x.onnx_shape, before, after)]
    if any(d <= 0 for d in shape):
        ctx.fail(node, f"negative pads {pads} leave nothing of {list(x.onnx_shape)}")
    if any(p < 0 for p in before + after):  # negative pads crop first
        x = _slice(ctx, node, x, [max(0, -b) for b in before],
                   [d - max(0, -e) for d, e in zip(x.onnx_shape, after)], f"{node.name}/crop")
        before, after = [max(0, b) for b in before], [max(0, e) for e in after]
    ir_pads = [(0, 0)] * len(x.tensor.shape)
    for a in range(rank):
        if x.ir_axis(a) is not None:
            ir_pads[x.ir_axis(a)] = (before[a], after[a])

    def padded(src: Act, fill: int, name: str) -> Act:
        if not any(before) and not any(after):
            return src
        return ctx.builder.pad(node.name, src, ir_pads, fill, onnx_shape=shape, out_name=name)

    t = x.tensor
    if scale is None:
        if float(value) != int(value) or not t.dtype.lo <= int(value) <= t.dtype.hi:
            ctx.fail(node, f"pad value {value!r} is not a value of the integer input ({t.dtype})")
        _result(ctx, node, padded(x, int(value), node.output[0]), None)
        return
    fill = int(fixed.quantize_float(value, scale, t.zero_point, t.dtype))
    if fixed.dequantize(fill, scale, t.zero_point) == np.float32(value):  # the input's grid holds it
        _result(ctx, node, padded(x, fill, node.output[0]), scale)
        return

    def emit(out: OutQuant, name: str) -> Act:  # pad on the output's grid
        src = x
        if not out.same_as(t) or out.clamps:
            src = ctx.builder.requantize(f"{node.name}/requant", x, scale, out=out, out_name=f"{name}/requant")
        q = int(np.clip(fixed.quantize_float(value, out.scale, out.zero_point, out.dtype), out.lo, out.hi))
        return padded(src, q, name)

    ctx.set(node, Pending(node, emit))


# -- Slice and Split -------------------------------------------------------------------------


def _slice(ctx: Importer, node: onnx.NodeProto, x: Act, starts: list[int], ends: list[int], name: str) -> Act:
    """x[starts:ends] in ONNX axes (whole ranges where nothing is cut)."""
    _check_batch(ctx, node, x, [a for a, (s, e, d) in enumerate(zip(starts, ends, x.onnx_shape)) if (s, e) != (0, d)])
    if all((s, e) == (0, d) for s, e, d in zip(starts, ends, x.onnx_shape)):
        return x
    ir_starts, ir_ends = [0] * len(x.tensor.shape), list(x.tensor.shape)
    for a, (s, e) in enumerate(zip(starts, ends)):
        if x.ir_axis(a) is not None:
            ir_starts[x.ir_axis(a)], ir_ends[x.ir_axis(a)] = s, e
    shape = [e - s for s, e in zip(starts, ends)]
    return ctx.builder.slice(node.name, x, ir_starts, ir_ends, onnx_shape=shape, out_name=name)


def slice_(ctx: Importer, node: onnx.NodeProto) -> None:
    x, scale = _source(ctx, node)
    rank = len(x.onnx_shape)
    if ctx.g.opset < 10:
        starts, ends = list(attribute(node, "starts", [])), list(attribute(node, "ends", []))
        axes, steps = list(attribute(node, "axes", list(range(len(starts))))), [1] * len(starts)
    else:
        starts, ends = _ints(ctx, node, 1), _ints(ctx, node, 2)
        if starts is None or ends is None:
            ctx.fail(node, "starts and ends must be constants")
        axes = _ints(ctx, node, 3, list(range(len(starts))))
        steps = _ints(ctx, node, 4, [1] * len(starts))
    if not len(starts) == len(ends) == len(axes) == len(steps):
        ctx.fail(node, "starts, ends, axes and steps differ in length")
    axes = _axes(ctx, node, axes, rank)
    lo, hi = [0] * rank, list(x.onnx_shape)
    for a, s, e, step in zip(axes, starts, ends, steps):
        if step != 1:
            ctx.fail(node, f"step {step}: hwgen slices with step 1")
        d = x.onnx_shape[a]
        s, e = (s + d if s < 0 else s), (e + d if e < 0 else e)
        lo[a], hi[a] = min(max(s, 0), d), min(max(e, 0), d)
        if hi[a] <= lo[a]:
            ctx.fail(node, f"the slice of axis {a} is empty")
    _result(ctx, node, _slice(ctx, node, x, lo, hi, node.output[0]), scale)


def split(ctx: Importer, node: onnx.NodeProto) -> None:
    x, scale = _source(ctx, node)
    rank = len(x.onnx_shape)
    axis = _axes(ctx, node, [attribute(node, "axis", 0)], rank)[0]
    d = x.onnx_shape[axis]
    outputs = list(node.output)
    sizes = _ints(ctx, node, 1) if ctx.g.opset >= 13 else attribute(node, "split", None)
    if sizes is None:
        parts = attribute(node, "num_outputs", len(outputs))
        step = -(-d // parts)
        sizes = [min(step, d - k * step) for k in range(parts)]
    if len(sizes) != len(outputs) or sum(sizes) != d or any(s <= 0 for s in sizes):
        ctx.fail(node, f"split sizes {list(sizes)} do not divide axis {axis} of {list(x.onnx_shape)} into "
                       f"{len(outputs)} parts")
    start = 0
    for k, (size, name) in enumerate(zip(sizes, outputs)):
        lo, hi = [0] * rank, list(x.onnx_shape)
        lo[axis], hi[axis] = start, start + size
        start += size
        if name:
            _result(ctx, node, _slice(ctx, node, x, lo, hi, name), scale, k)


# -- Transpose ---------------------------------------------------------------------------------


def _order(onnx_shape, flat: bool) -> list[int]:
    """The ONNX axes of a tensor of `onnx_shape`, in IR axis order (a 4-D one a channels-last map unless
    `flat`; the batch axis has none)."""
    rank = len(onnx_shape)
    if rank == 4 and not flat:
        return [2, 3, 1]
    return list(range(1 if rank >= 2 and onnx_shape[0] == 1 else 0, rank))


def transpose(ctx: Importer, node: onnx.NodeProto) -> None:
    """A view where the values keep their order (sizes of 1 aside), a 4-D result held flat if that
    makes it one (an NCHW map read as NHWC); otherwise an IR Transpose into the result's layout."""
    x, scale = _source(ctx, node)
    rank = len(x.onnx_shape)
    perm = list(attribute(node, "perm", list(range(rank))[::-1]))
    if sorted(perm) != list(range(rank)):
        ctx.fail(node, f"perm {perm} is not a permutation of {rank} axes")
    shape = [x.onnx_shape[p] for p in perm]
    position = {a: i for i, a in enumerate(_order(x.onnx_shape, x.flat))}
    for flat in ((False, True) if rank == 4 else (False,)):
        sources = [perm[j] for j in _order(shape, flat)]  # the input axis each output IR axis reads
        moved = [position[a] for a in sources if x.onnx_shape[a] > 1]
        if moved == sorted(moved):
            _result(ctx, node, _view(ctx, node, x, shape, flat), scale)
            return
    sources = [perm[j] for j in _order(shape, False)]
    if sorted(sources) != sorted(position):
        ctx.fail(node, "moves the batch axis; hwgen compiles one sample")
    _result(ctx, node, ctx.builder.transpose(node.name, x, [position[a] for a in sources], onnx_shape=shape,
                                             flat=False, out_name=node.output[0]), scale)


def _view(ctx: Importer, node: onnx.NodeProto, x: Act, shape, flat: bool) -> Act:
    """x read as ONNX `shape` in a layout whose IR order is x's: no data moves."""
    if flat:
        ir_shape, chw = tuple(shape[1:]), None
    else:
        ir_shape, chw = ir_shape_of(tuple(shape), f"output of {node.name!r}")
    if ir_shape == x.tensor.shape:
        return Act(x.tensor, tuple(shape), chw, flat)
    return ctx.builder.reshape(node.name, x, ir_shape=ir_shape, onnx_shape=tuple(shape), chw=chw, flat=flat,
                               out_name=node.output[0])


# -- DepthToSpace ----------------------------------------------------------------------------


def depth_to_space(ctx: Importer, node: onnx.NodeProto) -> None:
    x, scale = _source(ctx, node, as_map=True)
    if not x.is_map:
        ctx.fail(node, "hwgen rearranges NCHW feature maps only")
    b = attribute(node, "blocksize", 0)
    c = x.tensor.shape[-1]
    if b < 1 or c % (b * b):
        ctx.fail(node, f"blocksize {b} does not divide the {c} channels into blocks")
    mode = attribute(node, "mode", "DCR")
    cout = c // (b * b)
    if mode == "DCR":
        channels = list(range(c))
    elif mode == "CRD":  # output (ry, rx, c) reads input channel c*b*b + ry*b + rx
        channels = [ch * b * b + r for r in range(b * b) for ch in range(cout)]
    else:
        ctx.fail(node, f"mode {mode!r} must be DCR or CRD")
    _result(ctx, node, ctx.builder.depth_to_space(node.name, x, (b, b), channels, out_name=node.output[0]), scale)


# -- Resize and Upsample ----------------------------------------------------------------------

#: Coordinate transformations, as onnxruntime computes them in float32: (x_out, scale, out_len, in_len) -> x_in.
_F = np.float32
COORDINATES = {
    "asymmetric": lambda x, s, n, m: _F(x) / s,
    "half_pixel": lambda x, s, n, m: (_F(x) + _F(0.5)) / s - _F(0.5),
    "pytorch_half_pixel": lambda x, s, n, m: (_F(x) + _F(0.5)) / s - _F(0.5) if n > 1 else _F(0),
    "tf_half_pixel_for_nn": lambda x, s, n, m: (_F(x) + _F(0.5)) / s,
    "align_corners": lambda x, s, n, m: _F(0) if n == 1 else _F(x) * _F(m - 1) / _F(n - 1),
    "half_pixel_symmetric": lambda x, s, n, m: _half_pixel_symmetric(x, s, n, m),
}


def _half_pixel_symmetric(x, s, n, m):
    """onnxruntime's: its offset in float32, the rest in double, rounded to float32."""
    adjustment = _F(n) / (s * _F(m))
    offset = _F(m) / _F(2) * (_F(1) - adjustment)
    return _F(float(offset) + (x + 0.5) / float(s) - 0.5)

#: The same transformations in exact rationals (linear weights).
EXACT_COORDINATES = {
    "asymmetric": lambda x, s, n, m: x / s,
    "half_pixel": lambda x, s, n, m: (x + Fraction(1, 2)) / s - Fraction(1, 2),
    "pytorch_half_pixel": lambda x, s, n, m: (x + Fraction(1, 2)) / s - Fraction(1, 2) if n > 1 else Fraction(0),
    "align_corners": lambda x, s, n, m: Fraction(0) if n == 1 else Fraction(x * (m - 1), n - 1),
    "half_pixel_symmetric": lambda x, s, n, m: Fraction(m, 2) * (1 - n / (s * m)) + (x + Fraction(1, 2)) / s
    - Fraction(1, 2),
}

#: Nearest-pixel rules of onnxruntime (`simple`: Resize-10 and Upsample).
NEAREST = {
    "round_prefer_floor": lambda v, down: math.floor(v) if v == int(v) + 0.5 else _round_half_away(v),
    "round_prefer_ceil": lambda v, down: _round_half_away(v),
    "floor": lambda v, down: math.floor(v),
    "ceil": lambda v, down: math.ceil(v),
    "simple": lambda v, down: math.ceil(v) if down else int(v),
}


def _round_half_away(v: float) -> int:
    return int(math.floor(abs(v) + 0.5)) * (1 if v >= 0 else -1)


def nearest_taps(in_len: int, out_len: int, scale: float, transform: str, rule: str) -> tuple:
    """For each output index, the one input index it copies (onnxruntime's float32 arithmetic)."""
    s = _F(scale)
    taps = []
    for o in range(out_len):
        v = float(COORDINATES[transform](o, s, out_len, in_len))
        i = min(max(NEAREST[rule](v, s < 1), 0), in_len - 1)
        taps.append(((i, 1),))
    return tuple(taps)


def linear_taps(in_len: int, out_len: int, scale: Fraction, transform: str) -> tuple:
    """For each output index, its (input index, integer weight) taps; the weights of every output sum
    to the same denominator (exact rationals, then scaled to integers)."""
    exact = []
    for o in range(out_len):
        v = min(max(EXACT_COORDINATES[transform](o, scale, out_len, in_len), Fraction(0)), Fraction(in_len - 1))
        i0 = math.floor(v)
        frac = v - i0
        taps = {}
        for i, w in ((i0, 1 - frac), (min(i0 + 1, in_len - 1), frac)):
            if w:
                taps[i] = taps.get(i, Fraction(0)) + w
        exact.append(taps)
    denominator = math.lcm(*(w.denominator for taps in exact for w in taps.values()))
    return tuple(tuple((i, int(w * denominator)) for i, w in sorted(taps.items())) for taps in exact)


def _resize_geometry(ctx: Importer, node: onnx.NodeProto, x: Act, upsample: bool):
    """(mode, transform, nearest rule, output (H, W), scales (H, W)) of a Resize or Upsample."""
    rank = len(x.onnx_shape)
    mode = attribute(node, "mode", "nearest")
    if mode not in ("nearest", "linear"):
        ctx.fail(node, f"mode {mode!r}: hwgen resizes with nearest or linear interpolation")
    if upsample or ctx.g.opset < 11:
        transform, rule = "asymmetric", "simple"
        if upsample and ctx.g.opset < 9:
            scales = [float(s) for s in attribute(node, "scales", [])]
        else:
            values = ctx.const(node, 1, None)
            if values is None:
                ctx.fail(node, "scales must be a constant")
            scales = [float(s) for s in values.reshape(-1)]
        sizes = None
    else:
        transform = attribute(node, "coordinate_transformation_mode", "half_pixel")
        rule = attribute(node, "nearest_mode", "round_prefer_floor") if mode == "nearest" else "simple"
        if transform == "tf_crop_and_resize":
            ctx.fail(node, "coordinate_transformation_mode 'tf_crop_and_resize' is not supported")
        if transform not in COORDINATES:
            ctx.fail(node, f"unknown coordinate_transformation_mode {transform!r}")
        if rule not in NEAREST:
            ctx.fail(node, f"unknown nearest_mode {rule!r}")
        if attribute(node, "antialias", 0):
            ctx.fail(node, "antialias=1 is not supported")
        if attribute(node, "exclude_outside", 0):
            ctx.fail(node, "exclude_outside=1 is not supported")
        if attribute(node, "keep_aspect_ratio_policy", "stretch") != "stretch":
            ctx.fail(node, "keep_aspect_ratio_policy other than 'stretch' is not supported")
        axes = _axes(ctx, node, list(attribute(node, "axes", list(range(rank)))), rank)
        scale_values = ctx.const(node, 2, None)
        size_values = ctx.const(node, 3, None)
        scales = sizes = None
        if size_values is not None and size_values.size:
            sizes = list(x.onnx_shape)
            for a, n in zip(axes, size_values.reshape(-1)):
                sizes[a] = int(n)
        elif scale_values is not None and scale_values.size:
            scales = [1.0] * rank
            for a, s in zip(axes, scale_values.reshape(-1)):
                scales[a] = float(s)
        else:
            ctx.fail(node, "scales or sizes must be constants (dynamic resizing is not supported)")
    if sizes is None:
        if len(scales) != rank or any(not (s > 0 and math.isfinite(s)) for s in scales):
            ctx.fail(node, f"scales {scales} must be {rank} positive numbers")
        sizes = [int(_F(s) * _F(d)) for s, d in zip(scales, x.onnx_shape)]
    else:
        scales = [float(_F(n) / _F(d)) for n, d in zip(sizes, x.onnx_shape)]
    if transform == "half_pixel_symmetric" and any(_F(s) * _F(d) != n for s, d, n in zip(scales, x.onnx_shape, sizes)):
        ctx.fail(node, "coordinate_transformation_mode 'half_pixel_symmetric' with a scale that does not give a whole "
                       "output size is not supported")
    if sizes[:2] != list(x.onnx_shape[:2]):
        ctx.fail(node, "resizes the batch or channel axis; hwgen resizes height and width")
    if any(n <= 0 for n in sizes):
        ctx.fail(node, f"output size {sizes} is empty")
    return mode, transform, rule, (sizes[2], sizes[3]), (scales[2], scales[3])


def _integer_factor(scale: float) -> Fraction | None:
    """The scale as an exact rational if it or its inverse is an integer."""
    s = Fraction(float(_F(scale)))
    return s if s.denominator == 1 or s.numerator == 1 else None


def resize(ctx: Importer, node: onnx.NodeProto, upsample: bool = False) -> None:
    x, scale = _source(ctx, node, as_map=True)
    if not x.is_map:
        ctx.fail(node, "hwgen resizes NCHW feature maps only")
    mode, transform, rule, (oh, ow), (sh, sw) = _resize_geometry(ctx, node, x, upsample)
    h, w, _ = x.tensor.shape
    if mode == "nearest":
        rows = nearest_taps(h, oh, sh, transform, rule)
        cols = nearest_taps(w, ow, sw, transform, rule)
        _result(ctx, node, ctx.builder.resize(node.name, x, scale or 1.0, rows, cols, "nearest", out=None,
                                              out_name=node.output[0], op=node.op_type), scale)
        return
    fy, fx = _integer_factor(sh), _integer_factor(sw)
    if fy is None or fx is None:
        ctx.fail(node, f"linear resize by {sh:g} x {sw:g}: hwgen interpolates exactly with integer factors (or their "
                       "inverses) only")
    if transform == "tf_half_pixel_for_nn":
        ctx.fail(node, "coordinate_transformation_mode 'tf_half_pixel_for_nn' applies to nearest resizing only")
    if scale is None:
        ctx.fail(node, "linear resize of an integer tensor needs a QuantizeLinear of its result")
    rows = linear_taps(h, oh, fy, transform)
    cols = linear_taps(w, ow, fx, transform)

    def emit(out: OutQuant, name: str) -> Act:
        return ctx.builder.resize(node.name, x, scale, rows, cols, "linear", out=out, out_name=name, op=node.op_type)

    ctx.set(node, Pending(node, emit))


def upsample(ctx: Importer, node: onnx.NodeProto) -> None:
    resize(ctx, node, upsample=True)


def _after_float_op(handler):
    """The handler, also on the float result of an op with no QuantizeLinear in between (quantize_static
    leaves Div -> Resize so): moving values commutes with quantizing them, so the move waits for the
    QuantizeLinear after it and applies to the op's quantized result. (Linear resizing computes, so it
    does not commute: refused.)"""

    def wrapped(ctx: Importer, node: onnx.NodeProto) -> None:
        v = ctx.value(node, 0)
        if not isinstance(v, Pending):
            handler(ctx, node)
            return
        if attribute(node, "mode", "nearest") == "linear":
            ctx.fail(node, f"input {node.input[0]!r} comes from node {v.node.name!r} ({v.node.op_type}) without a "
                           "QuantizeLinear in between; hwgen interpolates quantized values only")

        def emit(out: OutQuant, name: str) -> Act:
            source, pending = node.input[0], ctx.values[node.output[0]]
            ctx.values[source] = Deq(v.emit(out, f"{name}/unmoved"), out.scale)
            try:
                handler(ctx, node)
                moved = ctx.values[node.output[0]]
            finally:
                ctx.values[source], ctx.values[node.output[0]] = v, pending
            return moved.emit(out, name) if isinstance(moved, Pending) else moved.act

        ctx.set(node, Pending(node, emit, v.lo, v.hi))

    return wrapped


HANDLERS = {
    "Pad": _after_float_op(pad),
    "Slice": _after_float_op(slice_),
    "Split": split,
    "Transpose": _after_float_op(transpose),
    "DepthToSpace": _after_float_op(depth_to_space),
    "Resize": _after_float_op(resize),
    "Upsample": _after_float_op(upsample),
}
