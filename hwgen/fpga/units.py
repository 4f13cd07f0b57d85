"""Every IR op as FPGA planning sees it: one `Unit` per op type, in `UNITS`.

A unit says, for one node: whether the FPGA can build it (`refusal`), the window generator that
feeds it, how many lanes its input stream gets, its busy cycles per inference (the cycle model),
its output queue, and its DSPs, logic features and memories (the resource model). The component
that builds it is the same op type's entry in `hwgen.hdl.units.BUILDERS`; a test checks that both
tables cover every op of the IR.

Multiply-accumulate ops (Conv2d, Dense) run on shared engines (`folding`, `program`); their unit
here covers the stream side only, and the engines are counted as units of their own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from ..ir import (
    OP_BY_NAME,
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
    Requantize,
    Reshape,
    Resize,
    Slice,
    Transpose,
    conv_output_hw,
)
from .costs import Memory, MemoryRole, UnitKind, const_dsps, queue_memory, requant_dsps, requant_features
from .folding import Fold
from .geometry import needs_window, vector_length
from .hardware import (
    ELEMENTWISE_QUEUE_DEPTH,
    JOIN_QUEUE_DEPTH,
    LOOKUP_QUEUE_DEPTH,
    MAXPOOL_QUEUE_DEPTH,
    POOL_QUEUE_DEPTH,
    REMAP_QUEUE_DEPTH,
    REMAP_ROWS,
    dsp_chunks,
)
from .schedule import fold_steps, steps_per_pixel

__all__ = ["Window", "Unit", "UNITS", "unit", "unit_of_op", "smallest_fitting", "avgpool_counts", "lane_tables",
           "affine_shift", "RemapTables", "remap_tables"]


@dataclass(frozen=True)
class Window:
    """The window generator in front of a unit: its geometry and the value padding reads."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pads: tuple[int, int, int, int]
    pad_value: int

    def words(self, node: Node, graph: Graph, lanes: int) -> int:
        """Words it emits per inference: every tap of every output position."""
        oh, ow, _ = graph.tensor(node.output).shape
        kh, kw = self.kernel
        return oh * ow * kh * kw * graph.tensor(node.inputs[0]).shape[-1] // lanes


def smallest_fitting(n: int, words_for, target: int | None) -> int:
    """The smallest divisor d of n with words_for(d) <= target (n if none, or no target)."""
    if target is None:
        return n
    for d in range(1, n + 1):
        if n % d == 0 and words_for(d) <= target:
            return d
    return n


class Unit:
    """How one op type becomes hardware, for planning (the defaults: one stream in, one out)."""

    #: Its kind in the resource model (None: no unit of its own, as for ops on engines).
    kind: ClassVar[UnitKind | None] = None
    #: Its output queue's depth (None: it has none of its own).
    queue_depth: ClassVar[int | None] = None
    #: It runs on a MAC engine.
    on_engine: ClassVar[bool] = False
    #: Its ready is combinational (it joins several streams): a FIFO after it cuts the path.
    out_fifo: ClassVar[bool] = False
    #: Input rows it holds beyond its window's (a row buffer of its own).
    held_rows: ClassVar[int] = 0
    #: It reads its whole input before it writes (a global pool, a dense layer).
    holds_whole_input: ClassVar[bool] = False

    def refusal(self, node: Node, graph: Graph) -> str | None:
        """Why the FPGA accelerator cannot build `node` (None: it can)."""
        return None

    def window(self, node: Node, graph: Graph) -> Window | None:
        return None

    def lane_channels(self, node: Node, graph: Graph) -> int:
        """The elements an input word's lanes must divide."""
        return graph.tensor(node.inputs[0]).shape[-1]

    def stream_words(self, node: Node, graph: Graph, lanes: int) -> int:
        """Words the unit moves per inference at `lanes` (each takes a cycle)."""
        return graph.tensor(node.inputs[0]).size // lanes

    def choose_lanes(self, node: Node, graph: Graph, target: int | None, fold: Fold | None) -> int:
        """The fewest input lanes that keep the unit (and its window) within `target` cycles."""
        window = self.window(node, graph)

        def cycles(d: int) -> int:
            return max(window.words(node, graph, d), graph.tensor(node.inputs[0]).size // d) if window else \
                self.stream_words(node, graph, d)

        return smallest_fitting(self.lane_channels(node, graph), cycles, target)

    def busy(self, node: Node, graph: Graph, lanes: int, fold: Fold | None) -> int:
        """Busy cycles per inference (engine steps for ops on engines)."""
        window = self.window(node, graph)
        return window.words(node, graph, lanes) if window else self.stream_words(node, graph, lanes)

    def out_lanes(self, in_lanes: int, fold: Fold | None) -> int:
        return in_lanes

    def requantizers(self, out_lanes: int) -> int:
        """Requantization multipliers it has (outside engines)."""
        return 0

    def rescalers(self, out_lanes: int) -> int:
        """Multipliers that rescale inputs before they meet (an Add's operands)."""
        return 0

    def cost(self, node: Node, graph: Graph, lanes: int, out_lanes: int) -> tuple[int, dict[str, float]]:
        """Its DSPs (exact) and the features of its logic model."""
        raise NotImplementedError

    def memories(self, node: Node, graph: Graph, ident: str, lanes: int, out_lanes: int) -> list[Memory]:
        """Its memories (its output queue or FIFO, and any of its own)."""
        bits = out_lanes * graph.tensor(node.output).dtype.bits
        mems = []
        if self.queue_depth is not None:
            mems.append(queue_memory(f"{ident}.queue", ident, self.queue_depth, bits))
        if self.out_fifo:
            mems.append(queue_memory(f"{ident}_out.queue", f"{ident}_out", JOIN_QUEUE_DEPTH, bits))
        return mems


class MacUnit(Unit):
    """Conv2d and Dense: their stream side (a window generator for convolutions that need one);
    the multiplies run on an engine."""

    on_engine = True

    def refusal(self, node, graph):
        if node.requant is None:
            return "the raw accumulator is the output (ConvInteger / MatMulInteger); the FPGA accelerator streams " \
                   "requantized outputs only"
        return None

    def step_channels(self, node: Node, graph: Graph) -> int:
        """The input channels one engine step reads from (a group's, for a grouped convolution)."""
        return self.lane_channels(node, graph)

    def window(self, node, graph):
        if not needs_window(node):
            return None
        return Window(node.kernel, node.stride, node.dilation, node.pads, graph.tensor(node.inputs[0]).zero_point)

    def lane_channels(self, node, graph):
        return graph.tensor(node.inputs[0]).shape[-1] if self.window(node, graph) else vector_length(node, graph)

    def choose_lanes(self, node, graph, target, fold):
        """Fast enough, and aligned with the engine's reads where possible.

        With SIMD dividing the channels a step reads (every channel of a dense layer, a group's for a
        grouped convolution), words of SIMD channels give each step one buffer word, so lanes share
        one read port and need no element select. A depthwise layer's PEs read PE neighbouring
        channels of one tap: words of PE channels do the same for them.
        """
        n = self.lane_channels(node, graph)
        fastest = Unit.choose_lanes(self, node, graph, target, fold)
        weights = node.weights.reshape(node.out_channels, -1)
        if (fold_steps(weights, fold.pe, fold.simd) < -(-weights.shape[1] // fold.simd)).any():
            return fastest  # zero weights skipped: lanes read scattered entries, wide words do not help
        group = self.step_channels(node, graph)
        align = fold.pe if group == 1 else fold.simd if group % fold.simd == 0 else 1
        for d in range(fastest, n + 1):
            if n % d == 0 and d % align == 0:
                return d
        return fastest

    def busy(self, node, graph, lanes, fold):
        pixels = math.prod(graph.tensor(node.output).shape[:-1])
        return pixels * steps_per_pixel(node.weights.reshape(node.out_channels, -1), fold.pe, fold.simd)

    def out_lanes(self, in_lanes, fold):
        return fold.pe

    def memories(self, node, graph, ident, lanes, out_lanes):
        return []   # the engine's


class ConvUnit(MacUnit):
    def step_channels(self, node, graph):
        return graph.tensor(node.inputs[0]).shape[-1] // node.groups


class DenseUnit(MacUnit):
    holds_whole_input = True

    def refusal(self, node, graph):
        reason = super().refusal(node, graph)
        if reason is None and node.weights.ndim != 2:
            reason = f"stacked weight matrices {node.weights.shape} are not supported on the FPGA"
        return reason


class MaxPoolUnit(Unit):
    kind = UnitKind.MAXPOOL
    queue_depth = MAXPOOL_QUEUE_DEPTH

    def window(self, node, graph):
        return Window(node.kernel, node.stride, node.dilation, node.pads, graph.tensor(node.inputs[0]).dtype.lo)

    def cost(self, node, graph, lanes, out_lanes):
        return 0, {"const": 1.0, "lane_bits": graph.tensor(node.inputs[0]).dtype.bits * lanes}


class _RequantizingUnit(Unit):
    """A unit whose lanes end in requantizers (one per lane)."""

    def requantizers(self, out_lanes):
        return out_lanes

    def accumulator_bits(self, node: Node, graph: Graph) -> int:
        return node.acc.bits

    def cost(self, node, graph, lanes, out_lanes):
        rqs = node.requantizations()
        mults = [m for rq in rqs for m in rq.multiplier]
        shifts = [s for rq in rqs for s in rq.shift]
        acc = self.accumulator_bits(node, graph)
        feats = {"const": 1.0, "lane_bits": lanes * acc,
                 "requant_bits": requant_features(acc, mults, shifts, lanes, graph.tensor(node.output).dtype.bits)}
        return lanes * requant_dsps(acc, mults), feats


class AvgPoolUnit(_RequantizingUnit):
    kind = UnitKind.AVGPOOL
    queue_depth = POOL_QUEUE_DEPTH

    def window(self, node, graph):
        return Window(node.kernel, node.stride, (1, 1), node.pads, graph.tensor(node.inputs[0]).zero_point)


class GlobalAvgPoolUnit(_RequantizingUnit):
    kind = UnitKind.GLOBAL_AVGPOOL
    queue_depth = POOL_QUEUE_DEPTH
    holds_whole_input = True

    def memories(self, node, graph, ident, lanes, out_lanes):
        x = graph.tensor(node.inputs[0])
        sums = Memory(f"{ident}.sums", ident, MemoryRole.SUMS, x.shape[-1] // lanes, lanes * node.acc.bits, False,
                      False)
        return super().memories(node, graph, ident, lanes, out_lanes) + [sums]


class AddUnit(_RequantizingUnit):
    kind = UnitKind.ADD
    queue_depth = ELEMENTWISE_QUEUE_DEPTH

    def rescalers(self, out_lanes):
        return 2 * out_lanes

    def cost(self, node, graph, lanes, out_lanes):
        dsp, feats = super().cost(node, graph, lanes, out_lanes)
        a, b = (graph.tensor(n).dtype for n in node.inputs)
        dsp += lanes * (const_dsps(a.bits, abs(node.lhs_multiplier)) + const_dsps(b.bits, abs(node.rhs_multiplier)))
        return dsp, {**feats, "lane_bits": 3 * lanes * node.acc.bits}


class RequantizeUnit(_RequantizingUnit):
    kind = UnitKind.REQUANTIZE
    queue_depth = ELEMENTWISE_QUEUE_DEPTH

    def accumulator_bits(self, node, graph):
        return max(graph.tensor(node.inputs[0]).dtype.bits, 8) + 2   # x - zero point, as the unit computes it


class ConcatUnit(Unit):
    kind = UnitKind.CONCAT
    out_fifo = True

    def refusal(self, node, graph):
        rank = len(graph.tensor(node.output).shape)
        if node.axis % rank != rank - 1:
            return "the FPGA accelerator concatenates along the channel (last) axis only"
        return None

    def lane_channels(self, node, graph):
        return math.gcd(*(graph.tensor(t).shape[-1] for t in node.inputs))

    def stream_words(self, node, graph, lanes):
        return graph.tensor(node.output).size // lanes

    def cost(self, node, graph, lanes, out_lanes):
        return 0, {"const": 1.0, "lane_bits": graph.tensor(node.inputs[0]).dtype.bits * lanes * len(node.inputs)}


class ReshapeUnit(Unit):
    """No hardware (the node is a view): its output is its input's stream, regrouped."""

    def busy(self, node, graph, lanes, fold):
        return 0

    def memories(self, node, graph, ident, lanes, out_lanes):
        return []


class LookupUnit(Unit):
    """An elementwise function: each lane reads its own ROM of the tables its channels use."""

    kind = UnitKind.LOOKUP
    queue_depth = LOOKUP_QUEUE_DEPTH

    def cost(self, node, graph, lanes, out_lanes):
        return 0, {"const": 1.0, "lane_bits": lanes * graph.tensor(node.output).dtype.bits}

    def memories(self, node, graph, ident, lanes, out_lanes):
        x, y = graph.tensor(node.inputs[0]), graph.tensor(node.output)
        mems = super().memories(node, graph, ident, lanes, out_lanes)
        for k, tables in enumerate(lane_tables(node, x.shape[-1], lanes)):
            mems.append(Memory(f"{ident}.table{k}", ident, MemoryRole.TABLE, len(tables) << x.dtype.bits,
                               y.dtype.bits, True, True))
        return mems


def lane_tables(node: Lookup, channels: int, lanes: int) -> list[list[int]]:
    """For each lane, the distinct tables (indices into node.tables) its channels use, in first use."""
    per_channel = node.channel_tables or (0,) * channels
    return [list(dict.fromkeys(per_channel[k::lanes])) for k in range(lanes)]


class MulUnit(_RequantizingUnit):
    """(a - za) * (b - zb) lane by lane, requantized; a per-channel b is held while a streams by."""

    kind = UnitKind.MUL
    queue_depth = ELEMENTWISE_QUEUE_DEPTH

    def stream_words(self, node, graph, lanes):
        """Both operands' words together, or the vector's first and then the map's."""
        a, b = (graph.tensor(t) for t in node.inputs)
        return (a.size + (b.size if b.shape != a.shape else 0)) // lanes

    def cost(self, node, graph, lanes, out_lanes):
        dsp, feats = super().cost(node, graph, lanes, out_lanes)
        a, b = (graph.tensor(n).dtype.bits + 1 for n in node.inputs)  # x - zero point
        dsp += lanes * dsp_chunks(a) * dsp_chunks(b)
        return dsp, {**feats, "lane_bits": lanes * (a + b + node.acc.bits)}

    def memories(self, node, graph, ident, lanes, out_lanes):
        mems = super().memories(node, graph, ident, lanes, out_lanes)
        a, b = (graph.tensor(n) for n in node.inputs)
        if b.shape != a.shape:
            mems.append(Memory(f"{ident}.vector", ident, MemoryRole.VECTOR, b.size // lanes, lanes * b.dtype.bits,
                               False, False))
        return mems


def affine_shift(node: Affine) -> int | None:
    """k when every scale is 0 or +-2**k (what the importer writes: a shift and a sign), else None."""
    powers = {abs(s) for s in node.scale if s}
    if len(powers) > 1 or any(p & (p - 1) for p in powers):
        return None
    return powers.pop().bit_length() - 1 if powers else 0


class AffineUnit(_RequantizingUnit):
    kind = UnitKind.AFFINE
    queue_depth = ELEMENTWISE_QUEUE_DEPTH

    def refusal(self, node, graph):
        if affine_shift(node) is None:
            return "the FPGA affine unit scales by a sign and one power of two (as the importer writes it)"
        return None

    def cost(self, node, graph, lanes, out_lanes):
        dsp, feats = super().cost(node, graph, lanes, out_lanes)
        return dsp, {**feats, "lane_bits": 2 * lanes * node.acc.bits}


class PadUnit(Unit):
    """Inserts the pad value's words around its input's: counters over the output, no buffer."""

    kind = UnitKind.MOVE
    out_fifo = True

    def refusal(self, node, graph):
        if len(node.pads) != 3:
            return "the FPGA pad unit pads (H, W, C) maps"
        return None

    def lane_channels(self, node, graph):
        (cb, ca) = node.pads[2]
        return math.gcd(graph.tensor(node.inputs[0]).shape[-1], cb, ca)

    def stream_words(self, node, graph, lanes):
        return graph.tensor(node.output).size // lanes

    def cost(self, node, graph, lanes, out_lanes):
        return 0, {"const": 1.0, "lane_bits": lanes * graph.tensor(node.output).dtype.bits,
                   "address_bits": sum(max(1, d.bit_length()) for d in graph.tensor(node.output).shape)}


class SliceUnit(Unit):
    """Drops the words outside the slice: counters over the input, no buffer."""

    kind = UnitKind.MOVE
    out_fifo = True

    def refusal(self, node, graph):
        if len(node.starts) != 3:
            return "the FPGA slice unit crops (H, W, C) maps"
        return None

    def lane_channels(self, node, graph):
        c = graph.tensor(node.inputs[0]).shape[-1]
        return math.gcd(c, node.starts[-1], node.ends[-1])

    def cost(self, node, graph, lanes, out_lanes):
        return 0, {"const": 1.0, "lane_bits": lanes * graph.tensor(node.output).dtype.bits,
                   "address_bits": sum(max(1, d.bit_length()) for d in graph.tensor(node.inputs[0]).shape)}


@dataclass(frozen=True)
class RemapTables:
    """Output (oy, ox, word cw) reads input row rows[oy], pixel cols[ox], channel word
    row_words[oy] + col_words[ox] + cw (words of `lanes` channels)."""

    rows: tuple[int, ...]
    row_words: tuple[int, ...]
    cols: tuple[int, ...]
    col_words: tuple[int, ...]


def remap_tables(node: Node, graph: Graph, lanes: int) -> RemapTables:
    """A nearest Resize or a DepthToSpace as row, column and channel-word tables."""
    out = graph.tensor(node.output)
    oh, ow, c = out.shape
    if isinstance(node, Resize):
        return RemapTables(tuple(t[0][0] for t in node.rows), (0,) * oh, tuple(t[0][0] for t in node.cols), (0,) * ow)
    by, bx = node.block
    words = c // lanes
    return RemapTables(tuple(y // by for y in range(oh)), tuple((y % by) * bx * words for y in range(oh)),
                       tuple(x // bx for x in range(ow)), tuple((x % bx) * words for x in range(ow)))


class RemapUnit(Unit):
    """Nearest Resize and DepthToSpace: input rows into a buffer of REMAP_ROWS rows, read out in the
    output's order (rows in non-decreasing order)."""

    kind = UnitKind.REMAP
    queue_depth = REMAP_QUEUE_DEPTH
    held_rows = REMAP_ROWS

    def refusal(self, node, graph):
        if isinstance(node, Resize) and node.requant is not None:
            return "the FPGA accelerator resizes with nearest interpolation only (linear: the RVV and golden backends)"
        if isinstance(node, DepthToSpace) and list(node.channels) != list(range(len(node.channels))):
            return "the FPGA depth-to-space unit moves channel blocks in DCR order (not a grouped ConvTranspose's)"
        rows = remap_tables(node, graph, 1).rows
        if any(b < a for a, b in zip(rows, rows[1:])):
            return "output rows read input rows out of order"
        return None

    def lane_channels(self, node, graph):
        return graph.tensor(node.output).shape[-1]

    def stream_words(self, node, graph, lanes):
        return max(graph.tensor(node.inputs[0]).size, graph.tensor(node.output).size) // lanes

    def cost(self, node, graph, lanes, out_lanes):
        x, y = graph.tensor(node.inputs[0]), graph.tensor(node.output)
        depth = REMAP_ROWS * x.shape[1] * x.shape[2] // lanes
        return 0, {"const": 1.0, "lane_bits": lanes * y.dtype.bits,
                   "address_bits": max(1, depth.bit_length()) + sum(max(1, d.bit_length()) for d in y.shape),
                   "table_bits": (y.shape[0] + y.shape[1]) * max(1, depth.bit_length())}

    def memories(self, node, graph, ident, lanes, out_lanes):
        x = graph.tensor(node.inputs[0])
        rows = Memory(f"{ident}.rows", ident, MemoryRole.ROWS, REMAP_ROWS * x.shape[1] * x.shape[2] // lanes,
                      lanes * x.dtype.bits, False, True)
        return super().memories(node, graph, ident, lanes, out_lanes) + [rows]


class NotBuiltUnit(Unit):
    """An op the FPGA accelerator has no unit for (its refusal says why)."""

    def refusal(self, node, graph):
        return f"the FPGA accelerator has no {node.op} unit: data movement of this kind runs in the RVV and " \
               "golden backends"


UNITS: dict[type[Node], Unit] = {
    Conv2d: ConvUnit(),
    Dense: DenseUnit(),
    MaxPool: MaxPoolUnit(),
    AvgPool: AvgPoolUnit(),
    GlobalAvgPool: GlobalAvgPoolUnit(),
    Add: AddUnit(),
    Requantize: RequantizeUnit(),
    Concat: ConcatUnit(),
    Reshape: ReshapeUnit(),
    Lookup: LookupUnit(),
    Mul: MulUnit(),
    Affine: AffineUnit(),
    Pad: PadUnit(),
    Slice: SliceUnit(),
    Resize: RemapUnit(),
    DepthToSpace: RemapUnit(),
    Transpose: NotBuiltUnit(),
}


def unit(node: Node) -> Unit:
    return UNITS[type(node)]


def unit_of_op(op: str) -> Unit:
    """The unit of an op type by its name (as a plan records it)."""
    return UNITS[OP_BY_NAME[op]]


def avgpool_counts(node: AvgPool, in_hw: tuple[int, int]) -> list[list[int]]:
    """Valid taps of every window (the kernel size everywhere with count_include_pad)."""
    (h, w), (kh, kw), (sh, sw) = in_hw, node.kernel, node.stride
    top, left, _, _ = node.pads
    oh, ow = conv_output_hw(in_hw, node.kernel, node.stride, (1, 1), node.pads)

    def valid(o, s, pad, k, size):
        start = o * s - pad
        return max(0, min(size, start + k) - max(0, start))

    if node.count_include_pad:
        return [[kh * kw] * ow for _ in range(oh)]
    return [[valid(y, sh, top, kh, h) * valid(x, sw, left, kw, w) for x in range(ow)] for y in range(oh)]
