"""Small stream components whose synthesized cost calibrates the resource model.

Each is a ``wiring.Component`` with the accelerator convention (``i`` in, ``o`` out, domain
``sync``, back-pressure honoured) and a Python model of what it computes, so the same designs
serve the synthesis tests, the board-bridge tests and ``bench/synth.py``'s calibration sweep:

* :class:`MacArray`: ``lanes`` int8 multipliers, an adder tree and an accumulator, the core of
  a folded convolution's processing element; weights either arrive with the data (the
  multipliers are real, so yosys maps them to DSPs) or are compile-time constants (as hwgen's
  weights are; yosys then builds shift-and-add logic);
* :class:`Rom`: a constant table read by address, as weights stored in block RAM;
* :class:`LineBuffer`: a delay line of ``depth`` words in RAM, as a convolution's line buffer.
"""

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["MacArray", "Rom", "LineBuffer", "mac_model", "rom_contents", "line_buffer_model"]


def _signed8(word: int, lane: int) -> int:
    byte = (word >> (8 * lane)) & 0xFF
    return byte - 256 if byte & 0x80 else byte


class MacArray(wiring.Component):
    """``o = sum over `words` input words of sum_j x_j * w_j`` as an int32 (two's complement).

    With ``weights=None`` each input word carries ``lanes`` (x, w) int8 pairs, lane j in byte
    2j (x) and 2j+1 (w); with constant ``weights`` it carries ``lanes`` int8 x's, lane j in byte
    j. Three pipeline stages (products, adder tree, accumulator), one word per cycle.
    """

    def __init__(self, lanes: int, *, words: int = 4, weights: tuple[int, ...] | None = None) -> None:
        if lanes < 1 or words < 1:
            raise ValueError(f"MacArray needs lanes >= 1 and words >= 1, not {lanes}, {words}")
        if weights is not None and (len(weights) != lanes or not all(-128 <= w < 128 for w in weights)):
            raise ValueError(f"weights must be {lanes} int8 values, not {weights!r}")
        self.lanes, self.words, self.weights = lanes, words, weights
        in_width = 8 * lanes * (1 if weights is not None else 2)
        super().__init__({"i": In(stream.Signature(unsigned(in_width))),
                          "o": Out(stream.Signature(unsigned(32)))})

    def elaborate(self, platform) -> Module:
        m = Module()
        step = 8 if self.weights is not None else 16
        products = [Signal(signed(16), name=f"product{j}") for j in range(self.lanes)]
        total = Signal(signed(32))
        acc = Signal(signed(32))
        count = Signal(range(self.words))
        products_valid, total_valid = Signal(), Signal()
        # A stage loads when it is empty or its contents move on this cycle.
        o_free = ~self.o.valid | self.o.ready
        total_free = ~total_valid | o_free
        products_free = ~products_valid | total_free
        m.d.comb += self.i.ready.eq(products_free)
        with m.If(products_free):
            m.d.sync += products_valid.eq(self.i.valid)
            for j, product in enumerate(products):
                x = self.i.payload[step * j:step * j + 8].as_signed()
                w = self.weights[j] if self.weights is not None else \
                    self.i.payload[step * j + 8:step * j + 16].as_signed()
                m.d.sync += product.eq(x * w)
        with m.If(total_free):
            m.d.sync += [total_valid.eq(products_valid), total.eq(sum(products))]
        with m.If(o_free):
            m.d.sync += self.o.valid.eq(0)
            with m.If(total_valid):
                with m.If(count == self.words - 1):
                    m.d.sync += [count.eq(0), acc.eq(0), self.o.valid.eq(1), self.o.payload.eq(acc + total)]
                with m.Else():
                    m.d.sync += [count.eq(count + 1), acc.eq(acc + total)]
        return m


def mac_model(mac: MacArray, words: list[int]) -> list[int]:
    """What ``mac`` outputs for the input ``words`` (full groups of ``mac.words`` only)."""
    out, acc = [], 0
    for k, word in enumerate(words):
        if mac.weights is None:
            acc += sum(_signed8(word, 2 * j) * _signed8(word, 2 * j + 1) for j in range(mac.lanes))
        else:
            acc += sum(_signed8(word, j) * w for j, w in enumerate(mac.weights))
        if k % mac.words == mac.words - 1:
            out.append(acc & 0xFFFF_FFFF)
            acc = 0
    return out


def rom_contents(depth: int, width: int) -> list[int]:
    """Pseudo-random, incompressible table contents (a multiplicative hash of the address)."""
    return [((k * 2654435761) >> 7) % (1 << width) for k in range(depth)]


class Rom(wiring.Component):
    """``o = table[i]`` for a constant table of ``depth`` words of ``width`` bits, one per cycle.

    ``ram_style`` becomes the memory's yosys attribute: ``"logic"`` forces a LUT ROM, ``"block"``
    block RAM; by default yosys chooses by its own cost.
    """

    def __init__(self, depth: int, width: int, *, ram_style: str | None = None) -> None:
        self.depth, self.width, self.ram_style = depth, width, ram_style
        super().__init__({"i": In(stream.Signature(unsigned(max(1, (depth - 1).bit_length())))),
                          "o": Out(stream.Signature(unsigned(width)))})

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.table = table = memory.Memory(
            shape=unsigned(self.width), depth=self.depth, init=rom_contents(self.depth, self.width),
            attrs={"ram_style": self.ram_style} if self.ram_style else None)
        read = table.read_port()
        o_free = ~self.o.valid | self.o.ready
        m.d.comb += [self.i.ready.eq(o_free), read.en.eq(o_free), read.addr.eq(self.i.payload),
                     self.o.payload.eq(read.data)]
        with m.If(o_free):
            m.d.sync += self.o.valid.eq(self.i.valid)
        return m


class LineBuffer(wiring.Component):
    """``o[k] = i[k - depth]`` (0 for the first ``depth`` words): a RAM delay line, one word per cycle."""

    def __init__(self, depth: int, width: int) -> None:
        if depth < 2:
            raise ValueError(f"LineBuffer depth must be >= 2, not {depth}")
        self.depth, self.width = depth, width
        super().__init__({"i": In(stream.Signature(unsigned(width))),
                          "o": Out(stream.Signature(unsigned(width)))})

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.line = line = memory.Memory(shape=unsigned(self.width), depth=self.depth, init=[])
        read, write = line.read_port(), line.write_port()
        pointer = Signal(range(self.depth))
        o_free = ~self.o.valid | self.o.ready
        take = self.i.valid & o_free
        # Read the oldest word and overwrite it with the newest, at the same address.
        m.d.comb += [self.i.ready.eq(o_free), read.en.eq(take), read.addr.eq(pointer),
                     write.addr.eq(pointer), write.data.eq(self.i.payload), write.en.eq(take),
                     self.o.payload.eq(read.data)]
        with m.If(o_free):
            m.d.sync += self.o.valid.eq(self.i.valid)
        with m.If(take):
            m.d.sync += pointer.eq(Mux(pointer == self.depth - 1, 0, pointer + 1))
        return m


def line_buffer_model(buffer: LineBuffer, words: list[int]) -> list[int]:
    return ([0] * buffer.depth + list(words))[:len(words)]

