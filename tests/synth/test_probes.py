# amaranth: UnusedElaboratable=no
"""The calibration designs compute what their models say, under random back-pressure."""

import random

import pytest
from amaranth.sim import Simulator

from hwgen.synth.probes import LineBuffer, MacArray, Rom, line_buffer_model, mac_model, rom_contents


def stream_through(dut, words: list[int], n_out: int, seed: int = 0) -> list[int]:
    """Feeds ``words`` into ``dut.i`` and collects ``n_out`` words from ``dut.o``, with both sides
    stalling at random."""
    rng = random.Random(seed)
    out: list[int] = []

    async def source(ctx):
        for word in words:
            while rng.random() < 0.3:
                await ctx.tick()
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, word)
            await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)

    async def sink(ctx):
        while len(out) < n_out:
            ready = rng.random() < 0.6
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if ready and valid:
                out.append(payload)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run()
    return out


@pytest.mark.parametrize("weights", [None, (-128, 127, 0, -1, 77)])
def test_mac_array(weights):
    lanes = 3 if weights is None else len(weights)
    mac = MacArray(lanes, words=4, weights=weights)
    rng = random.Random(lanes)
    width = len(mac.i.payload)
    words = [rng.randrange(1 << width) for _ in range(20)]
    words[0] = int.from_bytes(bytes([0x80] * (width // 8)), "little")  # -128 everywhere
    expected = mac_model(mac, words)
    assert stream_through(mac, words, len(expected)) == expected


def test_rom():
    rom = Rom(64, 12)
    addresses = [random.Random(1).randrange(64) for _ in range(40)]
    table = rom_contents(64, 12)
    assert stream_through(rom, addresses, len(addresses)) == [table[a] for a in addresses]


def test_line_buffer():
    buffer = LineBuffer(5, 8)
    words = list(range(1, 30))
    assert stream_through(buffer, words, len(words), seed=3) == line_buffer_model(buffer, words)


def test_probes_refuse_bad_shapes():
    with pytest.raises(ValueError, match=r"^MacArray needs lanes >= 1 and words >= 1, not 0, 4$"):
        MacArray(0)
    with pytest.raises(ValueError, match=r"^weights must be 2 int8 values, not \(1, 200\)$"):
        MacArray(2, weights=(1, 200))
