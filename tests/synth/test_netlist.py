"""The synthesized netlist computes what the golden model computes: yosys maps a fitted accelerator
for iCE40 (SB_LUT4, SB_CARRY, SB_MAC16, SB_RAM40_4K cells), Verilator runs the netlist with yosys's
cell models through the same stream harness as the RTL, and the outputs must be equal bit for bit.

This guards against tool bugs (yosys 0.70's ice40_dsp packed product registers wrongly, see
`hwgen.hdl.arith.KEEP`) and against hardware that simulates but does not synthesize as written
(memory placement attributes, logic-built multipliers). ~3 minutes: slow.
"""

import dataclasses
import shutil

import numpy as np
import pytest

from hwgen import golden
from hwgen.backends.fpga import build_accelerator, to_verilog
from hwgen.compiler import compile_model
from hwgen.devices import DEVICES
from hwgen.fpga.plan import engine_programs, make_plan
from hwgen.fpga.resources import memories, place_memories
from hwgen.synth.netlist import ice40_netlist

from ..conftest import DIGITS
from .conftest import needs_yosys

pytestmark = [pytest.mark.synth, pytest.mark.slow, needs_yosys,
              pytest.mark.skipif(shutil.which("verilator") is None, reason="verilator missing")]


def test_ice40_netlist_of_a_pruned_tinycnn_equals_the_golden_model():
    graph = compile_model(DIGITS / "tinycnn_unstruct50_qdq_s8s8_pc.onnx").graph
    device = DEVICES["ice40-up5k"]
    plan = make_plan(graph, budget=4, lut_lanes={"engine0": 2})   # DSP lanes, logic lanes, shared requantizer
    placement = place_memories(memories(graph, plan, engine_programs(graph, plan)), device)
    assert {"bram", "logic"} <= set(placement.values())
    plan = dataclasses.replace(plan, placements=tuple(sorted(placement.items())))
    netlist = ice40_netlist(to_verilog(graph, plan), plan.top, synth=device.synth_command)
    assert "SB_MAC16 " in netlist and "SB_RAM40_4K " in netlist
    accelerator = build_accelerator(graph, plan, netlist)
    x = np.random.default_rng(0).integers(-128, 128, size=(3, *graph.tensor(graph.inputs[0]).shape), dtype=np.int8)
    run = accelerator.run(x)
    assert np.array_equal(run.output, golden.run_graph(graph, {graph.inputs[0]: x})[graph.outputs[0]])


def test_ice40_netlist_of_a_sequential_engine_with_flash_weights_equals_the_golden_model():
    """The layer-sequential engine as yosys maps it for the UP5K (banks in SB_SPRAM256KA, the weight
    tile in SB_RAM40_4K, products in SB_MAC16), its weights from the flash model, on one input."""
    from hwgen.fpga.outputs import hardware_graph
    from hwgen.fpga.sequential import WeightSource, make_seq_plan

    graph, _ = hardware_graph(compile_model(DIGITS / "tinycnn_fp32_qdq_s8s8_pc.onnx").graph)
    plan, _ = make_seq_plan(graph, 2, 1, WeightSource.QSPI)
    netlist = ice40_netlist(to_verilog(graph, plan), plan.top, synth=DEVICES["ice40-up5k"].synth_command)
    assert "SB_SPRAM256KA " in netlist and "SB_RAM40_4K " in netlist and "SB_MAC16 " in netlist
    accelerator = build_accelerator(graph, plan, netlist)
    x = np.random.default_rng(1).integers(-128, 128, size=(1, *graph.tensor(graph.inputs[0]).shape))
    run = accelerator.run(x)
    assert np.array_equal(run.output, golden.run_graph(graph, {graph.inputs[0]: x})[graph.outputs[0]])
