"""Every op family's hardware against the golden model, in Amaranth's simulator.

Hypothesis draws the shapes (kernel, stride, padding, dilation, groups, channels), the integer
types, weights (dense to 90 % zeros), foldings, stream lanes and rounding modes; each case runs a
batch of two inputs back to back with random stalls on both streams. Half of the MAC cases use an
output as wide as the accumulator (y = acc), so no rounding can hide a wrong sum.
"""

import os

import numpy as np
from fpga_support import (
    add_cases,
    avgpool_cases,
    concat_cases,
    conv_cases,
    dense_cases,
    expected,
    gap_cases,
    maxpool_cases,
    random_inputs,
    simulate,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# HWGEN_EXAMPLES=400 for a longer campaign
SETTINGS = settings(max_examples=int(os.environ.get("HWGEN_EXAMPLES", "60")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def check(case, stall_prob):
    plan = case.plan()
    x = random_inputs(case.graph, 2, case.seed)
    got = simulate(case.graph, plan, x, stall_prob=stall_prob, seed=case.seed)
    assert np.array_equal(got, expected(case.graph, x))


stalls = st.sampled_from([0.0, 0.3])


@SETTINGS
@given(conv_cases(), stalls)
def test_conv2d(case, stall_prob):
    check(case, stall_prob)


@SETTINGS
@given(dense_cases(), stalls)
def test_dense(case, stall_prob):
    check(case, stall_prob)


@SETTINGS
@given(maxpool_cases(), stalls)
def test_maxpool(case, stall_prob):
    check(case, stall_prob)


@SETTINGS
@given(avgpool_cases(), stalls)
def test_avgpool(case, stall_prob):
    check(case, stall_prob)


@SETTINGS
@given(gap_cases(), stalls)
def test_global_avgpool(case, stall_prob):
    check(case, stall_prob)


@SETTINGS
@given(add_cases(), stalls)
def test_residual_add(case, stall_prob):
    check(case, stall_prob)


@SETTINGS
@given(concat_cases(), stalls)
def test_concat(case, stall_prob):
    check(case, stall_prob)
