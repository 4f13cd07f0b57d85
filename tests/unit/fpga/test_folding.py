"""Folding options, their errors, and the balancer that shares a multiplier budget."""

import numpy as np
import pytest

from hwgen.compiler import compile_model
from hwgen.errors import InvalidOptionError
from hwgen.fpga.folding import SLACK, Fold, balance, context_fold, mac_layers, parse_folds
from hwgen.fpga.plan import make_plan

MODELS = "examples/models"
TINY = f"{MODELS}/digits/tinycnn_fp32_qdq_s8s8_pc.onnx"
SPARSE = f"{MODELS}/digits/tinycnn_unstruct50_qdq_s8s8_pc.onnx"
PERSON = f"{MODELS}/person_detect/person_detect_qdq.onnx"


@pytest.fixture(scope="module")
def tiny():
    return compile_model(TINY).graph


@pytest.fixture(scope="module")
def person():
    return compile_model(PERSON).graph


def test_parse_folds_by_node_name_or_identifier(tiny):
    layers = mac_layers(tiny)
    assert parse_folds(["/conv1/Conv=4,9", "conv2_conv=2,16"], layers) == {"/conv1/Conv": Fold(4, 9),
                                                                           "/conv2/Conv": Fold(2, 16)}


@pytest.mark.parametrize("spec, message", [
    ("conv1_conv", r"^--fold expects LAYER=PE,SIMD \(e\.g\. conv1=4,9\), not 'conv1_conv'$"),
    ("conv1_conv=4", r"^--fold expects LAYER=PE,SIMD"),
    ("conv1_conv=a,b", r"^--fold expects LAYER=PE,SIMD"),
    ("nope=1,1", r"^--fold nope=\.\.\.: no multiply-accumulate layer named 'nope' \(layers: '/conv1/Conv', "
                 r"'/conv2/Conv', '/fc/Gemm'\)$"),
    ("conv1_conv=3,1", r"^--fold conv1_conv=3,1: PE=3 does not divide the 16 output channels of '/conv1/Conv' "
                       r"\(divisors: \[1, 2, 4, 8, 16\]\)$"),
    ("conv1_conv=1,2", r"^--fold conv1_conv=1,2: SIMD=2 does not divide the fan-in K=9 of '/conv1/Conv' "
                       r"\(divisors: \[1, 3, 9\]\)$"),
    ("conv1_conv=0,1", r"^--fold conv1_conv=0,1: PE and SIMD must be >= 1$"),
])
def test_bad_fold_options(tiny, spec, message):
    with pytest.raises(InvalidOptionError, match=message):
        parse_folds([spec], mac_layers(tiny))


def test_fold_given_twice(tiny):
    with pytest.raises(InvalidOptionError, match=r"^--fold given twice for layer '/conv1/Conv'$"):
        parse_folds(["conv1_conv=1,1", "/conv1/Conv=2,1"], mac_layers(tiny))


@pytest.mark.parametrize("budget", [0, -3])
def test_budget_must_be_positive(tiny, budget):
    with pytest.raises(InvalidOptionError, match=rf"^--multipliers must be >= 1, not {budget}$"):
        make_plan(tiny, budget=budget)


def test_pinned_folds_must_leave_a_budget(tiny):
    with pytest.raises(InvalidOptionError, match=r"^--multipliers 20 leaves nothing for the layers without --fold: "
                                                 r"the --fold options already use 144"):
        make_plan(tiny, budget=20, folds=["conv1_conv=16,9"])


def test_context_fold_takes_the_largest_dividing_shape(tiny):
    conv1 = mac_layers(tiny)[0]  # Cout 16, K 9
    assert context_fold(conv1, 8, 4) == Fold(8, 3)
    assert context_fold(conv1, 5, 16) == Fold(4, 9)


@pytest.mark.parametrize("budget", [1, 8, 32, 128])
def test_balance_respects_the_budget_and_covers_every_layer_once(person, budget):
    layers = mac_layers(person)
    engines = balance(layers, budget)
    assert sum(e.fold.multipliers for e in engines) <= budget
    assert [n for e in engines for n in e.layers] == [layer.name for layer in layers]


def test_balance_gives_small_budgets_shared_engines(person):
    """28 layers and 8 multipliers: a layer per engine could not even start."""
    engines = balance(mac_layers(person), 8)
    assert len(engines) < len(mac_layers(person))


def test_balanced_interval_is_near_the_ideal(person):
    """Within SLACK of the best a budget allows, and close to non-zero MACs / budget."""
    layers = mac_layers(person)
    nonzero = sum(layer.nonzero_macs for layer in layers)
    for budget in (8, 32, 128):
        plan = make_plan(person, budget=budget)
        assert plan.interval <= 1.1 * nonzero / budget


def test_more_multipliers_never_slow_it_down(person):
    intervals = [make_plan(person, budget=b).interval for b in (8, 16, 32, 64, 128, 256)]
    assert all(b <= a * (1 + SLACK) for a, b in zip(intervals, intervals[1:]))
    assert intervals[-1] < intervals[0] / 16


def test_zero_weights_shorten_the_interval_at_the_same_budget():
    dense = make_plan(compile_model(TINY).graph, budget=16)
    sparse = make_plan(compile_model(SPARSE).graph, budget=16)
    assert sparse.interval < 0.8 * dense.interval


def test_all_layers_folded_needs_no_budget(tiny):
    plan = make_plan(tiny, folds=["conv1_conv=16,9", "conv2_conv=32,1", "fc_gemm=10,4"])
    assert plan.budget is None
    assert [(e.fold.pe, e.fold.simd) for e in plan.engines] == [(16, 9), (32, 1), (10, 4)]
    assert plan.multipliers == 144 + 32 + 40


def test_pinned_and_balanced_layers_mix(tiny):
    plan = make_plan(tiny, budget=40, folds=["conv2_conv=8,4"])
    assert plan.engine(plan.layer("/conv2/Conv").engine).pinned
    assert plan.multipliers <= 40
    assert np.all([e.fold.multipliers >= 1 for e in plan.engines])
