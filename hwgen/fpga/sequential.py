"""The layer-sequential engine as data: one MAC array runs the layers one after another from a
program the compiler writes (no hardware tools needed to make or read it).

The engine's one datapath is an L x L array (L output channels in parallel, each taking the dot
product of L input lanes with L weights). Every layer it runs is a convolution over an
activation map stored in one of two banks (ping-pong: a layer reads one and writes the other):

* a map (H, W, C) is stored pixel after pixel, `ceil(C / L)` words of L 8-bit lanes per pixel
  (channel c in word c // L, lane c % L); lanes past C hold whatever was there (every weight that
  reads them is zero);
* a Conv2d of any groups is a convolution with dense weights (zeros where groups do not meet); a
  Dense over a flattened map is a convolution whose kernel is the whole map; MaxPool is the same
  walk with `max` instead of `+` and one-hot weights (a lane picks its own channel); AvgPool,
  GlobalAvgPool and Requantize are depthwise convolutions with weight 1 and the input zero point
  folded into the bias;
* output channels go in groups of L (one output word per pixel and group). A group's *steps* are
  the (tap, input word) pairs where any of its L x L weights is non-zero: zero blocks cost no
  cycle (a depthwise layer runs one step per tap, a pruned one skips its zero blocks);
* each step is one word of the *weight stream*: its tap offsets, its address offset and its L x L
  weights; each group starts with a header word (its step count and the L biases, requantization
  multipliers and shifts). The engine double-buffers groups: it loads the next group's words while
  it computes the current one at every output position. The stream's words are the flash image's
  contents (`stream_words`, `flash_image`), in the order the program consumes them;
* a small descriptor per layer (shapes, strides, padding, pad value, requantization zero point and
  clamp) sits in a ROM (`descriptor_fields`).

`run_program` executes a program in numpy exactly as the hardware does (same words, same
addresses, same padding lanes), so the compiler's side is checked against the golden model
without a simulator; `cycle_model` counts the engine's cycles, the weight stream's rate included.
"""

from __future__ import annotations

import enum
import hashlib
import math
import struct
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import UnsupportedModelError
from ..fixed import MAX_SHIFT, IntType, Rounding, requantize, signed_bits
from ..ir import AvgPool, Conv2d, Dense, GlobalAvgPool, Graph, MaxPool, Node, Requantize, Reshape, conv_output_hw
from ..names import identifier
from .hardware import FLASH_QUAD_DUMMY_CLOCKS, REQUANT_LATENCY
from .plan import PerfCounter, top_name
from .units import avgpool_counts

__all__ = [
    "Mode", "SeqLayer", "SeqFormat", "SeqProgram", "SeqPlan", "make_seq_plan", "program_for", "compile_program",
    "run_program", "stream_words", "flash_image", "cycle_model", "SeqCycles", "PIPELINE_DEPTH", "LAYER_OVERHEAD",
    "ELEMENT_BITS", "FLASH_MAGIC", "default_lanes", "SUPPORTED_OPS", "seq_perf_counters", "ARRAY", "WeightSource",
    "FLASH_ADDRESS", "FLASH_HEADER_BYTES", "stream_rate", "flash_restart_cycles",
]

#: Activations are stored one byte per lane (types of 8 bits or fewer).
ELEMENT_BITS = 8
#: Issue to accumulate: tile read, address, bank read, operands, products, dot, accumulate.
PIPELINE_DEPTH = 7
#: Cycles between layers: the pipeline and the requantizers drain before the next layer reads.
LAYER_OVERHEAD = PIPELINE_DEPTH + REQUANT_LATENCY + 4
#: The flash image's first bytes.
FLASH_MAGIC = b"HWGENSEQ"

#: The MAC array's name in reports and counters.
ARRAY = "array"

#: Where the flash image starts by default: 1 MiB, past an iCE40 bitstream (104 KB on a UP5K).
FLASH_ADDRESS = 0x100000
#: The flash image's header: magic, version, word bytes, word count, SHA-256 prefix.
FLASH_HEADER_BYTES = 32


class WeightSource(enum.StrEnum):
    """Where the engine's weight stream comes from."""

    ROM = "rom"      # a ROM on chip (block RAM), one word a cycle
    SPI = "spi"      # an SPI NOR flash, READ (0x03): one data line, sck = clk / 2
    QSPI = "qspi"    # Fast Read Quad Output (0x6B): four data lines, sck = clk / 2

    @property
    def lines(self) -> int:
        return {"rom": 0, "spi": 1, "qspi": 4}[self.value]


class Mode(enum.IntEnum):
    """How a step's dot product meets the accumulator."""

    SUM = 0
    MAX = 1


@dataclass(frozen=True, eq=False)
class SeqLayer:
    """One layer of the program: a convolution walk over a stored map."""

    node: str
    op: str
    mode: Mode
    in_shape: tuple[int, int, int]     # (H, W, C) as stored
    out_shape: tuple[int, int, int]    # (OH, OW, Cout)
    stride: tuple[int, int]
    pads: tuple[int, int]              # top, left (bottom and right follow from the shapes)
    pad_value: int
    x_signed: bool
    in_bank: int
    taps: tuple[np.ndarray, ...]       # per group: (S, 3) int64 rows (ty, tx, address offset)
    weights: tuple[np.ndarray, ...]    # per group: (S, L, L) int64, [step, output lane, input lane]
    bias: np.ndarray                   # (groups * L,)
    multiplier: np.ndarray             # (groups * L,)
    shift: np.ndarray                  # (groups * L,)
    zero_point: int
    lo: int
    hi: int
    acc: IntType
    macs: int                          # non-zero MACs of the IR node (0 for pooling)

    @property
    def groups(self) -> int:
        return len(self.taps)

    @property
    def positions(self) -> int:
        return self.out_shape[0] * self.out_shape[1]

    @property
    def steps(self) -> int:
        """MAC array steps per inference: every group's steps at every output position."""
        return self.positions * sum(len(t) for t in self.taps)

    @property
    def ident(self) -> str:
        return identifier(self.node)


def words_per_pixel(channels: int, lanes: int) -> int:
    return -(-channels // lanes)


@dataclass(frozen=True)
class SeqFormat:
    """Bit widths of the stream words and the datapath, the widest any layer needs."""

    lanes: int
    weight_bits: int
    acc_bits: int
    multiplier_bits: int
    shift_bits: int
    min_shift: int       # the requantization shifts that occur (the requantizer's shifter spans them only)
    max_shift: int
    steps_bits: int
    tap_bits: int        # ty, tx: unsigned
    offset_bits: int     # address offset: unsigned
    address_bits: int    # bank word address
    dim_bits: int        # H, W, OH, OW and tap coordinates (signed)

    @property
    def header_bits(self) -> int:
        return self.steps_bits + self.lanes * (self.acc_bits + self.multiplier_bits + self.shift_bits)

    @property
    def entry_bits(self) -> int:
        return 2 * self.tap_bits + self.offset_bits + self.lanes * self.lanes * self.weight_bits

    @property
    def word_bits(self) -> int:
        """A stream word holds a step; a header takes `header_words` of them."""
        return self.entry_bits

    @property
    def header_words(self) -> int:
        return -(-self.header_bits // self.entry_bits)

    @property
    def word_bytes(self) -> int:
        return -(-self.word_bits // 8)


@dataclass(frozen=True, eq=False)
class SeqProgram:
    """Everything the sequential engine runs for one model."""

    top: str
    lanes: int
    requantizers: int        # lanes requantized per cycle (divides lanes)
    layers: tuple[SeqLayer, ...]
    input_shape: tuple[int, int, int]    # stored map of the input (the IR shape, as (H, W, C))
    output_shape: tuple[int, int, int]
    output_dims: tuple[int, ...]         # the output tensor's IR shape
    input_type: IntType
    output_type: IntType
    input_lanes: int         # elements per word on port i
    output_lanes: int        # on port o
    bank_words: tuple[int, int]
    rounding: Rounding
    fmt: SeqFormat = field(repr=False)
    weights: WeightSource = WeightSource.ROM
    flash_address: int = FLASH_ADDRESS
    spram_banks: bool = False      # banks of iCE40 SB_SPRAM256KA cells (else memories yosys places)

    @property
    def tile_depth(self) -> int:
        """Entries of one half of the double-buffered weight tile: the most steps of any group."""
        return max(len(t) for layer in self.layers for t in layer.taps)

    @property
    def output_bank(self) -> int:
        return len(self.layers) % 2

    @property
    def stream_length(self) -> int:
        """Words of the weight stream per inference."""
        return sum(layer.groups * self.fmt.header_words + sum(len(t) for t in layer.taps) for layer in self.layers)


# -- compiling a graph --------------------------------------------------------------------------


def default_lanes(multipliers: int | None) -> int:
    """The array size L for a multiplier budget (L x L products); 4 (16 products) by default."""
    if multipliers is None:
        return 4
    return max(1, math.isqrt(multipliers))


def _refuse(node: Node, reason: str):
    raise UnsupportedModelError(f"node {node.name!r} ({node.op}): the sequential engine {reason}; "
                                f"use --arch dataflow")


def _as_map(shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) == 3:
        return tuple(shape)
    if len(shape) == 1:
        return (1, 1, shape[0])
    raise ValueError(shape)


@dataclass
class _Walk:
    """A layer before it is cut into groups: a convolution with dense weights (Cout, KH, KW, C)."""

    mode: Mode
    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pads: tuple[int, int, int, int]
    pad_value: int
    weights: np.ndarray
    bias: np.ndarray
    multiplier: np.ndarray
    shift: np.ndarray
    zero_point: int
    lo: int
    hi: int
    rounding: Rounding
    acc: IntType


def _requant_arrays(requant, cout: int):
    m = np.broadcast_to(np.array(requant.multiplier, dtype=np.int64), (cout,))
    s = np.broadcast_to(np.array(requant.shift, dtype=np.int64), (cout,))
    return m, s


def _identity_weights(channels: int, kernel: tuple[int, int]) -> np.ndarray:
    w = np.zeros((channels, kernel[0], kernel[1], channels), dtype=np.int64)
    idx = np.arange(channels)
    w[idx, :, :, idx] = 1
    return w


def _conv_walk(node: Conv2d, graph: Graph, in_map) -> _Walk:
    x = graph.tensor(node.inputs[0])
    if node.requant is None:
        _refuse(node, "stores 8-bit activations, not a raw accumulator")
    cout, kh, kw, cg = node.weights.shape
    dense = np.zeros((cout, kh, kw, in_map[2]), dtype=np.int64)   # groups as zero blocks
    per_group = cout // node.groups
    for o in range(cout):
        g = o // per_group
        dense[o, :, :, g * cg:(g + 1) * cg] = node.weights[o]
    m, s = _requant_arrays(node.requant, cout)
    r = node.requant
    return _Walk(Mode.SUM, (kh, kw), node.stride, node.dilation, node.pads, x.zero_point, dense,
                 np.array(node.bias), m, s, r.zero_point, r.lo, r.hi, r.rounding, node.acc)


def _dense_walk(node: Dense, graph: Graph, in_map) -> _Walk:
    x = graph.tensor(node.inputs[0])
    h, w, c = in_map
    if node.weights.ndim != 2:
        _refuse(node, "runs Dense layers of one matrix, not stacked ones")
    if node.requant is None:
        _refuse(node, "stores 8-bit activations, not a raw accumulator")
    cout, k = node.weights.shape
    m, s = _requant_arrays(node.requant, cout)
    r = node.requant
    if k == h * w * c and x.size == k:                       # over the whole (flattened) map
        dense, kernel = node.weights.reshape(cout, h, w, c), (h, w)
    elif k == c and math.prod(x.shape[:-1]) == h * w:        # per position: a 1x1 convolution
        dense, kernel = node.weights.reshape(cout, 1, 1, c), (1, 1)
    else:
        _refuse(node, f"cannot read input {list(x.shape)} stored as map {list(in_map)}")
    return _Walk(Mode.SUM, kernel, (1, 1), (1, 1), (0, 0, 0, 0), x.zero_point, dense, np.array(node.bias),
                 m, s, r.zero_point, r.lo, r.hi, r.rounding, node.acc)


def _maxpool_walk(node: MaxPool, graph: Graph, in_map) -> _Walk:
    t, c = graph.tensor(node.inputs[0]).dtype, in_map[2]
    return _Walk(Mode.MAX, node.kernel, node.stride, node.dilation, node.pads, t.lo,
                 _identity_weights(c, node.kernel), np.full(c, t.lo), np.ones(c, np.int64),
                 np.zeros(c, np.int64), 0, t.lo, t.hi, Rounding.RNE, IntType(ELEMENT_BITS + 1, True))


def _average(node: Node, graph: Graph, in_map, kernel, stride, pads, requant) -> _Walk:
    """Sum over the window with weight 1, padding reading the zero point; the bias takes
    taps x zero point off: acc = sum of (x - zp) over the window's valid taps."""
    x, c = graph.tensor(node.inputs[0]), in_map[2]
    m, s = _requant_arrays(requant, c)
    return _Walk(Mode.SUM, kernel, stride, (1, 1), pads, x.zero_point, _identity_weights(c, kernel),
                 np.full(c, -kernel[0] * kernel[1] * x.zero_point), m, s, requant.zero_point, requant.lo,
                 requant.hi, requant.rounding, node.acc)


def _avgpool_walk(node: AvgPool, graph: Graph, in_map) -> _Walk:
    counts = _window_counts(node, in_map)
    if len(counts) != 1:
        _refuse(node, "requantizes every window alike (border windows of fewer taps are not supported yet)")
    return _average(node, graph, in_map, node.kernel, node.stride, node.pads, node.requants[counts.pop()])


def _global_avgpool_walk(node: GlobalAvgPool, graph: Graph, in_map) -> _Walk:
    return _average(node, graph, in_map, in_map[:2], (1, 1), (0, 0, 0, 0), node.requant)


def _requantize_walk(node: Requantize, graph: Graph, in_map) -> _Walk:
    x, c, r = graph.tensor(node.inputs[0]), in_map[2], node.requant
    m, s = _requant_arrays(r, c)
    return _Walk(Mode.SUM, (1, 1), (1, 1), (1, 1), (0, 0, 0, 0), x.zero_point, _identity_weights(c, (1, 1)),
                 np.full(c, -x.zero_point), m, s, r.zero_point, r.lo, r.hi, r.rounding,
                 IntType(ELEMENT_BITS + 2, True))


#: How the engine runs each op it runs: as a convolution walk over the stored map (Reshape moves no
#: data: its output is its input's map, read flattened). Other ops are refused by name.
WALKS = {
    Conv2d: _conv_walk,
    Dense: _dense_walk,
    MaxPool: _maxpool_walk,
    AvgPool: _avgpool_walk,
    GlobalAvgPool: _global_avgpool_walk,
    Requantize: _requantize_walk,
}
SUPPORTED_OPS = (*(op.op for op in WALKS), Reshape.op)


def _walk(node: Node, graph: Graph, in_map: tuple[int, int, int]) -> _Walk:
    try:
        walk = WALKS[type(node)]
    except KeyError:
        _refuse(node, f"does not run {node.op} yet (it runs {', '.join(SUPPORTED_OPS)})")
    return walk(node, graph, in_map)


def _window_counts(node: AvgPool, in_map) -> set[int]:
    """The valid-tap counts of the windows (count_include_pad: always the kernel size)."""
    return {n for row in avgpool_counts(node, in_map[:2]) for n in row}


def _groups(weights: np.ndarray, in_map, dilation, lanes: int, mode: Mode):
    """Per group of `lanes` output channels: its steps' (ty, tx, offset) rows and (S, L, L) weights."""
    cout, kh, kw, c = weights.shape
    h, w, _ = in_map
    cw = words_per_pixel(c, lanes)
    groups = words_per_pixel(cout, lanes)
    padded = np.zeros((groups * lanes, kh, kw, cw * lanes), dtype=np.int64)
    padded[:cout, :, :, :c] = weights
    blocks = padded.reshape(groups, lanes, kh, kw, cw, lanes).transpose(0, 2, 3, 4, 1, 5)  # g, ky, kx, word, p, s
    taps, weight_words = [], []
    ky, kx, word = np.meshgrid(np.arange(kh), np.arange(kw), np.arange(cw), indexing="ij")
    ky, kx, word = ky.reshape(-1), kx.reshape(-1), word.reshape(-1)
    ty, tx = ky * dilation[0], kx * dilation[1]
    offset = (ty * w + tx) * cw + word
    for g in range(groups):
        b = blocks[g].reshape(-1, lanes, lanes)
        live = np.flatnonzero(b.reshape(len(b), -1).any(axis=1))
        if len(live) == 0:  # an all-zero group still needs a step per position to emit its bias
            assert mode is Mode.SUM
            live = np.array([0])
        taps.append(np.stack([ty[live], tx[live], offset[live]], axis=1).astype(np.int64))
        weight_words.append(b[live].copy())
    return tuple(taps), tuple(weight_words)


def _chain(graph: Graph) -> list[Node]:
    """The nodes in order, checking the graph is one chain (each tensor read by the next node only)."""
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise UnsupportedModelError(f"model {graph.name!r}: the sequential engine runs models of one input and "
                                    "one output; use --arch dataflow")
    current = graph.inputs[0]
    nodes = []
    for node in graph.nodes:
        if len(node.inputs) != 1 or node.inputs[0] != current:
            _refuse(node, "runs a chain of layers (each reading the one before), not branches or joins")
        nodes.append(node)
        current = node.output
    if current != graph.outputs[0]:
        raise UnsupportedModelError(f"model {graph.name!r}: the sequential engine runs a chain of layers ending in "
                                    "the output; use --arch dataflow")
    return nodes


def _check_type(node: Node | None, t, what: str) -> None:
    if t.dtype.bits > ELEMENT_BITS:
        msg = f"stores activations of at most {ELEMENT_BITS} bits, not {t.dtype} ({what} {t.name!r})"
        if node is None:
            raise UnsupportedModelError(f"the sequential engine {msg}; use --arch dataflow")
        _refuse(node, msg)


def compile_program(graph: Graph, lanes: int = 4, requantizers: int = 1, top: str | None = None,
                    weights: WeightSource = WeightSource.ROM, flash_address: int = FLASH_ADDRESS,
                    spram_banks: bool = False) -> SeqProgram:
    """The sequential engine's program for `graph` (raises UnsupportedModelError naming the node it cannot run)."""
    if lanes < 1 or requantizers < 1 or lanes % requantizers:
        raise ValueError(f"lanes {lanes} and requantizers {requantizers}: requantizers must divide lanes")
    nodes = _chain(graph)
    x = graph.tensor(graph.inputs[0])
    _check_type(None, x, "input")
    stored = {x.name: _as_map(x.shape)}
    layers: list[SeqLayer] = []
    roundings = set()
    for node in nodes:
        in_map = stored[node.inputs[0]]
        out = graph.tensor(node.output)
        if isinstance(node, Reshape):
            if math.prod(out.shape) != math.prod(in_map):
                _refuse(node, "reshapes only keeping the elements")
            stored[node.output] = in_map if len(out.shape) != 3 or tuple(out.shape) == in_map else \
                _refuse(node, f"reads map {list(in_map)} only as itself or flattened, not as {list(out.shape)}")
            continue
        _check_type(node, out, "output")
        walk = _walk(node, graph, in_map)
        if walk.mode is Mode.SUM:
            roundings.add(walk.rounding)
        oh, ow = _conv_out(in_map[:2], walk)
        cout = walk.weights.shape[0]
        out_map = (oh, ow, cout)
        if math.prod(out_map) != out.size:
            _refuse(node, f"cannot store output {list(out.shape)} as map {list(out_map)}")
        taps, blocks = _groups(walk.weights, in_map, walk.dilation, lanes, walk.mode)
        extra = len(taps) * lanes - cout   # lanes of the last group past Cout
        layers.append(SeqLayer(
            node.name, node.op, walk.mode, in_map, out_map, walk.stride, walk.pads[:2], walk.pad_value,
            graph.tensor(node.inputs[0]).dtype.signed, len(layers) % 2, taps, blocks,
            _padded(walk.bias, extra, walk.lo if walk.mode is Mode.MAX else 0), _padded(walk.multiplier, extra),
            _padded(walk.shift, extra, int(np.min(walk.shift))),
            walk.zero_point, walk.lo, walk.hi, walk.acc, node.macs(graph)[1]))
        stored[node.output] = out_map
    if not layers:
        raise UnsupportedModelError(f"model {graph.name!r}: nothing for the sequential engine to run")
    if len(roundings) > 1:
        raise UnsupportedModelError(f"model {graph.name!r}: the sequential engine requantizes with one rounding "
                                    "mode, the model uses both RNE and RNU; use --arch dataflow")
    rounding = roundings.pop() if roundings else Rounding.RNE
    layers = _max_as_shifted(layers)
    y = graph.tensor(graph.outputs[0])
    maps = [layers[0].in_shape] + [layer.out_shape for layer in layers]
    bank_words = [1, 1]
    for k, shape in enumerate(maps):
        bank_words[k % 2] = max(bank_words[k % 2], shape[0] * shape[1] * words_per_pixel(shape[2], lanes))
    fmt = _format(layers, lanes, bank_words)
    return SeqProgram(
        top=top or top_name(graph), lanes=lanes, requantizers=requantizers, layers=tuple(layers),
        input_shape=maps[0], output_shape=maps[-1],
        output_dims=tuple(y.shape), input_type=x.dtype, output_type=y.dtype,
        input_lanes=math.gcd(maps[0][2], lanes), output_lanes=math.gcd(maps[-1][2], lanes),
        bank_words=tuple(bank_words), rounding=rounding, fmt=fmt, weights=WeightSource(weights),
        flash_address=flash_address, spram_banks=spram_banks)


def _max_as_shifted(layers: list[SeqLayer]) -> list[SeqLayer]:
    """MaxPool's requantization (the identity) as multiplier 2^k, shift k, with k the smallest shift
    the other layers use: exact (no bit below the shift is set), and the requantizer's shifter need
    not reach down to a shift of 0 for it."""
    sums = [x for x in layers if x.mode is Mode.SUM]
    if not sums or len(sums) == len(layers):
        return layers
    k = min(int(x.shift.min()) for x in sums)
    k = min(k, max(int(x.multiplier.max()) for x in sums).bit_length() - 1)   # 2^k: no wider a multiplier
    return [x if x.mode is Mode.SUM else
            replace(x, multiplier=np.full_like(x.multiplier, 1 << k), shift=np.full_like(x.shift, k))
            for x in layers]


def _padded(values, extra: int, fill: int = 0) -> np.ndarray:
    return np.concatenate([np.asarray(values, np.int64), np.full(extra, fill, np.int64)])


def _conv_out(hw, walk: _Walk) -> tuple[int, int]:
    return conv_output_hw(hw, walk.kernel, walk.stride, walk.dilation, walk.pads)


def _unsigned_bits(value: int) -> int:
    return max(1, int(value).bit_length())


def _format(layers: list[SeqLayer], lanes: int, bank_words) -> SeqFormat:
    weights = [w for layer in layers for w in layer.weights]
    w_lo = min(int(w.min()) for w in weights)
    w_hi = max(int(w.max()) for w in weights)
    taps = np.concatenate([t for layer in layers for t in layer.taps])
    acc_bits = max(max(layer.acc.bits for layer in layers), ELEMENT_BITS + 2,
                   max(signed_bits(int(layer.bias.min()), int(layer.bias.max())) for layer in layers))
    dims = max(max(*layer.in_shape[:2], *layer.out_shape[:2], int(taps[:, :2].max()) + 1) for layer in layers)
    return SeqFormat(
        lanes=lanes, weight_bits=signed_bits(min(w_lo, -1), max(w_hi, 1)), acc_bits=acc_bits,
        multiplier_bits=_unsigned_bits(max(int(layer.multiplier.max()) for layer in layers)),
        shift_bits=_unsigned_bits(MAX_SHIFT),
        min_shift=min(int(layer.shift.min()) for layer in layers),
        max_shift=max(int(layer.shift.max()) for layer in layers),
        steps_bits=_unsigned_bits(max(len(t) for layer in layers for t in layer.taps)),
        tap_bits=_unsigned_bits(int(taps[:, :2].max())), offset_bits=_unsigned_bits(int(taps[:, 2].max())),
        address_bits=_unsigned_bits(max(bank_words) - 1),
        dim_bits=signed_bits(-dims - 1, 2 * dims + 1))


# -- the weight stream and its flash image --------------------------------------------------------


def _pack(fields) -> int:
    """(value, bits) pairs, least significant first, into one integer (two's complement fields)."""
    word, offset = 0, 0
    for value, bits in fields:
        value = int(value)
        assert -(1 << bits) < value < (1 << bits), (value, bits)
        word |= (value & ((1 << bits) - 1)) << offset
        offset += bits
    return word


def header_word(fmt: SeqFormat, steps: int, bias, multiplier, shift) -> int:
    fields = [(steps, fmt.steps_bits)]
    for b, m, s in zip(bias, multiplier, shift):
        fields += [(b, fmt.acc_bits), (m, fmt.multiplier_bits), (s, fmt.shift_bits)]
    return _pack(fields)


def entry_word(fmt: SeqFormat, tap, weights) -> int:
    fields = [(tap[0], fmt.tap_bits), (tap[1], fmt.tap_bits), (tap[2], fmt.offset_bits)]
    fields += [(v, fmt.weight_bits) for v in np.asarray(weights).reshape(-1)]  # [p][s]: p * L + s
    return _pack(fields)


def stream_words(program: SeqProgram) -> list[int]:
    """The weight stream of one inference, in the order the engine consumes it."""
    fmt, lanes, words = program.fmt, program.lanes, []
    for layer in program.layers:
        for g, (taps, weights) in enumerate(zip(layer.taps, layer.weights)):
            sl = slice(g * lanes, (g + 1) * lanes)
            header = header_word(fmt, len(taps), layer.bias[sl], layer.multiplier[sl], layer.shift[sl])
            mask = (1 << fmt.word_bits) - 1
            words.extend((header >> (k * fmt.word_bits)) & mask for k in range(fmt.header_words))
            words.extend(entry_word(fmt, t, w) for t, w in zip(taps, weights))
    return words


def flash_image(program: SeqProgram) -> bytes:
    """The weight stream as the flash holds it: a 32-byte header (magic, format version, word bytes,
    word count, SHA-256 prefix of the payload) and the words, little-endian, `word_bytes` each."""
    nbytes = program.fmt.word_bytes
    payload = b"".join(w.to_bytes(nbytes, "little") for w in stream_words(program))
    digest = hashlib.sha256(payload).digest()[:16]
    header = FLASH_MAGIC + struct.pack("<HHI", 1, nbytes, len(payload) // nbytes) + digest
    return header + payload


# -- the program in numpy, as the hardware runs it ------------------------------------------------


def _to_bytes(values: np.ndarray) -> np.ndarray:
    return (np.asarray(values, np.int64) & 0xFF).astype(np.int64)


def _from_bytes(raw: np.ndarray, signed: bool) -> np.ndarray:
    return np.where(raw >= 128, raw - 256, raw) if signed else raw


def run_program(program: SeqProgram, x: np.ndarray) -> np.ndarray:
    """Run one sample (the input tensor's shape) through the program; returns the output tensor's
    values, reading and writing two banks of L-byte words as the engine does."""
    lanes = program.lanes
    banks = [np.zeros((n, lanes), dtype=np.int64) for n in program.bank_words]
    h, w, c = program.input_shape
    cw = words_per_pixel(c, lanes)
    flat = np.asarray(x, np.int64).reshape(h * w, c)
    for ch in range(c):
        banks[0][np.arange(h * w) * cw + ch // lanes, ch % lanes] = _to_bytes(flat[:, ch])
    for layer in program.layers:
        src, dst = banks[layer.in_bank], banks[1 - layer.in_bank]
        h, w, c = layer.in_shape
        oh, ow, cout = layer.out_shape
        cw, gw = words_per_pixel(c, lanes), words_per_pixel(cout, lanes)
        xs = _from_bytes(src, layer.x_signed)
        oy, ox = np.meshgrid(np.arange(oh), np.arange(ow), indexing="ij")
        iy0 = (oy * layer.stride[0] - layer.pads[0]).reshape(-1)
        ix0 = (ox * layer.stride[1] - layer.pads[1]).reshape(-1)
        base = (iy0 * w + ix0) * cw
        for g, (taps, weights) in enumerate(zip(layer.taps, layer.weights)):
            sl = slice(g * lanes, (g + 1) * lanes)
            acc = np.broadcast_to(layer.bias[sl], (len(base), lanes)).copy()
            for (ty, tx, offset), wt in zip(taps, weights):
                iy, ix = iy0 + ty, ix0 + tx
                valid = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
                word = np.where(valid[:, None], xs[np.where(valid, base + offset, 0)], layer.pad_value)
                dot = word @ wt.T
                acc = acc + dot if layer.mode is Mode.SUM else np.maximum(acc, dot)
            y = requantize(acc, layer.multiplier[sl], layer.shift[sl], layer.zero_point, layer.lo, layer.hi,
                           program.rounding)
            dst[np.arange(len(base)) * gw + g] = _to_bytes(y)
    h, w, c = program.output_shape
    cw = words_per_pixel(c, lanes)
    out = banks[program.output_bank]
    pixels = np.arange(h * w) * cw
    y = np.stack([out[pixels + ch // lanes, ch % lanes] for ch in range(c)], axis=1)
    return _from_bytes(y, program.output_type.signed).reshape(program.output_dims)


# -- cycles ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeqCycles:
    """The engine's cycles per inference, by the model."""

    load: int                 # input words written into bank 0
    layers: tuple[tuple[str, int, int, int], ...]   # (node, steps, cycles, stall cycles waiting for weights)
    drain: int                # output words read out

    @property
    def compute(self) -> int:
        return sum(c for _, _, c, _ in self.layers)

    @property
    def stalls(self) -> int:
        return sum(s for _, _, _, s in self.layers)

    @property
    def interval(self) -> int:
        return self.load + self.compute + self.drain


def stream_rate(program: SeqProgram) -> float:
    """Weight-stream words per cycle: a ROM gives one; a flash `lines` bits every two cycles."""
    if program.weights is WeightSource.ROM:
        return 1.0
    return program.weights.lines / (2 * 8 * program.fmt.word_bytes)


def flash_restart_cycles(program: SeqProgram) -> int:
    """Cycles between the last word of one pass over the flash and the first of the next: cs_n
    high, command, address and dummy clocks."""
    if program.weights is WeightSource.ROM:
        return 0
    return 1 + 2 * (32 + (FLASH_QUAD_DUMMY_CLOCKS if program.weights is WeightSource.QSPI else 0))


def cycle_model(program: SeqProgram, words_per_cycle: float | None = None) -> SeqCycles:
    """Cycles per inference when the weight stream delivers `words_per_cycle` words a cycle
    (default: what the program's weight source delivers, `stream_rate`).

    The loader fills one half of the tile while the array computes from the other: a group starts
    when its words are in and the group two before it has finished; a position of a group takes
    max(steps, L / requantizers) cycles (the requantizers take L / R cycles per output word).
    """
    rate = stream_rate(program) if words_per_cycle is None else words_per_cycle
    per_word = program.lanes // program.requantizers
    t = 0.0                      # the engine's time
    loader = float(flash_restart_cycles(program))   # when the loader has written the latest group
    finished: list[float] = []   # when each group's last position issued
    layers = []
    for layer in program.layers:
        start, stalls = t, 0.0
        for taps in layer.taps:
            k = len(finished)
            # group k goes into the half group k-2 used: it loads once that one is done
            loader = max(loader, finished[k - 2] if k >= 2 else 0.0) + (program.fmt.header_words + len(taps)) / rate
            begin = max(t, loader)
            stalls += begin - t
            t = begin + layer.positions * max(len(taps), per_word)
            finished.append(t)
        t += LAYER_OVERHEAD
        layers.append((layer.node, layer.steps, int(round(t - start)), int(round(stalls))))
    h, w, c = program.input_shape
    load = h * w * c // program.input_lanes
    oh, ow, oc = program.output_shape
    drain = oh * ow * words_per_pixel(oc, program.lanes) * (1 + program.lanes // program.output_lanes)
    return SeqCycles(load, tuple(layers), drain)


def seq_perf_counters(layers) -> list:
    """The `perf` port's counters: each layer's MAC array steps (exact: the model's), the array's
    cycles over all layers, and the cycles it waited for weights. `layers`: node names."""
    return [PerfCounter("layer", n) for n in layers] + [PerfCounter("engine", ARRAY), PerfCounter("stall", "weights")]


# -- the plan: what the manifest keeps -------------------------------------------------------------


@dataclass(frozen=True)
class SeqPlan:
    """The sequential engine's choices (its program follows from them and the IR: `program_for`)."""

    model: str
    top: str
    lanes: int
    requantizers: int
    input_lanes: int
    output_lanes: tuple[int, ...]
    interval: int                      # cycles per inference by the model
    layers: tuple[tuple[str, int], ...]   # (node, MAC array steps per inference)
    bank_words: tuple[int, int]
    tile_depth: int
    stream_words: int
    word_bits: int
    weights: WeightSource = WeightSource.ROM
    flash_address: int = FLASH_ADDRESS
    spram_banks: bool = False
    arch: str = "sequential"

    def to_json(self) -> dict:
        return {"arch": self.arch, "model": self.model, "top": self.top, "lanes": self.lanes,
                "requantizers": self.requantizers, "input_lanes": self.input_lanes,
                "output_lanes": list(self.output_lanes), "interval": self.interval,
                "layers": [{"node": n, "engine": ARRAY, "busy": s} for n, s in self.layers],
                "bank_words": list(self.bank_words), "tile_depth": self.tile_depth,
                "stream_words": self.stream_words, "word_bits": self.word_bits, "weights": self.weights.value,
                "flash_address": self.flash_address, "spram_banks": self.spram_banks}

    @classmethod
    def from_json(cls, d) -> SeqPlan:
        return cls(d["model"], d["top"], d["lanes"], d["requantizers"], d["input_lanes"], tuple(d["output_lanes"]),
                   d["interval"], tuple((x["node"], x["busy"]) for x in d["layers"]), tuple(d["bank_words"]),
                   d["tile_depth"], d["stream_words"], d["word_bits"], WeightSource(d.get("weights", "rom")),
                   d.get("flash_address", FLASH_ADDRESS), d.get("spram_banks", False))


def make_seq_plan(graph: Graph, lanes: int = 4, requantizers: int = 1, weights: WeightSource = WeightSource.ROM,
                  flash_address: int = FLASH_ADDRESS, spram_banks: bool = False) -> tuple[SeqPlan, SeqProgram]:
    """The plan and program of the sequential engine for a hardware graph."""
    top = top_name(graph)
    program = compile_program(graph, lanes, requantizers, top, weights, flash_address, spram_banks)
    plan = SeqPlan(graph.name, top, lanes, requantizers, program.input_lanes, (program.output_lanes,),
                   cycle_model(program).interval, tuple((x.node, x.steps) for x in program.layers),
                   program.bank_words, program.tile_depth, program.stream_length, program.fmt.word_bits,
                   program.weights, flash_address, spram_banks)
    return plan, program


def program_for(graph: Graph, plan: SeqPlan) -> SeqProgram:
    """The program a plan was made with (the compile is deterministic)."""
    return compile_program(graph, plan.lanes, plan.requantizers, plan.top, plan.weights, plan.flash_address,
                           plan.spram_banks)
