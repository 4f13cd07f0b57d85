"""The sliding-window unit: a line buffer that turns a feature map into convolution windows.

Input: an (H, W, C) map in raster order, `lanes` channels per word. Output: for every output
position (oy, ox) in raster order, for every chunk of `lanes` channels, the KH x KW taps in raster
order: word (oy, ox, chunk, ky, kx) holds x[oy*sh - top + ky*dh, ox*sw - left + kx*dw, chunk] or,
outside the map, `pad_value` in every lane (the input zero point for a convolution, the type's
minimum for max pooling).

The buffer is one memory of R = (KH-1)*dh + 1 + sh + slack rows: the rows one output row reads,
the sh rows the next one adds (so the writer fills them while the reader works), and up to
WINDOW_SLACK_ROWS more (no more than the map has) to absorb bursts between units that share an engine. Both sides
count rows since reset; the reader starts an output row once the rows it needs are written and
releases the rows no later output row needs when it ends the row.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from ..fixed import IntType
from ..fpga.hardware import WINDOW_QUEUE_DEPTH, WINDOW_SLACK_ROWS, MemoryKind, window_rows
from ..ir import conv_output_hw
from .arith import const_multiply
from .streams import OutputQueue, memory_attrs, word_layout, word_stream

__all__ = ["WindowGenerator"]

class WindowGenerator(wiring.Component):
    def __init__(self, itype: IntType, lanes: int, shape: tuple[int, int, int], kernel: tuple[int, int],
                 stride: tuple[int, int] = (1, 1), dilation: tuple[int, int] = (1, 1),
                 pads: tuple[int, int, int, int] = (0, 0, 0, 0), pad_value: int = 0, kind: MemoryKind | None = None,
                 slack: int = WINDOW_SLACK_ROWS):
        """`kind`: where the line buffer goes (default: yosys chooses);
        `slack`: rows beyond those the windows need (fewer save block RAM, more absorb bursts)."""
        h, w, c = shape
        if c % lanes:
            raise ValueError(f"{lanes} lanes do not divide {c} channels")
        if not itype.lo <= pad_value <= itype.hi:
            raise ValueError(f"pad value {pad_value} is outside {itype}")
        self.itype, self.lanes, self.shape = itype, lanes, shape
        self.kernel, self.stride, self.dilation, self.pads, self.pad_value = kernel, stride, dilation, pads, pad_value
        self.kind = kind
        self.out_hw = conv_output_hw((h, w), kernel, stride, dilation, pads)
        if min(self.out_hw) < 1:
            raise ValueError(f"window {kernel} with pads {pads} does not fit a {h}x{w} map")
        self.rows = window_rows(shape, kernel, stride, dilation, slack)
        super().__init__({"i": In(word_stream(itype, lanes)), "o": Out(word_stream(itype, lanes)),
                          "busy": Out(1)})

    @property
    def words_per_output(self) -> int:
        return self.kernel[0] * self.kernel[1] * self.shape[2] // self.lanes

    def elaborate(self, platform):
        m = Module()
        h, w, c = self.shape
        kh, kw = self.kernel
        sh, sw = self.stride
        dh, dw = self.dilation
        top, left, _, _ = self.pads
        oh, ow = self.out_hw
        chunks = c // self.lanes
        rows = self.rows
        span = (kh - 1) * dh + 1
        layout = word_layout(self.itype, self.lanes)
        count = unsigned((4 * (h + rows)).bit_length())  # row counters, modulo 2**bits

        m.submodules.mem = mem = memory.Memory(shape=unsigned(layout.size), depth=rows * w * chunks, init=[],
                                               attrs=memory_attrs(self.kind))
        wport = mem.write_port()
        rport = mem.read_port()

        written = Signal(count)    # rows written since reset
        released = Signal(count)   # rows the reader no longer needs
        image_base = Signal(count)  # the reader's image: its row 0
        row_done, image_done = Signal(), Signal()  # the writer completes a row; the reader an image

        # -- writer -----------------------------------------------------------------------
        wx, wchunk, wslot = Signal(range(w)), Signal(range(chunks)), Signal(range(rows))
        # The input's ready is a register (Fmax: it reaches back into the producer). A cycle late,
        # it asks for two free rows, so at least one is free now: the writer completes at most one
        # row per cycle. The buffer so holds one row fewer than it has, still enough for every window.
        has_room = Signal(init=1)
        m.d.sync += has_room.eq((written - released)[:count.width] < rows - 1)
        m.d.comb += self.i.ready.eq(has_room)
        # Addresses by shifts and adds (`const_multiply`): yosys would give a product by a constant a DSP.
        m.d.comb += [wport.addr.eq(const_multiply(wslot, w * chunks) + const_multiply(wx, chunks) + wchunk),
                     wport.data.eq(self.i.payload.as_value()),
                     wport.en.eq(self.i.valid & self.i.ready)]
        wchunk_last, wx_last = _last_flag(wchunk, chunks), _last_flag(wx, w)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += _advance(wchunk, wchunk_last, chunks)
            with m.If(wchunk_last):
                m.d.sync += [*_restart(wchunk, wchunk_last, chunks), *_advance(wx, wx_last, w)]
                with m.If(wx_last):
                    m.d.comb += row_done.eq(1)
                    m.d.sync += [*_restart(wx, wx_last, w), written.eq(written + 1),
                                 wslot.eq(Mux(wslot == rows - 1, 0, wslot + 1))]

        # -- reader -----------------------------------------------------------------------
        coord = signed(max(h + span + top, w + (kw - 1) * dw + 1 + left, sh * oh, sw * ow).bit_length() + 2)
        oy, ox, chunk = Signal(range(oh)), Signal(range(ow)), Signal(range(chunks))
        ky, kx = Signal(range(kh)), Signal(range(kw))
        base_y, base_x = Signal(coord, init=-top), Signal(coord, init=-left)
        iy, ix = Signal(coord, init=-top), Signal(coord, init=-left)
        # Buffer slots of the current image's row 0, of row base_y and of row iy (all mod rows).
        image_slot = Signal(range(rows))
        base_slot = Signal(range(rows), init=(-top) % rows)
        slot = Signal(range(rows), init=(-top) % rows)

        def wrap(value):
            return Mux(value >= rows, value - rows, value)

        def clamp_rows(y):
            return min(max(y, 0), h) if isinstance(y, int) else Mux(y <= 0, 0, Mux(y >= h, h, y))

        def rows_needed(y: int, last: bool) -> int:
            """Rows of the image an output row starting at input row y needs written (all, for the last)."""
            return h if last else clamp_rows(y + max(span, sh))

        # A register, set whenever base_y moves, so the issue decision starts from flip-flops (Fmax).
        need = Signal(range(h + 1), init=rows_needed(-top, oh == 1))
        # Rows of the reader's image written: written - image_base, kept as a register of its own
        # (Fmax: the issue decision compares it with `need` and nothing else).
        available = Signal(count)
        m.d.sync += available.eq(available + row_done - Mux(image_done, h, 0))

        m.submodules.queue = queue = OutputQueue(layout, WINDOW_QUEUE_DEPTH)
        # `rows_ready`: available >= need, as a register (Fmax: issue fans out to every counter).
        # `need` changes only at a row end, so the reader waits a cycle after each. What a row end
        # sets next is computed ahead in two register stages (below), fresh once 3 cycles have
        # passed since the last row end: a row of one word waits a second cycle.
        issue, row_end, rows_ready = Signal(), Signal(), Signal()   # row_end: issuing a row's last word
        row_words = ow * kh * kw * chunks
        hold = row_end
        if row_words == 1:
            ended = Signal(name="row_ended")
            m.d.sync += ended.eq(hold)
            hold = hold | ended
        # The next `available >= need`, with the late signals (a row written, a row ended) only
        # selecting between comparisons of registers. An image's end is a row end, so it holds.
        m.d.sync += rows_ready.eq(Mux(row_done, available + 1 >= need, available >= need) & ~hold)
        m.d.comb += [issue.eq(rows_ready & queue.room), queue.reserve.eq(issue), self.busy.eq(issue)]
        inside = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
        # The read address is registered before the memory registers it again (Fmax: it is a sum
        # of constant products), so a word reaches the queue two cycles after its issue.
        address = Signal(range(rows * w * chunks), name="read_address", reset_less=True)
        outside, issued, pad = Signal(reset_less=True), Signal(), Signal(reset_less=True)
        m.d.sync += [address.eq(const_multiply(slot, w * chunks)
                                + const_multiply(ix[:max(1, (w - 1).bit_length())], chunks) + chunk),
                     outside.eq(~inside), issued.eq(issue), pad.eq(outside), queue.w.valid.eq(issued)]
        m.d.comb += rport.addr.eq(address)
        pad_word = 0
        for k in range(self.lanes):
            pad_word |= (self.pad_value & ((1 << self.itype.bits) - 1)) << (k * self.itype.bits)
        m.d.comb += queue.w.payload.eq(Mux(pad, pad_word, rport.data))
        wiring.connect(m, wiring.flipped(self.o), queue.o)

        # What a row end sets, computed ahead in two register stages (Fmax: sums, clamps and wraps
        # of the row's state). Up to date at every row end: the state they follow changes only at
        # a row end, and row ends are at least 3 cycles apart.
        # (Their initial values are those of the initial state: a row can end a cycle after reset.)
        y0, slot0 = -top, (-top) % rows
        image_slot1 = h % rows
        next_y = Signal(coord, name="next_y", init=y0 + sh)
        next_reach = Signal(coord, name="next_reach", init=y0 + sh + max(span, sh))  # the rows its windows span
        next_base_slot = Signal(range(rows), name="next_base_slot", init=(slot0 + sh) % rows)
        next_image_slot = Signal(range(rows), name="next_image_slot", init=image_slot1)
        first_slot = Signal(range(rows), name="first_slot", init=(image_slot1 + slot0) % rows)
        next_need = Signal.like(need, name="next_need", init=rows_needed(y0 + sh, oh == 2))
        next_release = Signal(count, name="next_release", init=clamp_rows(y0 + sh))
        next_image_base = Signal(count, name="next_image_base", init=h)
        m.d.sync += [next_y.eq(base_y + sh), next_reach.eq(base_y + (sh + max(span, sh))),
                     next_base_slot.eq(wrap(base_slot + sh)), next_image_slot.eq(wrap(image_slot + h % rows)),
                     next_image_base.eq(image_base + h),
                     # the second stage
                     next_need.eq(Mux(oy == oh - 2, h, clamp_rows(next_reach))),
                     next_release.eq(image_base + clamp_rows(next_y)),
                     first_slot.eq(wrap(next_image_slot + (-top) % rows))]

        # Each counter's "at its last value" is a register set with the counter (Fmax: they choose
        # every counter's next value).
        end_kx, end_ky = _last_flag(kx, kw), _last_flag(ky, kh)
        end_chunk, end_ox, last_row = _last_flag(chunk, chunks), _last_flag(ox, ow), _last_flag(oy, oh)
        counters = {"kx": (kx, end_kx, kw), "ky": (ky, end_ky, kh), "chunk": (chunk, end_chunk, chunks),
                    "ox": (ox, end_ox, ow)}

        def restart(*names):
            return [update for name in names for update in _restart(*counters[name])]

        # The row's words after the current one, and whether it is the row's last (registers: the
        # row end, which `available`, `rows_ready` and the row-end registers wait on, is then an
        # AND of three flip-flops, not of the counters' flags).
        row_left = Signal(range(row_words), name="row_left", init=row_words - 1)
        at_row_end = Signal(name="at_row_end", init=int(row_words == 1))
        with m.If(issue):
            m.d.sync += [row_left.eq(Mux(at_row_end, row_words - 1, row_left - 1)),
                         at_row_end.eq(Mux(at_row_end, row_words == 1, row_left == 1))]
        m.d.comb += [row_end.eq(issue & at_row_end), image_done.eq(issue & at_row_end & last_row)]

        with m.If(issue):
            with m.If(~end_kx):
                m.d.sync += [*_advance(kx, end_kx, kw), ix.eq(ix + dw)]
            with m.Elif(~end_ky):
                m.d.sync += [*restart("kx"), *_advance(ky, end_ky, kh), ix.eq(base_x), iy.eq(iy + dh),
                             slot.eq(wrap(slot + dh))]
            with m.Elif(~end_chunk):
                m.d.sync += [*restart("kx", "ky"), *_advance(chunk, end_chunk, chunks), ix.eq(base_x), iy.eq(base_y),
                             slot.eq(base_slot)]
            with m.Elif(~end_ox):
                m.d.sync += [*restart("kx", "ky", "chunk"), *_advance(ox, end_ox, ow), base_x.eq(base_x + sw),
                             ix.eq(base_x + sw), iy.eq(base_y), slot.eq(base_slot)]
            with m.Else():  # the end of an output row: release what the next row does not need
                m.d.sync += [*restart("kx", "ky", "chunk", "ox"), base_x.eq(-left), ix.eq(-left)]
                with m.If(~last_row):
                    m.d.sync += [*_advance(oy, last_row, oh), base_y.eq(next_y), iy.eq(next_y),
                                 base_slot.eq(next_base_slot), slot.eq(next_base_slot), need.eq(next_need),
                                 released.eq(next_release)]
                with m.Else():
                    m.d.sync += [*_restart(oy, last_row, oh), base_y.eq(-top), iy.eq(-top),
                                 need.eq(rows_needed(-top, oh == 1)), image_slot.eq(next_image_slot),
                                 base_slot.eq(first_slot), slot.eq(first_slot), released.eq(next_image_base),
                                 image_base.eq(next_image_base)]
        return m


def _last_flag(counter: Signal, n: int) -> Signal:
    """A register for `counter == n - 1`, kept by `_advance` and `_restart` (the counter starts at 0)."""
    return Signal(name=f"{counter.name}_last", init=int(n == 1))


def _advance(counter: Signal, last: Signal, n: int) -> list:
    return [counter.eq(counter + 1), last.eq(counter == n - 2)]


def _restart(counter: Signal, last: Signal, n: int) -> list:
    return [counter.eq(0), last.eq(int(n == 1))]
