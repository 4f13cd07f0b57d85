"""The whole accelerator: one unit per IR node, wired by streams, as an Amaranth component.

Ports: `i` streams the input tensor and `o` the output tensor (raster order, channels last,
`plan.input_lanes` / `plan.output_lanes` elements per word; see `word_layout`), or, with several
outputs, their words tagged with the output's index (`hwgen.fpga.outputs`). `perf` holds one
32-bit busy-cycle counter per entry of `perf_counters(plan)`, counting since reset.

Wiring rules: a lane converter goes wherever a producer's lanes differ from its consumer's, and a
fork with one FIFO per branch wherever a tensor has several readers (see `plan.BranchSpec`).
"""

from __future__ import annotations

from amaranth import ClockDomain, ClockSignal, Module, ResetSignal, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..fpga.hardware import COUNTER_BITS, JOIN_QUEUE_DEPTH
from ..fpga.outputs import output_mux
from ..fpga.plan import Plan, engine_programs, perf_counters, tensor_links
from ..fpga.units import unit
from ..ir import Graph
from ..names import identifier
from .engine import MacEngine
from .streams import Fork, LaneConverter, OutputMux, StreamFifo, word_layout, word_stream
from .units import BUILDERS
from .window import WindowGenerator

__all__ = ["Accelerator", "Standalone"]


class Accelerator(wiring.Component):
    def __init__(self, graph: Graph, plan: Plan):
        self.graph, self.plan = graph, plan
        self.counters = perf_counters(plan)
        self.mux = output_mux(graph, plan.output_lanes)
        x = graph.tensor(graph.inputs[0])
        if len(self.mux.streams) == 1:
            y = self.mux.streams[0]
            o = word_stream(y.dtype, y.lanes)
        else:
            o = stream.Signature(unsigned(self.mux.width))
        super().__init__({
            "i": In(word_stream(x.dtype, plan.input_lanes)),
            "o": Out(o),
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
            u = unit(node)
            if node.is_view:
                sources[node.output] = ("reshape", node.inputs[0])
                continue
            entry = None  # where the node's (first) input stream goes
            window = u.window(node, graph)
            if window is not None:
                generator = WindowGenerator(x.dtype, spec.in_lanes[0], x.shape, window.kernel, window.stride,
                                            window.dilation, window.pads, window.pad_value,
                                            plan.placed(f"{spec.ident}_window").get("mem"), plan.window_slack)
                m.submodules[f"{spec.ident}_window"] = generator
                sinks[node.name, 0] = (generator.i, spec.in_lanes[0])
                entry = generator.o
                busy["window", node.name] = generator.busy
            built = BUILDERS[type(node)](m, node, graph, spec, plan.placed(spec.ident), context_of)
            if entry is not None:
                wiring.connect(m, entry, built.inputs[0])
            else:
                for k, stream in enumerate(built.inputs):
                    sinks[node.name, k] = (stream, spec.in_lanes[k])
            unit_out = built.output
            if u.out_fifo:  # its ready is combinational: cut the path
                fifo = StreamFifo(word_layout(graph.tensor(node.output).dtype, spec.out_lanes), JOIN_QUEUE_DEPTH)
                m.submodules[f"{spec.ident}_out"] = fifo
                wiring.connect(m, unit_out, fifo.i)
                unit_out = fifo.o
            sources[node.output] = (unit_out, spec.out_lanes)
            busy["layer", node.name] = built.busy

        self._connect_tensors(m, sources, sinks)
        self._count(m, busy)
        return m

    # -- wiring -------------------------------------------------------------------------------------

    def _resolve(self, sources: dict, tensor: str):
        """The stream a tensor travels on (through any reshapes) and its lanes."""
        source = sources[tensor]
        while source[0] == "reshape":
            source = sources[source[1]]
        return source

    def _connect_tensors(self, m: Module, sources: dict, sinks: dict) -> None:
        graph, plan = self.graph, self.plan
        outputs = self.mux.streams
        if len(outputs) == 1:
            sinks = {**sinks, ("", 0): (wiring.flipped(self.o), outputs[0].lanes)}
        else:
            mux = OutputMux([word_layout(s.dtype, s.lanes) for s in outputs], self.mux.data_bits, self.mux.tag_bits)
            m.submodules.outputs = mux
            wiring.connect(m, mux.o, wiring.flipped(self.o))
            sinks = {**sinks, **{("", k): (i, s.lanes) for k, (i, s) in enumerate(zip(mux.inputs(), outputs))}}
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
        if "flash" in self.signature.members:   # a sequential engine's weights from SPI flash
            wiring.connect(m, net.flash, wiring.flipped(self.flash))
        return m
