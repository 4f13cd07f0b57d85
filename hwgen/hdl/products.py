"""Units that multiply activations: a product of two streams (Mul, also by one value per channel) and
a multiply-add by constants (Affine), each ending in a requantizer per lane; and lookup tables."""

from __future__ import annotations

import numpy as np
from amaranth import Array, Cat, Module, Mux, Signal, Value, signed
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from ..fixed import IntType
from ..fpga.hardware import (
    DSP_MULTIPLY_LATENCY,
    ELEMENTWISE_QUEUE_DEPTH,
    LOOKUP_QUEUE_DEPTH,
    REQUANT_LATENCY,
    MemoryKind,
)
from ..ir import Requant
from .arith import dsp_multiply
from .elementwise import Pipeline, lane_requant, one_input_front
from .streams import OutputQueue, element_shape, memory_attrs, word_layout, word_stream
from .tables import channel_values, table

__all__ = ["MulUnit", "AffineUnit", "LookupUnit"]


class MulUnit(wiring.Component):
    """y = requant((a - za) * (b - zb)), lane by lane. With `broadcast`, b is one vector of `channels`
    values per inference: the unit takes it whole first, then multiplies every position of a by it."""

    def __init__(self, atype: IntType, btype: IntType, otype: IntType, lanes: int, channels: int, positions: int,
                 za: int, zb: int, broadcast: bool, acc: IntType, requant: Requant):
        self.atype, self.btype, self.otype, self.lanes, self.channels = atype, btype, otype, lanes, channels
        self.positions, self.za, self.zb, self.broadcast, self.acc, self.requant = \
            positions, za, zb, broadcast, acc, requant
        super().__init__({"a": In(word_stream(atype, lanes)), "b": In(word_stream(btype, lanes)),
                          "o": Out(word_stream(otype, lanes)), "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.queue = queue = OutputQueue(word_layout(self.otype, self.lanes), ELEMENTWISE_QUEUE_DEPTH)
        chunks = self.channels // self.lanes
        space = queue.room
        if self.broadcast:
            # phase 1 takes the vector (chunks words), phase 2 streams a's positions past it
            vector = Array(Signal(word_layout(self.btype, self.lanes), name=f"vector{j}", reset_less=True)
                           for j in range(chunks))
            loaded = Signal(range(chunks + 1))
            left = Signal(range(self.positions * chunks + 1), init=self.positions * chunks)
            loading = loaded != chunks
            take = self.b.valid & loading
            m.d.comb += self.b.ready.eq(loading)
            with m.If(take):
                m.d.sync += [vector[loaded].eq(self.b.payload), loaded.eq(loaded + 1)]
            fire = self.a.valid & ~loading & space
            m.d.comb += self.a.ready.eq(~loading & space)
            with m.If(fire):
                with m.If(left == 1):
                    m.d.sync += [left.eq(self.positions * chunks), loaded.eq(0)]
                with m.Else():
                    m.d.sync += left.eq(left - 1)
            busy = fire | take
        else:
            fire = self.a.valid & self.b.valid & space
            m.d.comb += [self.a.ready.eq(self.b.valid & space), self.b.ready.eq(self.a.valid & space)]
            busy = fire
        m.d.comb += [queue.reserve.eq(fire), self.busy.eq(busy)]
        pipe = Pipeline(m, fire, chunks, 1 + DSP_MULTIPLY_LATENCY + REQUANT_LATENCY)
        m.d.comb += queue.w.valid.eq(pipe.valid[-1])
        for k in range(self.lanes):
            b = self.b.payload[k]
            if self.broadcast:  # one multiplexer per lane (the chunk's vector word), shared by the product's parts
                b = Signal(element_shape(self.btype), name=f"b{k}")
                m.d.comb += b.eq(vector[pipe.chunk][k])
            product, latency = dsp_multiply(m, self.a.payload[k] - self.za, b - self.zb, f"ab{k}")
            acc = Signal(signed(self.acc.bits), name=f"acc{k}", reset_less=True)
            with m.If(pipe.valid[latency]):
                m.d.sync += acc.eq(product)
            out = lane_requant(m, acc, self.requant, self.channels, self.lanes, k, pipe.chunks_at[latency], self.otype,
                               f"rq{k}", pipe.valid[latency + 1], pipe.valid[latency])
            m.d.comb += queue.w.payload[k].eq(out)
        wiring.connect(m, wiring.flipped(self.o), queue.o)
        return m


class AffineUnit(wiring.Component):
    """y = requant(sign[c] * ((x - zero point) << shift) + offset[c]), lane by lane: the multiply-add
    by constants the importer writes with one power of two for every channel (sign 0: the channel
    is its offset alone)."""

    def __init__(self, itype: IntType, otype: IntType, lanes: int, channels: int, zero_point: int, shift: int,
                 signs: list[int], offsets: list[int], acc: IntType, requant: Requant):
        self.itype, self.otype, self.lanes, self.channels = itype, otype, lanes, channels
        self.zero_point, self.shift, self.signs, self.offsets, self.acc, self.requant = \
            zero_point, shift, signs, offsets, acc, requant
        super().__init__({"i": In(word_stream(itype, lanes)), "o": Out(word_stream(otype, lanes)), "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        queue, fire, pipe = one_input_front(m, self, ELEMENTWISE_QUEUE_DEPTH, 2 + REQUANT_LATENCY)
        m.d.comb += queue.w.valid.eq(pipe.valid[-1])
        signs = channel_values(self.signs, self.channels)
        offsets = channel_values(self.offsets, self.channels)
        bits = max(self.itype.bits, abs(self.zero_point).bit_length()) + 2
        for k in range(self.lanes):
            lane = range(k, self.channels, self.lanes)
            d = Signal(signed(bits), name=f"d{k}", reset_less=True)
            with m.If(fire):
                m.d.sync += d.eq(self.i.payload[k] - self.zero_point)
            sign = table([signs[c] for c in lane], pipe.chunks_at[1])
            offset = table([offsets[c] for c in lane], pipe.chunks_at[1])
            scaled = d << self.shift
            if isinstance(sign, int):
                term = {1: scaled, -1: -scaled, 0: 0}[sign]
            else:
                term = Mux(sign == 1, scaled, Mux(sign == 0, 0, -scaled))
            acc = Signal(signed(self.acc.bits), name=f"acc{k}", reset_less=True)
            with m.If(pipe.valid[1]):
                m.d.sync += acc.eq(term + offset)
            out = lane_requant(m, acc, self.requant, self.channels, self.lanes, k, pipe.chunks_at[1], self.otype,
                               f"rq{k}", pipe.valid[2], pipe.valid[1])
            m.d.comb += queue.w.payload[k].eq(out)
        wiring.connect(m, wiring.flipped(self.o), queue.o)
        return m


class LookupUnit(wiring.Component):
    """y = table[x - lo] lane by lane: each lane reads a ROM of the tables its channels use (one
    table: the ROM is the table), addressed by the table's slot and the input value."""

    def __init__(self, itype: IntType, otype: IntType, lanes: int, channels: int, tables: np.ndarray,
                 channel_tables: tuple[int, ...], lane_tables: list[list[int]], placed: dict[str, MemoryKind]):
        self.itype, self.otype, self.lanes, self.channels = itype, otype, lanes, channels
        self.tables, self.channel_tables, self.lane_tables, self.placed = tables, channel_tables, lane_tables, placed
        super().__init__({"i": In(word_stream(itype, lanes)), "o": Out(word_stream(otype, lanes)), "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        queue, fire, pipe = one_input_front(m, self, LOOKUP_QUEUE_DEPTH, 1)
        m.d.comb += queue.w.valid.eq(pipe.valid[1])
        per_channel = self.channel_tables or (0,) * self.channels
        bits = self.itype.bits
        for k, used in enumerate(self.lane_tables):
            init = [int(v) for t in used for v in self.tables[t]]
            rom = memory.Memory(shape=element_shape(self.otype), depth=len(init), init=init,
                                attrs=memory_attrs(self.placed.get(f"table{k}")))
            m.submodules[f"table{k}"] = rom
            read = rom.read_port()
            x = Value.cast(self.i.payload[k])
            index = Cat(x[:bits - 1], ~x[bits - 1]) if self.itype.signed else x  # x - lo
            slot = table([used.index(per_channel[c]) for c in range(k, self.channels, self.lanes)], pipe.chunk)
            m.d.comb += read.addr.eq(index if len(used) == 1 else Cat(index, slot))
            m.d.comb += queue.w.payload[k].eq(read.data)
        wiring.connect(m, wiring.flipped(self.o), queue.o)
        return m
