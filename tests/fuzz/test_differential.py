"""The differential fuzzer: hypothesis draws small float CNNs (convolutions of any geometry and
grouping, pools, residual adds, concatenations, fully connected heads, element and channel
pruning) and small detectors (lookup-table functions, squeeze-excite and swish products, affine ops
and standalone batch norms, pads, resizes, transposed convolutions, slices, splits, depth-to-space,
concatenations along height or width, SSD heads), onnxruntime's quantize_static quantizes them (int8
and uint8 activations, per-tensor and per-channel weights), and hwgen must agree:

* golden model vs onnxruntime: every layer within 1 step when fed onnxruntime's own inputs (the
  spec's allowance for float32 requantization), end to end recorded;
* RVV C (QEMU, VLEN 128 and 512; scalar kernels under ASan/UBSan) = golden, bit for bit;
* Verilated RTL = golden, bit for bit.

CI runs a few graphs of each (derandomized); `-m fuzz` runs 1,000 / 200 / 50 with fresh seeds.
Set HWGEN_FUZZ_REPORT=FILE to append the counts and agreement of a run to FILE (JSON lines).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwgen import golden
from hwgen.compiler import Compiled
from hwgen.frontend import import_onnx
from hwgen.passes import run_passes
from hwgen.reference import Agreement, agreement

from ..rvv.rvv_support import check_against_golden, needs_rvv
from .float_graphs import detector_nets, float_nets, quantize

QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]


def _settings(examples: int, ci: bool) -> settings:
    return settings(max_examples=examples, deadline=None, derandomize=ci, suppress_health_check=QUIET,
                    database=None if ci else settings.default.database)


def _compiled(net, activation: str, per_channel: bool):
    model = quantize(net, activation=activation, per_channel=per_channel)
    imported = import_onnx(model)
    return model, Compiled(None, None, imported, run_passes(imported), None)


class _Tally:
    """Counts across the examples of one test, appended to HWGEN_FUZZ_REPORT at the end."""

    def __init__(self, name: str):
        self.name, self.graphs, self.agreement = name, 0, Agreement(0, 0, 0, 0, 0, 0)

    def write(self) -> None:
        path = os.environ.get("HWGEN_FUZZ_REPORT")
        if path and self.graphs:
            with open(path, "a") as f:
                f.write(json.dumps({"test": self.name, "graphs": self.graphs, **dataclasses.asdict(self.agreement)})
                        + "\n")


def _golden_vs_onnxruntime(tally: _Tally, net, activation, per_channel, seed) -> None:
    model, compiled = _compiled(net, activation, per_channel)
    x = np.random.default_rng(seed).normal(0, 1, size=(4, *net.shape[1:])).astype(np.float32)
    found = agreement(compiled, model, {"input": x})
    tally.graphs += 1
    tally.agreement = tally.agreement + found
    assert found.layer_worst <= 1, f"{net.description}: {found}"


def _rvv_equals_golden(net, activation, per_channel, seed) -> None:
    _, compiled = _compiled(net, activation, per_channel)
    graph = compiled.graph
    rng = np.random.default_rng(seed)
    inputs = {name: rng.integers(graph.tensor(name).dtype.lo, graph.tensor(name).dtype.hi + 1,
                                 (3, *graph.tensor(name).shape)) for name in graph.inputs}
    check_against_golden(graph, inputs)


def _rtl_equals_golden(net, activation, per_channel, seed, budget) -> None:
    from hwgen.backends.fpga import build_accelerator, to_verilog
    from hwgen.fpga.outputs import assemble, hardware_graph
    from hwgen.fpga.plan import make_plan

    _, compiled = _compiled(net, activation, per_channel)
    graph, concats = hardware_graph(compiled.graph)   # several outputs; SSD heads' concats on the host
    plan = make_plan(graph, budget=budget)
    accelerator = build_accelerator(graph, plan, to_verilog(graph, plan))
    t = graph.tensor(graph.inputs[0])
    x = np.random.default_rng(seed).integers(t.dtype.lo, t.dtype.hi + 1, (3, *t.shape))
    want = golden.run_graph(compiled.graph, {graph.inputs[0]: x})
    for run in (accelerator.run(x), accelerator.run(x, stall_prob=0.3, seed=seed)):
        got = assemble(run.outputs, concats, compiled.graph)
        assert got.keys() == want.keys(), net.description
        for name in want:
            assert np.array_equal(got[name], want[name]), f"{net.description}: output {name!r}"


ACT = st.sampled_from(["int8", "uint8"])
SEED = st.integers(0, 2**32 - 1)
needs_verilator = pytest.mark.skipif(shutil.which("verilator") is None, reason="verilator not found on PATH")


def _golden_test(examples: int, ci: bool, nets=float_nets(), kind: str = "CNNs"):
    tally = _Tally(f"golden vs onnxruntime, {kind} ({'ci' if ci else 'fuzz'})")

    @_settings(examples, ci)
    @given(nets, ACT, st.booleans(), SEED)
    def run(net, activation, per_channel, seed):
        _golden_vs_onnxruntime(tally, net, activation, per_channel, seed)

    def test():
        try:
            run()
        finally:
            tally.write()
    return test


def _rvv_test(examples: int, ci: bool, nets=float_nets(max_blocks=3, max_hw=8)):
    @_settings(examples, ci)
    @given(nets, ACT, st.booleans(), SEED)
    def test(net, activation, per_channel, seed):
        _rvv_equals_golden(net, activation, per_channel, seed)
    return test


def _rtl_test(examples: int, ci: bool, nets=float_nets(max_blocks=3, max_hw=8)):
    @_settings(examples, ci)
    @given(nets, ACT, st.booleans(), SEED, st.sampled_from([2, 8, 32]))
    def test(net, activation, per_channel, seed, budget):
        _rtl_equals_golden(net, activation, per_channel, seed, budget)
    return test


test_golden_matches_onnxruntime = _golden_test(40, ci=True)
test_rvv_matches_golden = needs_rvv(pytest.mark.rvv(_rvv_test(3, ci=True)))
test_rtl_matches_golden = needs_verilator(pytest.mark.cosim(_rtl_test(1, ci=True)))

test_fuzz_golden_matches_onnxruntime = pytest.mark.fuzz(_golden_test(1000, ci=False))
test_fuzz_rvv_matches_golden = pytest.mark.fuzz(needs_rvv(pytest.mark.rvv(_rvv_test(200, ci=False))))
test_fuzz_rtl_matches_golden = pytest.mark.fuzz(needs_verilator(pytest.mark.cosim(_rtl_test(50, ci=False))))

DETECTORS = detector_nets()
SMALL_DETECTORS = detector_nets(max_blocks=2, max_hw=5)
FPGA_DETECTORS = detector_nets(max_blocks=2, max_hw=5, fpga=True)  # the blocks the FPGA accelerator builds

test_detector_golden_matches_onnxruntime = _golden_test(15, ci=True, nets=DETECTORS, kind="detectors")
test_detector_rvv_matches_golden = needs_rvv(pytest.mark.rvv(_rvv_test(2, ci=True, nets=SMALL_DETECTORS)))
test_detector_rtl_matches_golden = needs_verilator(pytest.mark.cosim(_rtl_test(1, ci=True, nets=FPGA_DETECTORS)))

test_fuzz_detector_golden_matches_onnxruntime = pytest.mark.fuzz(_golden_test(500, ci=False, nets=DETECTORS,
                                                                              kind="detectors"))
test_fuzz_detector_rvv_matches_golden = pytest.mark.fuzz(needs_rvv(pytest.mark.rvv(
    _rvv_test(100, ci=False, nets=SMALL_DETECTORS))))
test_fuzz_detector_rtl_matches_golden = pytest.mark.fuzz(needs_verilator(pytest.mark.cosim(
    _rtl_test(30, ci=False, nets=FPGA_DETECTORS))))
