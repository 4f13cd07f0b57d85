"""The SPI flash reader in Amaranth's simulator against a flash modelled in Python: the command and
address it sends, when it lets go of io0, the words it assembles, and its restart after the last."""

import random

import pytest
from amaranth.sim import Simulator

from hwgen.fpga.hardware import FLASH_FAST_READ_QUAD_OUTPUT, FLASH_QUAD_DUMMY_CLOCKS, FLASH_READ
from hwgen.hdl.flash import SpiFlashReader


@pytest.mark.parametrize("lines", [1, 4])
def test_reader_streams_the_words_over_and_over(lines):
    address, words, word_bytes, word_bits = 0x012345, 3, 3, 20
    rng = random.Random(lines)
    memory = {address + k: rng.randrange(256) for k in range(words * word_bytes)}
    want = [int.from_bytes(bytes(memory[address + w * word_bytes + b] for b in range(word_bytes)), "little")
            & ((1 << word_bits) - 1) for w in range(words)]
    dut = SpiFlashReader(address, words, word_bytes, word_bits, lines)
    command = FLASH_FAST_READ_QUAD_OUTPUT if lines == 4 else FLASH_READ
    dummy = FLASH_QUAD_DUMMY_CLOCKS if lines == 4 else 0
    got, transactions = [], []

    async def bench(ctx):
        flash = dut.flash
        old_sck, received, pointer, part, selected = 0, [], None, 0, False
        for _ in range(6000):
            ready = rng.random() < 0.6
            ctx.set(dut.o.ready, ready)
            if ready and ctx.get(dut.o.valid):   # the word moves at the coming edge
                got.append(ctx.get(dut.o.payload))
            await ctx.tick()
            sck, cs_n = ctx.get(flash.sck), ctx.get(flash.cs_n)
            if cs_n:
                if selected:
                    transactions.append(received)
                selected, received, pointer, part = False, [], None, 0
            elif not selected:
                selected = True
            elif sck and not old_sck:   # rising edge: the flash samples io0
                if len(received) < 32:
                    assert ctx.get(flash.io0_oe), "io0 must be driven while the command and address go out"
                    received.append(ctx.get(flash.io0))
                elif lines == 4:
                    assert not ctx.get(flash.io0_oe), "in quad mode the flash drives io0 after the address"
                    received.append(None)
            elif not sck and old_sck and len(received) >= 32 + dummy:   # falling edge: data out
                if pointer is None:
                    bits = received[:32]
                    assert int("".join(map(str, bits[:8])), 2) == command
                    pointer = int("".join(map(str, bits[8:32])), 2)
                byte = memory.get(pointer, 0xFF)
                if lines == 4:
                    ctx.set(flash.dq, byte >> 4 if part == 0 else byte & 0xF)
                    part ^= 1
                else:
                    ctx.set(flash.dq, ((byte >> (7 - part)) & 1) << 1)
                    part = (part + 1) % 8
                if part == 0:
                    pointer += 1
            old_sck = sck

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert len(got) >= 2 * words and got[:2 * words] == want * 2
    assert len(transactions) >= 1   # cs_n went high after the last word, and a new read began
