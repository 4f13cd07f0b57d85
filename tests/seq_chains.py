"""Random chains of layers the sequential engine runs, as IR graphs (a hypothesis strategy).

Hypothesis draws the structure (input map and type, each layer's op, kernel, stride, dilation,
padding, groups, output type, rounding); numpy fills weights and requantization constants from a
drawn seed. Every layer reads the one before, as the sequential engine requires.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from hwgen.fixed import IntType, Rounding
from hwgen.fpga.units import avgpool_counts
from hwgen.ir import (
    AvgPool,
    Conv2d,
    Dense,
    GlobalAvgPool,
    Graph,
    MaxPool,
    Requantize,
    Reshape,
    Tensor,
    conv_output_hw,
    verify,
)
from hwgen.passes.accumulators import assign_accumulators
from tests.fpga_support import random_requant

KINDS = ("conv", "depthwise", "maxpool", "avgpool", "gap", "requantize", "dense")

types = st.builds(IntType, st.integers(2, 8), st.booleans())


@st.composite
def chains(draw, max_layers: int = 3, max_hw: int = 7, max_channels: int = 9) -> Graph:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    rounding = draw(st.sampled_from(list(Rounding)))
    tensors: dict[str, Tensor] = {}

    def new_tensor(shape, dtype=None) -> Tensor:
        dtype = dtype or draw(types)
        t = Tensor(f"t{len(tensors)}", tuple(shape), dtype, int(rng.integers(dtype.lo, dtype.hi + 1)), (1.0,))
        tensors[t.name] = t
        return t

    h, w, c = (draw(st.integers(1, max_hw)), draw(st.integers(1, max_hw)), draw(st.integers(1, max_channels)))
    x = new_tensor((h, w, c))
    current, nodes = x, []
    for k in range(draw(st.integers(1, max_layers))):
        is_map = len(current.shape) == 3
        kind = draw(st.sampled_from(KINDS if is_map else ("dense", "requantize")))
        name = f"{kind}{k}"
        if kind in ("conv", "depthwise", "maxpool", "avgpool"):
            h, w, c = current.shape
            kh, kw = draw(st.integers(1, min(3, h + 2))), draw(st.integers(1, min(3, w + 2)))
            stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
            dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if kind != "avgpool" else (1, 1)
            span = [(kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1]
            pads = tuple(draw(st.integers(0, span[i % 2] - 1)) for i in range(4))
            if kind == "avgpool":
                pads = pads if draw(st.booleans()) else (0, 0, 0, 0)
            if h + pads[0] + pads[2] < span[0] or w + pads[1] + pads[3] < span[1]:
                continue
            oh, ow = conv_output_hw((h, w), (kh, kw), stride, dilation, pads)
        if kind in ("conv", "depthwise"):
            if kind == "depthwise":
                groups, cout = c, c * draw(st.integers(1, 2))
            else:
                groups = draw(st.sampled_from([g for g in range(1, c + 1) if c % g == 0]))
                cout = groups * draw(st.integers(1, max(1, max_channels // groups)))
            weights = rng.integers(-128, 128, (cout, kh, kw, c // groups))
            weights = np.where(rng.random(weights.shape) < draw(st.sampled_from([0.0, 0.5, 0.9])), 0, weights)
            bias = rng.integers(-2000, 2000, cout)
            probe = Conv2d(name, (current.name,), ("?",), weights, bias, stride, dilation, pads, groups)
            y = new_tensor((oh, ow, cout))
            rq = random_requant(rng, probe.accumulator_bound(tensors), y, cout, rounding, relu=draw(st.booleans()))
            nodes.append(Conv2d(name, (current.name,), (y.name,), weights, bias, stride, dilation, pads, groups,
                                IntType(32, True), rq))
        elif kind == "maxpool":
            y = Tensor(f"t{len(tensors)}", (oh, ow, c), current.dtype, current.zero_point, (1.0,))
            tensors[y.name] = y
            nodes.append(MaxPool(name, (current.name,), (y.name,), (kh, kw), stride, dilation, pads))
        elif kind == "avgpool":
            y = new_tensor((oh, ow, c))
            include = True if any(pads) else draw(st.booleans())  # border windows alike (see the refusal test)
            probe = AvgPool(name, (current.name,), ("?",), (kh, kw), stride, pads, include, IntType(32, True), {})
            counts = sorted({n for row in avgpool_counts(probe, (h, w)) for n in row})
            requants = {n: random_requant(rng, probe.accumulator_bound(tensors) * n // (kh * kw) + 1, y, c, rounding)
                        for n in counts}
            nodes.append(AvgPool(name, (current.name,), (y.name,), (kh, kw), stride, pads, include,
                                 IntType(32, True), requants))
        elif kind == "gap":
            y = new_tensor((1, 1, current.shape[2]))
            probe = GlobalAvgPool(name, (current.name,), ("?",), IntType(32, True), None)
            rq = random_requant(rng, probe.accumulator_bound(tensors), y, current.shape[2], rounding)
            nodes.append(GlobalAvgPool(name, (current.name,), (y.name,), IntType(32, True), rq))
        elif kind == "requantize":
            y = new_tensor(current.shape)
            span = current.dtype.hi - current.dtype.lo
            nodes.append(Requantize(name, (current.name,), (y.name,),
                                    random_requant(rng, span, y, current.shape[-1], rounding)))
        else:  # dense, over the flattened map
            if is_map:
                flat = Tensor(f"t{len(tensors)}", (int(np.prod(current.shape)),), current.dtype, current.zero_point,
                              (1.0,))
                tensors[flat.name] = flat
                nodes.append(Reshape(f"flatten{k}", (current.name,), (flat.name,)))
                current = flat
            cout = draw(st.integers(1, max_channels))
            weights = rng.integers(-128, 128, (cout, current.shape[0]))
            bias = rng.integers(-2000, 2000, cout)
            probe = Dense(name, (current.name,), ("?",), weights, bias)
            y = new_tensor((cout,))
            rq = random_requant(rng, probe.accumulator_bound(tensors), y, cout, rounding)
            nodes.append(Dense(name, (current.name,), (y.name,), weights, bias, IntType(32, True), rq))
        current = y
    if not nodes:
        y = new_tensor(current.shape)
        nodes.append(Requantize("requantize", (current.name,), (y.name,),
                                random_requant(rng, current.dtype.hi - current.dtype.lo, y, current.shape[-1],
                                               rounding)))
        current = y
    used = {x.name} | {n.output for n in nodes}
    graph = Graph("chain", {n: t for n, t in tensors.items() if n in used}, tuple(nodes), (x.name,), (current.name,))
    return verify(assign_accumulators(graph))


def random_batch(graph: Graph, batch: int, seed: int) -> np.ndarray:
    t = graph.tensor(graph.inputs[0])
    return np.random.default_rng(seed).integers(t.dtype.lo, t.dtype.hi + 1, (batch, *t.shape))
