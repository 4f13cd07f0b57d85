"""Multipliers whose FPGA mapping the generator decides, not yosys.

`synth_ice40 -dsp` and `synth_ecp5` put every `$mul` cell into DSP blocks (constant operands
included) and never fall back to logic when the DSPs run out. So the hardware says what it wants:

* `dsp_multiply`: `a * b` split into chunks of at most `hardware.DSP_CHUNK` bits, one `$mul` per pair of
  chunks: each becomes exactly one iCE40 SB_MAC16 or ECP5 MULT18X18D, so a product costs
  `dsp_chunks(a) * dsp_chunks(b)` DSPs (the resource model counts them this way);
* `lut_multiply`: shift-and-add partial products, no `$mul` at all: logic only;
* `const_multiply`: a product by a constant in canonical signed digits (shifts and adds): logic.

All three return exact products (signed, wide enough for any operand values).
"""

from __future__ import annotations

from amaranth import Const, Module, Mux, Signal, Value, signed, unsigned

from ..fpga.hardware import DSP_MULTIPLY_LATENCY, chunk_widths, csd_digits

__all__ = ["dsp_multiply", "lut_multiply", "const_multiply", "product_shape", "KEEP"]

#: On every product register an adder reads: yosys 0.70's `ice40_dsp` otherwise packs the
#: register and the adder into SB_MAC16s wrongly (a post-synthesis simulation of a 2x4 engine gave
#: 72 of 80 outputs wrong, with half the lanes' logic gone); with it, the netlist is exact.
KEEP = {"keep": 1}

def product_shape(a: Value, b) -> int:
    """Bits of a signed product of `a` and `b` (a Value or an int)."""
    b_bits = len(b) + (0 if b.shape().signed else 1) if isinstance(b, Value) else max(1, b.bit_length()) + 1
    return len(a) + (0 if a.shape().signed else 1) + b_bits


def _chunks(value: Value) -> list[tuple[Value, int]]:
    """(chunk, offset): unsigned low chunks and a top chunk as signed as `value`."""
    out, offset = [], 0
    widths = chunk_widths(len(value))
    for k, width in enumerate(widths):
        part = value[offset:offset + width]
        out.append((part.as_signed() if k == len(widths) - 1 and value.shape().signed else part, offset))
        offset += width
    return out


def dsp_multiply(m: Module, a: Value, b: Value | int, name: str) -> tuple[Signal, int]:
    """`a * b` from registered operands as registered chunk products, then registered sums of
    pairs of them, then their registered total: (product, DSP_MULTIPLY_LATENCY). Two levels of
    wide adders in one cycle were the iCE40's critical path (a requantizer's 2x2 chunks: 40 carry
    levels, 37.8 MHz). The operand registers are the ones yosys packs into the DSPs: without them
    it packs the producer's (an accumulator), and the accumulator's adder had to reach the DSP."""
    width = product_shape(a, b)
    if isinstance(b, int):
        b = Const(b, signed(b.bit_length() + 1) if b < 0 else unsigned(max(1, b.bit_length())))
    else:
        b = _register(m, b, f"{name}_b")
    a = _register(m, a, f"{name}_a")
    parts = []
    for i, (x, xo) in enumerate(_chunks(a)):
        for j, (y, yo) in enumerate(_chunks(b)):
            reg = Signal(signed(len(x) + len(y) + 1), name=f"{name}_pp{i}_{j}", reset_less=True, attrs=KEEP)
            m.d.sync += reg.eq(x * y)
            parts.append(reg << (xo + yo) if xo + yo else reg)
    pairs = []
    for k in range(0, len(parts), 2):
        pair = Signal(signed(width), name=f"{name}_pair{k // 2}", reset_less=True)
        m.d.sync += pair.eq(_tree_sum(parts[k:k + 2]))
        pairs.append(pair)
    total = Signal(signed(width), name=f"{name}_product", reset_less=True)
    m.d.sync += total.eq(_tree_sum(pairs))
    return total, DSP_MULTIPLY_LATENCY


def _register(m: Module, value: Value, name: str) -> Signal:
    reg = Signal(value.shape(), name=name, reset_less=True)
    m.d.sync += reg.eq(value)
    return reg


def _tree_sum(values: list):
    values = list(values)
    while len(values) > 1:
        values = [values[k] + values[k + 1] if k + 1 < len(values) else values[k] for k in range(0, len(values), 2)]
    return values[0]


def lut_multiply(a: Value, b: Value) -> Value:
    """`a * b` (b signed or unsigned) as a sum of partial products: `b`'s bits select shifted `a`s."""
    bits = len(b)
    terms = []
    for k in range(bits):
        term = Mux(b[k], a.as_signed() if a.shape().signed else a, 0)
        if k == bits - 1 and b.shape().signed:
            terms.append(-(term << k) if k else -term)   # the sign bit weighs -2**(bits-1)
        else:
            terms.append(term << k if k else term)
    return _tree_sum(terms)


def const_multiply(a: Value, c: int) -> Value | int:
    """`a * c` for a constant c, in shifts and adds (0 for c == 0)."""
    if c == 0:
        return 0
    x = a.as_signed() if a.shape().signed else a
    terms = [(x << k if k else x) if d > 0 else -(x << k if k else x) for k, d in csd_digits(c)]
    return _tree_sum(terms)
