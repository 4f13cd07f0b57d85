"""hwgen's IR: a graph of integer operations on channels-last tensors.

Every tensor carries an explicit integer type, a zero point and an informational
real scale. Activations are per sample, channels last: (H, W, C) feature maps,
(C,) vectors, or (rows, C) matrices. Multiply-accumulate ops hold their weights as
integer constants with the weight zero point already subtracted and the input
zero point folded into the bias, so every backend computes

    acc = bias + sum(x * w)        and then        y = requant(acc)

with the requantization spec of `hwgen.fixed`. `verify(graph)` checks every
invariant and names the first bad node.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np

from .errors import VerificationError
from .fixed import IntType, Rounding, requantize
from .names import terminal

__all__ = [
    "Tensor", "Requant", "Node", "Conv2d", "Dense", "MaxPool", "AvgPool", "GlobalAvgPool",
    "Add", "Concat", "Requantize", "Reshape", "Layout", "HostQuantize", "HostHead", "InputPort", "OutputPort",
    "HostTail",
    "Graph", "OP_TYPES", "OP_BY_NAME", "verify", "Lookup", "Mul", "Affine", "Pad", "Resize", "DepthToSpace", "Slice",
    "Transpose", "MAX_LOOKUP_BITS", "conv_output_hw", "REQUANT_SLICE",
]


def _frozen_array(a, dtype=np.int64) -> np.ndarray:
    a = np.array(a, dtype=dtype)
    a.flags.writeable = False
    return a


@dataclass(frozen=True, slots=True)
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: IntType
    zero_point: int
    scale: tuple[float, ...]  # informational: one value, or one per channel (last axis)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def __str__(self) -> str:
        scale = f"{self.scale[0]:.6g}" if len(self.scale) == 1 else f"[{len(self.scale)} scales]"
        return f"{self.dtype}{list(self.shape)} zp={self.zero_point} scale={scale}"


#: Elements requantized at a time: the spec's arithmetic makes about 7 temporaries of this size.
REQUANT_SLICE = 1 << 16


@dataclass(frozen=True, slots=True)
class Requant:
    """y = clamp(zero_point + round_shift(acc * multiplier, shift), lo, hi), per output channel."""

    multiplier: tuple[int, ...]  # one entry, or one per output channel
    shift: tuple[int, ...]
    zero_point: int
    lo: int
    hi: int
    rounding: Rounding

    def apply(self, acc: np.ndarray) -> np.ndarray:
        """The requantized values of acc (channels on the last axis), a slice at a time so the
        temporaries stay small whatever the tensor's size."""
        acc = np.asarray(acc)
        m, s = np.array(self.multiplier), np.array(self.shift)
        if acc.size <= REQUANT_SLICE:
            return requantize(acc, m, s, self.zero_point, self.lo, self.hi, self.rounding)
        rows = acc.reshape(-1, acc.shape[-1]) if acc.ndim else acc.reshape(1, 1)
        out = np.empty(rows.shape, dtype=np.int64)
        step = max(1, REQUANT_SLICE // rows.shape[1])
        for i in range(0, len(rows), step):
            out[i:i + step] = requantize(rows[i:i + step], m, s, self.zero_point, self.lo, self.hi, self.rounding)
        return out.reshape(acc.shape)

    @property
    def channels(self) -> int:
        return len(self.multiplier)

    def select(self, keep) -> Requant:
        """The requantization of the output channels listed in `keep`."""
        if self.channels == 1:
            return self
        keep = list(keep)
        return Requant(tuple(self.multiplier[i] for i in keep), tuple(self.shift[i] for i in keep),
                       self.zero_point, self.lo, self.hi, self.rounding)

    def __str__(self) -> str:
        if self.channels == 1:
            m = f"M={self.multiplier[0]} s={self.shift[0]}"
        else:
            m = f"M=[{self.channels}] s={min(self.shift)}..{max(self.shift)}"
        return f"{m} zp={self.zero_point} clamp=[{self.lo},{self.hi}] {self.rounding}"


@dataclass(frozen=True, eq=False)
class Node:
    """One operation. `name` is unique in the graph (the ONNX node name where it had one).

    An op type is one subclass. It answers what every backend asks of it and is not specific to
    one: its output shape, its multiply-accumulates and parameters, its accumulator's worst case
    and its requantizations. What a backend does with it is one entry in that backend's table
    keyed by the op type (`golden.OPS`, `fpga.units.UNITS`, `hdl.units.BUILDERS`,
    `rvv.plan.PLANNERS`, `passes.channels.CONSUMERS`); see docs/adding-an-op.md.
    """

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    op: ClassVar[str] = "Node"
    #: The output has the (first) input's type and zero point: data moves, values do not change.
    keeps_type: ClassVar[bool] = False
    #: It multiplies by weights: its MACs are what the hardware spends, its weights what it stores.
    weighted: ClassVar[bool] = False
    #: Its output is its input read in another shape: no data moves (a backend may alias them).
    is_view: ClassVar[bool] = False

    @property
    def output(self) -> str:
        return self.outputs[0]

    def params_str(self) -> str:
        return ""

    def output_shape(self, shapes: list[tuple[int, ...]]) -> tuple[int, ...] | None:
        """The output shape for these input shapes (None: any shape the verifier's check allows);
        raises VerificationError through `_fail` when the inputs do not fit."""
        _fail(self, "unknown op")

    def requantizations(self) -> tuple[Requant, ...]:
        """Every requantization the op applies (none for data movement)."""
        return ()

    def with_requants(self, change) -> Node:
        """The op with `change(requant)` applied to each of its requantizations."""
        return self

    def accumulator_bound(self, tensors: Mapping[str, Tensor]) -> int | None:
        """Worst-case |acc| of its accumulator (None: it has none)."""
        return None

    def check(self, ins: list[Tensor], out: Tensor) -> None:
        """The op's own invariants beyond shapes and types (raises through `_fail`)."""

    def macs(self, graph: Graph) -> tuple[int, int]:
        """Multiply-accumulates per inference: dense, and with zero weights skipped."""
        return 0, 0

    @property
    def params(self) -> int:
        """Weights and biases it stores."""
        return 0

    def __str__(self) -> str:
        params = self.params_str()
        return (f"{self.op} {self.name!r} ({', '.join(map(terminal, self.inputs))}) -> "
                f"({', '.join(map(terminal, self.outputs))})"
                + (f"  {params}" if params else ""))


class _Accumulating:
    """Mixin: an op with an accumulator `acc` and one requantization `requant` (or None: the
    accumulator itself is the output)."""

    def requantizations(self) -> tuple[Requant, ...]:
        return () if self.requant is None else (self.requant,)

    def with_requants(self, change) -> Node:
        return self if self.requant is None else replace(self, requant=change(self.requant))


class _Weighted(_Accumulating):
    """Mixin: a Conv2d or Dense; weights (one row of fan-in values per output channel) and a bias."""

    weighted: ClassVar[bool] = True

    def accumulator_bound(self, tensors: Mapping[str, Tensor]) -> int:
        """(count of non-zero weights of the output channel) x max|x| x max|w| + |bias|, maximised
        over output channels."""
        x = tensors[self.inputs[0]].dtype
        w = self.weight_rows()
        nnz = np.count_nonzero(w, axis=1).astype(object)
        max_w = max(1, int(np.abs(w).max(initial=0)))
        bound = nnz * x.max_abs * max_w
        return int(bound.max(initial=0)) + int(np.abs(self.bias).max(initial=0))

    @property
    def params(self) -> int:
        return self.weights.size + self.bias.size

    def weight_rows(self) -> np.ndarray:
        """The weights as one row per output channel (all its fan-in)."""
        return self.weights.reshape(self.out_channels, -1)

    def positions(self, graph: Graph) -> int:
        """Output positions per inference that each use every weight once."""
        raise NotImplementedError

    def macs(self, graph: Graph) -> tuple[int, int]:
        n = self.positions(graph)
        return n * self.weights.size, n * int(np.count_nonzero(self.weights))


@dataclass(frozen=True, eq=False)
class Conv2d(_Weighted, Node):
    """2-D convolution (groups: 1 = dense, C = depthwise). Padding uses the input zero point."""

    weights: np.ndarray = None  # (Cout, KH, KW, Cin/groups)
    bias: np.ndarray = None     # (Cout,), input zero point folded in
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, left, bottom, right
    groups: int = 1
    acc: IntType = IntType(32, True)
    requant: Requant | None = None  # None: the accumulator is the output (ConvInteger)
    op: ClassVar[str] = "Conv2d"

    def __post_init__(self):
        object.__setattr__(self, "weights", _frozen_array(self.weights))
        object.__setattr__(self, "bias", _frozen_array(self.bias))

    @property
    def kernel(self) -> tuple[int, int]:
        return self.weights.shape[1], self.weights.shape[2]

    @property
    def out_channels(self) -> int:
        return self.weights.shape[0]

    @property
    def is_depthwise(self) -> bool:
        return self.groups > 1 and self.weights.shape[3] == 1

    def output_shape(self, shapes):
        x = shapes[0]
        if len(x) != 3:
            _fail(self, f"input must be (H, W, C), got {x}")
        cout, kh, kw, cin_g = self.weights.shape
        if x[2] != cin_g * self.groups or cout % self.groups:
            _fail(self, f"weights {self.weights.shape} with groups={self.groups} do not fit input {x}")
        oh, ow = conv_output_hw(x[:2], (kh, kw), self.stride, self.dilation, self.pads)
        return (oh, ow, cout)

    def positions(self, graph: Graph) -> int:
        out = graph.tensor(self.output)
        return out.shape[0] * out.shape[1]

    def params_str(self) -> str:
        kh, kw = self.kernel
        return (f"k={kh}x{kw} stride={self.stride} dil={self.dilation} pads={self.pads} groups={self.groups} "
                f"w={self.weights.shape} acc={self.acc} requant: {self.requant}")


@dataclass(frozen=True, eq=False)
class Dense(_Weighted, Node):
    """Fully connected over the last axis: y[..., o] = bias[o] + sum_k x[..., k] * w[o, k].

    Weights of shape (G, Cout, K) apply matrix g to x[..., g, :, :] (a MatMul of
    stacked matrices); CNNs only use (Cout, K).
    """

    weights: np.ndarray = None  # (Cout, K) or (G, Cout, K)
    bias: np.ndarray = None     # (Cout,)
    acc: IntType = IntType(32, True)
    requant: Requant | None = None
    op: ClassVar[str] = "Dense"

    def __post_init__(self):
        object.__setattr__(self, "weights", _frozen_array(self.weights))
        object.__setattr__(self, "bias", _frozen_array(self.bias))

    @property
    def out_channels(self) -> int:
        return self.weights.shape[-2]

    def weight_rows(self) -> np.ndarray:
        return self.weights.reshape(-1, self.weights.shape[-1])

    def output_shape(self, shapes):
        x, w = shapes[0], self.weights.shape
        if x[-1] != w[-1] or (len(w) == 3 and (len(x) < 3 or x[-3] != w[0])):
            _fail(self, f"weights {w} do not fit input {x}")
        return (*x[:-1], w[-2])

    def positions(self, graph: Graph) -> int:
        out = graph.tensor(self.output)
        return math.prod(out.shape[:-1]) // (self.weights.shape[0] if self.weights.ndim == 3 else 1)

    def params_str(self) -> str:
        return f"w={self.weights.shape} acc={self.acc} requant: {self.requant}"


def _pool_shape(node: Node, shapes, dilation) -> tuple[int, ...]:
    x = shapes[0]
    if len(x) != 3:
        _fail(node, f"input must be (H, W, C), got {x}")
    span = [dilation[i] * (node.kernel[i] - 1) + 1 for i in range(2)]
    if any(p >= span[i % 2] for i, p in enumerate(node.pads)):
        _fail(node, f"pads {node.pads} as wide as the window {node.kernel}: a window could hold only padding")
    oh, ow = conv_output_hw(x[:2], node.kernel, node.stride, dilation, node.pads)
    return (oh, ow, x[2])


@dataclass(frozen=True, eq=False)
class MaxPool(Node):
    """Max over windows; padding never wins (it is the type's minimum). Same type in and out."""

    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    op: ClassVar[str] = "MaxPool"
    keeps_type: ClassVar[bool] = True

    def output_shape(self, shapes):
        return _pool_shape(self, shapes, self.dilation)

    def params_str(self) -> str:
        return f"k={self.kernel} stride={self.stride} dil={self.dilation} pads={self.pads}"


def _input_range(tensors: Mapping[str, Tensor], name: str) -> int:
    t = tensors[name]
    return max(abs(t.dtype.lo - t.zero_point), abs(t.dtype.hi - t.zero_point))


@dataclass(frozen=True, eq=False)
class AvgPool(Node):
    """acc = sum of (x - zero point) over the window's valid positions; requant by 1/count.

    count is the kernel size when `count_include_pad`, else the number of valid
    positions, so border windows may use another requantization (`requants[count]`).
    """

    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    count_include_pad: bool = False
    acc: IntType = IntType(32, True)
    requants: Mapping[int, Requant] = field(default_factory=dict)
    op: ClassVar[str] = "AvgPool"

    @property
    def dilation(self) -> tuple[int, int]:
        return (1, 1)

    def output_shape(self, shapes):
        return _pool_shape(self, shapes, (1, 1))

    def requantizations(self) -> tuple[Requant, ...]:
        return tuple(self.requants.values())

    def with_requants(self, change) -> Node:
        return replace(self, requants={n: change(r) for n, r in self.requants.items()})

    def accumulator_bound(self, tensors: Mapping[str, Tensor]) -> int:
        return self.kernel[0] * self.kernel[1] * _input_range(tensors, self.inputs[0])

    def params_str(self) -> str:
        counts = sorted(self.requants)
        return (f"k={self.kernel} stride={self.stride} pads={self.pads} include_pad={self.count_include_pad} "
                f"acc={self.acc} requant(count={counts[-1]}): {self.requants[counts[-1]]}")


@dataclass(frozen=True, eq=False)
class GlobalAvgPool(_Accumulating, Node):
    """acc = sum over H and W of (x - zero point), per channel; requant includes 1/(H*W)."""

    acc: IntType = IntType(32, True)
    requant: Requant = None
    op: ClassVar[str] = "GlobalAvgPool"

    def output_shape(self, shapes):
        x = shapes[0]
        if len(x) != 3:
            _fail(self, f"input must be (H, W, C), got {x}")
        return (1, 1, x[2])

    def accumulator_bound(self, tensors: Mapping[str, Tensor]) -> int:
        t = tensors[self.inputs[0]]
        return t.shape[0] * t.shape[1] * _input_range(tensors, self.inputs[0])

    def params_str(self) -> str:
        return f"acc={self.acc} requant: {self.requant}"


@dataclass(frozen=True, eq=False)
class Add(_Accumulating, Node):
    """Elementwise add on a common fixed-point grid: acc = a*lhs + b*rhs + bias, then requant."""

    lhs_multiplier: int = 1
    rhs_multiplier: int = 1
    bias: int = 0  # -(a*lhs_zp + b*rhs_zp)
    acc: IntType = IntType(32, True)
    requant: Requant = None
    op: ClassVar[str] = "Add"

    def output_shape(self, shapes):
        if shapes[0] != shapes[1]:
            _fail(self, f"operand shapes differ: {shapes[0]} and {shapes[1]}")
        return shapes[0]

    def accumulator_bound(self, tensors: Mapping[str, Tensor]) -> int:
        a, b = (tensors[n].dtype for n in self.inputs)
        return abs(self.lhs_multiplier) * a.max_abs + abs(self.rhs_multiplier) * b.max_abs + abs(self.bias)

    def params_str(self) -> str:
        return (f"a={self.lhs_multiplier} b={self.rhs_multiplier} bias={self.bias} acc={self.acc} "
                f"requant: {self.requant}")


@dataclass(frozen=True, eq=False)
class Concat(Node):
    """Concatenation along `axis` (channels: the last); inputs share the output's type and zero point."""

    axis: int = -1
    op: ClassVar[str] = "Concat"
    keeps_type: ClassVar[bool] = True

    def output_shape(self, shapes):
        x = shapes[0]
        axis = self.axis % len(x)
        for s in shapes:
            if len(s) != len(x) or s[:axis] + s[axis + 1:] != x[:axis] + x[axis + 1:]:
                _fail(self, f"cannot concatenate shapes {shapes} on axis {self.axis}")
        return (*x[:axis], sum(s[axis] for s in shapes), *x[axis + 1:])

    def params_str(self) -> str:
        return f"axis={self.axis}"


@dataclass(frozen=True, eq=False)
class Requantize(Node):
    """Elementwise y = requant(x - zero point): a change of scale, zero point or clamp."""

    requant: Requant = None
    op: ClassVar[str] = "Requantize"

    def output_shape(self, shapes):
        return shapes[0]

    def requantizations(self) -> tuple[Requant, ...]:
        return (self.requant,)

    def with_requants(self, change) -> Node:
        return replace(self, requant=change(self.requant))

    def params_str(self) -> str:
        return f"requant: {self.requant}"


@dataclass(frozen=True, eq=False)
class Reshape(Node):
    """A new shape for the same values in the same (raster, channels-last) order: no data moves."""

    op: ClassVar[str] = "Reshape"
    keeps_type: ClassVar[bool] = True
    is_view: ClassVar[bool] = True

    def output_shape(self, shapes):
        return None  # any shape of the same size (checked by the verifier)


#: Inputs of a lookup table have at most this many bits (its 2**bits entries are computed at compile time).
MAX_LOOKUP_BITS = 8


@dataclass(frozen=True, eq=False)
class Lookup(Node):
    """y = tables[t][x - x.dtype.lo], t = channel_tables[channel]: an elementwise function of an input
    of at most MAX_LOOKUP_BITS bits as the table of its results (`fixed.lookup_table`), exact by
    construction. One table serves every channel unless the function differs by channel (PRelu's
    slopes): then `channel_tables` names each channel's table."""

    tables: np.ndarray = None            # (T, 2**bits) output integers
    channel_tables: tuple[int, ...] = ()  # one table index per channel, or () for table 0 everywhere
    function: str = ""                   # what it computes, for reports ("Sigmoid", "LeakyRelu(alpha=0.1)")
    op: ClassVar[str] = "Lookup"

    def __post_init__(self):
        object.__setattr__(self, "tables", _frozen_array(self.tables))

    def output_shape(self, shapes):
        return shapes[0]

    def check(self, ins, out):
        x = ins[0].dtype
        if x.bits > MAX_LOOKUP_BITS:
            _fail(self, f"a lookup table needs an input of at most {MAX_LOOKUP_BITS} bits, not {x}")
        if self.tables.ndim != 2 or self.tables.shape[1] != 1 << x.bits:
            _fail(self, f"tables {self.tables.shape} do not have 2**{x.bits} entries each")
        if not out.dtype.contains(self.tables):
            _fail(self, f"table values outside the output type {out.dtype}")
        if self.channel_tables and (len(self.channel_tables) != out.shape[-1]
                                    or not all(0 <= t < len(self.tables) for t in self.channel_tables)):
            _fail(self, f"channel_tables must name one of {len(self.tables)} tables for each of {out.shape[-1]} "
                        "channels")

    def params_str(self) -> str:
        return f"{self.function} tables={len(self.tables)}x{self.tables.shape[1]}"


@dataclass(frozen=True, eq=False)
class Mul(_Accumulating, Node):
    """acc = (a - za) * (b - zb), then requant. `b` has a's shape, or is one value per channel
    broadcast over a's positions (squeeze-excite's x * s: b of shape (1, 1, C) or (C,))."""

    acc: IntType = IntType(32, True)
    requant: Requant = None
    op: ClassVar[str] = "Mul"

    def broadcasts(self, shapes) -> bool:
        """Whether b is a per-channel vector broadcast over a."""
        a, b = shapes
        return b != a and math.prod(b) == a[-1] and b[-1] == a[-1]

    def output_shape(self, shapes):
        a, b = shapes
        if b != a and not self.broadcasts(shapes):
            _fail(self, f"operand shapes {a} and {b} neither agree nor broadcast one value per channel")
        return a

    def accumulator_bound(self, tensors: Mapping[str, Tensor]) -> int:
        return _input_range(tensors, self.inputs[0]) * _input_range(tensors, self.inputs[1])

    def params_str(self) -> str:
        return f"acc={self.acc} requant: {self.requant}"


@dataclass(frozen=True, eq=False)
class Affine(_Accumulating, Node):
    """acc = scale[c] * (x - zx) + offset[c], integers (one, or one per channel), then requant: a
    multiply-add by constants (BatchNormalization, Mul / Div / Add / Sub with a constant) on the
    fixed-point grid the requantization's shift sets."""

    scale: tuple[int, ...] = (1,)
    offset: tuple[int, ...] = (0,)
    acc: IntType = IntType(32, True)
    requant: Requant = None
    op: ClassVar[str] = "Affine"

    def output_shape(self, shapes):
        return shapes[0]

    def check(self, ins, out):
        c = out.shape[-1]
        if len(self.scale) not in (1, c) or len(self.offset) not in (1, c):
            _fail(self, f"{len(self.scale)} scales and {len(self.offset)} offsets for {c} channels")

    def accumulator_bound(self, tensors: Mapping[str, Tensor]) -> int:
        x = _input_range(tensors, self.inputs[0])
        n = max(len(self.scale), len(self.offset))
        return max(abs(self.scale[c % len(self.scale)]) * x + abs(self.offset[c % len(self.offset)])
                   for c in range(n))

    def params_str(self) -> str:
        scale = self.scale[0] if len(self.scale) == 1 else f"[{len(self.scale)}]"
        offset = self.offset[0] if len(self.offset) == 1 else f"[{len(self.offset)}]"
        return f"scale={scale} offset={offset} acc={self.acc} requant: {self.requant}"


@dataclass(frozen=True, eq=False)
class Pad(Node):
    """Constant padding: pads[i] = (before, after) elements on axis i, all `value`."""

    pads: tuple[tuple[int, int], ...] = ()
    value: int = 0
    op: ClassVar[str] = "Pad"
    keeps_type: ClassVar[bool] = True

    def output_shape(self, shapes):
        x = shapes[0]
        if len(self.pads) != len(x) or any(b < 0 or a < 0 for b, a in self.pads):
            _fail(self, f"pads {self.pads} do not fit shape {x}")
        return tuple(d + b + a for d, (b, a) in zip(x, self.pads))

    def check(self, ins, out):
        if not out.dtype.contains([self.value]):
            _fail(self, f"pad value {self.value} is outside {out.dtype}")

    def params_str(self) -> str:
        return f"pads={self.pads} value={self.value}"


@dataclass(frozen=True, eq=False)
class Resize(Node):
    """Spatial resampling of an (H, W, C) map: output row i is the sum over `rows[i]` of (input row,
    weight) taps, columns likewise. Nearest: one tap of weight 1 per row and column, the values move
    unchanged (no requantization). Linear: acc = sum of wy * wx * (x - zx), then requant (which
    divides by the weights' common denominator)."""

    rows: tuple[tuple[tuple[int, int], ...], ...] = ()
    cols: tuple[tuple[tuple[int, int], ...], ...] = ()
    mode: str = "nearest"                 # what it is, for reports: nearest | linear
    acc: IntType | None = None
    requant: Requant | None = None
    op: ClassVar[str] = "Resize"

    @property
    def keeps_type(self) -> bool:
        return self.requant is None

    def requantizations(self):
        return () if self.requant is None else (self.requant,)

    def with_requants(self, change):
        return self if self.requant is None else replace(self, requant=change(self.requant))

    def output_shape(self, shapes):
        x = shapes[0]
        if len(x) != 3:
            _fail(self, f"input must be (H, W, C), got {x}")
        for taps, size in ((self.rows, x[0]), (self.cols, x[1])):
            if not taps or any(not t or not all(0 <= i < size for i, _ in t) for t in taps):
                _fail(self, f"taps outside the {size} input rows or columns")
        return (len(self.rows), len(self.cols), x[2])

    def accumulator_bound(self, tensors):
        if self.requant is None:
            return None
        weight = max(sum(abs(w) for _, w in t) for t in self.rows) * max(sum(abs(w) for _, w in t) for t in self.cols)
        return weight * _input_range(tensors, self.inputs[0])

    def params_str(self) -> str:
        rq = f" acc={self.acc} requant: {self.requant}" if self.requant else ""
        return f"{self.mode} {len(self.rows)}x{len(self.cols)}{rq}"


@dataclass(frozen=True, eq=False)
class DepthToSpace(Node):
    """(H, W, C_in) -> (H*by, W*bx, C): output (y*by + ry, x*bx + rx, c) is input (y, x, channels[k]),
    k = (ry*bx + rx)*C + c (ONNX DepthToSpace's DCR order when `channels` is the identity)."""

    block: tuple[int, int] = (1, 1)
    channels: tuple[int, ...] = ()
    op: ClassVar[str] = "DepthToSpace"
    keeps_type: ClassVar[bool] = True

    def output_shape(self, shapes):
        x = shapes[0]
        by, bx = self.block
        if len(x) != 3 or x[2] % (by * bx) or len(self.channels) != x[2] or sorted(self.channels) != \
                list(range(x[2])):
            _fail(self, f"block {self.block} and channel map do not fit input {x}")
        return (x[0] * by, x[1] * bx, x[2] // (by * bx))

    def params_str(self) -> str:
        return f"block={self.block}"


@dataclass(frozen=True, eq=False)
class Slice(Node):
    """x[starts[0]:ends[0], starts[1]:ends[1], ...] (step 1): a crop, or one part of a split."""

    starts: tuple[int, ...] = ()
    ends: tuple[int, ...] = ()
    op: ClassVar[str] = "Slice"
    keeps_type: ClassVar[bool] = True

    def output_shape(self, shapes):
        x = shapes[0]
        if len(self.starts) != len(x) or len(self.ends) != len(x) or \
                any(not 0 <= s < e <= d for s, e, d in zip(self.starts, self.ends, x)):
            _fail(self, f"slice {self.starts}:{self.ends} does not fit shape {x}")
        return tuple(e - s for s, e in zip(self.starts, self.ends))

    def params_str(self) -> str:
        return f"starts={self.starts} ends={self.ends}"


@dataclass(frozen=True, eq=False)
class Transpose(Node):
    """The axes permuted: output axis i is input axis perm[i] (data moves, values do not change)."""

    perm: tuple[int, ...] = ()
    op: ClassVar[str] = "Transpose"
    keeps_type: ClassVar[bool] = True

    def output_shape(self, shapes):
        x = shapes[0]
        if sorted(self.perm) != list(range(len(x))):
            _fail(self, f"perm {self.perm} does not permute the {len(x)} axes of {x}")
        return tuple(x[p] for p in self.perm)

    def params_str(self) -> str:
        return f"perm={self.perm}"


#: Every op type of the IR. A backend's table has one entry per op type here (or a worded refusal).
OP_TYPES = (Conv2d, Dense, MaxPool, AvgPool, GlobalAvgPool, Add, Concat, Requantize, Reshape, Lookup, Mul, Affine,
            Pad, Resize, DepthToSpace, Slice, Transpose)
#: Op types by their name (as JSON and plans record them).
OP_BY_NAME = {cls.op: cls for cls in OP_TYPES}


# -- boundary: how the ONNX model's tensors map onto the integer core ----------------------


@dataclass(frozen=True, slots=True)
class Layout:
    """How an ONNX tensor (with its batch axis) maps to IR samples.

    `batched`: the ONNX leading axis of size 1 is the batch (a caller may pass B
    samples there). `chw`: the sample is an NCHW feature map (or a flattening of
    one) whose IR order is channels-last; None keeps the ONNX element order.
    """

    onnx_shape: tuple[int, ...]
    ir_shape: tuple[int, ...]
    batched: bool
    chw: tuple[int, int, int] | None = None

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return self.onnx_shape[1:] if self.batched else self.onnx_shape

    def permutation(self) -> np.ndarray:
        """perm such that ir_flat = onnx_flat[perm] within one sample."""
        n = math.prod(self.sample_shape)
        if self.chw is None:
            return np.arange(n)
        c, h, w = self.chw
        return np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)

    def batch_of(self, array: np.ndarray) -> int:
        """The number of samples in an ONNX-layout array; raises ValueError if the shape is wrong."""
        sample = self.sample_shape
        if array.shape == self.onnx_shape:
            return 1
        if self.batched and array.ndim == len(self.onnx_shape) and array.shape[1:] == sample:
            return array.shape[0]
        raise ValueError(f"expected shape {list(self.onnx_shape)}"
                         + (f" or [B, {', '.join(map(str, sample))}]" if self.batched else "")
                         + f", got {list(array.shape)}")

    def to_ir(self, array: np.ndarray) -> np.ndarray:
        """ONNX array -> (B, *ir_shape)."""
        b = self.batch_of(array)
        flat = array.reshape(b, -1)[:, self.permutation()]
        return flat.reshape((b, *self.ir_shape))

    def to_onnx(self, array: np.ndarray) -> np.ndarray:
        """(B, *ir_shape) -> ONNX array (batch B on the leading axis where batched)."""
        b = array.shape[0]
        flat = np.empty((b, math.prod(self.sample_shape)), dtype=array.dtype)
        flat[:, self.permutation()] = array.reshape(b, -1)
        if self.batched:
            return flat.reshape((b, *self.sample_shape))
        assert b == 1, "an unbatched tensor holds exactly one sample"
        return flat.reshape(self.onnx_shape)


@dataclass(frozen=True, slots=True)
class HostQuantize:
    """QuantizeLinear of a float model input, done by the host in ONNX layout.

    The parameters have `shape`: () per tensor, (n,) along `axis`, or the blocked
    shape of QuantizeLinear's block quantization (`block_size` > 0).
    """

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    shape: tuple[int, ...]
    axis: int = 1
    block_size: int = 0


@dataclass(frozen=True, slots=True)
class HostHead:
    """Float data movement between a model input and its QuantizeLinear (a TFLite conversion's
    Transpose of an NHWC input, a Reshape), done by the host as an index map."""

    shape: tuple[int, ...]   # the model input's shape
    index: tuple[int, ...]   # per sample: element k of the quantizer's input is element index[k] of the model's
    ops: tuple[str, ...]     # op types, for reports

    @property
    def batched(self) -> bool:
        return len(self.shape) >= 2 and self.shape[0] == 1


@dataclass(frozen=True, slots=True)
class InputPort:
    """An ONNX graph input; a float one is quantized by the host first (after its head, if any: then
    `layout` is that of the quantizer's input)."""

    onnx_name: str
    onnx_dtype: str
    layout: Layout
    tensor: str                          # the IR input it feeds
    quantize: HostQuantize | None = None
    head: HostHead | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        """The model input's shape."""
        return self.head.shape if self.head is not None else self.layout.onnx_shape

    def batch_of(self, array: np.ndarray) -> int:
        """The number of samples in the model input's array; raises ValueError if its shape is wrong."""
        if self.head is None:
            return self.layout.batch_of(array)
        return Layout(self.head.shape, self.layout.ir_shape, self.head.batched).batch_of(array)

    def through_head(self, array: np.ndarray) -> np.ndarray:
        """The model input's array as its quantizer's input (the head's index map), batch first."""
        if self.head is None:
            return array
        b = self.batch_of(array)
        moved = array.reshape(b, -1)[:, list(self.head.index)]
        return moved.reshape((b, *self.layout.sample_shape) if self.layout.batched else self.layout.onnx_shape)


@dataclass(frozen=True, slots=True)
class OutputPort:
    """An IR output as the ONNX tensor it stands for."""

    onnx_name: str
    onnx_dtype: str
    layout: Layout
    tensor: str


@dataclass(frozen=True, slots=True)
class HostTail:
    """Float ops after the last DequantizeLinear, run on the host as an ONNX model."""

    model: bytes                 # serialized onnx.ModelProto; its inputs are core output names
    ops: tuple[str, ...]         # op types, for reports
    outputs: tuple[str, ...]     # the ONNX graph outputs it produces


@dataclass(frozen=True, eq=False)
class Graph:
    name: str
    tensors: Mapping[str, Tensor]
    nodes: tuple[Node, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    input_ports: tuple[InputPort, ...] = ()
    output_ports: tuple[OutputPort, ...] = ()
    tail: HostTail | None = None
    model_outputs: tuple[str, ...] = ()  # the ONNX graph's output names, in order

    def tensor(self, name: str) -> Tensor:
        return self.tensors[name]

    def producer(self, tensor: str) -> Node | None:
        for node in self.nodes:
            if tensor in node.outputs:
                return node
        return None

    def consumers(self, tensor: str) -> list[Node]:
        return [node for node in self.nodes if tensor in node.inputs]

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def __str__(self) -> str:
        lines = [f"graph {self.name!r}"]
        for name in self.inputs:
            lines.append(f"  input  {terminal(name)}: {self.tensors[name]}")
        for node in self.nodes:
            lines.append(f"  {node}")
            for out in node.outputs:
                lines.append(f"      {terminal(out)}: {self.tensors[out]}")
        for name in self.outputs:
            lines.append(f"  output {terminal(name)}: {self.tensors[name]}")
        if self.tail is not None:
            lines.append(f"  host tail (float): {' -> '.join(self.tail.ops)}")
        return "\n".join(lines)


# -- geometry and bounds shared by the verifier, passes and backends ----------------------


def conv_output_hw(in_hw, kernel, stride, dilation, pads) -> tuple[int, int]:
    (h, w), (kh, kw), (sh, sw), (dh, dw) = in_hw, kernel, stride, dilation
    pt, pl, pb, pr = pads
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
    return oh, ow


# -- verifier ----------------------------------------------------------------------------


def _fail(node: Node | None, reason: str):
    where = f"node {node.name!r} ({node.op}): " if node is not None else ""
    raise VerificationError(where + reason)


def _check_requant(node: Node, rq: Requant, out: Tensor, channels: int):
    if rq.channels not in (1, channels) or len(rq.shift) != rq.channels:
        _fail(node, f"requantization has {rq.channels} channels, output has {channels}")
    if not (out.dtype.lo <= rq.lo <= rq.hi <= out.dtype.hi):
        _fail(node, f"clamp [{rq.lo}, {rq.hi}] is outside the output type {out.dtype}")
    if rq.zero_point != out.zero_point:
        _fail(node, f"requantization zero point {rq.zero_point} != output zero point {out.zero_point}")
    if any(m < 0 or m >= 1 << 32 for m in rq.multiplier) or any(s < 0 or s > 62 for s in rq.shift):
        _fail(node, "multiplier must be in [0, 2**32) and shift in [0, 62]")


def verify(graph: Graph) -> Graph:
    """Check the IR's invariants; raise VerificationError naming the first bad node."""
    tensors = graph.tensors
    for name, t in tensors.items():
        if name != t.name:
            _fail(None, f"tensor key {name!r} != tensor name {t.name!r}")
        if any(d <= 0 for d in t.shape):
            _fail(None, f"tensor {name!r} has an empty or negative dimension {t.shape}")
    defined = set(graph.inputs)
    for name in graph.inputs:
        if name not in tensors:
            _fail(None, f"graph input {name!r} has no tensor")
    names = set()
    for node in graph.nodes:
        if node.name in names:
            _fail(node, "duplicate node name")
        names.add(node.name)
        for inp in node.inputs:
            if inp not in defined:
                _fail(node, f"input {inp!r} is not defined before use")
        for out in node.outputs:
            if out in defined:
                _fail(node, f"output {out!r} is defined twice")
            if out not in tensors:
                _fail(node, f"output {out!r} has no tensor")
            defined.add(out)
        if len(node.outputs) != 1:
            _fail(node, "every op has exactly one output")
        ins = [tensors[i] for i in node.inputs]
        out = tensors[node.output]
        expected = node.output_shape([t.shape for t in ins])
        if expected is not None and out.shape != expected:
            _fail(node, f"output shape {out.shape} != expected {expected}")
        if expected is None and out.size != ins[0].size:
            _fail(node, f"reshape changes the size: {ins[0].shape} -> {out.shape}")
        if node.keeps_type:
            for t in ins:
                if t.dtype != out.dtype or t.zero_point != out.zero_point:
                    _fail(node, f"input {t.name!r} ({t.dtype}, zp={t.zero_point}) must have the output's "
                                f"type and zero point ({out.dtype}, zp={out.zero_point})")
        if node.weighted:
            cout = node.out_channels
            if node.bias.shape != (cout,):
                _fail(node, f"bias shape {node.bias.shape} != ({cout},)")
            if node.requant is None and out.dtype != node.acc and not out.dtype.contains(
                    [-(1 << (node.acc.bits - 1)), (1 << (node.acc.bits - 1)) - 1]):
                _fail(node, f"raw accumulator output type {out.dtype} cannot hold {node.acc}")
        for rq in node.requantizations():
            _check_requant(node, rq, out, out.shape[-1])
        node.check(ins, out)
        bound = node.accumulator_bound(tensors)
        if bound is not None:
            if bound > node.acc.hi:
                _fail(node, f"accumulator {node.acc} cannot hold the worst case |acc| = {bound}")
            if node.requantizations() and node.acc.bits > 32:
                _fail(node, f"accumulator {node.acc} is wider than the 32 bits requantization supports")
    for name in graph.outputs:
        if name not in defined:
            _fail(None, f"graph output {name!r} is never computed")
    return graph

