"""Whole models through the Verilated accelerator (C++ harness): equal to the golden model, bit for bit.

CI runs one TinyCNN on all 450 test images; `-m slow` runs every quantized digits model (TinyCNN
variants and the MobileNet-style net, all 450 images each, at several multiplier budgets) and
person_detect on person.bmp, no_person.bmp and 8 random inputs.
"""

import glob
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from hwgen import golden
from hwgen.backends.fpga import build_accelerator, to_verilog
from hwgen.compiler import CompileOptions, compile_model
from hwgen.fixed import Rounding
from hwgen.fpga.plan import make_plan

pytestmark = [pytest.mark.cosim, pytest.mark.skipif(shutil.which("verilator") is None,
                                                    reason="verilator not found on PATH (apt-get install verilator)")]

MODELS = Path(__file__).resolve().parents[3] / "examples" / "models"
DIGITS = sorted(glob.glob(str(MODELS / "digits" / "**" / "*_intio.onnx"), recursive=True))
BUDGETS = (8, 32, 128)


def rtl_core(compiled, budget):
    graph = compiled.graph
    plan = make_plan(graph, budget=budget)
    accelerator = build_accelerator(graph, plan, to_verilog(graph, plan))
    runs = []

    def core(inputs):
        run = accelerator.run(inputs[graph.inputs[0]])
        runs.append(run)
        return {graph.outputs[0]: run.outputs}

    return plan, core, runs


def check_model(path, feeds, budget, options=CompileOptions()):
    compiled = compile_model(path, options)
    plan, core, runs = rtl_core(compiled, budget)
    rtl = golden.run_model(compiled.graph, feeds, core=core)
    expected = golden.run_model(compiled.graph, feeds)
    for name in expected:
        assert np.array_equal(rtl[name], expected[name]), name
    (run,) = runs
    # the engines ran exactly the scheduled steps, and the interval is close to the model's
    batch = len(next(iter(feeds.values())))
    for spec in plan.layers:
        if spec.engine is not None:
            assert run.counters[f"layer:{spec.node}"] == batch * spec.busy, spec.node
    assert run.interval < 1.15 * plan.interval
    return run, plan


def digits_feeds(path):
    data = np.load(path.replace(".onnx", "_golden.npz"))
    name = onnx.load(path).graph.input[0].name
    return {name: data["x_q"]}


def test_tinycnn_all_test_images():
    path = str(MODELS / "digits" / "tinycnn_fp32_qdq_s8s8_pc_intio.onnx")
    run, plan = check_model(path, digits_feeds(path), 32)
    assert run.outputs.shape[0] == 450


def test_ties_up_rounding_and_short_multipliers():
    """--rounding rnu --multiplier-bits 12 change the IR; the hardware follows, bit for bit."""
    path = str(MODELS / "digits" / "mobilenet" / "mobilenet_fp32_qdq_u8s8_pt_intio.onnx")
    check_model(path, digits_feeds(path), 16, CompileOptions(Rounding.RNU, 12))


@pytest.mark.slow
@pytest.mark.parametrize("path", DIGITS, ids=[Path(p).stem for p in DIGITS])
def test_every_digits_model_all_test_images(path):
    budget = BUDGETS[DIGITS.index(path) % len(BUDGETS)]
    check_model(path, digits_feeds(path), budget)


def person_feeds():
    model = onnx.load(str(MODELS / "person_detect" / "person_detect_qdq.onnx"))
    name = model.graph.input[0].name
    images = [numpy_helper.to_array(onnx.load_tensor(str(MODELS / "person_detect" / "cases" / f"test_data_set_{k}" /
                                                         "input_0.pb"))) for k in (0, 1)]
    rng = np.random.default_rng(0)
    random = [rng.integers(-128, 128, images[0].shape).astype(images[0].dtype) for _ in range(8)]
    return {name: np.concatenate(images + random)}


@pytest.mark.slow
@pytest.mark.parametrize("budget", [32])
def test_person_detect(budget):
    feeds = person_feeds()
    run, plan = check_model(str(MODELS / "person_detect" / "person_detect_qdq.onnx"), feeds, budget)
    assert run.outputs.shape[0] == 10
