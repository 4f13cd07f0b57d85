"""A UART host bridge for stream accelerators, and bitstreams for real boards.

On the board, the host talks to the accelerator over the USB UART every supported board has::

    host ──rx──▶ UARTRx ─▶ FIFO (block RAM) ─▶ bytes→word ─▶ accelerator.i
    host ◀─tx── UARTTx ◀──────────────────── word→bytes ◀── accelerator.o

Wire format: 8N1 at ``baud``; each W-bit stream word travels as ``ceil(W/8)`` bytes, least
significant byte first (see :func:`words_to_bytes` / :func:`bytes_to_words`).

Flow control: the iCEBreaker's and the ULX3S's FTDI UARTs give the FPGA only RX and TX, so the
host cannot be paused. Bytes the accelerator is not ready for wait in the RX FIFO. The
assumed protocol: **the host sends one tensor's input words, then reads all of its output words,
then sends the next tensor**; no byte is lost as long as one tensor's input fits in the FIFO
(``fifo_depth`` bytes, 2048 unless ``hwgen synth --fifo-bytes`` says otherwise). The output side
never drops: the transmitter holds ``o.ready`` low while it is busy. A byte that arrives to a full
FIFO is dropped and sets the sticky ``overrun`` flag (an LED on the boards), never silently.

:func:`build_board` wraps an accelerator's Verilog in this bridge on an amaranth-boards
platform and builds a bitstream with the YoWASP tools; its report has the same form as
:func:`hwgen.synth.flow.synthesize`'s.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from amaranth import C, Cat, ClockDomain, ClockSignal, Elaboratable, Instance, Module, ResetSignal, Signal, unsigned
from amaranth.lib import cdc, fifo, io, stream, wiring
from amaranth.lib.wiring import In, Out

from ..devices import Family
from ..devices import device as lookup_device
from ..errors import InvalidOptionError, ToolchainError
from .flow import SEED, SynthResult, check_fits, check_verified, make_report
from .harness import StreamPorts, stream_ports
from .pll import Pll, ice40_pll
from .report import yosys_resources
from .tools import ProgressCallback, first_error_line, run_tool, tool_env

__all__ = ["UARTRx", "UARTTx", "StreamBridge", "BoardTop", "Board", "BOARDS", "build_board",
           "words_to_bytes", "bytes_to_words", "bytes_per_word", "DEFAULT_BAUD", "DEFAULT_FIFO_DEPTH"]

DEFAULT_BAUD = 115_200
DEFAULT_FIFO_DEPTH = 2048  # bytes: one EBR's worth on ECP5, four on the UP5K


def bytes_per_word(width: int) -> int:
    return (width + 7) // 8


def words_to_bytes(words: Iterable[int], width: int) -> bytes:
    """The bytes the host sends for ``width``-bit stream words (little-endian, whole bytes)."""
    n = bytes_per_word(width)
    out = bytearray()
    for word in words:
        if not 0 <= word < 1 << width:
            raise ValueError(f"word {word!r} does not fit in {width} unsigned bits")
        out += int(word).to_bytes(n, "little")
    return bytes(out)


def bytes_to_words(data: bytes, width: int) -> list[int]:
    """The ``width``-bit words in bytes the bridge sent (a trailing partial word is an error)."""
    n = bytes_per_word(width)
    if len(data) % n:
        raise ValueError(f"{len(data)} bytes are not a whole number of {n}-byte words")
    return [int.from_bytes(data[k:k + n], "little") for k in range(0, len(data), n)]


class UARTRx(wiring.Component):
    """8N1 receiver. ``o`` holds each byte until taken; a byte completed while the previous one
    still waits is dropped and sets ``overrun`` (sticky). ``divisor``: clock cycles per bit."""

    def __init__(self, divisor: int) -> None:
        if divisor < 4:
            raise ValueError(f"UART divisor must be >= 4 clock cycles per bit, not {divisor}")
        self.divisor = divisor
        super().__init__({"rx": In(1, init=1), "o": Out(stream.Signature(unsigned(8))),
                          "overrun": Out(1), "framing_error": Out(1)})

    def elaborate(self, platform) -> Module:
        m = Module()
        rx = Signal(init=1)
        m.submodules.sync = cdc.FFSynchronizer(self.rx, rx, init=1)  # rx is asynchronous
        timer = Signal(range(self.divisor))
        bit = Signal(range(8))
        shift = Signal(8)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.FSM():
            with m.State("IDLE"), m.If(~rx):  # start bit's falling edge: aim at its middle
                m.d.sync += timer.eq(self.divisor // 2 - 1)
                m.next = "START"
            with m.State("START"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(self.divisor - 1), bit.eq(0)]
                    with m.If(rx):  # high again mid-bit: a glitch, not a start bit
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "DATA"
            with m.State("DATA"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(self.divisor - 1), shift.eq((shift >> 1) | (rx << 7)), bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    with m.If(~rx):
                        m.d.sync += self.framing_error.eq(1)
                        m.next = "BREAK"
                    with m.Elif(self.o.valid & ~self.o.ready):
                        m.d.sync += self.overrun.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [self.o.payload.eq(shift), self.o.valid.eq(1)]
                        m.next = "IDLE"
            with m.State("BREAK"):  # after a bad stop bit, wait for the idle level
                with m.If(rx):
                    m.next = "IDLE"
        return m


class UARTTx(wiring.Component):
    """8N1 transmitter; ``i.ready`` is high only while idle, so words wait in the sender."""

    def __init__(self, divisor: int) -> None:
        if divisor < 1:
            raise ValueError(f"UART divisor must be >= 1, not {divisor}")
        self.divisor = divisor
        super().__init__({"i": In(stream.Signature(unsigned(8))), "tx": Out(1, init=1)})

    def elaborate(self, platform) -> Module:
        m = Module()
        timer = Signal(range(self.divisor))
        frame = Signal(10)   # stop bit, 8 data bits, start bit: shifted out from bit 0
        bits_left = Signal(range(11))
        # Ready once the last bit put on the line (the stop bit) has lasted a full bit time.
        m.d.comb += self.i.ready.eq((bits_left == 0) & (timer == 0))
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [frame.eq((1 << 9) | (self.i.payload << 1)), bits_left.eq(10)]
        with m.Elif((timer == 0) & (bits_left != 0)):
            m.d.sync += [self.tx.eq(frame[0]), frame.eq(frame >> 1), bits_left.eq(bits_left - 1),
                         timer.eq(self.divisor - 1)]
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        return m


class StreamBridge(wiring.Component):
    """UART bytes <-> stream words for one accelerator: ``acc_i`` feeds its ``i``, ``acc_o``
    takes its ``o``. See the module documentation for the wire format and flow control."""

    def __init__(self, in_width: int, out_width: int, *, divisor: int, fifo_depth: int = DEFAULT_FIFO_DEPTH):
        if fifo_depth < 1:
            raise ValueError(f"fifo_depth must be >= 1 byte, not {fifo_depth}")
        self.in_width, self.out_width = in_width, out_width
        self.divisor, self.fifo_depth = divisor, fifo_depth
        super().__init__({
            "rx": In(1, init=1), "tx": Out(1, init=1),
            "acc_i": Out(stream.Signature(unsigned(in_width))),
            "acc_o": In(stream.Signature(unsigned(out_width))),
            "overrun": Out(1), "framing_error": Out(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.uart_rx = rx = UARTRx(self.divisor)
        m.submodules.uart_tx = tx = UARTTx(self.divisor)
        m.submodules.fifo = buffer = fifo.SyncFIFOBuffered(width=8, depth=self.fifo_depth)
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx), self.framing_error.eq(rx.framing_error)]
        wiring.connect(m, rx.o, buffer.w_stream)
        # A byte dropped in the receiver, or one it hands to a full FIFO, is an overrun.
        with m.If(rx.overrun):
            m.d.sync += self.overrun.eq(1)

        # Bytes -> words: collect ceil(W_IN/8) bytes, low byte first, then offer the word.
        n_in = bytes_per_word(self.in_width)
        word_in = Signal(8 * n_in)
        got = Signal(range(n_in + 1))
        source = buffer.r_stream
        m.d.comb += [self.acc_i.payload.eq(word_in[:self.in_width]), self.acc_i.valid.eq(got == n_in),
                     source.ready.eq(got != n_in)]
        with m.If(source.valid & source.ready):
            m.d.sync += [word_in.eq((word_in >> 8) | (source.payload << (8 * (n_in - 1)))), got.eq(got + 1)]
        with m.If(self.acc_i.valid & self.acc_i.ready):
            m.d.sync += got.eq(0)

        # Words -> bytes: take a word when empty, send its bytes low first.
        n_out = bytes_per_word(self.out_width)
        word_out = Signal(8 * n_out)
        left = Signal(range(n_out + 1))
        m.d.comb += [self.acc_o.ready.eq(left == 0), tx.i.payload.eq(word_out[:8]), tx.i.valid.eq(left != 0)]
        with m.If(self.acc_o.valid & self.acc_o.ready):
            m.d.sync += [word_out.eq(self.acc_o.payload), left.eq(n_out)]
        with m.If(tx.i.valid & tx.i.ready):
            m.d.sync += [word_out.eq(word_out >> 8), left.eq(left - 1)]
        return m


@dataclass(frozen=True)
class VerilogAccelerator:
    """An accelerator as its Verilog text, top module name and stream ports."""

    verilog: str
    top: str
    ports: StreamPorts

    @classmethod
    def from_file(cls, path: Path, top: str, ports: StreamPorts | None = None) -> VerilogAccelerator:
        """Reads the Verilog and its ports; ``ports`` (from a manifest), if given, must agree."""
        text = Path(path).read_text()
        try:
            found = stream_ports(text, top)
        except ValueError as exc:
            raise InvalidOptionError(f"{path}: {exc}") from None
        if ports is not None and (ports.in_width, ports.out_width) != (found.in_width, found.out_width):
            raise InvalidOptionError(f"{path}: payloads are {found.in_width} bits in, {found.out_width} out, "
                                     f"not {ports.in_width} and {ports.out_width} as given (a stale manifest?)")
        return cls(text, top, found)

    @classmethod
    def from_component(cls, component: wiring.Component, top: str) -> VerilogAccelerator:
        """Converts an Amaranth stream component to Verilog (the text the board synthesizes)."""
        from .harness import to_verilog
        text = to_verilog(component, top)
        return cls(text, top, stream_ports(text, top))

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.verilog.encode()).hexdigest()


class BoardTop(Elaboratable):
    """The board's top level: UART pins -> bridge -> the accelerator's Verilog (an Instance); a
    sequential engine's flash pins (`flash_lines` 1 or 4) to the board's SPI flash."""

    def __init__(self, accelerator: VerilogAccelerator, *, baud: int = DEFAULT_BAUD,
                 fifo_depth: int = DEFAULT_FIFO_DEPTH, flash_lines: int = 0, pll: Pll | None = None) -> None:
        self.accelerator, self.baud, self.fifo_depth = accelerator, baud, fifo_depth
        self.flash_lines, self.pll = flash_lines, pll

    def elaborate(self, platform) -> Module:
        m = Module()
        acc = self.accelerator
        clock_hz = platform.default_clk_frequency
        if self.pll is not None:
            clock_hz = self._pll_domain(m, platform)
        divisor = round(clock_hz / self.baud)
        m.submodules.bridge = bridge = StreamBridge(acc.ports.in_width, acc.ports.out_width, divisor=divisor,
                                                    fifo_depth=self.fifo_depth)
        platform.add_file(f"{acc.top}.v", acc.verilog)
        ports = dict(i_clk=ClockSignal(), i_i__payload=bridge.acc_i.payload, i_i__valid=bridge.acc_i.valid,
                     o_i__ready=bridge.acc_i.ready, o_o__payload=bridge.acc_o.payload,
                     o_o__valid=bridge.acc_o.valid, i_o__ready=bridge.acc_o.ready)
        if acc.ports.has_rst:
            ports["i_rst"] = ResetSignal(allow_reset_less=True)  # boards may give sync no reset
        if self.flash_lines:
            ports.update(self._flash(m, platform))
        for name, width in acc.ports.extra_inputs:  # other outputs (counters) stay unconnected
            ports.setdefault(f"i_{name}", C(0, width))
        m.submodules.acc = Instance(acc.top, **ports)
        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx_pin = rx_pin = io.Buffer("i", uart.rx)
        m.submodules.tx_pin = tx_pin = io.Buffer("o", uart.tx)
        m.submodules.led_pin = led_pin = io.Buffer("o", platform.request("led", 0, dir="-"))
        m.d.comb += [bridge.rx.eq(rx_pin.i), tx_pin.o.eq(bridge.tx),
                     led_pin.o.eq(bridge.overrun | bridge.framing_error)]
        return m


    def _pll_domain(self, m: Module, platform) -> float:
        """The sync domain at the PLL's clock, made from the board's oscillator pin (SB_PLL40_PAD
        takes the pad itself), held in reset until the PLL has locked and then 15 us more, as the
        platform's own domain is (iCE40 block RAMs read zero for about 3 us after configuration)."""
        pll = self.pll
        clk_hz = pll.f_out_mhz * 1e6
        pad = platform.request(platform.default_clk, dir="-")
        clk, lock = Signal(name="pll_clk"), Signal(name="pll_lock")
        m.submodules.pll = Instance(
            "SB_PLL40_PAD", p_FEEDBACK_PATH="SIMPLE", p_DIVR=pll.divr, p_DIVF=pll.divf, p_DIVQ=pll.divq,
            p_FILTER_RANGE=pll.filter_range, i_PACKAGEPIN=pad.io, i_RESETB=1, i_BYPASS=0, o_PLLOUTGLOBAL=clk,
            o_LOCK=lock)
        platform.add_clock_constraint(clk, clk_hz)
        m.domains.por = ClockDomain("por", reset_less=True, local=True)
        m.domains.sync = ClockDomain("sync")
        delay = int(15e-6 * clk_hz)
        timer, ready = Signal(range(delay + 1)), Signal()
        m.d.comb += [ClockSignal("por").eq(clk), ClockSignal("sync").eq(clk), ResetSignal("sync").eq(~ready)]
        with m.If(~lock):
            m.d.por += [timer.eq(0), ready.eq(0)]
        with m.Elif(timer == delay):
            m.d.por += ready.eq(1)
        with m.Else():
            m.d.por += timer.eq(timer + 1)
        return clk_hz

    def _flash(self, m: Module, platform) -> dict:
        """The accelerator's flash pins on the board's configuration flash (user I/O once the FPGA
        is configured). Quad: io0 is driven only while the accelerator says so, io2 / io3 (WP#,
        HOLD#) are held high meanwhile and released with it; single: WP# and HOLD# stay high."""
        sck, cs_n, io0, io0_oe, dq = Signal(), Signal(), Signal(), Signal(), Signal(4)
        quad = self.flash_lines == 4
        pins = platform.request("spi_flash_4x" if quad else "spi_flash_1x", 0, dir="-")
        m.submodules.flash_cs = cs = io.Buffer("o", pins.cs)      # PinsN: o = 1 selects
        m.submodules.flash_clk = clk = io.Buffer("o", pins.clk)
        m.d.comb += [cs.o.eq(~cs_n), clk.o.eq(sck)]
        if quad:
            lines = []
            for k in range(4):
                m.submodules[f"flash_dq{k}"] = line = io.Buffer("io", pins.dq[k])
                m.d.comb += [line.o.eq(io0 if k == 0 else k >= 2), line.oe.eq(io0_oe if k != 1 else 0)]
                lines.append(line.i)
            m.d.comb += dq.eq(Cat(*lines))
        else:
            m.submodules.flash_copi = copi = io.Buffer("o", pins.copi)
            m.submodules.flash_cipo = cipo = io.Buffer("i", pins.cipo)
            m.submodules.flash_wp = wp = io.Buffer("o", pins.wp)
            m.submodules.flash_hold = hold = io.Buffer("o", pins.hold)
            m.d.comb += [copi.o.eq(io0), dq.eq(Cat(0, cipo.i, 0, 0)), wp.o.eq(0), hold.o.eq(0)]
        return dict(o_flash__sck=sck, o_flash__cs_n=cs_n, o_flash__io0=io0, o_flash__io0_oe=io0_oe, i_flash__dq=dq)


@dataclass(frozen=True)
class Board:
    name: str
    device: str        # hwgen device name
    platform: str      # amaranth_boards module:class

    def make_platform(self):
        import importlib
        module, _, cls = self.platform.partition(":")
        return getattr(importlib.import_module(module), cls)()


BOARDS: dict[str, Board] = {b.name: b for b in (
    Board("icebreaker", "ice40-up5k", "amaranth_boards.icebreaker:ICEBreakerPlatform"),
    Board("ulx3s-85f", "ecp5-85k", "amaranth_boards.ulx3s:ULX3S_85F_Platform"),
)}

_BUILD_NAME = "hwgen_board"


def build_board(accelerator: VerilogAccelerator, board: str, *, out_dir: str | Path, baud: int = DEFAULT_BAUD,
                fifo_depth: int = DEFAULT_FIFO_DEPTH, seed: int = SEED, verified_sha256: str | None = None,
                progress: ProgressCallback | None = None, flash_lines: int = 0,
                clock_mhz: float | None = None) -> SynthResult:
    """Builds a bitstream of ``accelerator`` behind the UART bridge for ``board``.

    Amaranth's own build script for the board runs (yosys, nextpnr with the board's pin and
    clock constraints, icepack/ecppack), with the YoWASP tools; the accelerator stays a module
    of its own through synthesis so its cells are counted apart from the bridge. Writes
    report.json beside the products in ``out_dir``. ``verified_sha256``: as for ``synthesize``.
    """
    if board not in BOARDS:
        raise InvalidOptionError(f"unknown board {board!r}; choose from {', '.join(BOARDS)}")
    check_verified(f"{accelerator.top}.v", accelerator.sha256, verified_sha256)
    spec = BOARDS[board]
    dev = lookup_device(spec.device)
    if not 1200 <= baud <= 3_000_000:
        raise InvalidOptionError(f"--baud must be 1200..3000000, not {baud}")
    platform = spec.make_platform()
    pll = None
    if clock_mhz is not None:   # the design clock from the board's oscillator through a PLL
        if dev.family is not Family.ICE40:
            raise InvalidOptionError(f"--clock with --board: only the iCE40 boards' PLL is supported, not {board}'s")
        pll = ice40_pll(platform.default_clk_frequency / 1e6, clock_mhz)
    clock_hz = pll.f_out_mhz * 1e6 if pll else platform.default_clk_frequency
    clock_mhz = clock_hz / 1e6
    divisor = round(clock_hz / baud)
    if divisor < 4:
        raise InvalidOptionError(f"--baud {baud} is too fast for the {clock_mhz:g} MHz clock of {board} "
                                 f"(at least 4 clock cycles per bit)")
    actual = clock_hz / divisor
    if abs(actual - baud) > 0.02 * baud:  # 8N1 receivers tolerate a few percent in all
        raise InvalidOptionError(f"--baud {baud} is {100 * (actual / baud - 1):+.1f}% off at the {clock_mhz:g} MHz "
                                 f"clock of {board} ({divisor} cycles per bit); choose a rate within 2%")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    def report(message: str) -> None:
        if progress is not None:
            progress(message)

    top = accelerator.top
    synth_opts = dev.synth_command.split(maxsplit=1)[1] if " " in dev.synth_command else ""
    plan = platform.build(
        BoardTop(accelerator, baud=baud, fifo_depth=fifo_depth, flash_lines=flash_lines, pll=pll), name=_BUILD_NAME,
        do_build=False,
        synth_opts=synth_opts,
        script_after_read=f"setattr -mod -set keep_hierarchy 1 {top}",
        script_after_synth=f"tee -q -o stat.json stat -json\nsetattr -mod -unset keep_hierarchy {top}\nflatten",
        nextpnr_opts=f"--seed {seed} --placer {dev.placer} --report nextpnr.json")
    plan.extract(out)
    for stale in ("stat.json", "nextpnr.json", "report.json"):
        (out / stale).unlink(missing_ok=True)
    report(f"{board}: building {_BUILD_NAME} with {top} behind a {baud}-baud UART bridge "
           f"({clock_mhz:g} MHz clock" + (f" from a PLL: DIVR {pll.divr}, DIVF {pll.divf}, DIVQ {pll.divq})" if pll
                                          else ")"))
    start = time.perf_counter()
    try:
        run_tool("build", [f"build_{_BUILD_NAME}.sh"], command=["sh"], cwd=out, log=out / "build.log",
                 env=tool_env(), on_line=lambda line: _board_progress(line, report))
    except ToolchainError as exc:
        stat_file = out / "stat.json"
        if stat_file.exists():  # name the resource when yosys's netlist already cannot fit
            check_fits(dev, yosys_resources(json.loads(stat_file.read_text())))
        first = first_error_line(exc.output)
        hint = "; build it with a lower --clock" if "Max frequency" in first and "FAIL at" in first else ""
        raise ToolchainError(f"{board} build failed: {first}{hint} [log: {out / 'build.log'}]",
                             output=exc.output) from None
    seconds = time.perf_counter() - start

    bitstream = f"{_BUILD_NAME}.bin" if dev.family is Family.ICE40 else f"{_BUILD_NAME}.bit"
    synth_report = make_report(
        dev, out, top=top, verilog=f"{top}.v", sha256=accelerator.sha256, clock_mhz=clock_mhz, seed=seed,
        yosys_log=(out / f"{_BUILD_NAME}.rpt").read_text(), bitstream=bitstream, board=board,
        harness=f"UART bridge, {baud} baud 8N1, {fifo_depth}-byte RX FIFO", cosim_verified=verified_sha256 is not None,
        placer=dev.placer)
    synth_report.write(out / "report.json")
    report(f"{board}: {bitstream} in {seconds:.1f} s")
    return SynthResult(report=synth_report, out_dir=out, report_path=out / "report.json",
                       bitstream=out / bitstream,
                       logs=(out / "build.log", out / f"{_BUILD_NAME}.rpt", out / f"{_BUILD_NAME}.tim"),
                       seconds=(("build", seconds),))


def _board_progress(line: str, report: ProgressCallback) -> None:
    if line.startswith("Info: Max frequency for clock") and "$PACKER_" not in line:
        report(line.removeprefix("Info: "))
