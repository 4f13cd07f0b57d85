"""Random layers as IR graphs, for the kernel tests (hypothesis strategies).

Hypothesis draws the structure of each layer (op, shapes, strides, padding, types,
rounding, how weights and requantization look) and a seed; numpy fills the bulk
values from the seed. Several independent layers go into one graph, each with its
own inputs and output, so one build of the generated C tests them all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st

from hwgen.fixed import IntType, Rounding, signed_bits
from hwgen.ir import (
    Add,
    AvgPool,
    Concat,
    Conv2d,
    Dense,
    GlobalAvgPool,
    Graph,
    MaxPool,
    Requant,
    Requantize,
    Reshape,
    Tensor,
    conv_output_hw,
    verify,
)

ACTIVATIONS = (IntType(8, True), IntType(8, False))
RAW = IntType(32, True)


@dataclass
class GraphBuilder:
    """Collects tensors and nodes; names are deliberately hostile to C."""

    tensors: dict = field(default_factory=dict)
    nodes: list = field(default_factory=list)
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)

    def tensor(self, shape, dtype: IntType, zp: int) -> str:
        name = f"t{len(self.tensors)}/in-put:0 */ (x)\\"
        self.tensors[name] = Tensor(name, tuple(shape), dtype, zp, (0.5,))
        return name

    def input(self, shape, dtype: IntType, zp: int) -> str:
        name = self.tensor(shape, dtype, zp)
        self.inputs.append(name)
        return name

    def node(self, cls, inputs, shape, dtype, zp, **fields) -> str:
        out = self.tensor(shape, dtype, zp)
        self.nodes.append(cls(f"{cls.op} #{len(self.nodes)}: int main(void) /* é", tuple(inputs), (out,), **fields))
        return out

    def graph(self) -> Graph:
        return verify(Graph("random layers", dict(self.tensors), tuple(self.nodes), tuple(self.inputs),
                            tuple(self.outputs)))


def _acc_type(bound: int) -> IntType:
    return IntType(signed_bits(-bound, bound), True)


def _fit_weights(make_node, weights: np.ndarray, tensors) -> tuple[np.ndarray, int]:
    """Halve the weights until the worst-case accumulator fits 32 bits."""
    while True:
        bound = make_node(weights).accumulator_bound(tensors)
        if bound < 1 << 31:
            return weights, bound
        weights = weights // 2


@st.composite
def activation(draw) -> tuple[IntType, int]:
    dtype = draw(st.sampled_from(ACTIVATIONS))
    return dtype, draw(st.integers(dtype.lo, dtype.hi))


@st.composite
def requant(draw, channels: int, bound: int, out: IntType, zp: int, rounding: Rounding) -> Requant:
    """Multipliers and shifts that map the accumulator range onto the output range
    (or anywhere, or onto exact ties), and a clamp that is the whole type or part of it."""
    n = channels if channels > 1 and draw(st.booleans()) else 1
    mode = draw(st.sampled_from(["scaled", "scaled", "ties", "anything"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if mode == "ties":  # small multipliers and shifts: many products end exactly on .5
        m = 1 << rng.integers(0, 4, n)
        s = rng.integers(0, 5, n)
    elif mode == "anything":
        m = rng.integers(0, 2**32, n)
        s = rng.integers(0, 63, n)
    else:
        m = rng.integers(2**30, 2**31, n)
        span = np.array([max(1, int(bound) * int(mi)).bit_length() for mi in m])
        s = np.clip(span - out.bits - 1 + rng.integers(-2, 3, n), 0, 62)
    lo, hi = out.lo, out.hi
    if draw(st.booleans()):
        lo = draw(st.integers(out.lo, out.hi))
        hi = draw(st.integers(lo, out.hi))
    return Requant(tuple(int(v) for v in m), tuple(int(v) for v in s), zp, lo, hi, rounding)


@st.composite
def output_type(draw) -> tuple[IntType, int]:
    dtype = draw(st.sampled_from(ACTIVATIONS + (IntType(16, True),)))
    return dtype, draw(st.integers(max(dtype.lo, -300), min(dtype.hi, 300)))


def _weights(rng, kind: str, shape) -> np.ndarray:
    if kind == "int8":
        w = rng.integers(-128, 128, shape)
    elif kind == "extreme":
        w = rng.choice(np.array([-128, 127, -127]), shape)
    elif kind == "nine-bit":  # a uint8 weight zero point subtracted
        w = rng.integers(-255, 256, shape)
    else:  # pruned
        w = rng.integers(-128, 128, shape) * (rng.random(shape) < 0.3)
    return w.astype(np.int64)


@st.composite
def conv(draw, b: GraphBuilder) -> None:
    dtype, zp = draw(activation())
    kind = draw(st.sampled_from(["dense", "depthwise", "grouped"]))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    pads = tuple(draw(st.integers(0, k - 1)) for k in (kh, kw, kh, kw))
    h = draw(st.integers(max(1, (kh - 1) * dh + 1 - pads[0] - pads[2]), 10))
    w = draw(st.integers(max(1, (kw - 1) * dw + 1 - pads[1] - pads[3]), 10))
    if kind == "dense":
        groups, cin = 1, draw(st.integers(1, 20))
        cout = draw(st.integers(1, 40))
    elif kind == "depthwise":
        cin = groups = draw(st.integers(1, 40))
        cout = cin * draw(st.sampled_from([1, 1, 2]))
    else:
        groups = draw(st.integers(2, 4))
        cin = groups * draw(st.integers(1, 5))
        cout = groups * draw(st.integers(1, 6))
    oh, ow = conv_output_hw((h, w), (kh, kw), (sh, sw), (dh, dw), (pads[0], pads[1], pads[2], pads[3]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = b.input((h, w, cin), dtype, zp)

    def make(weights, acc=IntType(32, True), requant=None, bias=np.zeros(cout, np.int64)):
        return Conv2d("c", (x,), ("y",), weights=weights, bias=bias, stride=(sh, sw), dilation=(dh, dw), pads=pads,
                      groups=groups, acc=acc, requant=requant)

    weights, bound = _fit_weights(make, _weights(rng, draw(st.sampled_from(["int8", "extreme", "nine-bit", "pruned"])),
                                                 (cout, kh, kw, cin // groups)), b.tensors)
    bias = rng.integers(-1000, 1001, cout)
    bound += 1000
    raw = draw(st.integers(0, 9)) == 0
    if raw:
        out, out_zp, rq = RAW, 0, None
    else:
        out, out_zp = draw(output_type())
        rq = draw(requant(cout, bound, out, out_zp, draw(st.sampled_from(Rounding))))
    node = make(weights, _acc_type(bound), rq, bias)
    b.outputs.append(b.node(Conv2d, (x,), (oh, ow, cout), out, out_zp, **{
        k: getattr(node, k) for k in ("weights", "bias", "stride", "dilation", "pads", "groups", "acc", "requant")}))


@st.composite
def dense(draw, b: GraphBuilder) -> None:
    dtype, zp = draw(activation())
    k, cout = draw(st.integers(1, 70)), draw(st.integers(1, 40))
    rows = draw(st.sampled_from([(), (3,), (2, 2)]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = b.input((*rows, k), dtype, zp)

    def make(weights):
        return Dense("d", (x,), ("y",), weights=weights, bias=np.zeros(cout, np.int64))

    weights, bound = _fit_weights(make, _weights(rng, draw(st.sampled_from(["int8", "extreme", "pruned"])),
                                                 (cout, k)), b.tensors)
    bias = rng.integers(-5000, 5001, cout)
    out, out_zp = draw(output_type())
    rq = draw(requant(cout, bound + 5000, out, out_zp, draw(st.sampled_from(Rounding))))
    b.outputs.append(b.node(Dense, (x,), (*rows, cout), out, out_zp, weights=weights, bias=bias,
                            acc=_acc_type(bound + 5000), requant=rq))


@st.composite
def window(draw, dilation: bool):
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if dilation else (1, 1)
    pads = tuple(draw(st.integers(0, k - 1)) for k in (kh, kw, kh, kw))
    h = draw(st.integers(max(1, (kh - 1) * dil[0] + 1 - pads[0] - pads[2]), 9))
    w = draw(st.integers(max(1, (kw - 1) * dil[1] + 1 - pads[1] - pads[3]), 9))
    return (h, w), (kh, kw), stride, dil, pads


@st.composite
def maxpool(draw, b: GraphBuilder) -> None:
    dtype, zp = draw(activation())
    (h, w), kernel, stride, dil, pads = draw(window(True))
    c = draw(st.integers(1, 70))
    x = b.input((h, w, c), dtype, zp)
    oh, ow = conv_output_hw((h, w), kernel, stride, dil, pads)
    b.outputs.append(b.node(MaxPool, (x,), (oh, ow, c), dtype, zp, kernel=kernel, stride=stride, dilation=dil,
                            pads=pads))


def _valid_counts(hw, kernel, stride, pads, include_pad) -> set[int]:
    if include_pad:
        return {kernel[0] * kernel[1]}
    ones = np.ones(hw)
    padded = np.pad(ones, ((pads[0], pads[2]), (pads[1], pads[3])))
    oh, ow = conv_output_hw(hw, kernel, stride, (1, 1), pads)
    return {int(padded[i * stride[0]:i * stride[0] + kernel[0], j * stride[1]:j * stride[1] + kernel[1]].sum())
            for i in range(oh) for j in range(ow)}


@st.composite
def avgpool(draw, b: GraphBuilder) -> None:
    dtype, zp = draw(activation())
    (h, w), kernel, stride, _, pads = draw(window(False))
    c = draw(st.integers(1, 40))
    include_pad = draw(st.booleans())
    out, out_zp = draw(output_type())
    rounding = draw(st.sampled_from(Rounding))
    x = b.input((h, w, c), dtype, zp)
    node = AvgPool("a", (x,), ("y",), kernel=kernel, stride=stride, pads=pads)
    bound = node.accumulator_bound(b.tensors)
    requants = {n: draw(requant(c, max(1, bound // n), out, out_zp, rounding))
                for n in sorted(_valid_counts((h, w), kernel, stride, pads, include_pad))}
    oh, ow = conv_output_hw((h, w), kernel, stride, (1, 1), pads)
    b.outputs.append(b.node(AvgPool, (x,), (oh, ow, c), out, out_zp, kernel=kernel, stride=stride, pads=pads,
                            count_include_pad=include_pad, acc=_acc_type(bound), requants=requants))


@st.composite
def global_avgpool(draw, b: GraphBuilder) -> None:
    dtype, zp = draw(activation())
    h, w, c = draw(st.integers(1, 8)), draw(st.integers(1, 8)), draw(st.integers(1, 70))
    out, out_zp = draw(output_type())
    x = b.input((h, w, c), dtype, zp)
    bound = GlobalAvgPool("g", (x,), ("y",)).accumulator_bound(b.tensors)
    rq = draw(requant(c, max(1, bound // (h * w)), out, out_zp, draw(st.sampled_from(Rounding))))
    b.outputs.append(b.node(GlobalAvgPool, (x,), (1, 1, c), out, out_zp, acc=_acc_type(bound), requant=rq))


@st.composite
def add(draw, b: GraphBuilder) -> None:
    shape = draw(st.sampled_from([(3, 2, 5), (4, 4, 16), (2, 3, 40), (7,)]))
    (ta, za), (tb, zb) = draw(activation()), draw(activation())
    ka, kb = draw(st.integers(-2**19, 2**19)), draw(st.integers(-2**19, 2**19))
    bias = draw(st.integers(-2**24, 2**24))
    out, out_zp = draw(output_type())
    xa, xb = b.input(shape, ta, za), b.input(shape, tb, zb)
    node = Add("a", (xa, xb), ("y",), lhs_multiplier=ka, rhs_multiplier=kb, bias=bias)
    bound = node.accumulator_bound(b.tensors)
    rq = draw(requant(shape[-1], bound, out, out_zp, draw(st.sampled_from(Rounding))))
    b.outputs.append(b.node(Add, (xa, xb), shape, out, out_zp, lhs_multiplier=ka, rhs_multiplier=kb, bias=bias,
                            acc=_acc_type(bound), requant=rq))


@st.composite
def requantize(draw, b: GraphBuilder) -> None:
    dtype, zp = draw(activation())
    shape = draw(st.sampled_from([(2, 3, 7), (5,), (3, 40)]))
    out, out_zp = draw(output_type())
    x = b.input(shape, dtype, zp)
    t = b.tensors[x]
    bound = max(abs(t.dtype.lo - t.zero_point), abs(t.dtype.hi - t.zero_point))  # |x - zero point|
    rq = draw(requant(shape[-1], bound, out, out_zp, draw(st.sampled_from(Rounding))))
    b.outputs.append(b.node(Requantize, (x,), shape, out, out_zp, requant=rq))


@st.composite
def concat(draw, b: GraphBuilder) -> None:
    dtype, zp = draw(activation())
    hw = draw(st.sampled_from([(), (3,), (2, 3)]))
    channels = draw(st.lists(st.integers(1, 40), min_size=1, max_size=3))
    xs = [b.input((*hw, c), dtype, zp) for c in channels]
    b.outputs.append(b.node(Concat, xs, (*hw, sum(channels)), dtype, zp, axis=-1))


@st.composite
def reshape(draw, b: GraphBuilder) -> None:
    """An output that is a reshaped input: the generated code must copy it."""
    dtype, zp = draw(activation())
    x = b.input((2, 3, 4), dtype, zp)
    b.outputs.append(b.node(Reshape, (x,), (24,), dtype, zp))


LAYERS = {"conv": conv, "dense": dense, "maxpool": maxpool, "avgpool": avgpool, "global_avgpool": global_avgpool,
          "add": add, "requantize": requantize, "concat": concat, "reshape": reshape}


@st.composite
def layers_graph(draw, kinds: tuple[str, ...], min_layers: int = 1, max_layers: int = 4, *,
                 every_kind: bool = False) -> Graph:
    """A graph of independent layers of the given kinds (with every_kind, one of each first)."""
    b = GraphBuilder()
    chosen = list(kinds) if every_kind else []
    chosen += draw(st.lists(st.sampled_from(kinds), min_size=max(0, min_layers - len(chosen)),
                            max_size=max(0, max_layers - len(chosen))))
    for kind in chosen:
        draw(LAYERS[kind](b))
    return b.graph()


def sample_inputs(graph: Graph, seed: int, random_samples: int = 3) -> dict[str, np.ndarray]:
    """Random samples plus the extremes: every input at its type's minimum, maximum, zero point."""
    rng = np.random.default_rng(seed)
    inputs = {}
    for name in graph.inputs:
        t = graph.tensor(name)
        lo, hi = t.dtype.lo, t.dtype.hi
        rand = rng.integers(lo, hi, (random_samples, *t.shape), endpoint=True)
        flat = np.stack([np.full(t.shape, v) for v in (lo, hi, t.zero_point)])
        inputs[name] = np.concatenate([rand, flat]).astype(np.int64)
    return inputs


def macs(graph: Graph) -> int:
    return sum(math.prod(graph.tensor(n.output).shape) * n.weights.size // n.out_channels
               for n in graph.nodes if isinstance(n, (Conv2d, Dense)))
