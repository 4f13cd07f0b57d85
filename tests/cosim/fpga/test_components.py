"""One design per op family in Verilator, driven signal by signal from Python (pyverilator-mm).

Each family's design is built once (module scope) and checked against the golden model on
hypothesis-drawn inputs with random stalls on both streams. The shapes are fixed per build here;
tests/unit/hdl/test_ops.py draws the shapes (in Amaranth's simulator, where a new shape costs
no Verilator build).
"""

import shutil

import numpy as np
import pytest
from fpga_support import (
    add_graph,
    avgpool_graph,
    concat_graph,
    conv_graph,
    dense_graph,
    expected,
    gap_graph,
    maxpool_graph,
    to_verilog,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwgen.fixed import IntType, Rounding
from hwgen.fpga.plan import make_plan
from hwgen.sim.rtl import pack_words, unpack_words
from hwgen.sim.verilator import PyVerilatorStream

pytestmark = [pytest.mark.cosim, pytest.mark.skipif(shutil.which("verilator") is None,
                                                    reason="verilator not found on PATH (apt-get install verilator)")]

U8, I8 = IntType(8, False), IntType(8, True)


def design(name):
    """(graph, fold options, lanes) of each family's design: odd shapes, padding, several lanes."""
    rng = np.random.default_rng(sum(map(ord, name)))
    if name == "conv":  # grouped, strided, dilated, asymmetric padding, sparse, RNU, u8 in
        return conv_graph(rng, hw=(7, 6), cin=4, cout=4, kernel=(3, 2), stride=(2, 1), dilation=(1, 2),
                          pads=(2, 1, 0, 1), groups=2, xtype=U8, sparsity=0.4, rounding=Rounding.RNU), \
            ["conv=2,3"], {"conv": 2}
    if name == "depthwise":
        return conv_graph(rng, hw=(6, 6), cin=4, cout=4, kernel=(3, 3), pads=(1, 1, 1, 1), groups=4), \
            ["conv=4,3"], {"conv": 4}
    if name == "dense":
        return dense_graph(rng, rows=(3,), k=20, cout=6, sparsity=0.5, exact=True), ["fc=3,4"], {"fc": 4}
    if name == "maxpool":
        return maxpool_graph(rng, hw=(7, 7), c=3, kernel=(3, 3), stride=(2, 2), pads=(1, 1, 1, 1)), [], {"pool": 3}
    if name == "avgpool":
        return avgpool_graph(rng, hw=(5, 6), c=4, kernel=(3, 3), stride=(2, 2), pads=(1, 1, 1, 1)), [], {"pool": 2}
    if name == "gap":
        return gap_graph(rng, hw=(4, 3), c=6, flatten=True), [], {"gap": 3}
    if name == "add":
        return add_graph(rng, hw=(3, 4), c=4, ytype=U8), [], {"add": 2, "rq": 4}
    if name == "concat":
        return concat_graph(rng, hw=(3, 3), c1=6, c2=4), ["conv=3,2"], {"cat": 2, "conv": 2}
    raise KeyError(name)


FAMILIES = ["conv", "depthwise", "dense", "maxpool", "avgpool", "gap", "add", "concat"]


@pytest.fixture(scope="module", params=FAMILIES)
def built(request, tmp_path_factory):
    graph, folds, lanes = design(request.param)
    plan = make_plan(graph, folds=folds, lanes=lanes)
    sim = PyVerilatorStream.build(to_verilog(graph, plan), plan.top, cache_dir=tmp_path_factory.mktemp("pyv"))
    return graph, plan, sim


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), stall_prob=st.sampled_from([0.0, 0.5]))
def test_component_matches_golden(built, seed, stall_prob):
    graph, plan, sim = built
    x_type, y_type = graph.tensor(graph.inputs[0]), graph.tensor(graph.outputs[0])
    x = np.random.default_rng(seed).integers(x_type.dtype.lo, x_type.dtype.hi + 1, (2, *x_type.shape))
    n_out = 2 * y_type.size // plan.output_lanes[0]
    result = sim.run(pack_words(x, x_type.dtype, plan.input_lanes), n_out, stall_seed=seed, stall_prob=stall_prob)
    got = unpack_words(result.limbs, y_type.dtype, plan.output_lanes[0], y_type.shape)
    assert np.array_equal(got, expected(graph, x))
