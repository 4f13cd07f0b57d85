"""The synthesis flow end to end, through ``hwgen synth``: one small UP5K run in the default test
run (a 2-lane int8 MAC, so DSPs are used), the rest marked slow.

The first YoWASP run on a machine compiles the tools' WebAssembly (~60 s for yosys); after
that the UP5K run takes a few seconds.
"""

import hashlib
import json
import time

import pytest

from hwgen.errors import InvalidOptionError, ToolchainError
from hwgen.synth import DEVICES, DoesNotFitError, SynthReport, synthesize
from hwgen.synth.harness import to_verilog
from hwgen.synth.probes import MacArray, Rom

from .conftest import compile_output, hwgen_synth, needs_tools, needs_yosys

pytestmark = pytest.mark.synth


@pytest.fixture(scope="module")
def up5k_run(tmp_path_factory):
    """``hwgen synth OUT --device ice40-up5k`` on a 2-lane MAC: the default run's one synthesis."""
    out = compile_output(tmp_path_factory.mktemp("up5k"), MacArray(2), "mac2")
    start = time.perf_counter()
    assert hwgen_synth([str(out), "--device", "ice40-up5k"]) == 0
    return out, time.perf_counter() - start


@needs_tools
def test_up5k_end_to_end(up5k_run, capsys):
    out, seconds = up5k_run
    run_dir = out / "synth" / "ice40-up5k"
    report = SynthReport.read(run_dir / "report.json")
    # The Verilog synthesized is the file co-simulation verified, byte for byte.
    verilog = (out / "fpga" / "mac2.v").read_bytes()
    assert report.verilog_sha256 == hashlib.sha256(verilog).hexdigest() == \
        json.loads((out / "fpga" / "manifest.json").read_text())["verilog_sha256"]
    assert report.cosim_verified is True and (run_dir / "mac2.v").read_bytes() == verilog
    # Plausible costs: one SB_MAC16 per lane, a few LUTs per accumulator bit, nothing else.
    acc = report.accelerator
    assert acc.dsp == 2 and report.placed.dsp == 2
    assert 40 <= acc.logic <= 400 and 64 <= acc.ff <= 300 and acc.bram == acc.spram == 0
    assert report.placed.logic >= acc.logic and report.placed.io == 8
    assert report.available.logic == DEVICES["ice40-up5k"].logic
    # Fmax as nextpnr reported it, for the real clock only.
    pnr = json.loads((run_dir / "nextpnr.json").read_text())
    (clock,) = report.clocks
    assert clock.name == "clk" and clock.fmax_mhz == round(pnr["fmax"][clock.net]["achieved"], 3)
    assert clock.target_mhz == 48.0 and 20 < clock.fmax_mhz < 300
    # The bitstream and the logs stay.
    assert report.bitstream == "top.bin" and (run_dir / "top.bin").stat().st_size > 100_000
    assert (run_dir / "yosys.log").stat().st_size > 0 and (run_dir / "nextpnr.log").stat().st_size > 0
    assert (run_dir / "pack.log").exists()  # icepack says nothing when all is well
    assert seconds < 150, f"the CI synthesis took {seconds:.0f} s"


@needs_tools
@pytest.mark.slow
def test_same_input_same_report(up5k_run, tmp_path):
    out, _ = up5k_run
    first = (out / "synth" / "ice40-up5k" / "report.json").read_bytes()
    again = synthesize(out / "fpga" / "mac2.v", "mac2", "ice40-up5k", out_dir=tmp_path / "elsewhere",
                       verified_sha256=hashlib.sha256((out / "fpga" / "mac2.v").read_bytes()).hexdigest())
    assert again.report_path.read_bytes() == first
    assert again.bitstream.read_bytes() == (out / "synth" / "ice40-up5k" / "top.bin").read_bytes()


@needs_tools
@pytest.mark.slow
@pytest.mark.parametrize("name", ["ecp5-25k", "ecp5-45k", "ecp5-85k"])
def test_ecp5_end_to_end(name, tmp_path):
    (tmp_path / "rom.v").write_text(to_verilog(Rom(4096, 8), "rom"))
    # ECP5 places with nextpnr's static placer unless told otherwise; the largest device with router2
    tools = {"router": "router2"} if name == "ecp5-85k" else {"placer": "heap"}
    result = synthesize(tmp_path / "rom.v", "rom", name, out_dir=tmp_path / "run", **tools)
    report = result.report
    assert (report.placer, report.router) == (tools.get("placer", "static"), tools.get("router", "router1"))
    assert report.to_text().splitlines()[0].endswith(", seed 1, static placer, router2" if name == "ecp5-85k"
                                                     else ", seed 1")
    device = DEVICES[name]
    assert report.available.logic == device.logic and report.available.dsp == device.dsps
    assert report.available.bram == device.brams and report.available.ff == device.ffs
    assert report.accelerator.bram == report.placed.bram == 2     # 32 kbit in 18-kbit DP16KDs
    assert [(m.name, m.kind) for m in report.memories] == [("table", "bram")]
    assert report.timing_met and result.bitstream.name == "top.bit" and result.bitstream.stat().st_size > 100_000


def test_an_unknown_placer_is_refused_before_any_tool_runs(tmp_path):
    with pytest.raises(InvalidOptionError, match=r"^nextpnr's placer is one of heap, static and its router one of "
                                                 r"router1, router2, not 'sa' and 'router1'$"):
        synthesize(tmp_path / "none.v", "none", "ecp5-85k", out_dir=tmp_path / "run", placer="sa")
    assert not (tmp_path / "run").exists()


@needs_yosys
def test_yosys_errors_are_quoted(tmp_path):
    (tmp_path / "bad.v").write_text(to_verilog(MacArray(1), "bad").replace("endmodule", "  assign ;\nendmodule"))
    with pytest.raises(ToolchainError, match=r"^yosys failed \(exit 1\): .*ERROR: .*syntax error") as info:
        synthesize(tmp_path / "bad.v", "bad", "ice40-up5k", out_dir=tmp_path / "run")
    assert str(tmp_path / "run" / "yosys.log") in str(info.value) and info.value.exit_code == 1
    assert "syntax error" in (tmp_path / "run" / "yosys.log").read_text()


@needs_yosys
def test_a_design_too_big_for_the_device_names_the_resource(tmp_path):
    (tmp_path / "mac9.v").write_text(to_verilog(MacArray(9), "mac9"))
    with pytest.raises(DoesNotFitError, match=r"^does not fit ice40-up5k: needs 9 DSPs, 1 more than the 8 it has$"):
        synthesize(tmp_path / "mac9.v", "mac9", "ice40-up5k", out_dir=tmp_path / "run")


@needs_tools
@pytest.mark.slow
def test_board_through_the_cli(tmp_path, capsys):
    out = compile_output(tmp_path, MacArray(1), "mac1")
    assert hwgen_synth([str(out), "--board", "icebreaker", "--fifo-bytes", "256"]) == 0
    report = SynthReport.read(out / "synth" / "icebreaker" / "report.json")
    assert report.board == "icebreaker" and report.cosim_verified and report.accelerator.dsp == 1
    assert report.harness == "UART bridge, 115200 baud 8N1, 256-byte RX FIFO"
    assert (out / "synth" / "icebreaker" / "hwgen_board.bin").is_file()
    text = capsys.readouterr().out
    assert "iceprog" in text and "as 2 bytes" in text and "as 4 bytes" in text


@needs_tools
def test_describe_lists_the_runs(up5k_run):
    from hwgen.synth.accelerator import describe
    out, _ = up5k_run
    text = describe(out)
    assert text.startswith("ice40-up5k (iCE40UP5K-SG48I): mac2 from mac2.v") and "Fmax clk:" in text
    assert describe(out / "fpga") is None
