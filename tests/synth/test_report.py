"""Parsing yosys's stat, nextpnr's report and the yosys log, on small real outputs (see data/)."""

import json

import pytest

from hwgen.devices import Family
from hwgen.synth.flow import _abc9_hierarchy_bug, _over_capacity
from hwgen.synth.report import (
    ClockTiming,
    MemoryMapping,
    Resources,
    SynthReport,
    ToolVersions,
    is_bogus_clock,
    memory_mappings,
    nextpnr_clocks,
    nextpnr_resources,
    yosys_cells,
    yosys_resources,
)
from hwgen.synth.tools import first_error_line

from .conftest import DATA


def load(name: str) -> dict:
    return json.loads((DATA / name).read_text())


def test_ice40_cells_of_the_accelerator_apart_from_the_harness():
    stat = load("ice40_mac2.stat.json")
    cells = yosys_cells(stat, "mac2")
    assert cells == {"SB_CARRY": 47, "SB_DFFESR": 118, "SB_LUT4": 90, "SB_MAC16": 2}
    assert yosys_resources(stat, "mac2") == Resources(logic=90, ff=118, carry=47, dsp=2)
    # The harness: W_IN + W_OUT + 5 flip-flops, W_OUT LUTs; the submodule instance is not a cell.
    assert yosys_cells(stat, "hwgen_synth_top") == {"SB_DFF": 1, "SB_DFFSR": 68, "SB_LUT4": 32}
    assert yosys_resources(stat) == Resources(logic=122, ff=187, carry=47, dsp=2)


def test_ecp5_carry_cells_count_as_two_luts():
    stat = load("ecp5_mac2.stat.json")
    assert yosys_cells(stat, "mac2") == {"CCU2C": 25, "LUT4": 40, "MULT18X18D": 2, "TRELLIS_FF": 118}
    assert yosys_resources(stat, "mac2") == Resources(logic=40 + 2 * 25, ff=118, carry=25, dsp=2)


def test_unknown_module_is_an_error():
    with pytest.raises(ValueError, match=r"^yosys stat has no module 'mac3'; it has \['\\\\hwgen_synth_top', "):
        yosys_resources(load("ice40_mac2.stat.json"), "mac3")


def test_nextpnr_utilization():
    ice40 = load("ice40_mac2.nextpnr.json")
    assert nextpnr_resources(ice40, Family.ICE40) == Resources(logic=228, dsp=2, io=8)
    assert nextpnr_resources(ice40, Family.ICE40, "available") == Resources(logic=5280, dsp=8, bram=30, spram=4, io=39)
    ecp5 = load("ecp5_mac2.nextpnr.json")
    assert nextpnr_resources(ecp5, Family.ECP5) == Resources(logic=132, ff=187, dsp=2, io=8)


@pytest.mark.parametrize("family,net,target", [("ice40", "clk$SB_IO_IN_$glb_clk", 48.0),
                                               ("ecp5", "$glbnet$clk$TRELLIS_IO_IN", 80.0)])
def test_fmax_and_its_critical_path(family, net, target):
    report = load(f"{family}_mac2.nextpnr.json")
    (clock,) = nextpnr_clocks(report)
    assert (clock.name, clock.net, clock.target_mhz) == ("clk", net, target)
    assert clock.fmax_mhz == round(report["fmax"][net]["achieved"], 3) and clock.met
    path = clock.critical_path
    # Fmax is the reciprocal of the slowest same-clock path: the segments must add up to it.
    assert path.delay_ns == pytest.approx(1000 / clock.fmax_mhz, abs=0.002)
    assert path.delay_ns == pytest.approx(path.logic_ns + path.routing_ns, abs=0.002)
    assert path.levels >= 1 and path.start and path.end
    assert "->" in path.describe()


def test_the_bogus_packer_clock_is_ignored():
    report = load("ice40_mac2.nextpnr.json")
    # nextpnr times DSP clock pins tied low as a clock "$PACKER_GND_NET"; when it lists it in fmax
    # (not in this run, so it is added here) it must not become the design's Fmax.
    report["fmax"]["$PACKER_GND_NET_$glb_clk"] = {"achieved": 3.5, "constraint": 48}
    assert [c.net for c in nextpnr_clocks(report)] == ["clk$SB_IO_IN_$glb_clk"]
    assert is_bogus_clock("$PACKER_GND_NET_$glb_clk") and is_bogus_clock("$PACKER_VCC_NET")
    assert not is_bogus_clock("clk$SB_IO_IN_$glb_clk")


@pytest.mark.parametrize("family,bram", [("ice40", "bram"), ("ecp5", "bram")])
def test_where_each_memory_went(family, bram):
    log = (DATA / f"{family}_memories.log").read_text()
    assert memory_mappings(log, "memories") == (
        MemoryMapping("weights.table", bram), MemoryMapping("line.line", bram), MemoryMapping("small.table", "logic"))
    assert memory_mappings(log, "other") == ()


def test_memory_kinds_of_every_primitive():
    log = "\n".join(f"mapping memory top.m{k} via {cell}" for k, cell in enumerate(
        ["$__ICE40_RAM4K_", "$__ICE40_SPRAM_", "$__DP16KD_", "$__PDPW16KD_", "$__TRELLIS_DPR16X4_", "$__FOO_"]))
    assert [m.kind for m in memory_mappings(log, "top")] == ["bram", "spram", "bram", "bram", "lutram", "other:$__FOO_"]


def test_a_failed_placement_quotes_nextpnr_and_names_the_overflow():
    log = (DATA / "ice40_too_many_pins.log").read_text()
    assert first_error_line(log) == "ERROR: Unable to find a placement location for cell 'o__ready$sb_io'"
    assert _over_capacity(log) == "; over capacity: SB_IO 70/39"
    assert _over_capacity("Info: \t         ICESTORM_LC:     257/   5280     4%") == ""


def test_abc9_failures_that_a_flat_mapping_avoids():
    """yosys 0.70 logs as it failed on the MobileNet digits net (ecp5-45k), mapped as a module of its own."""
    died = ("4.46.26.5. Executing ABC9.\n"
            'Running ABC command: "/yosys-abc" -s -f <abc-temp-dir>/abc.script 2>&1\n\n')
    assert _abc9_hierarchy_bug(died)
    assert _abc9_hierarchy_bug("ERROR: Assert `GetSize(conn.first) == GetSize(conn.second)' failed in kernel/rtlil.cc")
    # ABC ran and yosys failed later, for its own reason: not this bug
    assert not _abc9_hierarchy_bug(died + "ERROR: Module `top' referenced in module `x' is not part of the design.\n")
    assert not _abc9_hierarchy_bug("")


def _report() -> SynthReport:
    return SynthReport(
        device="ice40-up5k", part="iCE40UP5K-SG48I", top="mac2", verilog="mac2.v", verilog_sha256="ab" * 32,
        clock_mhz=48.0, seed=1, tools=ToolVersions("Yosys 0.70", "nextpnr-0.11.1", "icepack"),
        accelerator=Resources(logic=90, ff=118, carry=47, dsp=2), cells={"SB_MAC16": 2, "SB_LUT4": 90},
        placed=Resources(logic=228, ff=187, dsp=2, io=8), available=Resources(logic=5280, dsp=8),
        clocks=nextpnr_clocks(load("ice40_mac2.nextpnr.json")) + (ClockTiming("slow", "slow$glb", 20.0, 48.0),),
        memories=(MemoryMapping("w", "bram"),), harness="h", bitstream="top.bin", cosim_verified=True)


def test_report_json_roundtrip_is_exact(tmp_path):
    report = _report()
    report.write(tmp_path / "a.json")
    again = SynthReport.read(tmp_path / "a.json")
    assert again == report
    again.write(tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    data = json.loads((tmp_path / "a.json").read_text())
    assert data["fmax_mhz"] == 20.0 and data["timing_met"] is False and data["cells"] == {"SB_LUT4": 90, "SB_MAC16": 2}


def test_report_text_says_what_missed_timing():
    text = _report().to_text()
    assert "Fmax slow: 20.00 MHz (target 48: MISSED)" in text
    assert "(the Verilog verified in co-simulation)" in text
    assert "memories: w -> bram" in text
    assert "SB_MAC16 2/8 (25%)" in text


def test_a_crashed_yowasp_tool_is_described_not_its_python_traceback():
    # An excerpt of a real yosys 0.70 (YoWASP) crash on ECP5 (data/yosys_crash.log).
    log = (DATA / "yosys_crash.log").read_text()
    assert first_error_line(log) == (
        "crashed (WebAssembly thrown Wasm exception) in its MEMORY_LIBMAP pass, after: Extracted data FF from read "
        "port 0 of hwgen_main_graph.conv2_conv_window.queue.queue.storage: "
        "$\\conv2_conv_window.queue.queue.storage$rdreg[0]")
