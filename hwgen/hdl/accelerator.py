"""The whole accelerator: one unit per IR node, wired by streams, as an Amaranth component.

Ports: `i` streams the input tensor and `o` the output tensor (raster order, channels last,
`plan.input_lanes` / `plan.output_lanes` elements per word; see `word_layout`). `perf` holds one
32-bit busy-cycle counter per entry of `perf_counters(plan)`, counting since reset.

Wiring rules: a lane converter goes wherever a producer's lanes differ from its consumer's, and a
fork with one FIFO per branch wherever a tensor has several readers (see `plan.BranchSpec`).
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import ClockDomain, ClockSignal, Module, ResetSignal, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..fpga.geometry import mac_geometry
from ..fpga.plan import Plan, tensor_links
from ..fpga.program import LayerProgram, compile_engine
from ..fpga.schedule import build_schedule
from ..ir import (Add, AvgPool, Concat, Conv2d, Dense, GlobalAvgPool, Graph, MaxPool, Node, Requantize, Reshape,
                  conv_output_hw)
from ..names import identifier
from .elementwise import AddUnit, ConcatUnit, RequantizeUnit
from .engine import MacEngine
from .pool import AvgPoolUnit, GlobalAvgPoolUnit, MaxPoolUnit
from .streams import Fork, LaneConverter, StreamFifo, word_layout, word_stream
from .window import WindowGenerator

__all__ = ["Accelerator", "Standalone", "PerfCounter", "perf_counters", "engine_programs", "COUNTER_BITS"]

COUNTER_BITS = 32


@dataclass(frozen=True)
class PerfCounter:
    kind: str   # "layer": a node's unit (engine steps for MAC layers); "window": its window generator;
                # "engine": an engine's busy cycles (any of its layers)
    name: str   # node name or engine name


def perf_counters(plan: Plan) -> list[PerfCounter]:
    counters = [PerfCounter("layer", s.node) for s in plan.layers if s.op != "Reshape"]
    counters += [PerfCounter("window", s.node) for s in plan.layers if s.window]
    counters += [PerfCounter("engine", e.name) for e in plan.engines]
    return counters


def layer_program(node: Node, graph: Graph, plan: Plan) -> LayerProgram:
    spec = plan.layer(node.name)
    lanes = spec.in_lanes[0]
    geom = mac_geometry(node, graph, lanes)
    schedule = build_schedule(geom, spec.fold.pe, spec.fold.simd)
    return LayerProgram(spec.ident, schedule, lanes, geom.vector, graph.tensor(node.inputs[0]).dtype,
                        graph.tensor(node.output).dtype, node.bias, node.requant, node.acc)


def engine_programs(graph: Graph, plan: Plan) -> dict:
    """The compiled program of every engine, by engine name."""
    return {e.name: compile_engine([layer_program(graph.node(n), graph, plan) for n in e.layers],
                                   e.fold.pe, e.fold.simd, e.requantizers) for e in plan.engines}


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


class Accelerator(wiring.Component):
    def __init__(self, graph: Graph, plan: Plan):
        self.graph, self.plan = graph, plan
        self.counters = perf_counters(plan)
        x, y = graph.tensor(graph.inputs[0]), graph.tensor(graph.outputs[0])
        super().__init__({
            "i": In(word_stream(x.dtype, plan.input_lanes)),
            "o": Out(word_stream(y.dtype, plan.output_lanes)),
            "perf": Out(unsigned(COUNTER_BITS * max(1, len(self.counters)))),
        })

    def elaborate(self, platform):
        m = Module()
        graph, plan = self.graph, self.plan
        sources = {graph.inputs[0]: (wiring.flipped(self.i), plan.input_lanes)}
        sinks: dict[tuple[str, int], tuple] = {}   # (node name, input index) -> (stream, lanes)
        busy: dict[tuple[str, str], object] = {}

        programs = engine_programs(graph, plan)
        engines, context_of = {}, {}
        for spec in plan.engines:
            engine = MacEngine(programs[spec.name], spec.lut_lanes, plan.placed(spec.name))
            m.submodules[spec.name] = engines[spec.name] = engine
            for k, name in enumerate(spec.layers):
                context_of[name] = (engine, k)
            busy["engine", spec.name] = engine.busy.any()

        for node in graph.nodes:
            spec = plan.layer(node.name)
            x = graph.tensor(node.inputs[0])
            if isinstance(node, Reshape):
                sources[node.output] = ("reshape", node.inputs[0])
                continue
            entry = None  # where the node's (first) input stream goes
            if spec.window:
                kernel = node.kernel
                pad_value = x.dtype.lo if isinstance(node, MaxPool) else x.zero_point
                dilation = getattr(node, "dilation", (1, 1))
                window = WindowGenerator(x.dtype, spec.in_lanes[0], x.shape, kernel, node.stride, dilation,
                                         node.pads, pad_value, plan.placed(f"{spec.ident}_window").get("mem"),
                                         plan.window_slack)
                m.submodules[f"{spec.ident}_window"] = window
                sinks[node.name, 0] = (window.i, spec.in_lanes[0])
                entry = window.o
                busy["window", node.name] = window.busy
            unit_in, unit_out, unit_busy = self._unit(m, node, spec, context_of)
            if entry is not None:
                wiring.connect(m, entry, unit_in[0])
            else:
                for k, stream in enumerate(unit_in):
                    sinks[node.name, k] = (stream, spec.in_lanes[k])
            if isinstance(node, Concat):  # its ready is combinational: cut the path
                fifo = StreamFifo(word_layout(graph.tensor(node.output).dtype, spec.out_lanes), 2)
                m.submodules[f"{spec.ident}_out"] = fifo
                wiring.connect(m, unit_out, fifo.i)
                unit_out = fifo.o
            sources[node.output] = (unit_out, spec.out_lanes)
            busy["layer", node.name] = unit_busy

        self._connect_tensors(m, sources, sinks)
        self._count(m, busy)
        return m

    # -- units ------------------------------------------------------------------------------------

    def _unit(self, m: Module, node: Node, spec, context_of):
        """Build the unit of a node: returns (input streams, output stream, busy signal)."""
        graph = self.graph
        x, y = graph.tensor(node.inputs[0]), graph.tensor(node.output)
        lanes = spec.in_lanes[0]
        if isinstance(node, (Conv2d, Dense)):
            engine, k = context_of[node.name]
            return [engine.input(k)], engine.output(k), engine.busy[k]
        if isinstance(node, MaxPool):
            unit = MaxPoolUnit(x.dtype, lanes, node.kernel[0] * node.kernel[1])
        elif isinstance(node, AvgPool):
            unit = AvgPoolUnit(x.dtype, y.dtype, lanes, x.shape[-1], node.kernel[0] * node.kernel[1], x.zero_point,
                               node.acc, avgpool_counts(node, x.shape[:2]), node.requants)
        elif isinstance(node, GlobalAvgPool):
            unit = GlobalAvgPoolUnit(x.dtype, y.dtype, lanes, x.shape[-1], x.shape[0] * x.shape[1], x.zero_point,
                                     node.acc, node.requant)
        elif isinstance(node, Add):
            b = graph.tensor(node.inputs[1])
            unit = AddUnit(x.dtype, b.dtype, y.dtype, lanes, x.shape[-1], node.lhs_multiplier, node.rhs_multiplier,
                           node.bias, node.acc, node.requant)
        elif isinstance(node, Requantize):
            unit = RequantizeUnit(x.dtype, y.dtype, lanes, x.shape[-1], x.zero_point, node.requant)
        elif isinstance(node, Concat):
            unit = ConcatUnit(x.dtype, lanes, [graph.tensor(t).shape[-1] for t in node.inputs])
        else:
            raise TypeError(f"no hardware for {node.op}")
        m.submodules[spec.ident] = unit
        if isinstance(node, Add):
            return [unit.a, unit.b], unit.o, unit.busy
        if isinstance(node, Concat):
            return unit.inputs(), unit.o, unit.busy
        return [unit.i], unit.o, unit.busy

    # -- wiring -------------------------------------------------------------------------------------

    def _resolve(self, sources: dict, tensor: str):
        """The stream a tensor travels on (through any reshapes) and its lanes."""
        source = sources[tensor]
        while source[0] == "reshape":
            source = sources[source[1]]
        return source

    def _connect_tensors(self, m: Module, sources: dict, sinks: dict) -> None:
        graph, plan = self.graph, self.plan
        sinks = {**sinks, ("", 0): (wiring.flipped(self.o), plan.output_lanes)}
        for link in tensor_links(graph, plan):
            stream, lanes = self._resolve(sources, link.tensor)
            assert lanes == link.lanes
            itype = graph.tensor(link.tensor).dtype
            if len(link.readers) > 1:
                fork = Fork(word_layout(itype, lanes), len(link.readers))
                m.submodules[f"{link.tag}_fork"] = fork
                wiring.connect(m, stream, fork.i)
                for j, ((consumer, k, want, depth), branch) in enumerate(zip(link.readers, fork.outputs())):
                    name = f"{link.tag}_branch{j}"
                    fifo = StreamFifo(word_layout(itype, lanes), depth, plan.placed(name).get("fifo"))
                    m.submodules[name] = fifo
                    wiring.connect(m, branch, fifo.i)
                    self._link(m, fifo.o, lanes, sinks[consumer, k][0], want, itype, name)
            else:
                (consumer, k, want, _), = link.readers
                self._link(m, stream, lanes, sinks[consumer, k][0], want, itype, link.tag)

    def _link(self, m: Module, source, lanes: int, sink, want: int, itype, tag: str) -> None:
        if lanes == want:
            wiring.connect(m, source, sink)
            return
        conv = LaneConverter(itype, lanes, want)
        m.submodules[f"{tag}_lanes{lanes}to{want}"] = conv
        wiring.connect(m, source, conv.i)
        wiring.connect(m, conv.o, sink)

    def _count(self, m: Module, busy: dict) -> None:
        for k, counter in enumerate(self.counters):
            count = Signal(COUNTER_BITS, name=f"perf_{counter.kind}_{identifier(counter.name)}")
            with m.If(busy[counter.kind, counter.name]):
                m.d.sync += count.eq(count + 1)
            m.d.comb += self.perf[k * COUNTER_BITS:(k + 1) * COUNTER_BITS].eq(count)


class Standalone(wiring.Component):
    """An accelerator as a top-level module of its own: ports clk and rst, and its `sync` domain.

    The reset is asynchronous (iCE40 and ECP5 flip-flops have one, at no cost): with reset out of
    every register's input logic, Verilator simulates the design about a third faster. Inside an
    Amaranth design, instantiate `Accelerator` itself, which runs in the parent's `sync` domain.
    """

    def __init__(self, accelerator: Accelerator):
        self.accelerator = accelerator
        super().__init__({"clk": In(1), "rst": In(1), **accelerator.signature.members})

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain(async_reset=True)
        m.d.comb += [ClockSignal("sync").eq(self.clk), ResetSignal("sync").eq(self.rst)]
        m.submodules.net = net = self.accelerator
        wiring.connect(m, wiring.flipped(self.i), net.i)
        wiring.connect(m, net.o, wiring.flipped(self.o))
        m.d.comb += self.perf.eq(net.perf)
        return m
