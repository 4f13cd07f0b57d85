"""The layer-sequential engine in Verilator (C++ harness): equal to the golden model, bit for bit.

CI runs drawn chains of layers (every op the engine runs, odd array sizes, several requantizers)
and TinyCNN on the 450 test digits; `-m slow` runs person_detect on person.bmp, no_person.bmp and
random inputs. Each run also checks the MAC array ran exactly the program's steps and the cycle
model's interval.
"""

import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from seq_chains import chains, random_batch

from hwgen import api, golden
from hwgen.backends.fpga import build_accelerator, to_verilog
from hwgen.fpga.outputs import hardware_graph
from hwgen.fpga.sequential import WeightSource, make_seq_plan

pytestmark = [pytest.mark.cosim, pytest.mark.skipif(shutil.which("verilator") is None,
                                                    reason="verilator not found on PATH (apt-get install verilator)")]

MODELS = Path(__file__).resolve().parents[3] / "examples" / "models"


def check(graph, x, lanes=4, requantizers=1, stall_prob=0.0, weights=WeightSource.ROM):
    plan, program = make_seq_plan(graph, lanes, requantizers, weights)
    accelerator = build_accelerator(graph, plan, to_verilog(graph, plan))
    run = accelerator.run(x, stall_prob=stall_prob)
    want = golden.run_graph(graph, {graph.inputs[0]: x})[graph.outputs[0]]
    assert np.array_equal(run.outputs[graph.outputs[0]], want)
    for layer in program.layers:   # the array ran exactly the program's steps
        assert run.counters[f"layer:{layer.node}"] == len(x) * layer.steps, layer.node
    return plan, run


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chains(max_layers=3, max_hw=6, max_channels=7),
       st.sampled_from([(1, 1), (2, 2), (3, 1), (4, 2), (5, 1)]), st.integers(0, 100))
def test_drawn_chains(graph, shape, seed):
    check(graph, random_batch(graph, 2, seed), *shape, stall_prob=0.2 if seed % 2 else 0.0)


def _feeds_of(path: Path) -> np.ndarray:
    """The quantized test digits an _intio model takes (saved beside it)."""
    return np.load(str(path).replace(".onnx", "_golden.npz"))["x_q"]


def test_tinycnn_on_the_test_digits():
    path = MODELS / "digits" / "tinycnn_fp32_qdq_s8s8_pc_intio.onnx"
    compiled = api.compile(path)
    graph, _ = hardware_graph(compiled.graph)
    x = _feeds_of(path).reshape(-1, *graph.tensor(graph.inputs[0]).shape)
    plan, run = check(graph, x)
    assert len(x) == 450
    assert abs(run.interval - plan.interval) <= 0.01 * plan.interval


@pytest.mark.parametrize("weights", [WeightSource.QSPI, WeightSource.SPI])
def test_tinycnn_weights_from_flash(weights):
    """The flash reader and the flash model in the loop: exact, with the flash's stalls in the cycles."""
    path = MODELS / "digits" / "tinycnn_fp32_qdq_s8s8_pc_intio.onnx"
    graph, _ = hardware_graph(api.compile(path).graph)
    x = _feeds_of(path).reshape(-1, *graph.tensor(graph.inputs[0]).shape)[:3]
    plan, run = check(graph, x, weights=weights, stall_prob=0.2 if weights is WeightSource.SPI else 0.0)
    rom, _ = make_seq_plan(graph)
    assert run.counters["stall:weights"] > 0 and plan.interval > 2 * rom.interval   # TinyCNN is flash-bound
    if weights is WeightSource.QSPI:
        assert abs(run.interval - plan.interval) <= 0.02 * plan.interval


@pytest.mark.slow
@pytest.mark.parametrize("weights", [WeightSource.ROM, WeightSource.QSPI])
def test_person_detect_on_its_images(weights):
    path = MODELS / "person_detect" / "person_detect_qdq.onnx"
    compiled = api.compile(path)
    graph, _ = hardware_graph(compiled.graph)
    cores = []   # the integer core inputs the images make

    def capture(inputs):
        cores.append(inputs[graph.inputs[0]])
        return golden.run_graph(graph, inputs)

    for name in ("person.bmp", "no_person.bmp"):
        feeds, _ = api.image_input(compiled, MODELS / "person_detect" / name)
        golden.run_model(compiled.graph, feeds, core=capture)
    x = np.concatenate([*cores, random_batch(graph, 2, 0)])
    plan, run = check(graph, x, weights=weights)
    assert abs(run.interval - plan.interval) <= 0.02 * plan.interval
