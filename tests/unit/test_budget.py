"""Bounded memory: the golden model's estimate holds, large batches run in chunks, and work that
cannot fit is refused with one line that says how much it would need."""

from __future__ import annotations

import tracemalloc

import numpy as np
import onnx
import pytest

from hwgen import budget, golden
from hwgen.cli import main
from hwgen.compiler import compile_model
from hwgen.errors import ResourceLimitError

from ..conftest import DIGITS
from .qmodels import qdq_conv

MOBILENET = DIGITS / "mobilenet" / "mobilenet_fp32_qdq_s8s8_pc.onnx"


def _inputs(graph, batch, seed=0):
    rng = np.random.default_rng(seed)
    return {n: rng.integers(graph.tensor(n).dtype.lo, graph.tensor(n).dtype.hi + 1, (batch, *graph.tensor(n).shape))
            for n in graph.inputs}


@pytest.fixture
def big_conv(tmp_path):
    model = qdq_conv(np.random.default_rng(3), cin=3, cout=16, hw=(96, 96), kernel=(3, 3), stride=(1, 1),
                     dilation=(1, 1), pads=(1, 1, 1, 1), groups=1)
    onnx.save(model, tmp_path / "big.onnx")
    return tmp_path / "big.onnx"


@pytest.mark.parametrize("path", ["big", MOBILENET], ids=["conv 96x96x16", "mobilenet"])
def test_the_estimate_bounds_the_measured_peak(path, big_conv):
    graph = compile_model(big_conv if path == "big" else path).graph
    x = _inputs(graph, 4)
    tracemalloc.start()
    try:
        golden.run_graph(graph, x)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    estimate = 4 * golden.sample_bytes(graph)
    assert peak <= estimate, (peak, estimate)
    assert peak >= estimate / 8, "the estimate is far too pessimistic"


def test_a_batch_larger_than_the_budget_runs_in_chunks_with_the_same_results(big_conv, monkeypatch):
    graph = compile_model(big_conv).graph
    x = _inputs(graph, 12, seed=1)
    whole = golden.run_graph(graph, x)
    monkeypatch.setenv("HWGEN_MEMORY_LIMIT", str(3 * golden.sample_bytes(graph)))
    calls = []
    real = golden._run_samples
    monkeypatch.setattr(golden, "_run_samples", lambda *a: calls.append(len(next(iter(a[1].values())))) or real(*a))
    chunked = golden.run_graph(graph, x)
    assert len(calls) > 1 and sum(calls) == 12
    for name in whole:
        assert np.array_equal(whole[name], chunked[name])


def test_one_sample_too_large_is_refused_with_the_amount(big_conv, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("HWGEN_MEMORY_LIMIT", "1M")
    graph = compile_model(big_conv).graph
    with pytest.raises(ResourceLimitError,
                       match=r"needs about \d+\.\d MB of memory, more than hwgen's limit of 1\.0 MB"):
        golden.run_graph(graph, _inputs(graph, 1))
    code = main(["compile", str(big_conv), "-o", str(tmp_path / "out"), "--target", "rvv", "--rvv-no-count"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "HWGEN_MEMORY_LIMIT" in err
    assert not (tmp_path / "out").exists()


def test_the_limit_reads_sizes():
    assert budget.human(3 << 30) == "3.0 GB" and budget.human(1536) == "1.5 KB"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HWGEN_MEMORY_LIMIT", "512M")
        assert budget.limit() == 512 << 20
        mp.setenv("HWGEN_MEMORY_LIMIT", "lots")
        with pytest.raises(ResourceLimitError, match="not a size"):
            budget.limit()
