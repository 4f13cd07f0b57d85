# amaranth: UnusedElaboratable=no
"""The UART host bridge in Amaranth's simulator (bit-exact, back-pressure, overrun), and board builds.

The testbench plays the host: it drives the RX line bit by bit at the divisor and decodes the TX
line by sampling mid-bit, so the checks do not reuse the design's own UART logic.
"""

from __future__ import annotations

import dataclasses
import random
import re

import pytest
from amaranth import Elaboratable, Module
from amaranth.lib import wiring
from amaranth.sim import Simulator
from hypothesis import given
from hypothesis import strategies as st

from hwgen.errors import InvalidOptionError
from hwgen.synth.board import (
    BOARDS,
    BoardTop,
    StreamBridge,
    UARTRx,
    UARTTx,
    VerilogAccelerator,
    build_board,
    bytes_per_word,
    bytes_to_words,
    words_to_bytes,
)
from hwgen.synth.probes import MacArray, mac_model
from hwgen.synth.tools import missing_tools

# -- the wire format -----------------------------------------------------------------------------


@given(st.integers(1, 100).flatmap(lambda w: st.tuples(st.just(w), st.lists(st.integers(0, (1 << w) - 1)))))
def test_words_bytes_roundtrip(case):
    width, words = case
    data = words_to_bytes(words, width)
    assert len(data) == len(words) * bytes_per_word(width)
    assert bytes_to_words(data, width) == words


def test_word_format_is_little_endian_whole_bytes():
    assert words_to_bytes([0x123], 12) == b"\x23\x01"
    assert words_to_bytes([0xABCDE], 20) == b"\xde\xbc\x0a"
    with pytest.raises(ValueError, match=r"^word 4096 does not fit in 12 unsigned bits$"):
        words_to_bytes([4096], 12)
    with pytest.raises(ValueError, match=r"^3 bytes are not a whole number of 2-byte words$"):
        bytes_to_words(b"abc", 12)


# -- a simulated host ----------------------------------------------------------------------------


async def send_bytes(ctx, line, data: bytes, divisor: int, gap: int = 0) -> None:
    """Drives an 8N1 line: start bit, 8 data bits LSB first, stop bit, then ``gap`` idle cycles."""
    for byte in data:
        for bit in [0, *((byte >> k) & 1 for k in range(8)), 1]:
            ctx.set(line, bit)
            await ctx.tick().repeat(divisor)
        if gap:
            await ctx.tick().repeat(gap)


async def receive_bytes(ctx, line, count: int, divisor: int) -> bytes:
    """Decodes ``count`` 8N1 bytes from a line, sampling each bit in its middle."""
    out = bytearray()
    while len(out) < count:
        await ctx.tick().until(line == 0)
        await ctx.tick().repeat(divisor // 2)
        assert ctx.get(line) == 0, "start bit too short"
        byte = 0
        for k in range(8):
            await ctx.tick().repeat(divisor)
            byte |= ctx.get(line) << k
        await ctx.tick().repeat(divisor)
        assert ctx.get(line) == 1, f"no stop bit after byte {len(out)}"
        out.append(byte)
    return bytes(out)


def run(dut, *testbenches, deadline_cycles: int = 200_000) -> None:
    """Runs the testbenches to completion; a hang fails after ``deadline_cycles``."""
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for tb in testbenches:
        sim.add_testbench(tb)

    async def watchdog(ctx):
        for _ in range(deadline_cycles):  # single ticks: a suspended repeat() warns when dropped
            await ctx.tick()
        raise AssertionError(f"simulation still running after {deadline_cycles} cycles")
    sim.add_testbench(watchdog, background=True)
    sim.run()


# -- the UART alone ------------------------------------------------------------------------------


@pytest.mark.parametrize("divisor", [4, 5, 8])
def test_uart_loopback(divisor):
    """TX -> RX through a wire: every byte value, back to back."""
    class Loop(Elaboratable):
        def __init__(self):
            self.tx, self.rx = UARTTx(divisor), UARTRx(divisor)

        def elaborate(self, platform):
            m = Module()
            m.submodules.tx, m.submodules.rx = self.tx, self.rx
            m.d.comb += self.rx.rx.eq(self.tx.tx)
            return m

    dut = Loop()
    data = bytes(range(256))
    got = bytearray()

    async def source(ctx):
        for byte in data:
            ctx.set(dut.tx.i.valid, 1)
            ctx.set(dut.tx.i.payload, byte)
            await ctx.tick().until(dut.tx.i.ready)
        ctx.set(dut.tx.i.valid, 0)

    async def sink(ctx):
        ctx.set(dut.rx.o.ready, 1)
        while len(got) < len(data):
            _, _, valid, payload = await ctx.tick().sample(dut.rx.o.valid, dut.rx.o.payload)
            if valid:
                got.append(payload)
        assert not ctx.get(dut.rx.overrun)

    run(dut, source, sink, deadline_cycles=12 * divisor * len(data))
    assert bytes(got) == data


def test_uart_rx_ignores_glitches_and_flags_bad_stop_bits():
    dut = UARTRx(8)
    got = []

    async def host(ctx):
        ctx.set(dut.rx, 0)   # a 3-cycle glitch: shorter than half a bit
        await ctx.tick().repeat(3)
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(40)
        for bit in [0, 1, 0, 1, 0, 1, 0, 1, 0, 0]:  # 0x55 with a 0 stop bit
            ctx.set(dut.rx, bit)
            await ctx.tick().repeat(8)
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(20)
        assert ctx.get(dut.framing_error)
        await send_bytes(ctx, dut.rx, b"\xa7", 8)
        await ctx.tick().repeat(20)

    async def sink(ctx):
        ctx.set(dut.o.ready, 1)
        for _ in range(400):
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid:
                got.append(payload)

    run(dut, host, sink)
    assert got == [0xA7]


def test_uart_rejects_too_small_divisors():
    with pytest.raises(ValueError, match=r"^UART divisor must be >= 4 clock cycles per bit, not 3$"):
        UARTRx(3)


# -- the bridge ----------------------------------------------------------------------------------


@pytest.mark.parametrize("in_width,out_width,divisor", [(12, 20, 5), (8, 8, 8), (33, 1, 4)])
def test_bridge_is_bit_exact_and_buffers_a_stalled_accelerator(in_width, out_width, divisor):
    """The host sends a whole tensor while the accelerator refuses input; nothing is lost, the
    words arrive intact in order, and output words of any width come back as LE bytes."""
    rng = random.Random(in_width * 1000 + out_width)
    words_in = [rng.randrange(1 << in_width) for _ in range(24)]
    words_out = [rng.randrange(1 << out_width) for _ in range(17)]
    data = words_to_bytes(words_in, in_width)
    dut = StreamBridge(in_width, out_width, divisor=divisor, fifo_depth=len(data))
    received_words: list[int] = []
    host_got = bytearray()
    host_done = []

    async def host_send(ctx):
        await send_bytes(ctx, dut.rx, data, divisor)
        host_done.append(True)

    async def host_receive(ctx):
        host_got.extend(await receive_bytes(ctx, dut.tx, len(words_out) * bytes_per_word(out_width), divisor))

    async def accelerator(ctx):
        # Stalled: not ready for any input until the host has sent every byte.
        while not host_done:
            await ctx.tick()
        ctx.set(dut.acc_i.ready, 1)
        while len(received_words) < len(words_in):
            _, _, valid, payload = await ctx.tick().sample(dut.acc_i.valid, dut.acc_i.payload)
            if valid:
                received_words.append(payload)
        ctx.set(dut.acc_i.ready, 0)
        for word in words_out:  # output with random gaps, holding each word until taken
            await ctx.tick().repeat(rng.randrange(1, 30))
            ctx.set(dut.acc_o.valid, 1)
            ctx.set(dut.acc_o.payload, word)
            await ctx.tick().until(dut.acc_o.ready)
            ctx.set(dut.acc_o.valid, 0)
        assert not ctx.get(dut.overrun)

    run(dut, host_send, host_receive, accelerator)
    assert received_words == words_in
    assert bytes_to_words(bytes(host_got), out_width) == words_out


def test_bridge_flags_overrun_when_the_fifo_is_too_small():
    dut = StreamBridge(8, 8, divisor=4, fifo_depth=4)
    flags = []

    async def host(ctx):
        await send_bytes(ctx, dut.rx, bytes(range(10)), 4)
        await ctx.tick().repeat(10)
        flags.append(ctx.get(dut.overrun))

    run(dut, host)  # acc_i.ready stays low: the accelerator never takes a word
    assert flags == [1]


def test_bridge_in_front_of_a_real_accelerator():
    """Host -> bridge -> MacArray -> bridge -> host, against the MacArray's Python model."""
    mac = MacArray(2, words=3)
    bridge = StreamBridge(32, 32, divisor=4, fifo_depth=64)

    class Top(Elaboratable):
        def elaborate(self, platform):
            m = Module()
            m.submodules.bridge, m.submodules.mac = bridge, mac
            wiring.connect(m, bridge.acc_i, mac.i)
            wiring.connect(m, mac.o, bridge.acc_o)
            return m

    rng = random.Random(5)
    words = [rng.randrange(1 << 32) for _ in range(12)]
    expected = mac_model(mac, words)
    got = bytearray()

    async def host_send(ctx):
        await send_bytes(ctx, bridge.rx, words_to_bytes(words, 32), 4, gap=3)

    async def host_receive(ctx):
        got.extend(await receive_bytes(ctx, bridge.tx, 4 * len(expected), 4))

    run(Top(), host_send, host_receive)
    assert bytes_to_words(bytes(got), 32) == expected


# -- board builds (slow: a full yosys + nextpnr + pack run each) --------------------------------

_missing = missing_tools()
needs_tools = pytest.mark.skipif(bool(_missing), reason=f"YoWASP tools missing: {', '.join(_missing)}")


def test_board_build_refuses_unknown_boards_and_baud_rates(tmp_path):
    acc = VerilogAccelerator("module m; endmodule", "m", None)  # not reached
    with pytest.raises(InvalidOptionError, match=r"^unknown board 'pynq'; choose from icebreaker, ulx3s-85f$"):
        build_board(acc, "pynq", out_dir=tmp_path)
    with pytest.raises(InvalidOptionError, match=r"^--baud must be 1200\.\.3000000, not 6000000$"):
        build_board(acc, "icebreaker", out_dir=tmp_path, baud=6_000_000)
    with pytest.raises(InvalidOptionError, match=r"^--baud 2500000 is -4\.0% off at the 12 MHz clock of icebreaker "
                                                 r"\(5 cycles per bit\); choose a rate within 2%$"):
        build_board(acc, "icebreaker", out_dir=tmp_path, baud=2_500_000)


@pytest.mark.synth
@pytest.mark.slow
@needs_tools
@pytest.mark.parametrize("board", list(BOARDS))
def test_board_bitstream(board, tmp_path):
    acc = VerilogAccelerator.from_component(MacArray(2), "mac2")
    result = build_board(acc, board, out_dir=tmp_path, fifo_depth=512)
    report = result.report
    assert result.bitstream.stat().st_size > 100_000
    assert report.board == board and report.verilog_sha256 == acc.sha256
    assert report.accelerator.dsp == 2 and report.placed.dsp == 2
    assert report.placed.bram >= 1          # the RX FIFO
    assert report.placed.io >= 4            # clock, rx, tx, led
    assert report.timing_met and report.clocks[0].target_mhz in (12.0, 25.0)


@pytest.mark.parametrize("weights", ["qspi", "spi"])
def test_a_flash_design_on_the_icebreaker_reads_the_boards_spi_flash(weights):
    """A sequential engine with its weights in flash: the board top wires its flash pins to the
    iCEBreaker's configuration flash (pins 16 cs, 15 clk, 14 io0, 17 io1, 12 io2/WP#, 13 io3/HOLD#)."""
    from hwgen import api
    from hwgen.backends.fpga import to_verilog
    from hwgen.fpga.outputs import hardware_graph
    from hwgen.fpga.sequential import WeightSource, make_seq_plan
    from hwgen.synth.harness import stream_ports

    from ..conftest import DIGITS
    graph, _ = hardware_graph(api.compile(DIGITS / "tinycnn_fp32_qdq_s8s8_pc.onnx").graph)
    plan, _ = make_seq_plan(graph, 2, 1, WeightSource(weights), spram_banks=True)
    text = to_verilog(graph, plan)
    acc = VerilogAccelerator(text, plan.top, stream_ports(text, plan.top))
    build = BOARDS["icebreaker"].make_platform().build(BoardTop(acc, flash_lines=WeightSource(weights).lines),
                                                       name="t", do_build=False)
    pcf = build.files["t.pcf"]
    for pin in ("16", "15", "14", "17", "12", "13"):
        assert re.search(rf"^set_io .*spi_flash_{'4x' if weights == 'qspi' else '1x'}.* {pin}$", pcf, re.M), pin
    top = build.files["t.il"] if "t.il" in build.files else build.files["t.v"]
    assert "flash__io0_oe" in top and "flash__dq" in top


# -- the PLL (--board icebreaker --clock MHZ) ----------------------------------------------------


def test_ice40_pll_dividers():
    from hwgen.synth.pll import ice40_pll
    # icepll -i 12 -o 24 / -o 48 / -o 30
    assert (lambda p: (p.divr, p.divf, p.divq, p.filter_range))(ice40_pll(12, 24)) == (0, 63, 5, 1)
    assert (lambda p: (p.divr, p.divf, p.divq, p.filter_range))(ice40_pll(12, 48)) == (0, 63, 4, 1)
    assert ice40_pll(12, 30).f_out_mhz == 30.0
    assert ice40_pll(12, 27.21).f_out_mhz == 27.0      # never above what was asked (timing)
    for wrong in (15, 300):
        with pytest.raises(InvalidOptionError, match="the iCE40 PLL makes 16 to 275 MHz"):
            ice40_pll(12, wrong)


@given(st.floats(10, 133), st.floats(16, 275))
def test_ice40_pll_keeps_its_ranges(f_in, f_out):
    from hwgen.synth.pll import ice40_pll
    try:
        p = ice40_pll(f_in, f_out)
    except InvalidOptionError:
        return
    assert 10 <= p.f_pfd_mhz <= 133 and 533 <= p.f_vco_mhz <= 1066 and 1 <= p.divq <= 6
    assert 16 <= p.f_out_mhz <= f_out + 1e-9
    assert 0 <= p.divr <= 15 and 0 <= p.divf <= 127 and 1 <= p.filter_range <= 6
    # no divider of the same DIVR and DIVQ gives a clock closer below f_out
    better = dataclasses.replace(p, divf=p.divf + 1)
    assert not (533 <= better.f_vco_mhz <= 1066 and better.f_out_mhz <= f_out + 1e-9)


def test_a_pll_clocks_the_icebreaker_build():
    from hwgen.synth.pll import ice40_pll
    acc = VerilogAccelerator.from_component(MacArray(2), "mac2")
    build = BOARDS["icebreaker"].make_platform().build(BoardTop(acc, pll=ice40_pll(12, 24)), name="t",
                                                       do_build=False)
    top = build.files["t.il"] if "t.il" in build.files else build.files["t.v"]
    assert "SB_PLL40_PAD" in top and re.search(r"DIVF\D+63\b", top) and re.search(r"DIVQ\D+5\b", top)
    pcf = build.files["t.pcf"]
    assert re.search(r"^set_io .*clk12.* 35$", pcf, re.M)     # the PLL takes the 12 MHz pad itself
    assert re.search(r"^set_frequency pll_clk 24.0$", pcf, re.M)


@pytest.mark.synth
@pytest.mark.slow
@needs_tools
def test_icebreaker_bitstream_with_a_pll(tmp_path):
    acc = VerilogAccelerator.from_component(MacArray(2), "mac2")
    result = build_board(acc, "icebreaker", out_dir=tmp_path, fifo_depth=512, clock_mhz=30)
    report = result.report
    assert report.timing_met and abs(report.clocks[0].target_mhz - 30) < 0.1   # nextpnr rounds the period
    with pytest.raises(InvalidOptionError, match="only the iCE40 boards' PLL is supported"):
        build_board(acc, "ulx3s-85f", out_dir=tmp_path / "ulx3s", clock_mhz=30)
