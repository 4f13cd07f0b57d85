"""Stream plumbing: word layouts, FIFOs, lane converters and forks.

A tensor travels in raster order (h, w, c), `lanes` elements per stream word; element k of a word
sits at bits [k*bits, (k+1)*bits) of the payload (lane 0 in the least significant bits).
"""

from __future__ import annotations

import math

from amaranth import Cat, Const, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..fixed import IntType
from ..fpga.hardware import MemoryKind, queue_storage

__all__ = ["element_shape", "word_layout", "word_stream", "StreamFifo", "LaneConverter", "Fork", "OutputQueue",
           "OutputMux", "memory_attrs"]


def element_shape(itype: IntType) -> Shape:
    return signed(itype.bits) if itype.signed else unsigned(itype.bits)


def word_layout(itype: IntType, lanes: int) -> data.ArrayLayout:
    return data.ArrayLayout(element_shape(itype), lanes)


def word_stream(itype: IntType, lanes: int) -> stream.Signature:
    return stream.Signature(word_layout(itype, lanes))


def memory_attrs(kind: MemoryKind | None) -> dict | None:
    """The attributes that make yosys map a memory as `kind` (None: yosys chooses)."""
    return None if kind is None else {"ram_style": MemoryKind(kind).ram_style}


class _SmallFifo(wiring.Component):
    """`depth` words in a circular buffer; `i.ready` and `o.valid` come from registers."""

    def __init__(self, width: int, depth: int, kind: MemoryKind | None = None):
        self.width, self.depth, self.kind = width, depth, kind
        super().__init__({"i": In(stream.Signature(width)), "o": Out(stream.Signature(width))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.storage = storage = memory.Memory(shape=unsigned(self.width), depth=self.depth, init=[],
                                                       attrs=memory_attrs(self.kind))
        write, read = storage.write_port(), storage.read_port(domain="comb")
        head, tail = Signal(range(self.depth)), Signal(range(self.depth))
        level = Signal(range(self.depth + 1))
        push = self.i.valid & self.i.ready
        pop = self.o.valid & self.o.ready
        m.d.comb += [self.i.ready.eq(level != self.depth), self.o.valid.eq(level != 0),
                     read.addr.eq(head), self.o.payload.eq(read.data),
                     write.addr.eq(tail), write.data.eq(self.i.payload), write.en.eq(push)]
        with m.If(push):
            m.d.sync += tail.eq(Mux(tail == self.depth - 1, 0, tail + 1))
        with m.If(pop):
            m.d.sync += head.eq(Mux(head == self.depth - 1, 0, head + 1))
        m.d.sync += level.eq(level + push - pop)
        return m


class _BlockFifo(wiring.Component):
    """`depth` words: depth - 1 in a memory with a registered read port, whose output register
    holds the next word (the design of Amaranth's SyncFIFOBuffered, with a placeable memory)."""

    def __init__(self, width: int, depth: int, kind: MemoryKind | None = None):
        assert depth >= 2
        self.width, self.depth, self.kind = width, depth, kind
        super().__init__({"i": In(stream.Signature(width)), "o": Out(stream.Signature(width))})

    def elaborate(self, platform):
        m = Module()
        inner = self.depth - 1
        m.submodules.storage = storage = memory.Memory(shape=unsigned(self.width), depth=inner, init=[],
                                                       attrs=memory_attrs(self.kind))
        write, read = storage.write_port(), storage.read_port()
        produce, consume = Signal(range(inner)), Signal(range(inner))
        level = Signal(range(inner + 1))   # words in the memory
        push = self.i.valid & self.i.ready
        fetch = (level != 0) & (~self.o.valid | self.o.ready)   # memory -> the read port's register
        m.d.comb += [self.i.ready.eq(level != inner), write.addr.eq(produce), write.data.eq(self.i.payload),
                     write.en.eq(push), read.addr.eq(consume), read.en.eq(fetch), self.o.payload.eq(read.data)]
        with m.If(push):
            m.d.sync += produce.eq(Mux(produce == inner - 1, 0, produce + 1))
        with m.If(fetch):
            m.d.sync += [consume.eq(Mux(consume == inner - 1, 0, consume + 1)), self.o.valid.eq(1)]
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        m.d.sync += level.eq(level + push - fetch)
        return m


def _fifo(width: int, depth: int, kind: MemoryKind | None = None) -> wiring.Component:
    """A queue of `depth` words, stored as `hardware.queue_storage` says."""
    storage = queue_storage(depth, kind)
    if not storage.registered:
        return _SmallFifo(width, storage.words, kind)
    return _BlockFifo(width, storage.words + 1, kind)


def _connect_fifo(m: Module, queue, i, o) -> None:
    """Connect stream `i` -> queue -> stream `o`."""
    m.d.comb += [queue.i.payload.eq(i.payload.as_value()), queue.i.valid.eq(i.valid), i.ready.eq(queue.i.ready),
                 o.payload.eq(queue.o.payload), o.valid.eq(queue.o.valid), queue.o.ready.eq(o.ready)]


class StreamFifo(wiring.Component):
    """A first-in first-out queue of `depth` words with registered outputs.

    Its `i.ready` depends only on its own state, so it also cuts the combinational ready path
    between the units it connects.
    """

    def __init__(self, layout: data.ArrayLayout, depth: int, kind: MemoryKind | None = None):
        self.layout, self.depth, self.kind = layout, depth, kind
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.queue = queue = _fifo(self.layout.size, max(2, self.depth), self.kind)
        _connect_fifo(m, queue, self.i, self.o)
        return m


class LaneConverter(wiring.Component):
    """Regroups a stream of `from_lanes`-element words into `to_lanes`-element words.

    Input words shift into a gather register of lcm(from, to) elements; once full it moves to a
    scatter register that shifts output words out, while the next block gathers.
    """

    def __init__(self, itype: IntType, from_lanes: int, to_lanes: int):
        self.itype, self.from_lanes, self.to_lanes = itype, from_lanes, to_lanes
        self.block = math.lcm(from_lanes, to_lanes)
        super().__init__({"i": In(word_stream(itype, from_lanes)), "o": Out(word_stream(itype, to_lanes))})

    def elaborate(self, platform):
        m = Module()
        bits = self.itype.bits
        a, b, n = self.from_lanes, self.to_lanes, self.block
        gather = Signal(n * bits, reset_less=True)
        scatter = Signal(n * bits, reset_less=True)
        gathered = Signal(range(n // a + 1))   # input words in `gather`
        pending = Signal(range(n // b + 1))    # output words left in `scatter`
        full = gathered == n // a
        m.d.comb += [self.o.valid.eq(pending != 0), self.o.payload.eq(scatter[:b * bits])]
        sent = self.o.valid & self.o.ready
        scatter_free = (pending == 0) | ((pending == 1) & self.o.ready)
        move = full & scatter_free
        m.d.comb += self.i.ready.eq(~full | scatter_free)
        taken = self.i.valid & self.i.ready
        shifted_in = Cat(gather[a * bits:], self.i.payload.as_value()) if n > a else self.i.payload.as_value()
        with m.If(taken):
            m.d.sync += gather.eq(shifted_in)
        with m.If(move):
            m.d.sync += [scatter.eq(gather), pending.eq(n // b), gathered.eq(Mux(taken, 1, 0))]
        with m.Else():
            with m.If(taken):
                m.d.sync += gathered.eq(gathered + 1)
            with m.If(sent):
                m.d.sync += [scatter.eq(scatter >> (b * bits)), pending.eq(pending - 1)]
        return m


class Fork(wiring.Component):
    """Copies every word of `i` to each of `n` outputs.

    A word leaves `i` once every output has taken it; outputs that took it early wait (their
    `valid` never depends on their `ready`).
    """

    def __init__(self, layout: data.ArrayLayout, n: int):
        self.layout, self.n = layout, n
        members = {"i": In(stream.Signature(layout))}
        members.update({f"o{k}": Out(stream.Signature(layout)) for k in range(n)})
        super().__init__(members)

    def outputs(self) -> list:
        return [getattr(self, f"o{k}") for k in range(self.n)]

    def elaborate(self, platform):
        m = Module()
        taken = Signal(self.n)
        outs = self.outputs()
        done = [taken[k] | (o.valid & o.ready) for k, o in enumerate(outs)]
        m.d.comb += self.i.ready.eq(Mux(self.i.valid, _all(done), 0))
        for k, o in enumerate(outs):
            m.d.comb += [o.payload.eq(self.i.payload), o.valid.eq(self.i.valid & ~taken[k])]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += taken.eq(0)
        with m.Else():
            m.d.sync += [taken[k].eq(done[k] & self.i.valid) for k in range(self.n)]
        return m


class OutputMux(wiring.Component):
    """Several streams onto one: each word tagged with the index of its stream (`hwgen.fpga.outputs`).

    Round robin among the inputs with a word; once `o.valid` is up, the choice holds until the
    transfer (the payload may not change under a waiting consumer).
    """

    def __init__(self, layouts: list[data.ArrayLayout], data_bits: int, tag_bits: int):
        self.layouts, self.data_bits, self.tag_bits = layouts, data_bits, tag_bits
        members = {f"i{k}": In(stream.Signature(layout)) for k, layout in enumerate(layouts)}
        members["o"] = Out(stream.Signature(unsigned(data_bits + tag_bits)))
        super().__init__(members)

    def inputs(self) -> list:
        return [getattr(self, f"i{k}") for k in range(len(self.layouts))]

    def elaborate(self, platform):
        m = Module()
        ins, n = self.inputs(), len(self.layouts)
        last = Signal(range(n), init=n - 1)   # the input granted last
        held = Signal(range(n))
        holding = Signal()
        pick = Signal(range(n))
        with m.Switch(last):   # the first input with a word after `last`, cyclically
            for previous in range(n):
                with m.Case(previous):
                    order = [(previous + j) % n for j in range(1, n + 1)]
                    m.d.comb += pick.eq(order[-1])
                    for k in reversed(order[:-1]):
                        with m.If(ins[k].valid):
                            m.d.comb += pick.eq(k)
        choice = Mux(holding, held, pick)
        for k, i in enumerate(ins):
            padding = Const(0, self.data_bits - self.layouts[k].size)
            with m.If(choice == k):
                m.d.comb += [self.o.valid.eq(i.valid), i.ready.eq(self.o.ready),
                             self.o.payload.eq(Cat(i.payload.as_value(), padding, Const(k, self.tag_bits)))]
        with m.If(self.o.valid & ~self.o.ready):
            m.d.sync += [holding.eq(1), held.eq(choice)]
        with m.Else():
            m.d.sync += holding.eq(0)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += last.eq(choice)
        return m


def _all(bits):
    result = bits[0]
    for bit in bits[1:]:
        result = result & bit
    return result


class OutputQueue(wiring.Component):
    """The output FIFO of a free-running pipeline, with credits so it never overflows.

    A unit starts work that will produce `size` words only when `free >= size`, and says so with
    `reserve` in that cycle; the words arrive later on `w` (which is always accepted) and leave on
    `o`. `free` (and `room`: free > 0) is registered, so `o.ready` never reaches the unit's
    control path.
    """

    def __init__(self, layout: data.ArrayLayout, depth: int, size: int = 1, kind: MemoryKind | None = None):
        if depth < size:
            raise ValueError(f"queue depth {depth} is below the reservation {size}")
        self.layout, self.depth, self.size, self.kind = layout, depth, size, kind
        super().__init__({
            "w": In(stream.Signature(layout)),
            "o": Out(stream.Signature(layout)),
            "reserve": In(1),
            "free": Out(range(depth + 1)),
            "room": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        # (A block queue's memory has depth - 1 places and fills a cycle before its output
        # register does: _fifo gives it one place more, so `depth` back-to-back writes always fit.)
        m.submodules.queue = queue = _fifo(self.layout.size, self.depth, self.kind)
        # the credits themselves: no subtraction after the register
        free = Signal(range(self.depth + 1), init=self.depth)
        room = Signal(init=1)   # free > 0, a register of its own (Fmax: a unit's issue reads it and nothing else)
        popped = self.o.valid & self.o.ready
        free_next = free - Mux(self.reserve, self.size, 0) + popped
        m.d.sync += [free.eq(free_next), room.eq(free_next != 0)]
        m.d.comb += [self.free.eq(free), self.room.eq(room)]
        w = stream.Signature(self.layout).flip().create()  # `w` without its ready: credits guarantee room
        m.d.comb += [w.payload.eq(self.w.payload), w.valid.eq(self.w.valid), self.w.ready.eq(1)]
        _connect_fifo(m, queue, w, self.o)
        return m
