"""Shared by the RVV tests: the skip marker, and running generated code against the golden model."""

from __future__ import annotations

import numpy as np
import pytest

from hwgen import golden
from hwgen.ir import Graph
from hwgen.rvv import program
from hwgen.rvv.codegen import Generated, generate
from hwgen.sim.qemu import missing_rvv_tools

_missing = missing_rvv_tools()
needs_rvv = pytest.mark.skipif(bool(_missing), reason=f"RVV toolchain incomplete, missing: {', '.join(_missing)}")


def assert_outputs_equal(got: dict, want: dict, graph: Graph, where: str) -> None:
    """np.array_equal per output, with a message that names the layer and the first difference."""
    for name, expected in want.items():
        actual = got[name]
        if not np.array_equal(actual, expected):
            diff = np.argwhere(actual != expected)[0]
            producer = graph.producer(name)
            raise AssertionError(f"{where}: output of {producer} differs at sample/index {tuple(diff)}: "
                                 f"got {actual[tuple(diff)]}, golden {expected[tuple(diff)]}")


def check_against_golden(graph: Graph, inputs: dict, vlens=(128, 512), sanitized: bool = True,
                         generated: Generated | None = None, cache: bool = False) -> Generated:
    """RVV under QEMU at each VLEN, and the scalar kernels natively under ASan/UBSan, equal the golden model.
    (Drawn graphs are built uncached; pass cache=True for models.)"""
    generated = generated or generate(graph, "layers", "test layers")
    want = golden.run_graph(graph, inputs)
    with program.built(generated, program.RVV, cache=cache) as binary:
        for vlen in vlens:
            got = program.run(generated, inputs, vlen=vlen, binary=binary).outputs
            assert_outputs_equal(got, want, graph, f"RVV at VLEN {vlen}")
    if sanitized:
        with program.built(generated, program.NATIVE_SANITIZED, cache=cache) as binary:
            got = program.run(generated, inputs, flavour=program.NATIVE_SANITIZED, binary=binary).outputs
        assert_outputs_equal(got, want, graph, "scalar kernels under ASan/UBSan")
    return generated


def check_model_against_golden(graph: Graph, feeds: dict, vlens=(128, 512), generated: Generated | None = None,
                               cache: bool = False) -> None:
    """The whole model (host quantization and tail around the generated core) equals the golden model."""
    generated = generated or generate(graph, "model", "test model")
    want = golden.run_model(graph, feeds)
    runs = [(program.RVV, vlen) for vlen in vlens] + [(program.NATIVE_SANITIZED, 0)]
    for flavour, vlen in runs:
        with program.built(generated, flavour, cache=cache) as binary:
            got = golden.run_model(graph, feeds, core=lambda inputs, flavour=flavour, vlen=vlen, binary=binary:
                                   program.run(generated, inputs, flavour=flavour, vlen=vlen or 128,
                                               binary=binary).outputs)
        for name, expected in want.items():
            assert np.array_equal(got[name], expected), f"{flavour.name} at VLEN {vlen}: output {name!r} differs"
