"""The multipliers whose FPGA mapping hwgen decides: exact products for any operand widths."""

from amaranth import Module, Signal, signed, unsigned
from amaranth.sim import Simulator
from hypothesis import given, settings
from hypothesis import strategies as st

from hwgen.fpga.hardware import DSP_CHUNK, chunk_widths, csd_digits
from hwgen.hdl.arith import const_multiply, dsp_multiply, lut_multiply


@st.composite
def operand(draw, max_bits=40):
    bits = draw(st.integers(1, max_bits))
    is_signed = draw(st.booleans()) and bits > 1
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if is_signed else (0, (1 << bits) - 1)
    return (signed if is_signed else unsigned)(bits), draw(st.lists(st.integers(lo, hi), min_size=3, max_size=3))


def run(shape_a, shape_b, pairs, build):
    """Products of `pairs` through the circuit `build(m, a, b)` -> (product, latency)."""
    m = Module()
    a, b = Signal(shape_a), Signal(shape_b)
    product, latency = build(m, a, b)
    toggle = Signal()  # a clocked domain even for the combinational circuits
    m.d.sync += toggle.eq(~toggle)
    got = []

    async def bench(ctx):
        for x, y in pairs:
            ctx.set(a, x)
            ctx.set(b, y)
            for _ in range(latency):
                await ctx.tick()
            got.append(ctx.get(product))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got


@settings(max_examples=60, deadline=None)
@given(operand(), operand())
def test_lut_and_dsp_multiplies_are_exact(a, b):
    (sa, xs), (sb, ys) = a, b
    pairs = list(zip(xs, ys))
    want = [x * y for x, y in pairs]

    def comb(m, x, y):
        out = Signal(signed(len(x) + len(y) + 2))
        m.d.comb += out.eq(lut_multiply(x, y))
        return out, 0

    assert run(sa, sb, pairs, comb) == want
    assert run(sa, sb, pairs, lambda m, x, y: dsp_multiply(m, x, y, "t")) == want


@settings(max_examples=60, deadline=None)
@given(operand(), st.integers(-(1 << 33), 1 << 33))
def test_constant_multiply_is_exact(a, c):
    shape, xs = a
    pairs = [(x, 0) for x in xs]

    def comb(m, x, _):
        out = Signal(signed(len(x) + max(1, abs(c).bit_length()) + 2))
        m.d.comb += out.eq(const_multiply(x, c))
        return out, 0

    assert run(shape, unsigned(1), pairs, comb) == [x * c for x in xs]
    assert run(shape, unsigned(1), pairs, lambda m, x, _: dsp_multiply(m, x, c, "t")) == [x * c for x in xs]


@given(st.integers(-(1 << 40), 1 << 40))
def test_csd_digits_are_canonical(c):
    digits = csd_digits(c)
    assert sum(d << k for k, d in digits) == c
    shifts = [k for k, _ in digits]
    assert all(b - a >= 2 for a, b in zip(shifts, shifts[1:]))  # no two adjacent non-zero digits


@given(st.integers(1, 200))
def test_chunks_cover_the_operand_and_fit_a_dsp(bits):
    widths = chunk_widths(bits)
    assert sum(widths) == bits and max(widths) <= DSP_CHUNK and max(widths) - min(widths) <= 1
