"""Requantization in hardware: y = clamp(zero_point + round_shift(acc * M, s), lo, hi).

The same formula as `hwgen.fixed.requantize`, in three registered stages:

1. the product acc * M (signed x unsigned);
2. the shift with one rounding: floor(v / 2**s) plus a round-up bit. With r = v mod 2**s, RNU
   rounds up when r >= 2**(s-1), i.e. when bit s-1 of v is set; RNE rounds up when bit s-1 is
   set and either a lower bit is set (r > half) or the quotient is odd (a tie goes to even);
3. the zero point and the clamp.

Every parameter may be a constant (the common per-tensor case costs no table) or a signal that
is valid together with `acc`; the unit delays the later stages' parameters itself.
"""

from __future__ import annotations

from amaranth import Const, Module, Mux, Shape, Signal, Value, signed

from ..fixed import Rounding

__all__ = ["REQUANT_LATENCY", "requantize"]

#: Cycles from acc (with its parameters) to the requantized output.
REQUANT_LATENCY = 3


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
               out_shape: Shape, *, valid=None, max_shift: int = 62, name: str = "rq") -> Signal:
    """Build the three stages into `m`; returns the output register (valid 3 cycles after acc).

    `valid` (with acc) lets each stage hold when it has nothing to do: the output then keeps
    its last value, and a simulator skips the arithmetic. `max_shift` bounds `shift` when it is
    a signal (the product is sign-extended past it).
    """
    acc = acc.as_signed()
    enables = [1, 1, 1]
    if valid is not None:
        enables = [valid]
        for k in range(2):
            nxt = Signal(name=f"{name}_valid{k + 1}")
            m.d.sync += nxt.eq(enables[-1])
            enables.append(nxt)
    if isinstance(shift, int):
        max_shift = shift
    width = len(acc) + (multiplier.bit_length() if isinstance(multiplier, int) else len(multiplier)) + 1
    product = Signal(signed(max(width, max_shift + 1)), name=f"{name}_product", reset_less=True)
    with m.If(enables[0]):
        m.d.sync += product.eq(acc * multiplier)

    shift = _delayed(m, shift, enables[:1], f"{name}_shift")
    if isinstance(shift, int):
        # a slice, not `>>`: Verilog gets no chain of replicated sign bits
        quotient = product[shift:].as_signed() if shift < len(product) else product[-1:].as_signed()
        half = product[shift - 1] if shift > 0 else Const(0)
        sticky = product[:shift - 1].any() if shift > 1 else Const(0)
    else:
        quotient = product >> shift
        # Masks come from right shifts of constants, so no value grows wider than the product.
        width = len(product)
        shift_less = Signal.like(shift, name=f"{name}_shift_less")
        m.d.comb += shift_less.eq(shift - 1)
        raw = product.as_unsigned()
        half = Mux(shift == 0, 0, raw.bit_select(shift_less, 1))
        unshift = Signal(range(width + 2), name=f"{name}_unshift")
        m.d.comb += unshift.eq(width + 1 - shift)
        below = Const((1 << width) - 1, width) >> unshift  # the shift-1 bits under `half`
        sticky = Mux(shift <= 1, 0, (raw & below).any())
    if rounding is Rounding.RNU:
        round_up = half
    elif rounding is Rounding.RNE:
        round_up = half & (sticky | quotient[0])
    else:
        raise ValueError(f"unknown rounding mode {rounding!r}")
    # widths fit each value exactly: widening a signed value costs a simulator a bit per bit
    rounded = Signal(signed(len(quotient) + 1), name=f"{name}_rounded", reset_less=True)
    with m.If(enables[1]):
        m.d.sync += rounded.eq(quotient + round_up)

    zero_point, lo, hi = (_delayed(m, v, enables[:2], f"{name}_{n}") for v, n in ((zero_point, "zp"), (lo, "lo"),
                                                                                   (hi, "hi")))
    zp_bits = zero_point.bit_length() + 1 if isinstance(zero_point, int) else len(zero_point)
    shifted = Signal(signed(max(len(rounded), zp_bits) + 1), name=f"{name}_biased")
    m.d.comb += shifted.eq(rounded + zero_point)
    out = Signal(out_shape, name=f"{name}_out", reset_less=True)
    with m.If(enables[2]):
        m.d.sync += out.eq(Mux(shifted < lo, lo, Mux(shifted > hi, hi, shifted)))
    return out
