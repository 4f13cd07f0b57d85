"""The accelerator plan: what the FPGA accepts, lanes, fork FIFOs, and the manifest round trip."""

import dataclasses
import json

import numpy as np
import pytest
from fpga_support import add_graph, concat_graph, conv_graph, dense_graph, tensor

from hwgen.compiler import compile_model
from hwgen.errors import InvalidOptionError, UnsupportedModelError
from hwgen.fixed import IntType, Rounding
from hwgen.fpga.plan import BRANCH_WORDS, RATE_MARGIN, make_plan, plan_from_json, plan_to_json
from hwgen.ir import Conv2d, Graph, Requant, Requantize

MOBILENET = "examples/models/digits/mobilenet/mobilenet_fp32_qdq_s8s8_pc.onnx"


def test_refuses_raw_accumulator_outputs():
    g = conv_graph(np.random.default_rng(0), hw=(3, 3), cin=1, cout=1, kernel=(1, 1))
    node = g.nodes[0]
    raw = Conv2d(node.name, node.inputs, node.outputs, node.weights, node.bias, acc=node.acc, requant=None)
    y = tensor("y", (3, 3, 1), IntType(32, True))
    graph = Graph("raw", {"x": g.tensor("x"), "y": y}, (raw,), ("x",), ("y",))
    with pytest.raises(UnsupportedModelError, match=r"^node 'conv' \(Conv2d\): the raw accumulator is the output"):
        make_plan(graph)


def test_refuses_two_inputs():
    x, y, z = (tensor(n, (2, 2, 1), IntType(8, True)) for n in "xyz")
    rq = Requant((1 << 30,), (30,), 0, -128, 127, Rounding.RNE)
    graph = Graph("two", {"x": x, "y": y, "z": z}, (Requantize("rq", ("x",), ("z",), rq),), ("x", "y"), ("z",))
    with pytest.raises(UnsupportedModelError, match=r"^the FPGA accelerator streams one input; "
                                                    r"the integer core has 2 inputs$"):
        make_plan(graph)


def test_several_outputs_share_the_output_stream():
    """Each output gets its own lanes; an output that is also read inside the graph is forked."""
    g = conv_graph(np.random.default_rng(0), hw=(3, 3), cin=4, cout=2, kernel=(3, 3), pads=(1, 1, 1, 1))
    two = dataclasses.replace(g, outputs=(g.outputs[0], g.inputs[0]))
    with pytest.raises(UnsupportedModelError, match="a graph output is its input"):
        make_plan(two)
    same = dataclasses.replace(g, outputs=(g.outputs[0], g.outputs[0]))
    with pytest.raises(UnsupportedModelError, match="a tensor is two of the graph's outputs"):
        make_plan(same)


def test_bad_lanes_are_refused():
    g = conv_graph(np.random.default_rng(0), hw=(3, 3), cin=4, cout=2, kernel=(3, 3), pads=(1, 1, 1, 1))
    with pytest.raises(InvalidOptionError, match=r"^3 lanes do not divide the 4 channels of 'conv'$"):
        make_plan(g, folds=["conv=1,1"], lanes={"conv": 3})


def test_mac_layer_lanes_follow_the_fold():
    g = dense_graph(np.random.default_rng(0), rows=(), k=32, cout=4)
    plan = make_plan(g, folds=["fc=2,8"])
    assert plan.layer("fc").in_lanes == (8,)  # one buffer word per step
    assert plan.layer("fc").out_lanes == 2    # one lane per PE
    assert plan.output_lanes == (2,) and plan.input_lanes == 8


def test_skip_branch_of_a_residual_holds_a_whole_tensor():
    g = add_graph(np.random.default_rng(0), hw=(4, 4), c=4)
    plan = make_plan(g, lanes={"add": 2, "rq": 4})
    depths = {(b.tensor, b.consumer): b.words for b in plan.branches}
    assert depths[("x", "add")] == 4 * 4 * 4 // plan.input_lanes + BRANCH_WORDS
    assert depths[("x", "rq")] == BRANCH_WORDS


def test_concat_lanes_divide_every_input():
    g = concat_graph(np.random.default_rng(0), hw=(2, 2), c1=6, c2=4)
    plan = make_plan(g, folds=["conv=3,2"], lanes={"cat": 2})
    assert plan.layer("cat").in_lanes == (2, 2) and plan.layer("cat").out_lanes == 2
    with pytest.raises(InvalidOptionError, match=r"^4 lanes do not divide the 2 channels of 'cat'$"):
        make_plan(g, folds=["conv=3,2"], lanes={"cat": 4})


def test_mobilenet_plan():
    plan = make_plan(compile_model(MOBILENET).graph, budget=32)
    assert plan.multipliers <= 32
    assert {s.op for s in plan.layers} >= {"Conv2d", "Add", "GlobalAvgPool", "Reshape", "Dense"}
    assert any(b.consumer == "/Add" for b in plan.branches)


def test_json_round_trip_is_exact():
    plan = make_plan(compile_model(MOBILENET).graph, budget=16)
    assert plan_from_json(json.loads(json.dumps(plan_to_json(plan)))) == plan
    with pytest.raises(ValueError, match="not a hwgen-fpga-plan/3 plan"):
        plan_from_json({"format": "other"})
    older = {**plan_to_json(plan), "format": "hwgen-fpga-plan/2", "output_lanes": plan.output_lanes[0]}
    assert plan_from_json(older) == plan   # a one-output plan of an earlier hwgen


def test_interval_is_the_busiest_unit():
    plan = make_plan(compile_model(MOBILENET).graph, budget=32)
    engines = [plan.engine_busy(e.name) for e in plan.engines]
    others = [s.busy for s in plan.layers if s.engine is None] + [s.window_busy for s in plan.layers]
    assert plan.interval == max(engines + others)
    assert max(others) <= plan.interval * RATE_MARGIN  # lanes keep the other units off the critical path
