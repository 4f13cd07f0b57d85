"""The step program of a MAC layer: zero weights skipped, every non-zero weight used exactly once."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwgen.fpga.geometry import MacGeometry
from hwgen.fpga.schedule import build_schedule, fold_steps, steps_per_pixel


def geometry(weights: np.ndarray) -> MacGeometry:
    cout, k = weights.shape
    return MacGeometry("layer", weights, np.broadcast_to(np.arange(k), (cout, k)).copy(), k, 1)


def test_dense_layer_takes_cout_k_over_pe_simd_steps():
    w = np.ones((8, 12), dtype=np.int64)
    assert steps_per_pixel(w, 2, 3) == 8 * 12 // (2 * 3)
    assert steps_per_pixel(w, 8, 12) == 1


def test_a_fold_lasts_as_long_as_its_busiest_channel():
    w = np.array([[1, 1, 1, 1], [1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0]])
    # folds of 2 channels: {4 non-zeros, 1} and {0, 1}; SIMD 2 -> 2 steps and 1 step
    assert list(fold_steps(w, 2, 2)) == [2, 1]
    # an all-zero fold still takes one step: its outputs are requant(bias)
    assert list(fold_steps(np.zeros((2, 5), dtype=np.int64), 1, 1)) == [1, 1]


def test_fold_must_divide():
    with pytest.raises(ValueError, match=r"PE=3 must divide 4 output channels"):
        fold_steps(np.ones((4, 4)), 3, 1)


def test_dense_folds_keep_the_dense_order_so_pes_read_alike():
    w = np.arange(1, 25).reshape(4, 6)
    s = build_schedule(geometry(w), 2, 3)
    assert (s.entry[:, 0, :] == s.entry[:, 1, :]).all()
    assert s.entry[:, 0, :].tolist() == [[0, 1, 2], [3, 4, 5], [0, 1, 2], [3, 4, 5]]


def test_sparse_folds_are_compacted():
    w = np.zeros((2, 8), dtype=np.int64)
    w[0, [1, 6]] = [5, -3]
    w[1, [0, 2, 7]] = [1, 2, 3]
    s = build_schedule(geometry(w), 2, 2)
    assert s.steps == 2  # ceil(3 / 2), not 8 / 2
    assert s.entry[0, 0].tolist() == [1, 6] and s.weight[0, 0].tolist() == [5, -3]
    assert s.entry[1, 0].tolist() == [-1, -1] and s.weight[1, 0].tolist() == [0, 0]
    assert s.entry[:, 1].tolist() == [[0, 2], [7, -1]]


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 3), st.integers(1, 4), st.floats(0, 1),
       st.integers(0, 2**32 - 1))
def test_schedule_computes_the_matrix_product(pe, simd, folds, chunks, sparsity, seed):
    rng = np.random.default_rng(seed)
    cout, k = pe * folds, simd * chunks
    w = np.where(rng.random((cout, k)) < sparsity, 0, rng.integers(-9, 10, (cout, k)))
    x = rng.integers(-50, 50, k)
    s = build_schedule(geometry(w), pe, simd)
    assert s.steps == steps_per_pixel(w, pe, simd)
    acc = np.zeros(cout, dtype=np.int64)
    for t in range(s.steps):
        for p in range(pe):
            o = s.fold[t] * pe + p
            used = s.entry[t, p] >= 0
            acc[o] += int((s.weight[t, p][used] * x[s.entry[t, p][used]]).sum())
            assert (s.weight[t, p][~used] == 0).all()
    assert np.array_equal(acc, w @ x)
    # every non-zero weight exactly once
    assert (s.weight != 0).sum() == np.count_nonzero(w)
    assert s.first.sum() == s.last.sum() == s.folds == folds
