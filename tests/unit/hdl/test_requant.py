"""The hardware requantizer against the arithmetic spec, with parameters as signals (per-channel
tables) or constants, over drawn accumulator widths and shift ranges."""

from amaranth import Module, Signal, signed, unsigned
from amaranth.sim import Simulator
from hypothesis import given, settings
from hypothesis import strategies as st

from hwgen import fixed
from hwgen.fixed import Rounding
from hwgen.fpga.hardware import REQUANT_LATENCY
from hwgen.hdl.requant import requantize


@st.composite
def cases(draw):
    acc_bits = draw(st.integers(2, 32))
    mult_bits = draw(st.integers(1, 31))
    min_shift = draw(st.integers(0, 40))
    max_shift = draw(st.integers(min_shift, min(62, min_shift + 20)))
    rounding = draw(st.sampled_from(list(Rounding)))
    constant = draw(st.booleans())
    lo_acc, hi_acc = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    n = draw(st.integers(1, 12))
    # accumulators at the edges and around rounding ties are where a mask is off by one bit
    accs = draw(st.lists(st.one_of(st.integers(lo_acc, hi_acc), st.sampled_from([lo_acc, hi_acc, 0, -1, 1])),
                         min_size=n, max_size=n))
    mults = draw(st.lists(st.integers(0, (1 << mult_bits) - 1), min_size=n, max_size=n))
    shifts = draw(st.lists(st.integers(min_shift, max_shift), min_size=n, max_size=n))
    if constant:
        mults, shifts = [mults[0]] * n, [shifts[0]] * n
    zero_point = draw(st.integers(-128, 127))
    # the output's type, and clamp bounds inside it (as the sequential engine's signals, or constants)
    out_shape = draw(st.sampled_from([signed(8), unsigned(8), signed(10), unsigned(2)]))
    out_lo, out_hi = (-(1 << (out_shape.width - 1)), (1 << (out_shape.width - 1)) - 1) if out_shape.signed \
        else (0, (1 << out_shape.width) - 1)
    lo = draw(st.integers(out_lo, out_hi))
    hi = draw(st.integers(lo, out_hi))
    bounds = (out_shape, lo, hi, draw(st.booleans()))
    return acc_bits, mult_bits, (min_shift, max_shift), rounding, constant, accs, mults, shifts, zero_point, bounds


@settings(max_examples=100, deadline=None)
@given(cases())
def test_requantize_matches_spec(case):
    acc_bits, mult_bits, (min_shift, max_shift), rounding, constant, accs, mults, shifts, zp, bounds = case
    out_shape, lo, hi, signal_bounds = bounds
    m = Module()
    lo_sig, hi_sig = Signal(signed(11), init=lo), Signal(signed(11), init=hi)
    acc = Signal(signed(acc_bits))
    mult_sig, shift_sig = Signal(unsigned(mult_bits)), Signal(range(max_shift + 1))
    valid = Signal()
    multiplier = mults[0] if constant else mult_sig
    shift = shifts[0] if constant else shift_sig
    out = requantize(m, acc, multiplier, shift, zp, lo_sig if signal_bounds else lo, hi_sig if signal_bounds else hi,
                     rounding, out_shape, valid=valid, max_shift=max_shift, min_shift=min_shift)
    expected = [int(fixed.requantize(a, mu, s, zp, lo, hi, rounding)) for a, mu, s in zip(accs, mults, shifts)]
    got = []

    async def bench(ctx):
        # one value per cycle, back to back: every stage holds a different input
        for k in range(len(accs) + REQUANT_LATENCY):
            if k < len(accs):
                ctx.set(acc, accs[k])
                ctx.set(mult_sig, mults[k])
                ctx.set(shift_sig, shifts[k])
            ctx.set(valid, k < len(accs))
            await ctx.tick()
            if k >= REQUANT_LATENCY - 1 and len(got) < len(accs):
                got.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == expected
