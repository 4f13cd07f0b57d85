"""Pooling units: max and average over windows (fed by a WindowGenerator), and global average.

The window units see, for every output position and chunk of `lanes` channels, the window's
`taps` words in a row, so each keeps just one running value per lane.
"""

from __future__ import annotations

from collections.abc import Mapping

from amaranth import Array, Module, Mux, Signal, signed, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from ..fixed import IntType
from ..fpga.hardware import MAXPOOL_QUEUE_DEPTH, POOL_QUEUE_DEPTH, REQUANT_LATENCY
from ..ir import Requant
from .requant import requantize
from .streams import OutputQueue, element_shape, word_layout, word_stream
from .tables import channel_values, table

__all__ = ["MaxPoolUnit", "AvgPoolUnit", "GlobalAvgPoolUnit"]



class MaxPoolUnit(wiring.Component):
    """The maximum of every `taps` consecutive words, lane by lane."""

    def __init__(self, itype: IntType, lanes: int, taps: int):
        self.itype, self.lanes, self.taps = itype, lanes, taps
        super().__init__({"i": In(word_stream(itype, lanes)), "o": Out(word_stream(itype, lanes)), "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        layout = word_layout(self.itype, self.lanes)
        m.submodules.queue = queue = OutputQueue(layout, MAXPOOL_QUEUE_DEPTH)
        tap = Signal(range(self.taps))
        best = [Signal(element_shape(self.itype), name=f"best{k}", reset_less=True) for k in range(self.lanes)]
        last = tap == self.taps - 1
        fire = self.i.valid & self.i.ready
        m.d.comb += [self.i.ready.eq(~last | queue.room), queue.reserve.eq(fire & last), self.busy.eq(fire)]
        with m.If(fire):
            m.d.sync += tap.eq(Mux(last, 0, tap + 1))
        # The input word is registered before it is compared (Fmax: it comes from a queue's read mux).
        taken, first, final = Signal(), Signal(reset_less=True), Signal(reset_less=True)
        m.d.sync += [taken.eq(fire), first.eq(tap == 0), final.eq(last), queue.w.valid.eq(taken & final)]
        for k in range(self.lanes):
            x = Signal(element_shape(self.itype), name=f"x{k}", reset_less=True)
            with m.If(fire):
                m.d.sync += x.eq(self.i.payload[k])
            larger = Mux(x > best[k], x, best[k]) if self.taps > 1 else x
            with m.If(taken):
                m.d.sync += best[k].eq(Mux(first, x, larger))
                m.d.sync += queue.w.payload[k].eq(Mux(first, x, larger))
        wiring.connect(m, wiring.flipped(self.o), queue.o)
        return m


class AvgPoolUnit(wiring.Component):
    """Sum of (x - zero point) over each window, requantized by the window's count of valid taps.

    `counts[oy][ox]` is the count at each output position and `requants[count]` its
    requantization (one multiplier and shift per tensor or per channel).
    """

    def __init__(self, itype: IntType, otype: IntType, lanes: int, channels: int, taps: int, zero_point: int,
                 acc: IntType, counts: list[list[int]], requants: Mapping[int, Requant]):
        self.itype, self.otype, self.lanes, self.channels, self.taps = itype, otype, lanes, channels, taps
        self.zero_point, self.acc, self.counts, self.requants = zero_point, acc, counts, dict(requants)
        super().__init__({"i": In(word_stream(itype, lanes)), "o": Out(word_stream(otype, lanes)), "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        oh, ow = len(self.counts), len(self.counts[0])
        chunks = self.channels // self.lanes
        classes = sorted(self.requants)
        rounding = {rq.rounding for rq in self.requants.values()}
        assert len(rounding) == 1, "one rounding mode per node"
        m.submodules.queue = queue = OutputQueue(word_layout(self.otype, self.lanes), POOL_QUEUE_DEPTH)
        tap, chunk = Signal(range(self.taps)), Signal(range(chunks))
        oy, ox = Signal(range(oh)), Signal(range(ow))
        last = tap == self.taps - 1
        fire = self.i.valid & self.i.ready
        m.d.comb += [self.i.ready.eq(~last | queue.room), queue.reserve.eq(fire & last), self.busy.eq(fire)]
        with m.If(fire):
            m.d.sync += tap.eq(Mux(last, 0, tap + 1))
            with m.If(last):
                m.d.sync += chunk.eq(Mux(chunk == chunks - 1, 0, chunk + 1))
                with m.If(chunk == chunks - 1):
                    m.d.sync += ox.eq(Mux(ox == ow - 1, 0, ox + 1))
                    with m.If(ox == ow - 1):
                        m.d.sync += oy.eq(Mux(oy == oh - 1, 0, oy + 1))
        # the requantization class of this output position, and per class and chunk its parameters
        klass = Array(Array(classes.index(c) for c in row) for row in self.counts)[oy][ox]
        m.d.comb += queue.w.valid.eq(_valid_after_requant(m, fire & last))
        for k in range(self.lanes):
            diff = self.i.payload[k] - self.zero_point
            total = Signal(signed(self.acc.bits), name=f"sum{k}", reset_less=True)
            final = Signal(signed(self.acc.bits), name=f"final{k}", reset_less=True)
            with m.If(fire):
                m.d.sync += total.eq(Mux(tap == 0, diff, total + diff))
            m.d.sync += final.eq(Mux(tap == 0, diff, total + diff))
            params = {}
            for field in ("multiplier", "shift"):
                values = [channel_values(getattr(self.requants[c], field), self.channels)[ch * self.lanes + k]
                          for c in classes for ch in range(chunks)]
                params[field] = table(values, klass * chunks + chunk)
            params = {f: _delay(m, v, f"{f}{k}") for f, v in params.items()}
            rq = self.requants[classes[0]]
            lo = table([self.requants[c].lo for c in classes], klass)
            hi = table([self.requants[c].hi for c in classes], klass)
            lo, hi = _delay(m, lo, f"lo{k}"), _delay(m, hi, f"hi{k}")
            max_shift = max(max(r.shift) for r in self.requants.values())
            min_shift = min(min(r.shift) for r in self.requants.values())
            out = requantize(m, final, params["multiplier"], params["shift"], rq.zero_point, lo, hi,
                             rq.rounding, element_shape(self.otype),
                             max_shift=max_shift, min_shift=min_shift, name=f"rq{k}")
            m.d.comb += queue.w.payload[k].eq(out)
        wiring.connect(m, wiring.flipped(self.o), queue.o)
        return m


def _valid_after_requant(m: Module, start):
    """`start`, registered, then delayed by the requantizer's latency: when its output is ready."""
    valid = Signal()
    m.d.sync += valid.eq(start)
    for _ in range(REQUANT_LATENCY):
        nxt = Signal()
        m.d.sync += nxt.eq(valid)
        valid = nxt
    return valid


def _delay(m: Module, value, name: str):
    """Register a table lookup so it lines up with the registered sum it goes with."""
    if isinstance(value, int):
        return value
    reg = Signal.like(value, name=name, reset_less=True)
    m.d.sync += reg.eq(value)
    return reg


class GlobalAvgPoolUnit(wiring.Component):
    """Sum of (x - zero point) over all H*W positions per channel, then one requantization."""

    def __init__(self, itype: IntType, otype: IntType, lanes: int, channels: int, positions: int, zero_point: int,
                 acc: IntType, requant: Requant):
        self.itype, self.otype, self.lanes, self.channels, self.positions = itype, otype, lanes, channels, positions
        self.zero_point, self.acc, self.requant = zero_point, acc, requant
        super().__init__({"i": In(word_stream(itype, lanes)), "o": Out(word_stream(otype, lanes)), "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        chunks = self.channels // self.lanes
        rq = self.requant
        m.submodules.queue = queue = OutputQueue(word_layout(self.otype, self.lanes), POOL_QUEUE_DEPTH)
        position, chunk = Signal(range(self.positions)), Signal(range(chunks))
        first, last = position == 0, position == self.positions - 1
        fire = self.i.valid & self.i.ready
        m.d.comb += [self.i.ready.eq(~last | queue.room), queue.reserve.eq(fire & last), self.busy.eq(fire)]
        with m.If(fire):
            m.d.sync += chunk.eq(Mux(chunk == chunks - 1, 0, chunk + 1))
            with m.If(chunk == chunks - 1):
                m.d.sync += position.eq(Mux(last, 0, position + 1))
        m.d.comb += queue.w.valid.eq(_valid_after_requant(m, fire & last))
        # per channel chunk, the running sums of its lanes
        m.submodules.sums = sums = memory.Memory(shape=unsigned(self.lanes * self.acc.bits), depth=chunks, init=[])
        read, write = sums.read_port(domain="comb"), sums.write_port()
        m.d.comb += [read.addr.eq(chunk), write.addr.eq(chunk), write.en.eq(fire)]
        for k in range(self.lanes):
            diff = self.i.payload[k] - self.zero_point
            stored = read.data[k * self.acc.bits:(k + 1) * self.acc.bits].as_signed()
            running = Signal(signed(self.acc.bits), name=f"running{k}")
            m.d.comb += [running.eq(Mux(first, diff, stored + diff)),
                         write.data[k * self.acc.bits:(k + 1) * self.acc.bits].eq(running)]
            final = Signal(signed(self.acc.bits), name=f"final{k}", reset_less=True)
            m.d.sync += final.eq(running)
            mult = _delay(m, table([channel_values(rq.multiplier, self.channels)[c * self.lanes + k]
                                    for c in range(chunks)], chunk), f"multiplier{k}")
            shift = _delay(m, table([channel_values(rq.shift, self.channels)[c * self.lanes + k]
                                     for c in range(chunks)], chunk), f"shift{k}")
            out = requantize(m, final, mult, shift, rq.zero_point, rq.lo, rq.hi, rq.rounding,
                             element_shape(self.otype), max_shift=max(rq.shift), min_shift=min(rq.shift),
                             name=f"rq{k}")
            m.d.comb += queue.w.payload[k].eq(out)
        wiring.connect(m, wiring.flipped(self.o), queue.o)
        return m
