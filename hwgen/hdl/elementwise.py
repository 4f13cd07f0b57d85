"""Element-wise units: residual add with rescaling, requantization, and channel concatenation."""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..fixed import IntType
from ..fpga.hardware import DSP_MULTIPLY_LATENCY, ELEMENTWISE_QUEUE_DEPTH, REQUANT_LATENCY
from ..ir import Requant
from .arith import dsp_multiply
from .requant import requantize
from .streams import OutputQueue, element_shape, word_layout, word_stream
from .tables import channel_values, table

__all__ = ["AddUnit", "RequantizeUnit", "ConcatUnit", "Pipeline", "lane_requant"]



def lane_requant(m: Module, acc, rq: Requant, channels: int, lanes: int, lane: int, chunk, otype: IntType,
                  name: str, valid, param_valid):
    """Requantize lane `lane` of chunk `chunk` (its channel's multiplier and shift, if per channel)."""
    chunks = channels // lanes
    params = []
    for field in (rq.multiplier, rq.shift):
        value = table([channel_values(field, channels)[c * lanes + lane] for c in range(chunks)], chunk)
        if not isinstance(value, int):
            reg = Signal.like(value, name=f"{name}_param{len(params)}", reset_less=True)
            with m.If(param_valid):
                m.d.sync += reg.eq(value)
            value = reg
        params.append(value)
    return requantize(m, acc, params[0], params[1], rq.zero_point, rq.lo, rq.hi, rq.rounding, element_shape(otype),
                      valid=valid, max_shift=max(rq.shift), min_shift=min(rq.shift), name=name)


class Pipeline:
    """A valid bit and a channel-chunk counter travelling along `stages` registers."""

    def __init__(self, m: Module, fire, chunks: int, stages: int):
        self.chunk = Signal(range(chunks))
        with m.If(fire):
            m.d.sync += self.chunk.eq(Mux(self.chunk == chunks - 1, 0, self.chunk + 1))
        self.valid = [fire]
        self.chunks_at = [self.chunk]
        for k in range(stages):
            v, c = Signal(name=f"valid{k + 1}"), Signal(range(chunks), name=f"chunk{k + 1}", reset_less=True)
            m.d.sync += [v.eq(self.valid[-1]), c.eq(self.chunks_at[-1])]
            self.valid.append(v)
            self.chunks_at.append(c)


def one_input_front(m: Module, unit, queue_depth: int, stages: int) -> tuple[OutputQueue, object, Pipeline]:
    """The front of a pipelined one-input unit (`i`, `busy`, `otype`, `lanes`, `channels`): its output
    queue, the input taken whenever the queue has room (`fire`), and a pipeline of `stages` stages."""
    m.submodules.queue = queue = OutputQueue(word_layout(unit.otype, unit.lanes), queue_depth)
    fire = unit.i.valid & queue.room
    m.d.comb += [unit.i.ready.eq(queue.room), queue.reserve.eq(fire), unit.busy.eq(fire)]
    return queue, fire, Pipeline(m, fire, unit.channels // unit.lanes, stages)


class AddUnit(wiring.Component):
    """y = requant(a*x + b*y + bias), lane by lane, on two streams of the same shape."""

    def __init__(self, xtype: IntType, ytype: IntType, otype: IntType, lanes: int, channels: int, lhs: int, rhs: int,
                 bias: int, acc: IntType, requant: Requant):
        self.xtype, self.ytype, self.otype, self.lanes, self.channels = xtype, ytype, otype, lanes, channels
        self.lhs, self.rhs, self.bias, self.acc, self.requant = lhs, rhs, bias, acc, requant
        super().__init__({"a": In(word_stream(xtype, lanes)), "b": In(word_stream(ytype, lanes)),
                          "o": Out(word_stream(otype, lanes)), "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.queue = queue = OutputQueue(word_layout(self.otype, self.lanes), ELEMENTWISE_QUEUE_DEPTH)
        space = queue.room
        fire = self.a.valid & self.b.valid & space
        m.d.comb += [self.a.ready.eq(self.b.valid & space), self.b.ready.eq(self.a.valid & space),
                     queue.reserve.eq(fire), self.busy.eq(fire)]
        pipe = Pipeline(m, fire, self.channels // self.lanes, 1 + DSP_MULTIPLY_LATENCY + REQUANT_LATENCY)
        m.d.comb += queue.w.valid.eq(pipe.valid[-1])
        for k in range(self.lanes):
            # constant multipliers in DSP-sized chunks, so the DSP count is known
            px, _ = dsp_multiply(m, self.a.payload[k], self.lhs, f"ax{k}")
            py, _ = dsp_multiply(m, self.b.payload[k], self.rhs, f"by{k}")
            acc = Signal(signed(self.acc.bits), name=f"acc{k}", reset_less=True)
            product = DSP_MULTIPLY_LATENCY
            with m.If(pipe.valid[product]):
                m.d.sync += acc.eq(px + py + self.bias)
            out = lane_requant(m, acc, self.requant, self.channels, self.lanes, k, pipe.chunks_at[product],
                                self.otype, f"rq{k}", pipe.valid[product + 1], pipe.valid[product])
            m.d.comb += queue.w.payload[k].eq(out)
        wiring.connect(m, wiring.flipped(self.o), queue.o)
        return m


class RequantizeUnit(wiring.Component):
    """y = requant(x - zero point): a change of scale, zero point or clamp."""

    def __init__(self, itype: IntType, otype: IntType, lanes: int, channels: int, zero_point: int, requant: Requant):
        self.itype, self.otype, self.lanes, self.channels = itype, otype, lanes, channels
        self.zero_point, self.requant = zero_point, requant
        super().__init__({"i": In(word_stream(itype, lanes)), "o": Out(word_stream(otype, lanes)), "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        queue, fire, pipe = one_input_front(m, self, ELEMENTWISE_QUEUE_DEPTH, 1 + REQUANT_LATENCY)
        m.d.comb += queue.w.valid.eq(pipe.valid[-1])
        bits = max(self.itype.bits, abs(self.zero_point).bit_length()) + 2
        for k in range(self.lanes):
            acc = Signal(signed(bits), name=f"acc{k}", reset_less=True)
            with m.If(fire):
                m.d.sync += acc.eq(self.i.payload[k] - self.zero_point)
            out = lane_requant(m, acc, self.requant, self.channels, self.lanes, k, pipe.chunks_at[0], self.otype,
                                f"rq{k}", pipe.valid[1], fire)
            m.d.comb += queue.w.payload[k].eq(out)
        wiring.connect(m, wiring.flipped(self.o), queue.o)
        return m


class ConcatUnit(wiring.Component):
    """Per position, the channels of input 0, then of input 1, ... (all `lanes` per word)."""

    def __init__(self, itype: IntType, lanes: int, channels: list[int]):
        self.itype, self.lanes, self.channels = itype, lanes, list(channels)
        members = {f"i{k}": In(word_stream(itype, lanes)) for k in range(len(channels))}
        members.update({"o": Out(word_stream(itype, lanes)), "busy": Out(1)})
        super().__init__(members)

    def inputs(self) -> list:
        return [getattr(self, f"i{k}") for k in range(len(self.channels))]

    def elaborate(self, platform):
        m = Module()
        words = [c // self.lanes for c in self.channels]
        source, word = Signal(range(len(words))), Signal(range(max(words)))
        inputs = self.inputs()
        with m.Switch(source):
            for k, i in enumerate(inputs):
                with m.Case(k):
                    m.d.comb += [self.o.payload.eq(i.payload), self.o.valid.eq(i.valid), i.ready.eq(self.o.ready)]
        fire = self.o.valid & self.o.ready
        m.d.comb += self.busy.eq(fire)
        with m.If(fire), m.Switch(source):
            for k, n in enumerate(words):
                with m.Case(k):
                    with m.If(word == n - 1):
                        m.d.sync += [word.eq(0), source.eq(0 if k == len(words) - 1 else k + 1)]
                    with m.Else():
                        m.d.sync += word.eq(word + 1)
        return m
