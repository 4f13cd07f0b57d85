"""The I/O harness that puts an accelerator on a chip for synthesis alone, and its port discovery.

An accelerator's stream payloads can be far wider than a package has pins (a UP5K in SG48 has
39). nextpnr-ice40 has no out-of-context mode, so each run places the accelerator inside a tiny
top level instead: its input payload comes from a shift register fed by one pin, its output
payload is loaded into a shift register read out through one pin, and every other stream
signal passes through a register; other outputs (performance counters, flash pins) are XORed
into one more pin, and other inputs (a flash's data lines) come from a shift register fed by one
more pin, so no input is a constant yosys could fold into the logic. So the whole accelerator
stays live (nothing is constant or unobserved), all of its paths start and end at registers, and
the design needs 8 to 10 pins whatever its widths. The harness costs ``W_IN + W_OUT + 5``
flip-flops and ``W_OUT`` LUTs (measured), which the report keeps apart from the accelerator's own
count.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from amaranth import Cat, ClockSignal, Instance, Module, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["StreamPorts", "stream_ports", "SerialHarness", "harness_verilog", "HARNESS_TOP",
           "HARNESS_DESCRIPTION", "to_verilog"]

HARNESS_TOP = "hwgen_synth_top"
HARNESS_DESCRIPTION = "serial I/O harness"


@dataclass(frozen=True, slots=True)
class StreamPorts:
    """The ports of an accelerator's Verilog top: stream payload widths, whether it has ``rst``,
    and any other ports (name, width), such as performance counters."""

    in_width: int
    out_width: int
    has_rst: bool = True
    extra_inputs: tuple[tuple[str, int], ...] = ()   # the harness shifts them in from one pin
    extra_outputs: tuple[tuple[str, int], ...] = ()  # the harness XORs them into one more pin


_MODULE = r"module\s+\\?{top}\s*\((.*?)endmodule"
_DECL = re.compile(r"\b(input|output)\s+(?:wire\s+|reg\s+)?(?:signed\s+)?(?:\[(\d+):(\d+)\]\s*)?"
                   r"\\?([A-Za-z_][A-Za-z0-9_$]*)")
_REQUIRED = {"clk": "input", "i__payload": "input", "i__valid": "input", "i__ready": "output",
             "o__payload": "output", "o__valid": "output", "o__ready": "input"}


def stream_ports(verilog: str, top: str) -> StreamPorts:
    """Reads the stream port widths of module ``top`` from its Verilog (as Amaranth writes it)."""
    module = re.search(_MODULE.format(top=re.escape(top)), verilog, re.S)
    if module is None:
        raise ValueError(f"no module {top!r} in the Verilog")
    ports = {name: (direction, int(msb) - int(lsb) + 1 if msb else 1)
             for direction, msb, lsb, name in _DECL.findall(module[1])}
    missing = [name for name in _REQUIRED if name not in ports]
    if missing:
        raise ValueError(f"module {top!r} lacks the stream ports {missing} (has {sorted(ports)})")
    for name, direction in _REQUIRED.items():
        if ports[name][0] != direction:
            raise ValueError(f"port {name!r} of module {top!r} must be an {direction}")
    extra = {name: port for name, port in ports.items() if name not in _REQUIRED and name != "rst"}
    return StreamPorts(ports["i__payload"][1], ports["o__payload"][1], has_rst="rst" in ports,
                       extra_inputs=tuple((n, w) for n, (d, w) in extra.items() if d == "input"),
                       extra_outputs=tuple((n, w) for n, (d, w) in extra.items() if d == "output"))


class SerialHarness(wiring.Component):
    """Top level around module ``top``: serial payloads, registered handshakes (see module doc)."""

    def __init__(self, top: str, ports: StreamPorts) -> None:
        self._top, self._ports = top, ports
        super().__init__({
            "sin": In(1),      # input payload, shifted in one bit per cycle
            "i_valid": In(1), "i_ready": Out(1), "o_valid": Out(1), "o_ready": In(1),
            "sout": Out(1),    # output payload, loaded on each transfer, shifted out bit by bit
            **({"extra": Out(1)} if ports.extra_outputs else {}),  # parity of the other outputs
            **({"xin": In(1)} if ports.extra_inputs else {}),      # the other inputs, shifted in
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        w_in, w_out = self._ports.in_width, self._ports.out_width
        payload_in, shift_out = Signal(w_in), Signal(w_out)
        payload_out = Signal(w_out)
        i_valid, i_ready, o_valid, o_ready = Signal(), Signal(), Signal(), Signal()
        rst = Signal(reset_less=True)
        connections = dict(i_clk=ClockSignal(), i_i__payload=payload_in, i_i__valid=i_valid,
                           o_i__ready=i_ready, o_o__payload=payload_out, o_o__valid=o_valid,
                           i_o__ready=o_ready)
        if self._ports.has_rst:
            connections["i_rst"] = rst
        if self._ports.extra_inputs:
            inputs = Signal(sum(w for _, w in self._ports.extra_inputs), name="extra_inputs")
            m.d.sync += inputs.eq(Cat(self.xin, inputs[:-1]))
            offset = 0
            for name, width in self._ports.extra_inputs:
                connections[f"i_{name}"] = inputs[offset:offset + width]
                offset += width
        extra = [Signal(width, name=f"extra_{name}") for name, width in self._ports.extra_outputs]
        for (name, _), signal in zip(self._ports.extra_outputs, extra):
            connections[f"o_{name}"] = signal
        if extra:  # observed, so yosys keeps the logic behind them
            m.d.sync += self.extra.eq(Cat(*extra).xor())
        m.submodules.acc = Instance(self._top, **connections)
        m.d.sync += [
            rst.eq(ResetSignal()),
            payload_in.eq(Cat(self.sin, payload_in[:-1])),
            i_valid.eq(self.i_valid), o_ready.eq(self.o_ready),
            self.i_ready.eq(i_ready), self.o_valid.eq(o_valid),
        ]
        with m.If(o_valid & o_ready):
            m.d.sync += shift_out.eq(payload_out)
        with m.Else():
            m.d.sync += shift_out.eq(shift_out[1:])
        m.d.comb += self.sout.eq(shift_out[0])
        return m


def to_verilog(component: wiring.Component, name: str, **kwargs) -> str:
    """``amaranth.back.verilog.convert`` with Amaranth's bundled yosys, so the text is the same
    whatever yosys is on PATH."""
    from amaranth.back import verilog

    saved = os.environ.get("AMARANTH_USE_YOSYS")
    os.environ["AMARANTH_USE_YOSYS"] = "builtin"
    try:
        return verilog.convert(component, name=name, **kwargs)
    finally:
        if saved is None:
            del os.environ["AMARANTH_USE_YOSYS"]
        else:
            os.environ["AMARANTH_USE_YOSYS"] = saved


def harness_verilog(top: str, ports: StreamPorts) -> str:
    """Verilog of the harness around ``top`` (module ``hwgen_synth_top``), without source paths."""
    if top == HARNESS_TOP:
        raise ValueError(f"the accelerator's module cannot be called {HARNESS_TOP!r}")
    return to_verilog(SerialHarness(top, ports), HARNESS_TOP, emit_src=False)
