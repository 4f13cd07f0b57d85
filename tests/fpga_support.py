"""Shared by the FPGA tests: small IR graphs of one op family, and running an accelerator on them.

Graph builders take the op's parameters and a numpy Generator for weights and requantization
constants, and return a verified IR graph with derived accumulators. `simulate` runs an
accelerator in Amaranth's simulator with random stalls on both streams; `rtl_accelerator` builds
it with Verilator.
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from amaranth.sim import Simulator
from hypothesis import strategies as st

from hwgen import golden
from hwgen.fixed import IntType, Rounding
from hwgen.fpga.outputs import output_mux
from hwgen.fpga.plan import WINDOW_SLACK_ROWS, Plan, make_plan, perf_counters
from hwgen.hdl.accelerator import Accelerator
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
from hwgen.passes.accumulators import assign_accumulators
from hwgen.sim.rtl import RtlAccelerator, pack_words, unpack_words

# -- building graphs --------------------------------------------------------------------------------


def tensor(name: str, shape, dtype: IntType, zero_point: int = 0) -> Tensor:
    return Tensor(name, tuple(shape), dtype, zero_point, (1.0,))


def random_requant(rng: np.random.Generator, bound: int, out: Tensor, channels: int, rounding: Rounding,
                   multiplier_bits: int = 31, per_channel: bool = True, relu: bool = False) -> Requant:
    """Multipliers and shifts that map |acc| <= bound to roughly the output range (some saturate)."""
    n = channels if per_channel else 1
    span = out.dtype.hi - out.dtype.lo
    mult, shift = [], []
    for _ in range(n):
        m = int(rng.integers(1 << (multiplier_bits - 1), 1 << multiplier_bits))
        s = multiplier_bits + max(0, bound.bit_length() - max(1, span.bit_length()) + int(rng.integers(-2, 3)))
        mult.append(m)
        shift.append(min(62, max(0, s)))
    lo = max(out.dtype.lo, out.zero_point) if relu else out.dtype.lo
    return Requant(tuple(mult), tuple(shift), out.zero_point, lo, out.dtype.hi, rounding)


def exact_output(bound: int) -> IntType:
    """An output type that holds every accumulator value: with exact_requant, y == acc."""
    return IntType(min(32, bound.bit_length() + 2), True)


def exact_requant(out: Tensor, rounding: Rounding) -> Requant:
    """y = acc exactly (M / 2**s = 1), so a test sees every accumulator bit."""
    return Requant((1 << 30,), (30,), out.zero_point, out.dtype.lo, out.dtype.hi, rounding)


def _finish(name: str, tensors: list[Tensor], nodes: list, inputs, outputs) -> Graph:
    graph = Graph(name, {t.name: t for t in tensors}, tuple(nodes), tuple(inputs), tuple(outputs))
    return verify(assign_accumulators(graph))


def _weights(rng, shape, bits: int, sparsity: float) -> np.ndarray:
    w = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), shape)
    return np.where(rng.random(shape) < sparsity, 0, w)


def conv_graph(rng, *, hw, cin, cout, kernel, stride=(1, 1), dilation=(1, 1), pads=(0, 0, 0, 0), groups=1,
               xtype=IntType(8, True), ytype=IntType(8, True), wbits=8, sparsity=0.0, rounding=Rounding.RNE,
               zx=None, zy=None, exact=False) -> Graph:
    """One Conv2d; `exact`: an output as wide as the accumulator, y = acc."""
    zx = int(rng.integers(xtype.lo, xtype.hi + 1)) if zx is None else zx
    x = tensor("x", (*hw, cin), xtype, zx)
    oh, ow = conv_output_hw(hw, kernel, stride, dilation, pads)
    w = _weights(rng, (cout, *kernel, cin // groups), wbits, sparsity)
    bias = rng.integers(-1000, 1000, cout)
    probe = Conv2d("conv", ("x",), ("y",), w, bias, stride, dilation, pads, groups, IntType(32, True), None)
    bound = probe.accumulator_bound({"x": x})
    if exact:
        y = tensor("y", (oh, ow, cout), exact_output(bound), 0)
        rq = exact_requant(y, rounding)
    else:
        zy = int(rng.integers(ytype.lo, ytype.hi + 1)) if zy is None else zy
        y = tensor("y", (oh, ow, cout), ytype, zy)
        rq = random_requant(rng, bound, y, cout, rounding)
    node = Conv2d("conv", ("x",), ("y",), w, bias, stride, dilation, pads, groups, IntType(32, True), rq)
    return _finish("conv", [x, y], [node], ["x"], ["y"])


def dense_graph(rng, *, rows, k, cout, xtype=IntType(8, True), ytype=IntType(8, True), wbits=8, sparsity=0.0,
                rounding=Rounding.RNE, exact=False) -> Graph:
    x = tensor("x", (*rows, k), xtype, int(rng.integers(xtype.lo, xtype.hi + 1)))
    w = _weights(rng, (cout, k), wbits, sparsity)
    bias = rng.integers(-1000, 1000, cout)
    probe = Dense("fc", ("x",), ("y",), w, bias, IntType(32, True), None)
    bound = probe.accumulator_bound({"x": x})
    if exact:
        y = tensor("y", (*rows, cout), exact_output(bound), 0)
        rq = exact_requant(y, rounding)
    else:
        y = tensor("y", (*rows, cout), ytype, int(rng.integers(ytype.lo, ytype.hi + 1)))
        rq = random_requant(rng, bound, y, cout, rounding)
    return _finish("dense", [x, y], [Dense("fc", ("x",), ("y",), w, bias, IntType(32, True), rq)], ["x"], ["y"])


def maxpool_graph(rng, *, hw, c, kernel, stride, dilation=(1, 1), pads=(0, 0, 0, 0), xtype=IntType(8, True)) -> Graph:
    zp = int(rng.integers(xtype.lo, xtype.hi + 1))
    x = tensor("x", (*hw, c), xtype, zp)
    oh, ow = conv_output_hw(hw, kernel, stride, dilation, pads)
    y = tensor("y", (oh, ow, c), xtype, zp)
    return _finish("maxpool", [x, y], [MaxPool("pool", ("x",), ("y",), kernel, stride, dilation, pads)], ["x"], ["y"])


def avgpool_graph(rng, *, hw, c, kernel, stride, pads=(0, 0, 0, 0), include_pad=False, xtype=IntType(8, True),
                  ytype=IntType(8, True), rounding=Rounding.RNE) -> Graph:
    x = tensor("x", (*hw, c), xtype, int(rng.integers(xtype.lo, xtype.hi + 1)))
    oh, ow = conv_output_hw(hw, kernel, stride, (1, 1), pads)
    y = tensor("y", (oh, ow, c), ytype, int(rng.integers(ytype.lo, ytype.hi + 1)))
    from hwgen.fpga.units import avgpool_counts
    probe = AvgPool("pool", ("x",), ("y",), kernel, stride, pads, include_pad, IntType(32, True), {})
    counts = sorted({n for row in avgpool_counts(probe, hw) for n in row})
    bound = probe.accumulator_bound({"x": x})
    requants = {n: random_requant(rng, bound * n // (kernel[0] * kernel[1]) + 1, y, c, rounding,
                                  per_channel=bool(rng.integers(2))) for n in counts}
    node = AvgPool("pool", ("x",), ("y",), kernel, stride, pads, include_pad, IntType(32, True), requants)
    return _finish("avgpool", [x, y], [node], ["x"], ["y"])


def gap_graph(rng, *, hw, c, xtype=IntType(8, True), ytype=IntType(8, True), rounding=Rounding.RNE,
              flatten=False) -> Graph:
    x = tensor("x", (*hw, c), xtype, int(rng.integers(xtype.lo, xtype.hi + 1)))
    y = tensor("y", (1, 1, c), ytype, int(rng.integers(ytype.lo, ytype.hi + 1)))
    probe = GlobalAvgPool("gap", ("x",), ("y",), IntType(32, True), None)
    rq = random_requant(rng, probe.accumulator_bound({"x": x}), y, c, rounding, per_channel=bool(rng.integers(2)))
    nodes, tensors, out = [GlobalAvgPool("gap", ("x",), ("y",), IntType(32, True), rq)], [x, y], "y"
    if flatten:
        tensors.append(tensor("z", (c,), ytype, y.zero_point))
        nodes.append(Reshape("flatten", ("y",), ("z",)))
        out = "z"
    return _finish("gap", tensors, nodes, ["x"], [out])


def add_graph(rng, *, hw, c, xtype=IntType(8, True), ytype=IntType(8, True), rounding=Rounding.RNE) -> Graph:
    """Add(x, requantize(x)): a fork, a skip branch and a residual join."""
    x = tensor("x", (*hw, c), xtype, int(rng.integers(xtype.lo, xtype.hi + 1)))
    r = tensor("r", (*hw, c), xtype, int(rng.integers(xtype.lo, xtype.hi + 1)))
    y = tensor("y", (*hw, c), ytype, int(rng.integers(ytype.lo, ytype.hi + 1)))
    rq1 = random_requant(rng, xtype.hi - xtype.lo, r, c, rounding)
    a, b = int(rng.integers(-(1 << 18), 1 << 18)), int(rng.integers(-(1 << 18), 1 << 18))
    bias = int(rng.integers(-(1 << 20), 1 << 20))
    probe = Add("add", ("x", "r"), ("y",), a, b, bias, IntType(32, True), None)
    rq2 = random_requant(rng, probe.accumulator_bound({"x": x, "r": r}), y, c, rounding)
    nodes = [Requantize("rq", ("x",), ("r",), rq1), Add("add", ("x", "r"), ("y",), a, b, bias, IntType(32, True), rq2)]
    return _finish("add", [x, r, y], nodes, ["x"], ["y"])


def concat_graph(rng, *, hw, c1, c2, xtype=IntType(8, True), rounding=Rounding.RNE) -> Graph:
    """Concat(conv1x1(x) -> c1 channels, x with c2 channels) along channels: a fork, a join of
    two streams of different widths."""
    zp = int(rng.integers(xtype.lo, xtype.hi + 1))
    x = tensor("x", (*hw, c2), xtype, zp)
    r = tensor("r", (*hw, c1), xtype, zp)
    y = tensor("y", (*hw, c1 + c2), xtype, zp)
    w = _weights(rng, (c1, 1, 1, c2), 6, 0.3)
    bias = rng.integers(-300, 300, c1)
    probe = Conv2d("conv", ("x",), ("r",), w, bias, acc=IntType(32, True), requant=None)
    rq = random_requant(rng, probe.accumulator_bound({"x": x}), r, c1, rounding)
    nodes = [Conv2d("conv", ("x",), ("r",), w, bias, acc=IntType(32, True), requant=rq),
             Concat("cat", ("r", "x"), ("y",), -1)]
    return _finish("concat", [x, r, y], nodes, ["x"], ["y"])


# -- hypothesis strategies ---------------------------------------------------------------------------

int_types = st.builds(IntType, st.integers(2, 8), st.booleans())
roundings = st.sampled_from(list(Rounding))
seeds = st.integers(0, 2**32 - 1)
slacks = st.sampled_from([0, WINDOW_SLACK_ROWS])  # line buffers with and without slack rows


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


@dataclass(frozen=True)
class Case:
    """A graph, the --fold options, input lanes and multiplier lanes in logic (of engine0) to plan
    it with, and a seed for its inputs."""

    graph: Graph
    folds: tuple[str, ...] = ()
    lanes: tuple[tuple[str, int], ...] = ()
    seed: int = 0
    lut_lanes: int = 0
    window_slack: int = WINDOW_SLACK_ROWS

    def plan(self) -> Plan:
        plan = make_plan(self.graph, folds=self.folds, lanes=dict(self.lanes), lut_lanes={"engine0": self.lut_lanes})
        return dataclasses.replace(plan, window_slack=self.window_slack)


@st.composite
def windows(draw, max_hw=5, max_kernel=3, max_stride=2, max_dilation=2, max_pad=2, pad_below_kernel=False):
    """(hw, kernel, stride, dilation, pads) with at least one output position."""
    kernel = (draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel)))
    dilation = (draw(st.integers(1, max_dilation)), draw(st.integers(1, max_dilation)))
    stride = (draw(st.integers(1, max_stride)), draw(st.integers(1, max_stride)))
    limit = [min(max_pad, k - 1) if pad_below_kernel else max_pad for k in kernel]
    pads = (draw(st.integers(0, limit[0])), draw(st.integers(0, limit[1])),
            draw(st.integers(0, limit[0])), draw(st.integers(0, limit[1])))
    span = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
    hw = (draw(st.integers(max(1, span[0] - pads[0] - pads[2]), max(max_hw, span[0]))),
          draw(st.integers(max(1, span[1] - pads[1] - pads[3]), max(max_hw, span[1]))))
    return hw, kernel, stride, dilation, pads


@st.composite
def conv_cases(draw, max_channels=4):
    hw, kernel, stride, dilation, pads = draw(windows())
    cin = draw(st.integers(1, max_channels))
    groups = draw(st.sampled_from(divisors(cin)))
    cout = groups * draw(st.integers(1, 2))
    rng = np.random.default_rng(draw(seeds))
    graph = conv_graph(rng, hw=hw, cin=cin, cout=cout, kernel=kernel, stride=stride, dilation=dilation, pads=pads,
                       groups=groups, xtype=draw(int_types), ytype=draw(int_types), wbits=draw(st.integers(2, 9)),
                       sparsity=draw(st.sampled_from([0.0, 0.5, 0.9])), rounding=draw(roundings),
                       exact=draw(st.booleans()))
    k = kernel[0] * kernel[1] * cin // groups
    fold = f"conv={draw(st.sampled_from(divisors(cout)))},{draw(st.sampled_from(divisors(k)))}"
    lanes = draw(st.sampled_from(divisors(cin)))
    return Case(graph, (fold,), (("conv", lanes),), draw(seeds), draw(st.integers(0, 4)), draw(slacks))


@st.composite
def dense_cases(draw):
    k, cout = draw(st.integers(1, 24)), draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(seeds))
    graph = dense_graph(rng, rows=draw(st.sampled_from([(), (2,), (2, 3)])), k=k, cout=cout, xtype=draw(int_types),
                        ytype=draw(int_types), wbits=draw(st.integers(2, 9)),
                        sparsity=draw(st.sampled_from([0.0, 0.5, 0.9])), rounding=draw(roundings),
                        exact=draw(st.booleans()))
    fold = f"fc={draw(st.sampled_from(divisors(cout)))},{draw(st.sampled_from(divisors(k)))}"
    return Case(graph, (fold,), (("fc", draw(st.sampled_from(divisors(k)))),), draw(seeds), draw(st.integers(0, 4)))


@st.composite
def maxpool_cases(draw):
    hw, kernel, stride, dilation, pads = draw(windows(pad_below_kernel=True))
    c = draw(st.integers(1, 4))
    graph = maxpool_graph(np.random.default_rng(draw(seeds)), hw=hw, c=c, kernel=kernel, stride=stride,
                          dilation=dilation, pads=pads, xtype=draw(int_types))
    return Case(graph, (), (("pool", draw(st.sampled_from(divisors(c)))),), draw(seeds), window_slack=draw(slacks))


@st.composite
def avgpool_cases(draw):
    hw, kernel, stride, _, pads = draw(windows(max_dilation=1, pad_below_kernel=True))
    c = draw(st.integers(1, 4))
    graph = avgpool_graph(np.random.default_rng(draw(seeds)), hw=hw, c=c, kernel=kernel, stride=stride, pads=pads,
                          include_pad=draw(st.booleans()), xtype=draw(int_types), ytype=draw(int_types),
                          rounding=draw(roundings))
    return Case(graph, (), (("pool", draw(st.sampled_from(divisors(c)))),), draw(seeds), window_slack=draw(slacks))


@st.composite
def gap_cases(draw):
    c = draw(st.integers(1, 6))
    graph = gap_graph(np.random.default_rng(draw(seeds)), hw=(draw(st.integers(1, 4)), draw(st.integers(1, 4))), c=c,
                      xtype=draw(int_types), ytype=draw(int_types), rounding=draw(roundings),
                      flatten=draw(st.booleans()))
    return Case(graph, (), (("gap", draw(st.sampled_from(divisors(c)))),), draw(seeds))


@st.composite
def add_cases(draw):
    c = draw(st.integers(1, 6))
    graph = add_graph(np.random.default_rng(draw(seeds)), hw=(draw(st.integers(1, 4)), draw(st.integers(1, 4))), c=c,
                      xtype=draw(int_types), ytype=draw(int_types), rounding=draw(roundings))
    return Case(graph, (), (("add", draw(st.sampled_from(divisors(c)))), ("rq", draw(st.sampled_from(divisors(c))))),
                draw(seeds))


@st.composite
def concat_cases(draw):
    c1, c2 = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    graph = concat_graph(np.random.default_rng(draw(seeds)), hw=(draw(st.integers(1, 4)), draw(st.integers(1, 4))),
                         c1=c1, c2=c2, xtype=draw(int_types), rounding=draw(roundings))
    fold = f"conv={draw(st.sampled_from(divisors(c1)))},{draw(st.sampled_from(divisors(c2)))}"
    lanes = (("cat", draw(st.sampled_from(divisors(math.gcd(c1, c2))))), ("conv", draw(st.sampled_from(divisors(c2)))))
    return Case(graph, (fold,), lanes, draw(seeds))


# -- running -------------------------------------------------------------------------------------------


def to_verilog(graph: Graph, plan: Plan) -> str:
    from hwgen.backends.fpga import to_verilog as emit
    return emit(graph, plan)


def random_inputs(graph: Graph, batch: int, seed: int = 0) -> np.ndarray:
    t = graph.tensor(graph.inputs[0])
    return np.random.default_rng(seed).integers(t.dtype.lo, t.dtype.hi + 1, (batch, *t.shape))


def expected(graph: Graph, x: np.ndarray) -> np.ndarray:
    return golden.run_graph(graph, {graph.inputs[0]: x})[graph.outputs[0]]


def _word_ints(limbs: np.ndarray) -> list[int]:
    return [sum(int(v) << (32 * k) for k, v in enumerate(row)) for row in limbs]


def simulate(graph: Graph, plan: Plan, x: np.ndarray, *, stall_prob: float = 0.0, seed: int = 0,
             max_cycles: int = 200_000) -> np.ndarray:
    """Run the accelerator in Amaranth's simulator; both streams stall at random with stall_prob."""
    dut = Accelerator(graph, plan)
    xt, yt = graph.tensor(graph.inputs[0]), graph.tensor(graph.outputs[0])
    words = _word_ints(pack_words(x, xt.dtype, plan.input_lanes))
    n_out = x.shape[0] * yt.size // plan.output_lanes[0]
    out: list[int] = []
    sim = Simulator(dut)
    sim.add_clock(1e-6)

    async def producer(ctx):
        rng = random.Random(seed)
        for word in words:
            while rng.random() < stall_prob:
                await ctx.tick()
            ctx.set(dut.i.payload.as_value(), word)
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)

    async def consumer(ctx):
        rng = random.Random(seed + 1)
        cycles = 0
        while len(out) < n_out:
            ready = rng.random() >= stall_prob
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload.as_value())
            if ready and valid:
                out.append(payload)
            cycles += 1
            assert cycles < max_cycles, f"timeout: {len(out)}/{n_out} output words after {cycles} cycles"

    sim.add_testbench(producer, background=True)
    sim.add_testbench(consumer)
    sim.run()
    width = (plan.output_lanes[0] * yt.dtype.bits + 31) // 32
    limbs = np.array([[(w >> (32 * k)) & 0xFFFF_FFFF for k in range(width)] for w in out], dtype=np.uint32)
    return unpack_words(limbs, yt.dtype, plan.output_lanes[0], yt.shape)


def rtl_accelerator(graph: Graph, plan: Plan, cache_dir: Path | None = None) -> RtlAccelerator:
    xt = graph.tensor(graph.inputs[0])
    return RtlAccelerator.build(
        to_verilog(graph, plan), plan.top, cache_dir=cache_dir, in_type=xt.dtype, in_lanes=plan.input_lanes,
        in_shape=xt.shape, outputs=output_mux(graph, plan.output_lanes),
        counter_names=[f"{c.kind}:{c.name}" for c in perf_counters(plan)], expected_interval=plan.interval)
