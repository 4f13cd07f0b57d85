"""Every kernel against the golden model on hypothesis-drawn layers: RVV under QEMU at VLEN 128 and
512, and the scalar kernels natively under AddressSanitizer and UBSan."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwgen.rvv import measure, program
from hwgen.rvv.codegen import generate

from .ir_graphs import layers_graph, sample_inputs
from .rvv_support import check_against_golden, needs_rvv

pytestmark = [pytest.mark.rvv, needs_rvv]

seeds = st.integers(0, 2**16)


def drawn(examples: int) -> settings:
    """Each example builds its graph twice (clang for RISC-V, cc with sanitizers) and runs it three times."""
    return settings(max_examples=examples, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@drawn(25)
@given(graph=layers_graph(("conv", "dense"), 2, 4), seed=seeds)
def test_convolution_and_dense_layers(graph, seed):
    check_against_golden(graph, sample_inputs(graph, seed))


@drawn(10)
@given(graph=layers_graph(("maxpool", "avgpool", "global_avgpool"), 2, 4), seed=seeds)
def test_pooling_layers(graph, seed):
    check_against_golden(graph, sample_inputs(graph, seed))


@drawn(10)
@given(graph=layers_graph(("add", "requantize", "concat", "reshape"), 2, 4), seed=seeds)
def test_elementwise_and_data_movement_layers(graph, seed):
    check_against_golden(graph, sample_inputs(graph, seed))


@drawn(3)
@given(graph=layers_graph(("conv", "avgpool", "add", "maxpool"), every_kind=True))
def test_instruction_counts_do_not_depend_on_the_data(graph):
    """The RVV kernels have no data-dependent branches: counts depend on shapes only."""
    generated = generate(graph, "layers", "test layers")
    with program.built(generated, cache=False) as binary:
        a = measure.count(generated, sample_inputs(graph, seed=1, random_samples=1), binary=binary)
        b = measure.count(generated, sample_inputs(graph, seed=2, random_samples=1), binary=binary)
    assert a.per_layer == b.per_layer and a.per_inference > 0
    assert all(float(n).is_integer() for n in a.per_layer.values())


@drawn(3)
@given(graph=layers_graph(("conv", "maxpool", "add", "concat"), every_kind=True), seed=seeds)
def test_one_binary_is_exact_at_other_vlens(graph, seed):
    """The strip-mined code never assumes a VLEN: 256 and 1024 (QEMU's largest) too."""
    check_against_golden(graph, sample_inputs(graph, seed), vlens=(256, 1024), sanitized=False)


def test_wide_layers_need_fewer_instructions_at_larger_vlen():
    graph = _wide_pointwise()
    generated = generate(graph, "wide", "wide")
    with program.built(generated, cache=False) as binary:
        counts = [measure.count(generated, sample_inputs(graph, 0, 1), vlen=v, binary=binary).per_inference
                  for v in (128, 256, 512)]
    assert counts[0] > counts[1] > counts[2]


def _wide_pointwise():
    from hwgen.fixed import IntType, Rounding
    from hwgen.ir import Conv2d, Graph, Requant, Tensor, verify

    rng = np.random.default_rng(3)
    i8 = IntType(8, True)
    tensors = {"x": Tensor("x", (6, 6, 64), i8, -3, (1.0,)), "y": Tensor("y", (6, 6, 128), i8, 5, (1.0,))}
    node = Conv2d("pw", ("x",), ("y",), weights=rng.integers(-127, 128, (128, 1, 1, 64)),
                  bias=rng.integers(-999, 999, 128), acc=IntType(22, True),
                  requant=Requant((1 << 30,), (38,), 5, -128, 127, Rounding.RNE))
    return verify(Graph("wide", tensors, (node,), ("x",), ("y",)))
