"""Building IR nodes from quantized operands: where real scales become integer constants.

The QDQ and QOperator importers both describe an op by its integer operands and
their real scales; the functions here fold zero points into biases, turn scale
ratios into (multiplier, shift) pairs with `hwgen.fixed`, and derive accumulator
widths. One place, so every source format lowers the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .. import fixed
from ..errors import UnsupportedModelError
from ..fixed import IntType, Rounding
from ..ir import (
    Add,
    Affine,
    AvgPool,
    Concat,
    Conv2d,
    Dense,
    DepthToSpace,
    GlobalAvgPool,
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
    Tensor,
    Transpose,
    conv_output_hw,
)
from ..passes.accumulators import with_derived_accumulator

#: Add aligns both operands on a grid 2**ADD_GRID_BITS finer than the coarser input step:
#: acc = a*(x - zx) + b*(y - zy) with integer a, b; one rounding at the end.
ADD_GRID_BITS = 18


@dataclass(frozen=True)
class LoweringConfig:
    rounding: Rounding = Rounding.RNE
    multiplier_bits: int = fixed.MULTIPLIER_BITS


@dataclass(frozen=True)
class OutQuant:
    """The type of a new integer tensor: a QuantizeLinear's parameters and any folded clamp."""

    dtype: IntType
    scale: float
    zero_point: int
    lo: int
    hi: int

    @classmethod
    def of(cls, dtype: IntType, scale: float, zero_point: int, real_lo=-math.inf, real_hi=math.inf) -> OutQuant:
        """Quantization of the real clamp [real_lo, real_hi] (Relu, Clip) is exact: Q is monotone."""
        lo, hi = dtype.lo, dtype.hi
        if real_lo > -math.inf:
            lo = max(lo, int(fixed.quantize_float(real_lo, scale, zero_point, dtype)))
        if real_hi < math.inf:
            hi = min(hi, int(fixed.quantize_float(real_hi, scale, zero_point, dtype)))
        return cls(dtype, float(scale), int(zero_point), lo, min(max(hi, lo), dtype.hi))

    def same_as(self, t: Tensor) -> bool:
        return (self.dtype == t.dtype and self.zero_point == t.zero_point and len(t.scale) == 1
                and np.float32(self.scale) == np.float32(t.scale[0]))

    @property
    def clamps(self) -> bool:
        return (self.lo, self.hi) != (self.dtype.lo, self.dtype.hi)


@dataclass(frozen=True)
class Act:
    """An integer activation in the IR and the ONNX tensor it stands for.

    `chw` is set when the IR (channels-last) order differs from ONNX order: the
    tensor is an NCHW map of that (C, H, W), or a flattening of one. A 4-D tensor is
    an NCHW map whose IR shape is (H, W, C), unless `flat`: then the IR holds it in
    ONNX order as its sample shape (what a Transpose to NHWC leaves; a map-reading op
    first moves it into channels-last order).
    """

    tensor: Tensor
    onnx_shape: tuple[int, ...]
    chw: tuple[int, int, int] | None
    flat: bool = False

    @property
    def name(self) -> str:
        return self.tensor.name

    @property
    def is_map(self) -> bool:
        """An NCHW feature map held channels-last as (H, W, C)."""
        return len(self.onnx_shape) == 4 and not self.flat

    @property
    def batched(self) -> bool:
        return len(self.onnx_shape) >= 2 and self.onnx_shape[0] == 1

    def ir_axis(self, onnx_axis: int) -> int | None:
        """The IR axis that ONNX axis `onnx_axis` is (None: the batch axis)."""
        axis = onnx_axis % len(self.onnx_shape)
        if self.is_map:
            return (None, 2, 0, 1)[axis]
        if self.batched:
            return None if axis == 0 else axis - 1
        return axis

    def ir_axes(self) -> list[int | None]:
        return [self.ir_axis(a) for a in range(len(self.onnx_shape))]

    def permutation(self) -> np.ndarray:
        n = self.tensor.size
        if self.chw is None:
            return np.arange(n)
        c, h, w = self.chw
        return np.arange(n).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)


def check_scales(scale, node: str, op: str, what: str = "scale") -> np.ndarray:
    """The scales as float64, each checked to be positive and finite (a zero, negative, NaN or
    infinite scale has no integer form)."""
    a = np.asarray(scale, dtype=np.float64)
    good = np.isfinite(a) & (a > 0)
    if a.size == 0 or not good.all():
        bad = a[~good].reshape(-1)
        shown = f"{float(bad[0])!r}" if bad.size else "missing"
        raise UnsupportedModelError(f"{what} must be positive and finite, not {shown}"
                                    + (f" ({bad.size} of {a.size} values)" if a.size > 1 else ""), node=node, op=op)
    return a


def ir_shape_of(onnx_shape: tuple[int, ...], what: str) -> tuple[tuple[int, ...], tuple[int, int, int] | None]:
    """IR sample shape and chw for an ONNX activation shape (leading 1 = batch)."""
    if len(onnx_shape) == 4:
        n, c, h, w = onnx_shape
        if n != 1:
            raise UnsupportedModelError(f"{what} has batch size {n}; hwgen compiles one sample "
                                        "(export the model with batch size 1)")
        return (h, w, c), ((c, h, w) if c > 1 and h * w > 1 else None)
    if len(onnx_shape) >= 2 and onnx_shape[0] == 1:
        return tuple(onnx_shape[1:]), None
    if 1 <= len(onnx_shape) <= 3:
        return tuple(onnx_shape), None
    raise UnsupportedModelError(f"{what} has shape {list(onnx_shape)}; hwgen handles NCHW maps, "
                                "vectors and matrices")


def _unique(name: str, taken: set[str]) -> str:
    out, i = name, 1
    while out in taken:
        out, i = f"{name}_{i}", i + 1
    taken.add(out)
    return out


@dataclass
class Builder:
    """Collects IR tensors and nodes while an importer walks the ONNX graph."""

    config: LoweringConfig
    tensors: dict[str, Tensor] = field(default_factory=dict)
    nodes: list[Node] = field(default_factory=list)
    node_names: set[str] = field(default_factory=set)

    # -- tensors ------------------------------------------------------------------------

    def tensor(self, name: str, shape, dtype: IntType, zero_point: int, scale) -> Tensor:
        name = _unique(name, set(self.tensors))
        t = Tensor(name, tuple(int(d) for d in shape), dtype, int(zero_point),
                   tuple(float(s) for s in np.atleast_1d(scale)))
        self.tensors[name] = t
        return t

    def replace_tensor(self, t: Tensor) -> None:
        self.tensors[t.name] = t

    def _emit(self, node_cls, name: str, inputs, out_name: str, out_shape, out: OutQuant | None,
              onnx_shape, chw, *, out_dtype: IntType | None = None, flat: bool = False, **params) -> Act:
        dtype = out.dtype if out else out_dtype
        zp = out.zero_point if out else 0
        scale = out.scale if out else 1.0
        t = self.tensor(out_name, out_shape, dtype, zp, scale)
        node = node_cls(name=_unique(name, self.node_names), inputs=tuple(a.name for a in inputs),
                        outputs=(t.name,), **params)
        if "acc" in params and params["acc"] is None:
            node = with_derived_accumulator(node, self.tensors)
        self.nodes.append(node)
        return Act(t, tuple(onnx_shape), chw, flat)

    def _move(self, node_cls, name: str, x: Act, out_name: str, onnx_shape, *, flat: bool = False, **params) -> Act:
        """A data-movement op: the output keeps x's type; its IR shape and layout follow from `onnx_shape`
        (as ONNX order when `flat`)."""
        onnx_shape = tuple(int(d) for d in onnx_shape)
        if flat:
            shape, chw = (onnx_shape[1:] if len(onnx_shape) >= 2 and onnx_shape[0] == 1 else onnx_shape), None
        else:
            shape, chw = ir_shape_of(onnx_shape, f"output of {name!r}")
        t = x.tensor
        out = OutQuant(t.dtype, t.scale[0], t.zero_point, t.dtype.lo, t.dtype.hi)
        return self._emit(node_cls, name, [x], out_name, shape, out, onnx_shape, chw, flat=flat, **params)

    # -- requantization -----------------------------------------------------------------

    def requant(self, real_scales, out: OutQuant, where: str, op: str) -> Requant:
        """Per-channel (M, shift) for acc -> out, from real scale ratios acc_scale / out.scale."""
        pairs = []
        for real in np.atleast_1d(np.asarray(real_scales, dtype=np.float64)):
            try:
                pairs.append(fixed.quantize_multiplier(float(real), self.config.multiplier_bits))
            except ValueError as exc:
                raise UnsupportedModelError(str(exc), node=where, op=op) from None
        if len(set(pairs)) == 1:
            pairs = pairs[:1]
        return Requant(tuple(m for m, _ in pairs), tuple(s for _, s in pairs), out.zero_point,
                       out.lo, out.hi, self.config.rounding)

    # -- multiply-accumulate ops --------------------------------------------------------

    def conv(self, name: str, x: Act, x_scale: float, w: np.ndarray, w_zero_point, w_scale, bias,
             bias_scale, *, stride, dilation, pads, groups, out: OutQuant | None, out_name: str,
             op: str) -> Act:
        """w in ONNX layout (Cout, Cin/groups, KH, KW); bias in units of bias_scale (or real if None)."""
        cout = w.shape[0]
        w_eff = _subtract_zero_point(w, w_zero_point, axis=0)
        weights = w_eff.transpose(0, 2, 3, 1)
        acc_scale = float(x_scale) * np.broadcast_to(np.asarray(w_scale, dtype=np.float64), (cout,))
        b = _bias_in_acc_units(bias, bias_scale, acc_scale, cout, name, op)
        b = b - x.tensor.zero_point * weights.reshape(cout, -1).sum(axis=1)
        h, wd, _ = x.tensor.shape
        oh, ow = conv_output_hw((h, wd), weights.shape[1:3], stride, dilation, pads)
        if oh <= 0 or ow <= 0:
            raise UnsupportedModelError(f"output would be empty ({oh}x{ow})", node=name, op=op)
        requant = self.requant(acc_scale / out.scale, out, name, op) if out else None
        chw = (cout, oh, ow) if cout > 1 and oh * ow > 1 else None
        return self._emit(Conv2d, name, [x], out_name, (oh, ow, cout), out, (1, cout, oh, ow), chw,
                          out_dtype=IntType(32, True), weights=weights, bias=b, stride=tuple(stride),
                          dilation=tuple(dilation), pads=tuple(pads), groups=int(groups), acc=None,
                          requant=requant)

    def dense(self, name: str, x: Act, x_scale: float, w: np.ndarray, w_zero_point, w_scale, bias,
              bias_scale, *, out: OutQuant | None, out_name: str, op: str) -> Act:
        """w is (Cout, K) against the ONNX order of x (columns follow x into IR order), or
        (G, Cout, K): one matrix per index of x's third-last axis (a batched MatMul)."""
        cout, k = w.shape[-2:]
        if x.tensor.shape[-1] != k or (w.ndim == 3 and x.tensor.shape[-3:-2] != w.shape[:1]):
            raise UnsupportedModelError(f"weights {list(w.shape)} do not fit input {list(x.onnx_shape)}",
                                        node=name, op=op)
        w_eff = _subtract_zero_point(w, w_zero_point, axis=w.ndim - 2)
        if x.chw is not None:
            w_eff = w_eff[:, x.permutation()]
        acc_scale = float(x_scale) * np.broadcast_to(np.asarray(w_scale, dtype=np.float64), (cout,))
        b = _bias_in_acc_units(bias, bias_scale, acc_scale, cout, name, op)
        if w.ndim == 3 and x.tensor.zero_point and not np.all(w_eff.sum(axis=-1) == w_eff[0].sum(axis=-1)):
            raise UnsupportedModelError("a batched MatMul with an input zero point needs one bias per matrix",
                                        node=name, op=op)
        b = b - x.tensor.zero_point * w_eff.reshape(-1, cout, k)[0].sum(axis=-1)
        requant = self.requant(acc_scale / out.scale, out, name, op) if out else None
        shape = (*x.tensor.shape[:-1], cout)
        onnx_shape = (*x.onnx_shape[:-1], cout)
        return self._emit(Dense, name, [x], out_name, shape, out, onnx_shape, None,
                          out_dtype=IntType(32, True), weights=w_eff, bias=b, acc=None, requant=requant)

    # -- pools --------------------------------------------------------------------------

    def maxpool(self, name: str, x: Act, *, kernel, stride, dilation, pads, out_name) -> Act:
        h, w, c = x.tensor.shape
        oh, ow = conv_output_hw((h, w), kernel, stride, dilation, pads)
        t = x.tensor
        out = OutQuant(t.dtype, t.scale[0], t.zero_point, t.dtype.lo, t.dtype.hi)
        return self._emit(MaxPool, name, [x], out_name, (oh, ow, c), out, (1, c, oh, ow),
                          (c, oh, ow) if c > 1 and oh * ow > 1 else None, kernel=tuple(kernel),
                          stride=tuple(stride), dilation=tuple(dilation), pads=tuple(pads))

    def avgpool(self, name: str, x: Act, x_scale: float, *, kernel, stride, pads, count_include_pad: bool,
                out: OutQuant, out_name, op: str) -> Act:
        h, w, c = x.tensor.shape
        oh, ow = conv_output_hw((h, w), kernel, stride, (1, 1), pads)
        counts = {kernel[0] * kernel[1]} if count_include_pad else _window_counts((h, w), kernel, stride, pads)
        requants = {n: self.requant(x_scale / (n * out.scale), out, name, op) for n in sorted(counts)}
        return self._emit(AvgPool, name, [x], out_name, (oh, ow, c), out, (1, c, oh, ow),
                          (c, oh, ow) if c > 1 and oh * ow > 1 else None, kernel=tuple(kernel),
                          stride=tuple(stride), pads=tuple(pads), count_include_pad=count_include_pad,
                          acc=None, requants=requants)

    def global_avgpool(self, name: str, x: Act, x_scale: float, *, out: OutQuant, out_name, op: str) -> Act:
        h, w, c = x.tensor.shape
        requant = self.requant(x_scale / (h * w * out.scale), out, name, op)
        return self._emit(GlobalAvgPool, name, [x], out_name, (1, 1, c), out, (1, c, 1, 1), None,
                          acc=None, requant=requant)

    # -- elementwise --------------------------------------------------------------------

    def add(self, name: str, a: Act, a_scale: float, b: Act, b_scale: float, *, out: OutQuant, out_name,
            op: str, subtract: bool = False) -> Act:
        """a + b (a - b when `subtract`) of the same shape."""
        if not _same_layout(a, b):
            raise UnsupportedModelError(f"operand shapes {list(a.onnx_shape)} and {list(b.onnx_shape)} "
                                        "differ; hwgen adds same-shape tensors only", node=name, op=op)
        coarse = max(a_scale, b_scale)
        ma = int(fixed.round_half_even(a_scale / coarse * 2**ADD_GRID_BITS))
        mb = int(fixed.round_half_even(b_scale / coarse * 2**ADD_GRID_BITS)) * (-1 if subtract else 1)
        bias = -(ma * a.tensor.zero_point + mb * b.tensor.zero_point)
        requant = self.requant(coarse / 2**ADD_GRID_BITS / out.scale, out, name, op)
        return self._emit(Add, name, [a, b], out_name, a.tensor.shape, out, a.onnx_shape, a.chw, flat=a.flat,
                          lhs_multiplier=ma, rhs_multiplier=mb, bias=bias, acc=None, requant=requant)

    def requantize(self, name: str, x: Act, x_scale: float, *, out: OutQuant, out_name) -> Act:
        requant = self.requant(x_scale / out.scale, out, name, "Requantize")
        return self._emit(Requantize, name, [x], out_name, x.tensor.shape, out, x.onnx_shape, x.chw, flat=x.flat,
                          requant=requant)

    def concat(self, name: str, xs: list[Act], *, axis: int, out_name, onnx_out_shape, chw) -> Act:
        t = xs[0].tensor
        shape = list(t.shape)
        shape[axis] = sum(x.tensor.shape[axis] for x in xs)
        out = OutQuant(t.dtype, t.scale[0], t.zero_point, t.dtype.lo, t.dtype.hi)
        return self._emit(Concat, name, xs, out_name, shape, out, onnx_out_shape, chw, flat=xs[0].flat, axis=axis)

    # -- lookup tables and products --------------------------------------------------------

    def lookup(self, name: str, x: Act, tables: np.ndarray, channel_tables, function: str, *, out: OutQuant,
               out_name) -> Act:
        return self._emit(Lookup, name, [x], out_name, x.tensor.shape, out, x.onnx_shape, x.chw, flat=x.flat,
                          tables=tables, channel_tables=tuple(int(t) for t in channel_tables), function=function)

    def mul(self, name: str, a: Act, a_scale: float, b: Act, b_scale: float, *, out: OutQuant, out_name,
            op: str) -> Act:
        """a * b of the same shape, or one of them a vector of one value per channel of the other."""
        if not _same_layout(a, b):
            if channel_vector(a, b) and not channel_vector(b, a):
                a, a_scale, b, b_scale = b, b_scale, a, a_scale
            if not channel_vector(b, a):
                raise UnsupportedModelError(f"operand shapes {list(a.onnx_shape)} and {list(b.onnx_shape)}: hwgen "
                                            "multiplies same-shape tensors, or a tensor by one value per channel",
                                            node=name, op=op)
        requant = self.requant(a_scale * b_scale / out.scale, out, name, op)
        return self._emit(Mul, name, [a, b], out_name, a.tensor.shape, out, a.onnx_shape, a.chw, flat=a.flat,
                          acc=None, requant=requant)

    def affine(self, name: str, x: Act, x_scale: float, scale, offset, *, out: OutQuant, out_name, op: str) -> Act:
        """y = scale * x + offset in reals (one value, or one per IR channel, each)."""
        scale_int, offset_int, multiplier = affine_constants(np.asarray(scale, dtype=np.float64) * x_scale / out.scale,
                                                             np.asarray(offset, dtype=np.float64) / out.scale,
                                                             _value_range(x.tensor), name, op)
        requant = self.requant(multiplier, out, name, op)
        return self._emit(Affine, name, [x], out_name, x.tensor.shape, out, x.onnx_shape, x.chw, flat=x.flat,
                          scale=_one_or_all(scale_int), offset=_one_or_all(offset_int), acc=None, requant=requant)

    def affine_integers(self, name: str, x: Act, scale: int, offset: int, shift: int, rounding: Rounding, *,
                        out: OutQuant, out_name) -> Act:
        """y = clamp(round_shift(scale*(x - zx) + offset, shift)) with this rounding: integer arithmetic
        given as it is (QONNX's Trunc)."""
        requant = Requant((1,), (shift,), out.zero_point, out.lo, out.hi, rounding)
        return self._emit(Affine, name, [x], out_name, x.tensor.shape, out, x.onnx_shape, x.chw, flat=x.flat,
                          scale=(scale,), offset=(offset,), acc=None, requant=requant)

    # -- data movement ----------------------------------------------------------------------

    def pad(self, name: str, x: Act, pads, value: int, *, onnx_shape, out_name) -> Act:
        """pads: (before, after) per IR axis."""
        return self._move(Pad, name, x, out_name, onnx_shape, flat=x.flat,
                          pads=tuple((int(b), int(a)) for b, a in pads), value=int(value))

    def slice(self, name: str, x: Act, starts, ends, *, onnx_shape, out_name) -> Act:
        return self._move(Slice, name, x, out_name, onnx_shape, flat=x.flat,
                          starts=tuple(int(v) for v in starts), ends=tuple(int(v) for v in ends))

    def transpose(self, name: str, x: Act, perm, *, onnx_shape, flat: bool, out_name) -> Act:
        return self._move(Transpose, name, x, out_name, onnx_shape, flat=flat, perm=tuple(int(p) for p in perm))

    def depth_to_space(self, name: str, x: Act, block, channels, *, out_name) -> Act:
        h, w, c = x.tensor.shape
        by, bx = block
        return self._move(DepthToSpace, name, x, out_name, (1, c // (by * bx), h * by, w * bx),
                          block=(int(by), int(bx)), channels=tuple(int(k) for k in channels))

    def resize(self, name: str, x: Act, x_scale: float, rows, cols, mode: str, *, out: OutQuant | None,
               out_name, op: str) -> Act:
        """rows, cols: per output row / column, the (input index, weight) taps; weights are integers of
        common denominators (rows and columns each); nearest (out None) moves values unchanged."""
        h, w, c = x.tensor.shape
        onnx_shape = (1, c, len(rows), len(cols))
        if out is None:
            return self._move(Resize, name, x, out_name, onnx_shape, rows=rows, cols=cols, mode=mode)
        denominator = sum(wt for _, wt in rows[0]) * sum(wt for _, wt in cols[0])
        requant = self.requant(x_scale / (denominator * out.scale), out, name, op)
        shape, chw = ir_shape_of(onnx_shape, f"output of {name!r}")
        return self._emit(Resize, name, [x], out_name, shape, out, onnx_shape, chw, rows=rows, cols=cols, mode=mode,
                          acc=None, requant=requant)

    def reshape(self, name: str, x: Act, *, ir_shape, onnx_shape, chw, out_name, flat: bool = False) -> Act:
        t = x.tensor
        out = OutQuant(t.dtype, t.scale[0], t.zero_point, t.dtype.lo, t.dtype.hi)
        return self._emit(Reshape, name, [x], out_name, ir_shape, out, onnx_shape, chw, flat=flat)


def _one_or_all(values: np.ndarray) -> tuple[int, ...]:
    """Per-channel integers as one value when they are all the same."""
    values = [int(v) for v in np.atleast_1d(values)]
    return tuple(values[:1]) if len(set(values)) == 1 else tuple(values)


def _same_layout(a: Act, b: Act) -> bool:
    return a.tensor.shape == b.tensor.shape and a.chw == b.chw and a.flat == b.flat


def channel_vector(v: Act, a: Act) -> bool:
    """Whether v, broadcast against a, is one value per IR channel of a (it varies along a's channel
    axis only, and holds nothing else)."""
    shape = a.onnx_shape
    vs = (1,) * (len(shape) - len(v.onnx_shape)) + tuple(v.onnx_shape)
    if len(vs) != len(shape) or v.tensor.size != a.tensor.shape[-1]:
        return False
    channel = 1 if a.is_map else len(shape) - 1
    return all(d == 1 or (i == channel and d == shape[i]) for i, d in enumerate(vs))


def _value_range(t: Tensor) -> int:
    """The largest |x - zero point| of the tensor's type."""
    return max(abs(t.dtype.lo - t.zero_point), abs(t.dtype.hi - t.zero_point))


#: An affine op's accumulator stays within this many bits (signed).
AFFINE_ACC_BITS = 32
#: Output steps below float32's resolution of any output: a multiplier changing the result by less is 0.
NEGLIGIBLE = 2.0**-24


def affine_constants(ratio: np.ndarray, offset: np.ndarray, x_range: int, where: str, op: str):
    """An affine map y = ratio*(x - zx) + offset (output steps, per channel) as integers: per channel
    acc = scale*(x - zx) + offset_int, scale = sign(ratio) * 2**k (0 where ratio is 0), and the real
    multiplier of acc's requantization, |ratio| / 2**k (1 / 2**k where ratio is 0). One k for all
    channels, the largest whose accumulator (at most 2**k * x_range + |offset_int|) fits
    AFFINE_ACC_BITS bits: the scale is a shift and a sign, and the offset's rounding error, at most
    |ratio| / 2**(k+1) output steps, is the only one before the requantization's."""
    ratio, offset = np.broadcast_arrays(np.atleast_1d(np.asarray(ratio, dtype=np.float64)),
                                        np.atleast_1d(np.asarray(offset, dtype=np.float64)))
    if not (np.all(np.isfinite(ratio)) and np.all(np.isfinite(offset))):
        raise UnsupportedModelError("multiplies or adds a value that is not finite", node=where, op=op)
    # A ratio whose whole effect is below NEGLIGIBLE output steps is 0 (its offset would need more bits
    # than any accumulator in input steps).
    ratio = np.where(np.abs(ratio) * x_range < NEGLIGIBLE, 0.0, ratio)
    unit = np.where(ratio == 0, 1.0, np.abs(ratio))
    inner = offset / unit  # the offset in input steps
    limit = (1 << (AFFINE_ACC_BITS - 1)) - 1
    k = AFFINE_ACC_BITS - 2
    while k >= 0 and (1 << k) * x_range + int(np.max(np.abs(fixed.round_half_even(inner * 2.0**k)))) > limit:
        k -= 1
    if k < 0:
        c = int(np.argmax(np.abs(inner)))
        raise UnsupportedModelError(f"adds {float(offset[c]):.6g} output steps to a multiple {float(ratio[c]):.6g} of "
                                    f"the input: {float(abs(inner[c])):.6g} input steps exceed {AFFINE_ACC_BITS}-bit "
                                    "arithmetic", node=where, op=op)
    scale = (np.sign(ratio) * (1 << k)).astype(np.int64)
    offset_int = fixed.round_half_even(inner * 2.0**k).astype(np.int64)
    return scale, offset_int, unit / 2.0**k


def _subtract_zero_point(w: np.ndarray, zero_point, axis: int) -> np.ndarray:
    w = np.asarray(w, dtype=np.int64)
    zp = np.asarray(zero_point if zero_point is not None else 0, dtype=np.int64)
    if zp.ndim == 1 and zp.size > 1:
        shape = [1] * w.ndim
        shape[axis] = -1
        zp = zp.reshape(shape)
    return w - zp


def _bias_in_acc_units(bias, bias_scale, acc_scale: np.ndarray, cout: int, name: str, op: str) -> np.ndarray:
    """The bias in accumulator units (scale x_scale * w_scale per channel), as integers.

    An int32 bias whose scale already is the accumulator's (as quantizers write it) is
    taken exactly; a float bias or one of another scale is rounded to the nearest unit.
    """
    if bias is None:
        return np.zeros(cout, dtype=np.int64)
    b = np.asarray(bias)
    if b.size not in (1, cout):
        raise UnsupportedModelError(f"bias has {b.size} values for {cout} output channels", node=name, op=op)
    b = np.broadcast_to(b.reshape(-1), (cout,))
    if bias_scale is None:  # real-valued bias
        return _whole_units(b.astype(np.float64) / acc_scale, name, op)
    sb = np.broadcast_to(np.asarray(bias_scale, dtype=np.float64).reshape(-1), (cout,))
    if np.allclose(sb, acc_scale, rtol=1e-6, atol=0):
        return b.astype(np.int64)
    return _whole_units(b.astype(np.float64) * sb / acc_scale, name, op)


def _whole_units(units: np.ndarray, name: str, op: str) -> np.ndarray:
    """A bias in accumulator units, rounded; refused when no accumulator could hold it."""
    if not np.all(np.isfinite(units)) or np.abs(units).max(initial=0) >= 2.0**62:
        raise UnsupportedModelError("the bias in accumulator units is out of all proportion to the inputs (check "
                                    "its scale)", node=name, op=op)
    return fixed.round_half_even(units).astype(np.int64)


def _window_counts(in_hw, kernel, stride, pads) -> set[int]:
    """Every number of valid (non-padding) positions a pooling window covers."""
    counts = set()
    oh, ow = conv_output_hw(in_hw, kernel, stride, (1, 1), pads)
    rows = [min(in_hw[0], i * stride[0] - pads[0] + kernel[0]) - max(0, i * stride[0] - pads[0]) for i in range(oh)]
    cols = [min(in_hw[1], j * stride[1] - pads[1] + kernel[1]) - max(0, j * stride[1] - pads[1]) for j in range(ow)]
    for r in set(rows):
        for c in set(cols):
            counts.add(r * c)
    return counts
