"""Units that move words without computing: padding, cropping, and remapping through a row buffer
(nearest resize, depth-to-space). Streams are (h, w, c) in raster order, `lanes` channels a word."""

from __future__ import annotations

from amaranth import Array, Const, Module, Mux, Signal, signed
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from ..fixed import IntType
from ..fpga.hardware import REMAP_QUEUE_DEPTH, REMAP_ROWS, MemoryKind
from ..fpga.units import RemapTables
from .streams import OutputQueue, memory_attrs, word_layout, word_stream

__all__ = ["PadUnit", "SliceUnit", "RemapUnit"]


class _Raster:
    """Counters over (row, column, channel word) of a (rows, cols, words) raster; `step` advances them
    and `last` is high on the raster's last word."""

    def __init__(self, m: Module, rows: int, cols: int, words: int, step, name: str):
        self.row = Signal(range(rows), name=f"{name}_row")
        self.col = Signal(range(cols), name=f"{name}_col")
        self.word = Signal(range(words), name=f"{name}_word")
        self.row_end = (self.word == words - 1) & (self.col == cols - 1)
        self.last = self.row_end & (self.row == rows - 1)
        with m.If(step):
            with m.If(self.word != words - 1):
                m.d.sync += self.word.eq(self.word + 1)
            with m.Else():
                m.d.sync += self.word.eq(0)
                with m.If(self.col != cols - 1):
                    m.d.sync += self.col.eq(self.col + 1)
                with m.Else():
                    m.d.sync += [self.col.eq(0), self.row.eq(Mux(self.row == rows - 1, 0, self.row + 1))]


def _within(value, lo: int, hi: int):
    """lo <= value < hi, with no comparison where a bound is the counter's own."""
    terms = ([value >= lo] if lo > 0 else []) + [value < hi]
    result = terms[0]
    for t in terms[1:]:
        result = result & t
    return result


class PadUnit(wiring.Component):
    """Output words in raster order: the input's where they fall inside, else words of `value`."""

    def __init__(self, itype: IntType, lanes: int, in_shape: tuple[int, int, int], pads, value: int):
        self.itype, self.lanes, self.in_shape, self.pads, self.value = itype, lanes, in_shape, pads, value
        super().__init__({"i": In(word_stream(itype, lanes)), "o": Out(word_stream(itype, lanes)), "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        (h, w, c), ((pt, pb), (pl, pr), (cb, ca)), lanes = self.in_shape, self.pads, self.lanes
        fire = self.o.valid & self.o.ready
        out = _Raster(m, pt + h + pb, pl + w + pr, (cb + c + ca) // lanes, fire, "out")
        inside = _within(out.row, pt, pt + h) & _within(out.col, pl, pl + w) & \
            _within(out.word, cb // lanes, (cb + c) // lanes)
        fill = Signal(word_layout(self.itype, lanes))
        m.d.comb += [fill[k].eq(self.value) for k in range(lanes)]
        m.d.comb += [self.o.payload.eq(Mux(inside, self.i.payload.as_value(), fill.as_value())),
                     self.o.valid.eq(~inside | self.i.valid),
                     self.i.ready.eq(inside & self.o.ready), self.busy.eq(fire)]
        return m


class SliceUnit(wiring.Component):
    """Input words in raster order; those inside [starts, ends) go on, the others are dropped."""

    def __init__(self, itype: IntType, lanes: int, in_shape: tuple[int, int, int], starts, ends):
        self.itype, self.lanes, self.in_shape, self.starts, self.ends = itype, lanes, in_shape, starts, ends
        super().__init__({"i": In(word_stream(itype, lanes)), "o": Out(word_stream(itype, lanes)), "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        (h, w, c), lanes = self.in_shape, self.lanes
        taken = self.i.valid & self.i.ready
        at = _Raster(m, h, w, c // lanes, taken, "in")
        (s0, s1, s2), (e0, e1, e2) = self.starts, self.ends
        keep = _within(at.row, s0, e0) & _within(at.col, s1, e1) & _within(at.word, s2 // lanes, e2 // lanes)
        m.d.comb += [self.o.payload.eq(self.i.payload), self.o.valid.eq(self.i.valid & keep),
                     self.i.ready.eq(~keep | self.o.ready), self.busy.eq(taken)]
        return m


class RemapUnit(wiring.Component):
    """Input rows go into a buffer of REMAP_ROWS rows; output (oy, ox, cw) reads row tables.rows[oy],
    pixel tables.cols[ox], channel word tables.row_words[oy] + tables.col_words[ox] + cw.

    `lead` = input rows written - the input row the output reads: the writer may start a row while
    lead < REMAP_ROWS (the row it overwrites is no longer read), the reader may read while lead >= 1.
    """

    def __init__(self, itype: IntType, lanes: int, in_shape: tuple[int, int, int], out_shape: tuple[int, int, int],
                 tables: RemapTables, kind: MemoryKind | None):
        self.itype, self.lanes, self.in_shape, self.out_shape, self.tables, self.kind = \
            itype, lanes, in_shape, out_shape, tables, kind
        super().__init__({"i": In(word_stream(itype, lanes)), "o": Out(word_stream(itype, lanes)), "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        (h, w, c), (oh, ow, oc), lanes, t = self.in_shape, self.out_shape, self.lanes, self.tables
        layout = word_layout(self.itype, lanes)
        row_words, pixel_words = w * c // lanes, c // lanes
        m.submodules.rows = rows = memory.Memory(shape=layout, depth=REMAP_ROWS * row_words, init=[],
                                                 attrs=memory_attrs(self.kind))
        write, read = rows.write_port(), rows.read_port()
        m.submodules.queue = queue = OutputQueue(layout, REMAP_QUEUE_DEPTH)
        lead = Signal(signed(max(h, REMAP_ROWS).bit_length() + 2))

        # the writer: input words into slot (rows written) % REMAP_ROWS
        w_slot = Signal(range(REMAP_ROWS))
        w_word = Signal(range(row_words))
        m.d.comb += self.i.ready.eq(lead < REMAP_ROWS)
        written = self.i.valid & self.i.ready
        m.d.comb += [write.addr.eq(w_slot * row_words + w_word), write.data.eq(self.i.payload), write.en.eq(written)]
        row_done = written & (w_word == row_words - 1)
        with m.If(written):
            m.d.sync += w_word.eq(Mux(w_word == row_words - 1, 0, w_word + 1))
        with m.If(row_done):
            m.d.sync += w_slot.eq(Mux(w_slot == REMAP_ROWS - 1, 0, w_slot + 1))

        # the reader: output words in raster order
        fire = (lead >= 1) & queue.room
        out = _Raster(m, oh, ow, oc // lanes, fire, "out")
        r_slot = Signal(range(REMAP_ROWS))
        col_base = Array(Const(x * pixel_words + cw, range(row_words + 1)) for x, cw in zip(t.cols, t.col_words))
        row_base = Array(Const(cw, range(row_words + 1)) for cw in t.row_words)
        m.d.comb += [read.addr.eq(r_slot * row_words + col_base[out.col] + row_base[out.row] + out.word),
                     queue.reserve.eq(fire), self.busy.eq(fire | written)]
        taken = Signal()
        m.d.sync += taken.eq(fire)
        m.d.comb += [queue.w.valid.eq(taken), queue.w.payload.eq(read.data)]
        # leaving output row oy moves the read row on by steps[oy] (the last: to the next inference's first)
        steps = [b - a for a, b in zip(t.rows, t.rows[1:])] + [h - t.rows[-1] + t.rows[0]]
        step = Array(Const(s, range(h + 1)) for s in steps)[out.row]
        advance = fire & out.row_end
        moved = Mux(advance, step, 0)
        m.d.sync += lead.eq(lead + row_done - moved)
        with m.If(advance):
            m.d.sync += r_slot.eq((r_slot + step) % REMAP_ROWS)
        wiring.connect(m, wiring.flipped(self.o), queue.o)
        return m
