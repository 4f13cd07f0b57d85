"""The multiply-accumulate engine: PE x SIMD multipliers shared by one or more MAC layers.

Each layer (context) has an input stream of its input vectors (a convolution window or a row of
a Dense layer), a double-buffered vector memory, and an output stream of PE_c channels per word.
The engine runs one output position of one context at a time: a sequencer walks the context's
steps in the step ROM (see `hwgen.fpga.program`), and every lane multiplies its operand by its
weight. The pipeline, one stage per line:

    issue      the sequencer presents the step address to the step ROM
    read       ROM word out: fold flags, fold index, port addresses -> buffer read ports
    multiply   operands (buffer words, element select) x weights -> product registers
    sum        an adder tree per PE (registered every TREE_LEVELS levels)
    accumulate acc = (first step of the fold ? bias : acc) + sum, bias from the fold ROM
    requantize three stages (see `requant`), multiplier and shift from the fold ROM
    emit       the last step of a fold writes PE_c results to the context's output queue

A context starts an output position only when its next vector is complete and its output queue
has room for all of that position's folds, so once started, a position runs to the end without a
stall, and a shared engine cannot deadlock waiting for a downstream layer. When several contexts
could start, they take turns (round robin). Measured on person_detect with 128 multipliers
(6 engines): deepest layer first gave an interval 27 % over the model, shallowest first 25 %,
round robin 16 %, and with the window generators' slack rows 3 %.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from ..fpga.program import EngineProgram, Field
from .requant import REQUANT_LATENCY, requantize
from .streams import OutputQueue, word_layout, word_stream
from .tables import channel_values, table

__all__ = ["MacEngine", "TREE_LEVELS"]

#: Adder tree levels between registers.
TREE_LEVELS = 3

#: Output positions an output queue holds (beyond the pipeline): slack between engines.
QUEUE_POSITIONS = 4


def _field(word, f: Field | int):
    if isinstance(f, int):
        return f
    value = word[f.offset:f.offset + f.width]
    return value.as_signed() if f.signed else value


def _tree(m: Module, values: list, width: int, name: str) -> tuple[Signal, int]:
    """Sum of `values` (registered); returns the sum and its latency in cycles."""
    level, latency, depth = list(values), 0, 0
    if not level:
        level = [Const(0, signed(width))]
    while True:
        if len(level) == 1 or depth == TREE_LEVELS:
            regs = []
            for k, v in enumerate(level):
                r = Signal(signed(width), name=f"{name}_l{latency}_{k}", reset_less=True)
                m.d.sync += r.eq(v)
                regs.append(r)
            level, latency, depth = regs, latency + 1, 0
            if len(level) == 1:
                return level[0], latency
        level = [level[k] + level[k + 1] if k + 1 < len(level) else level[k] for k in range(0, len(level), 2)]
        depth += 1


class MacEngine(wiring.Component):
    def __init__(self, program: EngineProgram):
        self.program = program
        members = {}
        for k, c in enumerate(program.contexts):
            members[f"i{k}"] = In(word_stream(c.layer.in_type, c.layer.lanes))
            members[f"o{k}"] = Out(word_stream(c.layer.out_type, c.pe))
        members["busy"] = Out(len(program.contexts))
        super().__init__(members)

    def input(self, k: int):
        return getattr(self, f"i{k}")

    def output(self, k: int):
        return getattr(self, f"o{k}")

    def elaborate(self, platform):
        m = Module()
        prog = self.program
        contexts = prog.contexts
        n = len(contexts)
        total_steps = len(prog.rom)
        pe, simd = prog.pe, prog.simd

        m.submodules.steps = rom = memory.Memory(shape=unsigned(prog.width), depth=total_steps, init=prog.rom)
        rom_port = rom.read_port()

        # -- per context: vector buffer, fill, output queue ----------------------------------
        latency = self._latency()
        # Per half of a vector buffer: `full` while the fill may not overwrite it (until its last
        # step has read it), `loaded` while it holds a vector no output position has started on.
        buffers, full, loaded, read_half, queues, fill_half, fill_word = [], [], [], [], [], [], []
        for k, c in enumerate(contexts):
            layer = c.layer
            words = layer.words
            mem = memory.Memory(shape=unsigned(layer.lanes * layer.in_type.bits), depth=2 * words, init=[])
            m.submodules[f"{layer.name}_vectors"] = mem
            wport = mem.write_port()
            ports = [mem.read_port() for _ in c.ports]
            buffers.append(ports)
            full_c = Signal(2, name=f"{layer.name}_full")
            loaded.append(Signal(2, name=f"{layer.name}_loaded"))
            w_half = Signal(name=f"{layer.name}_fill_half")
            w_word = Signal(range(words), name=f"{layer.name}_fill_word")
            r_half = Signal(name=f"{layer.name}_next_half")
            full.append(full_c)
            read_half.append(r_half)
            fill_half.append(w_half)
            fill_word.append(w_word)
            i = self.input(k)
            m.d.comb += [i.ready.eq(~full_c.bit_select(w_half, 1)),
                         wport.addr.eq(w_half * words + w_word), wport.data.eq(i.payload.as_value()),
                         wport.en.eq(i.valid & i.ready)]
            with m.If(i.valid & i.ready):
                m.d.sync += w_word.eq(Mux(w_word == words - 1, 0, w_word + 1))
                with m.If(w_word == words - 1):
                    m.d.sync += w_half.eq(~w_half)
            depth = QUEUE_POSITIONS * c.folds + latency + 2
            queue = OutputQueue(word_layout(layer.out_type, c.pe), depth, max_reserve=c.folds)
            m.submodules[f"{layer.name}_queue"] = queue
            wiring.connect(m, wiring.flipped(self.output(k)), queue.o)
            queues.append(queue)

        # -- sequencer ------------------------------------------------------------------------
        busy, ctx, half = Signal(), Signal(range(n)), Signal()
        addr, end = Signal(range(total_steps)), Signal(range(total_steps))
        runnable = [loaded[k].bit_select(read_half[k], 1) & (queues[k].free >= c.folds) for k, c in enumerate(contexts)]
        can_start = ~busy | (addr == end)
        # Round robin: the first runnable context after the one that started last, so every layer
        # drains its input steadily and no upstream engine waits on a context the priority forgot.
        starts = [Signal(name=f"start{k}") for k in range(n)]
        previous = Signal(range(n))
        ready = Cat(*runnable)
        later = Cat(*[previous < k for k in range(n)]) & ready
        candidates = Mux(later.any(), later, ready)
        for k in range(n):
            m.d.comb += starts[k].eq(can_start & candidates[k] & ~_any([candidates[j] for j in range(k)]))
            with m.If(starts[k]):
                m.d.sync += previous.eq(k)
        with m.If(busy & (addr == end)):
            m.d.sync += busy.eq(0)
        with m.Elif(busy):
            m.d.sync += addr.eq(addr + 1)
        for k, c in enumerate(contexts):
            with m.If(starts[k]):
                m.d.sync += [busy.eq(1), addr.eq(c.base), end.eq(c.base + c.steps - 1), ctx.eq(k),
                             half.eq(read_half[k]), read_half[k].eq(~read_half[k])]
            m.d.comb += queues[k].reserve.eq(Mux(starts[k], c.folds, 0))
        m.d.comb += [self.busy[k].eq(busy & (ctx == k)) for k in range(n)]
        m.d.comb += rom_port.addr.eq(addr)

        # -- read: ROM word -> buffer addresses ---------------------------------------------------
        valid1, ctx1, half1 = Signal(), Signal(range(n), reset_less=True), Signal(reset_less=True)
        m.d.sync += [valid1.eq(busy), ctx1.eq(ctx), half1.eq(half)]
        word = rom_port.data
        for k, c in enumerate(contexts):
            for port, f in zip(buffers[k], c.ports):
                m.d.comb += port.addr.eq(half1 * c.layer.words + _field(word, f))
            release = valid1 & (ctx1 == k) & word[prog.pixel_last.offset]
            filled = self.input(k).valid & self.input(k).ready & (fill_word[k] == c.layer.words - 1)
            for h in range(2):
                with m.If(filled & (fill_half[k] == h)):
                    m.d.sync += [full[k][h].eq(1), loaded[k][h].eq(1)]
                with m.Else():
                    with m.If(release & (half1 == h)):
                        m.d.sync += full[k][h].eq(0)
                    with m.If(starts[k] & (read_half[k] == h)):
                        m.d.sync += loaded[k][h].eq(0)
        valid2, ctx2 = Signal(), Signal(range(n), reset_less=True)
        first2, last2 = Signal(reset_less=True), Signal(reset_less=True)
        fold2 = Signal(prog.fold.width, reset_less=True)
        m.d.sync += [valid2.eq(valid1), ctx2.eq(ctx1), first2.eq(word[prog.first.offset]),
                     last2.eq(word[prog.last.offset]), fold2.eq(_field(word, prog.fold))]
        fields2 = {}
        for f in {f for c in contexts for _, f in c.sources.values() if isinstance(f, Field)} | \
                 {f for f in prog.weights.values() if isinstance(f, Field)}:
            reg = Signal(signed(f.width) if f.signed else unsigned(f.width), name=f"field{f.offset}", reset_less=True)
            m.d.sync += reg.eq(_field(word, f))
            fields2[f] = reg

        # -- multiply ---------------------------------------------------------------------------------
        products = [[None] * simd for _ in range(pe)]
        for p in range(pe):
            for l in range(simd):
                w = prog.weights[p, l]
                if isinstance(w, int) and w == 0:
                    continue  # no multiplier: zero weight at every step of every context
                operand = Signal(signed(prog.operand.bits), name=f"x{p}_{l}")
                with m.Switch(ctx2):
                    for k, c in enumerate(contexts):
                        if (p, l) not in c.sources:
                            continue
                        port, sub = c.sources[p, l]
                        data = buffers[k][port].data
                        bits = c.layer.in_type.bits
                        element = data.word_select(fields2[sub] if isinstance(sub, Field) else sub, bits)
                        with m.Case(k):
                            m.d.comb += operand.eq(element.as_signed() if c.layer.in_type.signed else element)
                weight = fields2[w] if isinstance(w, Field) else Const(w, signed(prog.weight.bits))
                product = Signal(signed(prog.operand.bits + prog.weight.bits), name=f"p{p}_{l}", reset_less=True)
                m.d.sync += product.eq(operand * weight)
                products[p][l] = product
        valid3, ctx3, first3, last3, fold3 = self._delay(m, [valid2, ctx2, first2, last2, fold2], 1, "s3")

        # -- sum ------------------------------------------------------------------------------------------
        trees = [_tree(m, [x for x in products[p] if x is not None], prog.acc.bits, f"sum{p}") for p in range(pe)]
        tree_latency = max(latency for _, latency in trees)  # PEs without multipliers have shallower trees
        sums = [self._delay(m, [None, s], tree_latency - latency, f"sum{p}_align")[1]
                for p, (s, latency) in enumerate(trees)]
        valid4, ctx4, first4, last4, fold4 = self._delay(m, [valid3, ctx3, first3, last3, fold3], tree_latency, "s4")
        # fold ROM: read one cycle ahead, so its word is out at the accumulate stage
        fold_rom, fold_fields = self._fold_rom()
        m.submodules.folds = fold_mem = memory.Memory(shape=unsigned(fold_fields["width"]), depth=max(1, prog.folds),
                                                      init=fold_rom)
        fold_port = fold_mem.read_port()
        _, _, _, _, fold_early = self._delay(m, [valid3, ctx3, first3, last3, fold3], tree_latency - 1, "s4e")
        m.d.comb += fold_port.addr.eq(fold_early)

        # -- accumulate ---------------------------------------------------------------------------------------
        valid5, ctx5, last5 = Signal(), Signal(range(n), reset_less=True), Signal(reset_less=True)
        m.d.sync += [valid5.eq(valid4), ctx5.eq(ctx4), last5.eq(last4)]
        accs, mults, shifts = [], [], []
        for p in range(pe):
            bias = _field(fold_port.data, fold_fields["bias"][p])
            acc = Signal(signed(prog.acc.bits), name=f"acc{p}", reset_less=True)
            with m.If(valid4):
                m.d.sync += acc.eq(Mux(first4, bias, acc) + sums[p])
            mult = Signal(unsigned(fold_fields["multiplier"][p].width), name=f"multiplier{p}", reset_less=True)
            shift = Signal(unsigned(fold_fields["shift"][p].width), name=f"shift{p}", reset_less=True)
            m.d.sync += [mult.eq(_field(fold_port.data, fold_fields["multiplier"][p])),
                         shift.eq(_field(fold_port.data, fold_fields["shift"][p]))]
            accs.append(acc)
            mults.append(mult)
            shifts.append(shift)

        # -- requantize and emit -------------------------------------------------------------------------------
        zero_point = table([c.layer.requant.zero_point for c in contexts], ctx5)
        lo = table([c.layer.requant.lo for c in contexts], ctx5)
        hi = table([c.layer.requant.hi for c in contexts], ctx5)
        roundings = {c.layer.requant.rounding for c in contexts}
        assert len(roundings) == 1, "one rounding mode per model"
        rounding = roundings.pop()
        out_bits = max(c.layer.out_type.bits + (0 if c.layer.out_type.signed else 1) for c in contexts)
        max_shift = max(max(c.layer.requant.shift) for c in contexts)
        fold_end = valid5 & last5  # requantize only finished sums
        outs = [requantize(m, accs[p], mults[p], shifts[p], zero_point, lo, hi, rounding, signed(out_bits),
                           valid=fold_end, max_shift=max_shift, name=f"rq{p}") for p in range(pe)]
        valid8, ctx8, last8 = self._delay(m, [valid5, ctx5, last5], REQUANT_LATENCY, "s8")
        for k, c in enumerate(contexts):
            queue = queues[k]
            m.d.comb += queue.w.valid.eq(valid8 & last8 & (ctx8 == k))
            m.d.comb += [queue.w.payload[p].eq(outs[p]) for p in range(c.pe)]
        return m

    def _latency(self) -> int:
        """Cycles from issue to the output queue (for sizing the queues)."""
        widest = max(1, self.program.simd)
        tree = 1
        while widest > 1:
            widest = -(-widest // (1 << TREE_LEVELS))
            tree += 1
        return 4 + tree + 1 + REQUANT_LATENCY

    @staticmethod
    def _delay(m: Module, values: list, cycles: int, name: str) -> list:
        """Delay lines; the first value is a valid bit (reset), the others data (not reset)."""
        out = []
        for k, v in enumerate(values):
            for c in range(cycles if v is not None else 0):
                reg = Signal.like(v, name=f"{name}_{k}_{c}", reset_less=k > 0)
                m.d.sync += reg.eq(v)
                v = reg
            out.append(v)
        return out

    def _fold_rom(self) -> tuple[list[int], dict]:
        """One word per fold: bias, multiplier and shift of every PE's output channel."""
        prog = self.program
        contexts = prog.contexts
        acc_bits = prog.acc.bits
        mult_bits = max(1, max(max(c.layer.requant.multiplier).bit_length() for c in contexts))
        shift_bits = max(1, max(max(c.layer.requant.shift) for c in contexts).bit_length())
        offset, fields = 0, {"bias": [], "multiplier": [], "shift": []}
        for p in range(prog.pe):
            for name, width, is_signed in (("bias", acc_bits, True), ("multiplier", mult_bits, False),
                                           ("shift", shift_bits, False)):
                fields[name].append(Field(offset, width, is_signed))
                offset += width
        fields["width"] = offset
        words = []
        for c in contexts:
            layer = c.layer
            cout = len(layer.bias)
            mult = channel_values(layer.requant.multiplier, cout)
            shift = channel_values(layer.requant.shift, cout)
            for f in range(c.folds):
                word = 0
                for p in range(c.pe):
                    o = f * c.pe + p
                    word |= fields["bias"][p].pack(int(layer.bias[o]))
                    word |= fields["multiplier"][p].pack(int(mult[o])) | fields["shift"][p].pack(int(shift[o]))
                words.append(word)
        return words, fields


def _any(bits):
    if not bits:
        return Const(0)
    result = bits[0]
    for bit in bits[1:]:
        result = result | bit
    return result
