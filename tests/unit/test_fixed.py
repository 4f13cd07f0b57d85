"""Property tests of the arithmetic spec against exact rational arithmetic."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hwgen import fixed
from hwgen.fixed import IntType, Rounding

ints64 = st.integers(min_value=-(2**62), max_value=2**62 - 1)
shifts = st.integers(min_value=0, max_value=fixed.MAX_SHIFT)


def exact_round(q: Fraction, rounding: Rounding) -> int:
    """Round a rational to an integer: ties to even (RNE) or towards +inf (RNU)."""
    floor = math.floor(q)
    rest = q - floor
    if rest > Fraction(1, 2):
        return floor + 1
    if rest < Fraction(1, 2):
        return floor
    if rounding is Rounding.RNU:
        return floor + 1
    return floor + (floor % 2)


@given(ints64, shifts, st.sampled_from(list(Rounding)))
def test_round_shift_is_exact_rounding_of_the_quotient(value, shift, rounding):
    assert fixed.round_shift(value, shift, rounding) == exact_round(Fraction(value, 2**shift), rounding)


@given(st.lists(ints64, min_size=1, max_size=20), shifts, st.sampled_from(list(Rounding)))
def test_round_shift_on_arrays_matches_scalars(values, shift, rounding):
    out = fixed.round_shift(np.array(values, dtype=np.int64), shift, rounding)
    assert out.tolist() == [fixed.round_shift(v, shift, rounding) for v in values]


def test_round_shift_ties():
    # 2.5 -> 2 (even) or 3 (up); -2.5 -> -2 (even) or -2 (up, towards +inf)
    assert fixed.round_shift(5, 1, Rounding.RNE) == 2
    assert fixed.round_shift(5, 1, Rounding.RNU) == 3
    assert fixed.round_shift(-5, 1, Rounding.RNE) == -2
    assert fixed.round_shift(-5, 1, Rounding.RNU) == -2
    assert fixed.round_shift(7, 1, Rounding.RNE) == 4


def test_round_shift_refuses_bad_shifts():
    with pytest.raises(ValueError, match="shift must be in 0..62"):
        fixed.round_shift(1, 63, Rounding.RNE)
    with pytest.raises(ValueError, match="shift must be in 0..62"):
        fixed.round_shift(1, -1, Rounding.RNE)


@given(st.lists(ints64, min_size=1, max_size=20), st.integers(-300, 300), st.integers(-300, 300))
def test_saturate_clamps_into_range(values, a, b):
    lo, hi = min(a, b), max(a, b)
    out = fixed.saturate(values, lo, hi)
    assert out.tolist() == [min(max(v, lo), hi) for v in values]


@given(st.floats(min_value=1e-12, max_value=1e8, allow_nan=False, allow_infinity=False),
       st.integers(min_value=8, max_value=32))
def test_quantize_multiplier_precision(real, bits):
    assume(real < 2 ** (bits - 1))  # larger scales are refused (see test_quantize_multiplier_edges)
    m, s = fixed.quantize_multiplier(real, bits)
    assert 0 <= s <= fixed.MAX_SHIFT and 0 < m < 2**bits
    if s < fixed.MAX_SHIFT:
        assert m >= 2 ** (bits - 1)  # all bits used
        # one rounding of real * 2**s: relative error <= 2**-bits
        assert abs(Fraction(m, 2**s) - Fraction(real)) <= Fraction(real) * Fraction(1, 2**bits)
    else:
        assert abs(Fraction(m, 2**s) - Fraction(real)) <= Fraction(1, 2 ** (s + 1))


def test_quantize_multiplier_edges():
    assert fixed.quantize_multiplier(0.0) == (0, 0)
    assert fixed.quantize_multiplier(1.0) == (2**30, 30)
    assert fixed.quantize_multiplier(0.5, 8) == (128, 8)
    # a fraction that rounds up to 2**bits renormalizes
    m, s = fixed.quantize_multiplier(1 - 2**-40, 16)
    assert (m, s) == (2**15, 15)
    with pytest.raises(ValueError, match="too large"):
        fixed.quantize_multiplier(2.0**31)
    with pytest.raises(ValueError, match="finite and >= 0"):
        fixed.quantize_multiplier(-1.0)
    with pytest.raises(ValueError, match="finite and >= 0"):
        fixed.quantize_multiplier(float("nan"))


@settings(max_examples=300)
@given(st.integers(-(2**31), 2**31 - 1), st.floats(min_value=1e-6, max_value=4.0),
       st.sampled_from(list(Rounding)), st.integers(-128, 127), st.sampled_from([IntType(8, True), IntType(8, False),
                                                                                  IntType(16, True)]))
def test_requantize_matches_exact_rational_of_its_multiplier(acc, real, rounding, zp, itype):
    m, s = fixed.quantize_multiplier(real)
    zp = min(max(zp, itype.lo), itype.hi)
    got = fixed.requantize(acc, m, s, zp, itype.lo, itype.hi, rounding)
    want = min(max(zp + exact_round(Fraction(acc * m, 2**s), rounding), itype.lo), itype.hi)
    assert got == want
    # and it is within half a step (plus the multiplier's tiny error) of the real product
    if itype.lo < got < itype.hi:
        assert abs(got - zp - Fraction(acc) * Fraction(real)) <= Fraction(1, 2) + abs(acc) * Fraction(real) / 2**30


def test_requantize_per_channel_broadcasts_over_last_axis():
    acc = np.array([[100, 100], [-100, -100]])
    out = fixed.requantize(acc, np.array([2**30, 2**29]), np.array([30, 30]), 0, -128, 127, Rounding.RNE)
    assert out.tolist() == [[100, 50], [-100, -50]]


@given(st.integers(min_value=1, max_value=64), st.booleans())
def test_int_type_range_and_parse(bits, signed):
    t = IntType(bits, signed)
    assert t.hi - t.lo == 2**bits - 1
    assert IntType.parse(repr(t)) == t
    assert t.contains([t.lo, t.hi]) and not t.contains([t.hi + 1])


@given(st.integers(-(2**40), 2**40), st.integers(0, 2**40))
def test_type_for_range_is_the_narrowest(lo, span):
    hi = lo + span
    t = fixed.type_for_range(lo, hi)
    assert t.lo <= lo and hi <= t.hi
    if t.bits > 1:
        narrower = IntType(t.bits - 1, t.signed)
        assert not (narrower.lo <= lo and hi <= narrower.hi)


@given(st.lists(st.floats(-1000, 1000, allow_nan=False, width=32), min_size=1, max_size=50),
       st.floats(1e-3, 10), st.integers(-20, 20))
def test_quantize_float_matches_onnx_reference(xs, scale, zp):
    scale = float(np.float32(scale))
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator

    x = np.array(xs, dtype=np.float32)
    node = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])
    graph = helper.make_graph([node], "q", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [len(xs)])],
                              [helper.make_tensor_value_info("y", TensorProto.INT8, [len(xs)])],
                              [helper.make_tensor("s", TensorProto.FLOAT, [], [scale]),
                               helper.make_tensor("z", TensorProto.INT8, [], [zp])])
    ref = ReferenceEvaluator(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]))
    want = ref.run(None, {"x": x})[0]
    got = fixed.quantize_float(x, np.float32(scale), zp, IntType(8, True))
    assert np.array_equal(got, want.astype(np.int64))


def test_dequantize():
    assert fixed.dequantize(np.array([0, 10, -5]), np.float32(0.5), 2).tolist() == [-1.0, 4.0, -3.5]
