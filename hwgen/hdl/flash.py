"""The weight stream from an SPI NOR flash: the image `hwgen.fpga.sequential.flash_image` writes,
read over and over.

SPI mode 0 with sck = clk / 2 (a register toggling: no clock resource, any pin): the reader sends
READ (0x03, data on io1) or Fast Read Quad Output (0x6B, 8 dummy clocks, data on io0..io3; the
flash's quad-enable bit must be set) with the payload's 24-bit address, then samples the data
lines each time it raises sck. Bytes arrive most significant bit first and make words
little-endian (`word_bytes` each). When the word it would complete has nowhere to go, it holds sck
low: a flash waits as long as cs_n stays low. After the last word it raises cs_n for a cycle and
starts again from the first.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..fpga.hardware import FLASH_FAST_READ_QUAD_OUTPUT, FLASH_QUAD_DUMMY_CLOCKS, FLASH_READ

__all__ = ["FlashPins", "SpiFlashReader"]


class FlashPins(wiring.Signature):
    """The flash's pins as the FPGA drives them: sck and cs_n out; io0 out while `io0_oe` (the
    command and address; in quad mode the flash drives io0 itself with data after them, so the pin
    must be released), the four data lines in (io1 alone in single-line mode)."""

    def __init__(self):
        super().__init__({"sck": Out(1), "cs_n": Out(1, init=1), "io0": Out(1), "io0_oe": Out(1), "dq": In(4)})


class SpiFlashReader(wiring.Component):
    def __init__(self, address: int, words: int, word_bytes: int, word_bits: int, lines: int):
        assert lines in (1, 4) and 0 <= address < 1 << 24 and word_bits <= 8 * word_bytes
        self.address, self.words, self.word_bytes, self.lines = address, words, word_bytes, lines
        super().__init__({"o": Out(stream.Signature(word_bits)), "flash": Out(FlashPins())})

    def elaborate(self, platform):
        m = Module()
        pins = self.flash
        lines, word_bytes = self.lines, self.word_bytes
        command = FLASH_FAST_READ_QUAD_OUTPUT if lines == 4 else FLASH_READ
        dummy = FLASH_QUAD_DUMMY_CLOCKS if lines == 4 else 0
        samples_per_word = word_bytes * 8 // lines

        sck = Signal(name="sck")
        cs_n = Signal(init=1, name="cs_n")
        shift = Signal(32, name="command_bits")        # command and address, sent MSB first
        sent = Signal(range(33 + dummy), name="clocks_sent")
        sample = Signal(range(samples_per_word), name="sample")
        word = Signal(8 * word_bytes, name="word")            # bytes so far, the first lowest
        out_word = Signal(8 * word_bytes, name="out_word")
        word_index = Signal(range(max(2, self.words)), name="word_index")
        driving = Signal(name="io0_driving")   # the command and address go out on io0
        m.d.comb += [pins.sck.eq(sck), pins.cs_n.eq(cs_n), pins.io0.eq(shift[-1]),
                     pins.io0_oe.eq(driving if lines == 4 else 1),
                     self.o.payload.eq(out_word[:len(self.o.payload)])]
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        data = pins.dq[1] if lines == 1 else pins.dq
        per_byte = 8 // lines
        part = Signal(range(max(2, per_byte)), name="byte_part")   # samples of the current byte so far
        current = Signal(8, name="byte")
        byte = Cat(data, current)[:8]                               # (current << lines) | data
        with m.FSM(name="spi"):
            with m.State("SELECT"):   # cs_n high for a cycle, then the command
                m.d.sync += [cs_n.eq(0), shift.eq((command << 24) | self.address), sent.eq(0), sck.eq(0)]
                m.next = "COMMAND"
            with m.State("COMMAND"):  # 32 bits on io0, then the dummy clocks (io0 released)
                m.d.comb += driving.eq(sent < 32)
                with m.If(~sck):
                    m.d.sync += sck.eq(1)
                with m.Else():
                    m.d.sync += [sck.eq(0), shift.eq(shift << 1), sent.eq(sent + 1)]
                    with m.If(sent == 31 + dummy):
                        m.next = "DATA"
            with m.State("DATA"):     # sample while raising sck; wait while a finished word is unread
                completes = sample == samples_per_word - 1
                with m.If(sck):
                    m.d.sync += sck.eq(0)
                with m.Elif(~(completes & self.o.valid & ~self.o.ready)):
                    m.d.sync += [sck.eq(1), sample.eq(Mux(completes, 0, sample + 1)),
                                 part.eq(Mux(part == per_byte - 1, 0, part + 1)), current.eq(byte)]
                    with m.If(part == per_byte - 1):   # bytes go in at the top: the first ends lowest
                        m.d.sync += word.eq(Cat(word[8:], byte))
                    with m.If(completes):
                        m.d.sync += [self.o.valid.eq(1), out_word.eq(Cat(word[8:], byte))]
                        with m.If(word_index == self.words - 1):
                            m.d.sync += [word_index.eq(0), cs_n.eq(1)]
                            m.next = "SELECT"
                        with m.Else():
                            m.d.sync += word_index.eq(word_index + 1)
        return m
