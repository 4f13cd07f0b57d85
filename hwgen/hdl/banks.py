"""The sequential engine's activation banks: single-port RAMs of `lanes` bytes a word.

A bank is only read or only written at any time, so one address serves both: `writes` says which.
`Bank` is a generic memory (block RAM where yosys puts it); `SpramBank` is built from iCE40
UltraPlus SB_SPRAM256KA cells (16K x 16 each: words of more than two bytes take several side by
side, more than 16K words several deep), which yosys does not infer from a memory. Its RTL
simulation uses `rtl/sb_spram256ka_model.v`.

Ports: `address`, `writes`; `write_data` and `write_enable` (one bit per byte lane); `read_enable`
and `read_data` (registered: the word at the address of the previous enabled cycle, held while
`read_enable` is low).
"""

from __future__ import annotations

from amaranth import Cat, ClockSignal, Const, Instance, Module, Mux, Signal, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from ..fpga.hardware import SPRAM_WIDTH, SPRAM_WORDS

__all__ = ["Bank", "SpramBank", "bank"]


class _BankBase(wiring.Component):
    def __init__(self, words: int, lanes: int):
        self.words, self.lanes = words, lanes
        super().__init__({
            "address": In(range(words)), "writes": In(1),
            "write_data": In(unsigned(8 * lanes)), "write_enable": In(lanes),
            "read_enable": In(1), "read_data": Out(unsigned(8 * lanes)),
        })


class Bank(_BankBase):
    def elaborate(self, platform):
        m = Module()
        m.submodules.memory = mem = memory.Memory(shape=unsigned(8 * self.lanes), depth=self.words, init=[])
        write, read = mem.write_port(granularity=8), mem.read_port(domain="sync")
        m.d.comb += [write.addr.eq(self.address), read.addr.eq(self.address), write.data.eq(self.write_data),
                     write.en.eq(Mux(self.writes, self.write_enable, 0)), read.en.eq(self.read_enable),
                     self.read_data.eq(read.data)]
        return m


class SpramBank(_BankBase):
    def elaborate(self, platform):
        m = Module()
        width = -(-8 * self.lanes // SPRAM_WIDTH)
        depth = -(-self.words // SPRAM_WORDS)
        data = Cat(self.write_data, Const(0, width * SPRAM_WIDTH - 8 * self.lanes))
        nibbles = Cat(*[Cat(b, b) for b in self.write_enable], Const(0, width * 4 - 2 * self.lanes))
        abits = (SPRAM_WORDS - 1).bit_length()   # a cell's address; the bits above pick the row
        row = self.address[abits:] if depth > 1 else Const(0, 1)
        row_read = Signal.like(row, name="row_read")   # the row the registered word came from
        with m.If(self.read_enable & ~self.writes):
            m.d.sync += row_read.eq(row)
        outputs = []
        for r in range(depth):
            words = []
            for c in range(width):
                out = Signal(SPRAM_WIDTH, name=f"spram{r}_{c}_out")
                m.submodules[f"spram{r}_{c}"] = Instance(
                    "SB_SPRAM256KA",
                    i_ADDRESS=self.address[:abits], i_DATAIN=data[c * SPRAM_WIDTH:(c + 1) * SPRAM_WIDTH],
                    i_MASKWREN=nibbles[c * 4:(c + 1) * 4], i_WREN=self.writes,
                    i_CHIPSELECT=(row == r) & Mux(self.writes, self.write_enable.any(), self.read_enable),
                    i_CLOCK=ClockSignal("sync"), i_STANDBY=0, i_SLEEP=0, i_POWEROFF=1, o_DATAOUT=out)
                words.append(out)
            outputs.append(Cat(*words)[:8 * self.lanes])
        m.d.comb += self.read_data.eq(outputs[0] if depth == 1 else
                                      Cat(*outputs).word_select(row_read, 8 * self.lanes))
        return m


def bank(words: int, lanes: int, spram: bool) -> _BankBase:
    return SpramBank(words, lanes) if spram else Bank(words, lanes)
