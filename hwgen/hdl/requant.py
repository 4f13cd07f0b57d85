"""Requantization in hardware: y = clamp(zero_point + round_shift(acc * M, s), lo, hi).

The same formula as `hwgen.fixed.requantize`, in seven registered stages, so no stage holds more
than one adder or a shifter (Fmax):

1. acc and M registered (the DSPs' input registers);
2. the product acc * M in DSP-sized chunk products (see `arith.dsp_multiply`: the DSP count
   is known before synthesis);
3. sums of pairs of them (the shift's rounding masks are built meanwhile);
4. their total;
5. the shift: floor(v / 2**s), and the bits rounding looks at. With r = v mod 2**s, RNU
   rounds up when r >= 2**(s-1), i.e. when bit s-1 of v is set; RNE rounds up when bit s-1 is
   set and either a lower bit is set (r > half) or the quotient is odd (a tie goes to even);
6. the rounding and the zero point;
7. the clamp.

Every parameter may be a constant (the common per-tensor case costs no table) or a signal that
is valid together with `acc`; the unit delays the later stages' parameters itself. A signal
shift only needs a shifter over the shifts that occur (`min_shift` .. `max_shift`).
"""

from __future__ import annotations

from amaranth import Const, Module, Mux, Shape, Signal, Value, signed

from ..fixed import Rounding
from ..fpga.hardware import DSP_MULTIPLY_LATENCY, REQUANT_LATENCY
from ..fpga.program import reduce_multiplier
from .arith import dsp_multiply
from .tables import table

__all__ = ["requantize", "reduce_multiplier"]


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


def _bits(offset: int, lo: int, hi: int) -> int:
    """A mask of bits lo .. hi-1 of a value, for a slice starting at bit `offset`."""
    return sum(1 << (b - offset) for b in range(max(lo, offset), hi))


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

    # 1-4: the product (registered unconditionally: the DSP's own registers)
    product, stages = dsp_multiply(m, acc, multiplier, name)
    assert stages == DSP_MULTIPLY_LATENCY
    if len(product) < max_shift + 1:  # sign-extended past the largest shift: every bit the shift sees exists
        wide = Signal(signed(max_shift + 1), name=f"{name}_product_wide")
        m.d.comb += wide.eq(product)
        product = wide
    width = len(product)
    if not isinstance(shift, int):
        # The rounding bits' masks depend on the shift alone: built from it a stage early and
        # registered, so stage 3 is a shifter and an OR of masked bits (Fmax), no mask arithmetic.
        shift_early = _delayed(m, shift, enables[:stages - 1], f"{name}_shift")
        base = min(min_shift, width)
        always = max(0, base - 1)   # bits under `half` at every shift that occurs
        choices = range(base, max(base, max_shift) + 1)
        rest = Signal(range(len(choices)), name=f"{name}_shift_rest", reset_less=True)
        half_mask = Signal(max(1, max_shift - always), name=f"{name}_half_mask", reset_less=True)
        sticky_mask = Signal(max(1, max_shift - 1 - always), name=f"{name}_sticky_mask", reset_less=True)
        with m.If(enables[stages - 1]):
            m.d.sync += [rest.eq(shift_early - base),
                         half_mask.eq(table([_bits(always, s - 1, s) for s in choices], shift_early - base)),
                         sticky_mask.eq(table([_bits(always, 0, s - 1) for s in choices], shift_early - base))]

    # 5: the shift, over the shifts that occur
    if isinstance(shift, int):
        # a slice, not `>>`: Verilog gets no chain of replicated sign bits
        quotient = product[shift:].as_signed() if shift < len(product) else product[-1:].as_signed()
        half = product[shift - 1] if shift > 0 else Const(0)
        sticky = product[:shift - 1].any() if shift > 1 else Const(0)
    else:
        quotient = product[base:].as_signed() >> rest if base < width else product[-1:].as_signed()
        raw = product.as_unsigned()
        half = (raw[always:max_shift] & half_mask).any()
        sticky = raw[:always].any() | (raw[always:max_shift - 1] & sticky_mask).any()
    q = Signal(signed(len(quotient)), name=f"{name}_quotient", reset_less=True)
    h, s = Signal(name=f"{name}_half", reset_less=True), Signal(name=f"{name}_sticky", reset_less=True)
    with m.If(enables[stages]):
        m.d.sync += [q.eq(quotient), h.eq(half), s.eq(sticky)]

    # 6: rounding and zero point
    if rounding is Rounding.RNU:
        round_up = h
    elif rounding is Rounding.RNE:
        round_up = h & (s | q[0])
    else:
        raise ValueError(f"unknown rounding mode {rounding!r}")
    zero_point, lo, hi = (_delayed(m, v, enables[:n], f"{name}_{label}")
                          for v, label, n in ((zero_point, "zp", stages + 1), (lo, "lo", stages + 2),
                                                  (hi, "hi", stages + 2)))
    zp_bits = zero_point.bit_length() + 1 if isinstance(zero_point, int) else len(zero_point)
    # widths fit each value exactly: widening a signed value costs a simulator a bit per bit
    biased = Signal(signed(max(len(q) + 1, zp_bits) + 1), name=f"{name}_biased", reset_less=True)
    with m.If(enables[stages + 1]):
        m.d.sync += biased.eq(q + round_up + zero_point)

    # 7: the clamp. lo and hi fit the output, so the comparisons only need a value one bit wider:
    # the sum saturated to it by its top bits (a wide AND / OR instead of a wide carry chain: a
    # 40-bit compare against signal bounds was a UP5K design's critical path, 68 logic levels).
    out = Signal(out_shape, name=f"{name}_out", reset_less=True)
    width = out_shape.width + 1
    value = biased
    if len(biased) > width:
        top = biased[width - 1:]
        fits = top.all() | ~top.any()
        value = Signal(signed(width), name=f"{name}_saturated")
        m.d.comb += value.eq(Mux(fits, biased[:width].as_signed(),
                                 Mux(biased[-1], -(1 << (width - 1)), (1 << (width - 1)) - 1)))
    with m.If(enables[stages + 2]):
        m.d.sync += out.eq(Mux(value < lo, lo, Mux(value > hi, hi, value)))
    return out
