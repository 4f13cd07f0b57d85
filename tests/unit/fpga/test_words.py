"""Packing tensors into stream words and back."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hwgen.fixed import IntType
from hwgen.sim.rtl import pack_words, unpack_words


@given(st.integers(1, 32), st.booleans(), st.integers(1, 9), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_round_trip(bits, signed, lanes, words, seed):
    t = IntType(bits, signed)
    x = np.random.default_rng(seed).integers(t.lo, t.hi + 1, (2, words * lanes))
    limbs = pack_words(x, t, lanes)
    assert limbs.shape == (2 * words, (lanes * bits + 31) // 32)
    assert np.array_equal(unpack_words(limbs, t, lanes, (words * lanes,)), x)


def test_layout_lane_zero_in_the_low_bits():
    limbs = pack_words(np.array([[1, -1, 2]]), IntType(4, True), 3)
    assert limbs.tolist() == [[0x2F1]]


def test_rejects_values_outside_the_type():
    with pytest.raises(ValueError, match="values outside u4"):
        pack_words(np.array([16]), IntType(4, False), 1)
