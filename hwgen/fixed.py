"""The one arithmetic spec every part of hwgen derives from.

Integer semantics of rounding, saturation and requantization, and the two float
conversions at the host boundary (QuantizeLinear / DequantizeLinear). The golden
model calls these functions; the RTL and C generators take their constants
(multiplier, shift, rounding mode, clamp bounds) from here and implement the same
formulas:

    requantize(acc) = clamp(zero_point + round_shift(acc * M, s), lo, hi)

`round_shift(v, s)` divides by 2**s with one rounding, in one of two modes that
RISC-V V calls vxrm modes and that cost a few LUTs in hardware:

* RNE: round to nearest, ties to even (what ONNX and QONNX specify);
* RNU: round to nearest, ties up (towards +inf; add half, then floor-shift).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Rounding",
    "IntType",
    "round_shift",
    "saturate",
    "quantize_multiplier",
    "requantize",
    "signed_bits",
    "type_for_range",
    "round_half_even",
    "quantize_float",
    "dequantize",
    "lookup_table",
    "MULTIPLIER_BITS",
    "MAX_SHIFT",
]

#: Default precision of requantization multipliers: M is in [2**30, 2**31), as in
#: TFLite's int32 multipliers. It is far finer than onnxruntime's float32 scale.
MULTIPLIER_BITS = 31

#: Largest right shift. An accumulator of at most 32 bits times a multiplier of at
#: most 31 bits fits int64, and RVV's vnclip on 64-bit elements shifts by up to 63.
MAX_SHIFT = 62


class Rounding(enum.Enum):
    RNE = "rne"
    RNU = "rnu"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class IntType:
    """A two's complement or unsigned integer type of any width."""

    bits: int
    signed: bool

    def __post_init__(self):
        if not 1 <= self.bits <= 64:
            raise ValueError(f"integer width must be 1..64 bits, not {self.bits!r}")

    @property
    def lo(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def hi(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def max_abs(self) -> int:
        return max(-self.lo, self.hi)

    def contains(self, values) -> bool:
        a = values if isinstance(values, np.ndarray) else np.asarray(values, dtype=object)
        return a.size == 0 or (int(a.min()) >= self.lo and int(a.max()) <= self.hi)

    def __repr__(self) -> str:
        return f"{'i' if self.signed else 'u'}{self.bits}"

    @classmethod
    def parse(cls, text: str) -> IntType:
        if len(text) < 2 or text[0] not in "iu" or not text[1:].isdigit():
            raise ValueError(f"not an integer type: {text!r}")
        return cls(int(text[1:]), text[0] == "i")

    @classmethod
    def from_numpy(cls, dtype) -> IntType:
        dtype = np.dtype(dtype)
        if dtype.kind not in "iu":
            raise ValueError(f"not an integer dtype: {dtype}")
        return cls(dtype.itemsize * 8, dtype.kind == "i")

    def numpy_dtype(self) -> np.dtype:
        """The smallest numpy dtype holding this type."""
        for size in (8, 16, 32, 64):
            if self.bits <= size:
                return np.dtype(f"{'int' if self.signed else 'uint'}{size}")
        raise AssertionError("unreachable")


def signed_bits(lo: int, hi: int) -> int:
    """Width of the smallest two's complement type holding [lo, hi]."""
    lo, hi = int(lo), int(hi)
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits


def type_for_range(lo: int, hi: int) -> IntType:
    """The narrowest type for [lo, hi]: unsigned when lo >= 0, else signed."""
    lo, hi = int(lo), int(hi)
    if lo >= 0:
        return IntType(max(1, int(hi).bit_length()), False)
    return IntType(signed_bits(lo, hi), True)


def round_shift(value, shift, rounding: Rounding):
    """value / 2**shift rounded to an integer (exact, for int or int64 arrays).

    `shift` may be a scalar or broadcast against `value`; shift 0 is the identity.
    """
    v = np.asarray(value, dtype=np.int64)
    s = np.asarray(shift, dtype=np.int64)
    if np.any(s < 0) or np.any(s > MAX_SHIFT):
        raise ValueError(f"shift must be in 0..{MAX_SHIFT}")
    # Compute with shift >= 1 everywhere, then select the unshifted value where s == 0.
    s1 = np.maximum(s, 1)
    half = np.left_shift(np.int64(1), s1 - 1)
    if rounding is Rounding.RNU:
        # (v + half) >> s; done as floor(v/2^s) + (remainder >= half) so v + half
        # cannot overflow int64.
        q = np.right_shift(v, s1)
        r = v - np.left_shift(q, s1)
        out = q + (r >= half)
    elif rounding is Rounding.RNE:
        q = np.right_shift(v, s1)
        r = v - np.left_shift(q, s1)
        out = q + ((r > half) | ((r == half) & ((q & 1) == 1)))
    else:
        raise ValueError(f"unknown rounding mode {rounding!r}")
    out = np.where(s == 0, v, out).astype(np.int64)
    return out if out.ndim else int(out)


def saturate(value, lo: int, hi: int):
    out = np.clip(np.asarray(value, dtype=np.int64), lo, hi)
    return out if out.ndim else int(out)


def quantize_multiplier(real: float, bits: int = MULTIPLIER_BITS) -> tuple[int, int]:
    """(M, s) with M / 2**s ~= real, M < 2**bits using all `bits`, 0 <= s <= MAX_SHIFT.

    The relative error is at most 2**-bits. A scale too small for MAX_SHIFT keeps
    fewer significant bits (the product still rounds correctly to the nearest
    output step); 0 gives (0, 0). Scales of 2**bits or more are refused: they mean
    the output step is finer than the accumulator's, which no real model has.
    """
    if not 2 <= bits <= 32:
        raise ValueError(f"multiplier bits must be 2..32, not {bits!r}")
    real = float(real)
    if not math.isfinite(real) or real < 0:
        raise ValueError(f"requantization scale must be finite and >= 0, not {real!r}")
    if real == 0.0:
        return 0, 0
    frac, exp = math.frexp(real)  # real = frac * 2**exp, 0.5 <= frac < 1
    shift = bits - exp
    if shift < 0:
        raise ValueError(f"requantization scale {real!r} is too large (>= 2**{bits})")
    if shift > MAX_SHIFT:
        shift = MAX_SHIFT
    m = int(round_half_even(real * 2.0**shift))
    if m >= 1 << bits:  # frac rounded up to 1.0
        m >>= 1
        shift -= 1
    return int(m), int(shift)


def requantize(acc, multiplier, shift, zero_point: int, lo: int, hi: int, rounding: Rounding):
    """clamp(zero_point + round_shift(acc * multiplier, shift), lo, hi).

    `multiplier` and `shift` broadcast against `acc` (per channel: last axis).
    The caller guarantees |acc| < 2**32 so the int64 product cannot overflow.
    """
    product = np.asarray(acc, dtype=np.int64) * np.asarray(multiplier, dtype=np.int64)
    return saturate(round_shift(product, shift, rounding) + int(zero_point), lo, hi)


def round_half_even(x):
    """Round floats to the nearest integer, ties to even (ONNX's rounding)."""
    out = np.rint(x)
    return out if np.ndim(out) else float(out)


def quantize_float(x, scale, zero_point, itype: IntType):
    """ONNX QuantizeLinear: saturate(round_half_even(x / scale) + zero_point).

    The division is float32 arithmetic, as in onnxruntime. `scale` and
    `zero_point` broadcast against x (the caller lays out per-axis parameters).
    """
    q = round_half_even(np.asarray(x, dtype=np.float32) / np.asarray(scale, dtype=np.float32))
    q = np.asarray(q, dtype=np.float64) + np.asarray(zero_point, dtype=np.float64)
    return np.clip(q, itype.lo, itype.hi).astype(np.int64)


def dequantize(q, scale, zero_point):
    """ONNX DequantizeLinear: (q - zero_point) * scale, in float32."""
    diff = (np.asarray(q, dtype=np.int64) - np.asarray(zero_point, dtype=np.int64)).astype(np.float32)
    return diff * np.asarray(scale, dtype=np.float32)


def lookup_table(function, itype: IntType, scale, zero_point, otype: IntType, out_scale, out_zero_point,
                 lo: int | None = None, hi: int | None = None) -> np.ndarray:
    """The table of an elementwise function between quantized tensors: entry k is

        clamp(QuantizeLinear(function(DequantizeLinear(itype.lo + k))), lo, hi)

    for every value of `itype`, the float path of a QDQ graph (float32, round half to even)
    evaluated once per possible input, so a lookup is exact by construction. `function` maps
    the (n,) float32 inputs to (..., n) results (several tables: one per leading index).
    Raises ValueError if the function is NaN anywhere (NaN has no quantized value).
    """
    x = np.arange(itype.lo, itype.hi + 1, dtype=np.int64)
    with np.errstate(all="ignore"):  # NaN is refused below; overflow to infinity saturates
        real = np.asarray(function(dequantize(x, scale, zero_point)), dtype=np.float32)
    if real.shape[-1:] != x.shape:
        raise ValueError(f"the function returned shape {real.shape} for {x.size} inputs")
    nan = np.isnan(real)
    if nan.any():
        raise ValueError(f"the function is NaN for input {int(x[np.nonzero(nan)[-1][0]])}")
    q = quantize_float(real, out_scale, out_zero_point, otype)
    return np.clip(q, otype.lo if lo is None else lo, otype.hi if hi is None else hi)
