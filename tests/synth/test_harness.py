"""Stream port discovery in Verilog, and the synthesis harness around an accelerator."""

import pytest

from hwgen.synth.harness import HARNESS_TOP, StreamPorts, harness_verilog, stream_ports, to_verilog
from hwgen.synth.probes import MacArray


@pytest.fixture(scope="module")
def mac_verilog() -> str:
    return to_verilog(MacArray(2), "mac2")


def test_ports_of_amaranth_verilog(mac_verilog):
    assert stream_ports(mac_verilog, "mac2") == StreamPorts(32, 32, True)
    assert stream_ports(to_verilog(MacArray(1, weights=(3,)), "m"), "m") == StreamPorts(8, 32, True)


def test_ports_of_hand_written_verilog():
    text = """
    module other(input x, output y); endmodule
    module acc (
        input wire clk, input rst,
        input [11:0] i__payload, input i__valid, output i__ready,
        output reg [0:0] o__payload, output o__valid, input o__ready);
    endmodule"""
    assert stream_ports(text, "acc") == StreamPorts(12, 1, True)


def test_missing_or_misdirected_ports_are_named(mac_verilog):
    with pytest.raises(ValueError, match=r"^no module 'mac3' in the Verilog$"):
        stream_ports(mac_verilog, "mac3")
    broken = mac_verilog.replace("o__ready", "o__rdy")
    with pytest.raises(ValueError, match=r"^module 'mac2' lacks the stream ports \['o__ready'\]"):
        stream_ports(broken, "mac2")
    swapped = "module a(clk, i__payload, i__valid, i__ready, o__payload, o__valid, o__ready);\n" \
              "input clk; input [7:0] i__payload; input i__valid; input i__ready; output [7:0] o__payload;\n" \
              "output o__valid; input o__ready; endmodule"
    with pytest.raises(ValueError, match=r"^port 'i__ready' of module 'a' must be an output$"):
        stream_ports(swapped, "a")


def test_harness_verilog():
    text = harness_verilog("mac2", StreamPorts(32, 20, True))
    assert f"module {HARNESS_TOP}(" in text and "mac2 acc (" in text
    assert "src =" not in text  # no source paths: the same text wherever hwgen is installed
    assert ".rst(" in text and "[31:0]" in text and "[19:0]" in text
    assert ".rst(" not in harness_verilog("mac2", StreamPorts(8, 8, False))
    with pytest.raises(ValueError, match=r"^the accelerator's module cannot be called 'hwgen_synth_top'$"):
        harness_verilog(HARNESS_TOP, StreamPorts(8, 8))


def test_other_ports_are_kept_live():
    text = """module acc(clk, rst, i__payload, i__valid, i__ready, o__payload, o__valid, o__ready, perf, mode);
      input clk; input rst; input [7:0] i__payload; input i__valid; output i__ready;
      output [7:0] o__payload; output o__valid; input o__ready; output [63:0] perf; input [1:0] mode;
    endmodule"""
    ports = stream_ports(text, "acc")
    assert ports == StreamPorts(8, 8, True, extra_inputs=(("mode", 2),), extra_outputs=(("perf", 64),))
    harness = harness_verilog("acc", ports)
    assert ".perf(" in harness and "output extra;" in harness
    # other inputs (a flash's data lines) are shifted in from a pin, never a constant yosys could fold
    assert "input xin;" in harness and ".mode(2'h0)" not in harness and ".mode(" in harness
    assert "output extra;" not in harness_verilog("acc", StreamPorts(8, 8))
    assert "input xin;" not in harness_verilog("acc", StreamPorts(8, 8))
