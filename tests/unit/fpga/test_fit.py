"""Device-aware folding: the fastest plan whose estimate fits, or a refusal that says why."""

import hashlib
import json
import re
from pathlib import Path

import pytest

from hwgen.cli import main
from hwgen.compiler import compile_model
from hwgen.devices import DEVICES
from hwgen.fpga.fit import LOGIC_MARGIN, DoesNotFitDevice, budget_ladder, fit_budget, fit_device
from hwgen.fpga.plan import WINDOW_SLACK_ROWS, engine_programs, make_plan
from hwgen.fpga.resources import memories

MODELS = Path(__file__).resolve().parents[3] / "examples" / "models"
DIGITS, PERSON = MODELS / "digits", MODELS / "person_detect"
TINY = DIGITS / "tinycnn_fp32_qdq_s8s8_pc.onnx"
PRUNED = DIGITS / "tinycnn_pruned_qdq_s8s8_pc.onnx"


@pytest.fixture(scope="module")
def tiny():
    return compile_model(TINY).graph


def within(fit):
    e, d = fit.estimate, fit.device
    return (e.dsp <= d.dsps and e.bram <= d.brams and e.cells <= d.logic * LOGIC_MARGIN
            and e.ff <= d.ffs * LOGIC_MARGIN)


def test_ladder_starts_at_one_and_climbs_by_about_a_quarter():
    ladder = budget_ladder(1000)
    assert ladder[0] == 1 and ladder == sorted(set(ladder))
    assert all(b / a <= 2 for a, b in zip(ladder, ladder[1:]))
    assert all(b / a <= 1.3 for a, b in zip(ladder, ladder[1:]) if a >= 8)


@pytest.mark.parametrize("model, device", [(PRUNED, "ice40-up5k"), (TINY, "ecp5-25k"), (TINY, "ecp5-85k")])
def test_fit_is_within_the_device_and_places_every_memory(model, device):
    tiny = compile_model(model).graph
    fit = fit_device(tiny, device)
    assert within(fit)
    plan = fit.plan
    programs = engine_programs(tiny, plan)
    placed = dict(plan.placements)
    assert {m.name for m in memories(tiny, plan, programs)} == set(placed)
    assert set(placed.values()) <= ({"bram", "logic"} if device.startswith("ice40") else {"bram", "lutram", "logic"})
    # the next budget up overflows or is no faster
    ladder = budget_ladder()
    bigger = ladder[ladder.index(fit.budget) + 1]
    try:
        faster = fit_budget(tiny, device, bigger)
    except DoesNotFitDevice:
        return
    assert faster.plan.interval >= plan.interval


def test_a_bigger_device_is_never_slower(tiny):
    intervals = [fit_device(tiny, d).plan.interval for d in ("ecp5-25k", "ecp5-45k", "ecp5-85k")]
    assert intervals == sorted(intervals, reverse=True)
    assert intervals[-1] < make_plan(tiny, budget=8).interval


def test_lanes_the_dsps_cannot_take_are_built_from_logic(tiny):
    fit = fit_budget(tiny, "ecp5-25k", 64)
    assert fit.estimate.dsp <= DEVICES["ecp5-25k"].dsps
    assert sum(e.lut_lanes for e in fit.plan.engines) > 0


def test_a_model_too_big_is_refused_with_the_resource_and_what_would_fit():
    graph = compile_model(PERSON / "person_detect_qdq.onnx").graph
    with pytest.raises(DoesNotFitDevice) as info:
        fit_device(graph, "ice40-up5k")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("tflite_int8 does not fit ice40-up5k at any folding: the closest, ")
    assert "would fit: a bigger device (ecp5-85k)" in message
    assert re.search(r"pruning or fewer weight bits \(1,[6-9]\d\d kbit of weights\)", message)  # 1,625 kbit, padded


def test_a_model_whose_memories_overflow_the_block_ram_says_so():
    # zero skipping gives the 50 % pruned TinyCNN a control ROM and a read port per lane
    graph = compile_model(DIGITS / "tinycnn_unstruct50_qdq_s8s8_pc.onnx").graph
    with pytest.raises(DoesNotFitDevice, match=r"needs \d+ block RAMs for its memories \(10 for weights\), \d+ more "
                                               r"than the 30 it has, and logic for the rest: "):
        fit_device(graph, "ice40-up5k")


def test_line_buffers_give_up_their_slack_rows_when_block_ram_is_short(tiny):
    # the dense TinyCNN's weights take 20 of the UP5K's 30 block RAMs
    fit = fit_device(tiny, "ice40-up5k")
    assert fit.plan.window_slack == 0 and fit.estimate.bram <= 30
    assert fit_device(tiny, "ecp5-25k").plan.window_slack == WINDOW_SLACK_ROWS


def test_a_budget_too_big_for_the_device_is_refused(tiny):
    with pytest.raises(DoesNotFitDevice, match=r"^--multipliers 4096 does not fit ice40-up5k: the estimate needs"):
        fit_budget(tiny, "ice40-up5k", 4096)


def test_compile_for_a_device(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["compile", str(PRUNED), "-o", str(out), "--target", "fpga", "--device", "ice40-up5k", "--arch",
                 "dataflow"]) == 0
    assert "ice40-up5k:" in capsys.readouterr().err
    manifest = json.loads((out / "fpga" / "manifest.json").read_text())
    verilog = (out / "fpga" / manifest["verilog"]).read_bytes()
    assert manifest["verilog_sha256"] == hashlib.sha256(verilog).hexdigest()
    assert manifest["device"] == "ice40-up5k" and manifest["plan"]["placements"]
    resources = json.loads((out / "fpga" / "resources.json").read_text())
    assert resources["estimate"]["dsp"] <= 8 and resources["interval"] == manifest["expected"]["interval"]


def test_compile_refuses_a_model_that_does_not_fit_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["compile", str(PERSON / "person_detect_qdq.onnx"), "-o", str(out), "--target", "fpga",
                 "--device", "ice40-up5k", "--arch", "dataflow"])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert err.startswith("hwgen: error: tflite_int8 does not fit ice40-up5k") and err.count("\n") == 1
    # without --arch the sequential engine is tried too: MobileNet's residual Add keeps it out
    code = main(["compile", str(DIGITS / "mobilenet" / "mobilenet_fp32_qdq_s8s8_pc.onnx"), "-o", str(out),
                 "--target", "fpga", "--device", "ice40-up5k"])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists() and err.count("\n") == 1
    assert "does not fit ice40-up5k" in err and "nor the sequential engine: node '/Add' (Add)" in err


def test_the_sequential_fit_takes_the_fastest_engine_not_the_largest():
    """On an ECP5-85k a 12x12 array fits, but its stream (a depthwise step carries 144 weights for 12)
    only fits a flash and is flash-bound: a smaller array with the weights in a ROM is faster."""
    from hwgen.fpga.archfit import fit_sequential
    from hwgen.fpga.outputs import hardware_graph
    from hwgen.fpga.sequential import WeightSource

    graph, _ = hardware_graph(compile_model(PERSON / "person_detect_qdq.onnx").graph)
    fit = fit_sequential(graph, "ecp5-85k")
    assert fit.plan.weights is WeightSource.ROM and fit.plan.lanes < 12
    e, d = fit.estimate, fit.device
    assert e.dsp <= d.dsps and e.bram <= d.brams and 0 < e.cells <= d.logic * LOGIC_MARGIN
    tried = 0
    for lanes in range(1, 13):
        for source in (WeightSource.ROM, WeightSource.QSPI):
            try:
                other = fit_sequential(graph, "ecp5-85k", lanes, source)
            except DoesNotFitDevice as exc:
                assert f"{lanes}x{lanes} with weights from {source.value}: needs" in str(exc)
                continue
            tried += 1
            assert other.plan.interval >= fit.plan.interval, (lanes, source)
    assert tried >= 12
