"""Requantization in hardware: y = clamp(zero_point + round_shift(acc * M, s), lo, hi).

The same formula as `hwgen.fixed.requantize`, in five registered stages, so no stage holds more
than one adder or a shifter (Fmax):

1. the product acc * M in DSP-sized chunk products (see `arith.dsp_multiply`: the DSP count
   is known before synthesis);
2. their sum;
3. the shift: floor(v / 2**s), and the bits rounding looks at. With r = v mod 2**s, RNU
   rounds up when r >= 2**(s-1), i.e. when bit s-1 of v is set; RNE rounds up when bit s-1 is
   set and either a lower bit is set (r > half) or the quotient is odd (a tie goes to even);
4. the rounding and the zero point;
5. the clamp.

Every parameter may be a constant (the common per-tensor case costs no table) or a signal that
is valid together with `acc`; the unit delays the later stages' parameters itself. A signal
shift only needs a shifter over the shifts that occur (`min_shift` .. `max_shift`).
"""

from __future__ import annotations

from amaranth import Const, Module, Mux, Shape, Signal, Value, signed

from ..fixed import Rounding
from ..fpga.program import reduce_multiplier
from .arith import dsp_multiply

__all__ = ["REQUANT_LATENCY", "requantize", "reduce_multiplier"]

#: Cycles from acc (with its parameters) to the requantized output.
REQUANT_LATENCY = 5


def _delayed(m: Module, value, enables: list, name: str):
    """`value` registered once per enable (constants pass through)."""
    if isinstance(value, int):
        return value
    for k, enable in enumerate(enables):
        reg = Signal.like(value, name=f"{name}_d{k + 1}", reset_less=True)
        with m.If(enable):
            m.d.sync += reg.eq(value)
        value = reg
    return value


def requantize(m: Module, acc: Value, multiplier, shift, zero_point, lo, hi, rounding: Rounding,
               out_shape: Shape, *, valid=None, max_shift: int = 62, min_shift: int = 0,
               name: str = "rq") -> Signal:
    """Build the stages into `m`; returns the output register (valid REQUANT_LATENCY cycles after acc).

    `valid` (with acc) lets the later stages hold when they have nothing to do: the output then
    keeps its last value, and a simulator skips the arithmetic. `min_shift` .. `max_shift` bound
    `shift` when it is a signal.
    """
    acc = acc.as_signed()
    if valid is None:
        enables = [1] * REQUANT_LATENCY
    else:
        enables = [valid]
        for k in range(REQUANT_LATENCY - 1):
            nxt = Signal(name=f"{name}_valid{k + 1}")
            m.d.sync += nxt.eq(enables[-1])
            enables.append(nxt)
    if isinstance(shift, int):
        min_shift = max_shift = shift

    # 1-2: the product (the chunk products register unconditionally: a DSP's own register)
    product, latency = dsp_multiply(m, acc, multiplier, name)
    assert latency == 2
    if len(product) < max_shift + 1:  # sign-extended past the largest shift: every bit the shift sees exists
        wide = Signal(signed(max_shift + 1), name=f"{name}_product_wide")
        m.d.comb += wide.eq(product)
        product = wide
    shift = _delayed(m, shift, enables[:2], f"{name}_shift")

    # 3: the shift, over the shifts that occur
    if isinstance(shift, int):
        # a slice, not `>>`: Verilog gets no chain of replicated sign bits
        quotient = product[shift:].as_signed() if shift < len(product) else product[-1:].as_signed()
        half = product[shift - 1] if shift > 0 else Const(0)
        sticky = product[:shift - 1].any() if shift > 1 else Const(0)
    else:
        width = len(product)
        base = min(min_shift, width)
        rest = Signal(range(max(1, max_shift - base) + 1), name=f"{name}_shift_rest")
        m.d.comb += rest.eq(shift - base)
        quotient = product[base:].as_signed() >> rest if base < width else product[-1:].as_signed()
        # Masks come from right shifts of constants, so no value grows wider than the product.
        raw = product.as_unsigned()
        shift_less = Signal.like(shift, name=f"{name}_shift_less")
        m.d.comb += shift_less.eq(shift - 1)
        half = Mux(shift == 0, 0, raw.bit_select(shift_less, 1))
        unshift = Signal(range(width + 2), name=f"{name}_unshift")
        m.d.comb += unshift.eq(width + 1 - shift)
        below = Const((1 << width) - 1, width) >> unshift  # the shift-1 bits under `half`
        sticky = Mux(shift <= 1, 0, (raw & below).any())
    q = Signal(signed(len(quotient)), name=f"{name}_quotient", reset_less=True)
    h, s = Signal(name=f"{name}_half", reset_less=True), Signal(name=f"{name}_sticky", reset_less=True)
    with m.If(enables[2]):
        m.d.sync += [q.eq(quotient), h.eq(half), s.eq(sticky)]

    # 4: rounding and zero point
    if rounding is Rounding.RNU:
        round_up = h
    elif rounding is Rounding.RNE:
        round_up = h & (s | q[0])
    else:
        raise ValueError(f"unknown rounding mode {rounding!r}")
    zero_point, lo, hi = (_delayed(m, v, enables[:n], f"{name}_{label}")
                          for v, label, n in ((zero_point, "zp", 3), (lo, "lo", 4), (hi, "hi", 4)))
    zp_bits = zero_point.bit_length() + 1 if isinstance(zero_point, int) else len(zero_point)
    # widths fit each value exactly: widening a signed value costs a simulator a bit per bit
    biased = Signal(signed(max(len(q) + 1, zp_bits) + 1), name=f"{name}_biased", reset_less=True)
    with m.If(enables[3]):
        m.d.sync += biased.eq(q + round_up + zero_point)

    # 5: the clamp
    out = Signal(out_shape, name=f"{name}_out", reset_less=True)
    with m.If(enables[4]):
        m.d.sync += out.eq(Mux(biased < lo, lo, Mux(biased > hi, hi, biased)))
    return out
