"""The multiply-accumulate engine: PE x SIMD multipliers shared by one or more MAC layers.

Each layer (context) has an input stream of its input vectors (a convolution window or a row of
a Dense layer), a double-buffered vector store, and an output stream of PE_c channels per word.
The engine runs one output position of one context at a time: a sequencer walks the context's
steps (see `hwgen.fpga.program`), and every lane multiplies its operand by its weight. The
pipeline, one stage per line:

    issue      the sequencer presents the step address to the weight and control ROMs
    read       control word out; step and fold counters; read addresses -> vector stores
    select     vector words out, element select; weight word out
    operand    operands and weights registered (a DSP's input registers)
    multiply   products registered
    sum        an adder tree per PE (registered every TREE_LEVELS levels)
    accumulate acc = (first step of the fold ? bias : acc) + sum, bias from the fold ROM
    requantize R shared requantizers (see `requant`): the PE results of a finished fold drain
               through them in D = ceil(PE / R) cycles, multipliers and shifts from their ROM
    emit       the fold's PE_c results go to the context's output queue

The vector store has one memory per read port, all written alike: block RAMs have one read
port (iCE40) or two ports in all (ECP5), and yosys 0.70 crashes mapping one memory with many.

A context starts an output position only when its next vector is complete and its output queue
has room for all of that position's folds, so once started, a position runs to the end without a
stall, and a shared engine cannot deadlock waiting for a downstream layer. When several contexts
could start, they take turns (round robin). Measured on person_detect with 128 multipliers
(6 engines): deepest layer first gave an interval 27 % over the model, shallowest first 25 %,
round robin 16 %, and with the window generators' slack rows 3 %.

Multipliers: a lane whose weight varies is a DSP multiplier, or one built from logic for the last
`lut_lanes` such lanes (`arith.lut_multiply`); a lane with one constant weight is shifts and adds;
a lane whose weight is always zero has none.
"""

from __future__ import annotations

from collections.abc import Mapping

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from ..fpga.hardware import REQUANT_LATENCY, TREE_LEVELS, MemoryKind, engine_latency, engine_queue_depth
from ..fpga.program import Affine, EngineProgram, Field
from .arith import KEEP, const_multiply, lut_multiply
from .requant import requantize
from .streams import OutputQueue, memory_attrs, word_layout, word_stream
from .tables import table

__all__ = ["MacEngine"]

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
    def __init__(self, program: EngineProgram, lut_lanes: int = 0,
                 placement: Mapping[str, MemoryKind] | None = None):
        """`placement`: where memories go (a MemoryKind) by local name: weights,
        control, folds, requant, <layer>_vectors, <layer>_queue (default: yosys chooses)."""
        self.program, self.lut_lanes, self.placement = program, lut_lanes, dict(placement or {})
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
        total_steps = prog.steps
        pe, simd = prog.pe, prog.simd
        latency = engine_latency(prog.simd, prog.requant.drain)

        # -- per context: vector stores, fill, output queue -----------------------------------------
        # Per half of a vector store: `full` while the fill may not overwrite it (until its last
        # step has read it), `loaded` while it holds a vector no output position has started on.
        stores, full, loaded, read_half, queues, fill_half, fill_last = [], [], [], [], [], [], []
        for k, c in enumerate(contexts):
            layer = c.layer
            words = layer.words
            i = self.input(k)
            w_half = Signal(name=f"{layer.name}_fill_half")
            w_word = Signal(range(words), name=f"{layer.name}_fill_word")
            full_c = Signal(2, name=f"{layer.name}_full")
            m.d.comb += i.ready.eq(~full_c.bit_select(w_half, 1))
            ports = []
            for j in range(len(c.ports)):
                mem = memory.Memory(shape=unsigned(layer.lanes * layer.in_type.bits), depth=2 * words, init=[],
                                    attrs=self._attrs(f"{layer.name}_vectors"))
                m.submodules[f"{layer.name}_vectors{j}"] = mem
                wport = mem.write_port()
                m.d.comb += [wport.addr.eq(Mux(w_half, words, 0) + w_word), wport.data.eq(i.payload.as_value()),
                             wport.en.eq(i.valid & i.ready)]
                ports.append(mem.read_port())
            stores.append(ports)
            loaded.append(Signal(2, name=f"{layer.name}_loaded"))
            full.append(full_c)
            read_half.append(Signal(name=f"{layer.name}_next_half"))
            fill_half.append(w_half)
            w_last = Signal(name=f"{layer.name}_fill_last", init=int(words == 1))  # w_word == words - 1 (Fmax)
            fill_last.append(w_last)
            with m.If(i.valid & i.ready):
                m.d.sync += [w_word.eq(Mux(w_last, 0, w_word + 1)),
                             w_last.eq(Mux(w_last, words == 1, w_word == words - 2))]
                with m.If(w_last):
                    m.d.sync += w_half.eq(~w_half)
            depth = engine_queue_depth(c.folds, latency)
            queue = OutputQueue(word_layout(layer.out_type, c.pe), depth, size=c.folds,
                                kind=self.placement.get(f"{layer.name}_queue"))
            m.submodules[f"{layer.name}_queue"] = queue
            wiring.connect(m, wiring.flipped(self.output(k)), queue.o)
            queues.append(queue)

        # -- issue: the sequencer ------------------------------------------------------------------
        busy, ctx, half = Signal(), Signal(range(n)), Signal()
        addr, end = Signal(range(total_steps)), Signal(range(total_steps))
        # runnable[k]: context k could start now (its next vector loaded, room in its queue for the
        # position). A register (Fmax: it heads the start decision), computed from the next state:
        # the half after a start and a vector the fill completes; room freed is seen a cycle late.
        runnable = [Signal(name=f"runnable{k}") for k in range(n)]
        # at_end: addr == end, a register (Fmax: it gates every start): set the step before.
        at_end = Signal(name="at_end")
        can_start = ~busy | at_end
        # Round robin: the first runnable context after the one that started last, so every layer
        # drains its input steadily and no upstream engine waits on a context the priority forgot.
        # `after` holds the contexts after the last one started, as a mask (Fmax: no comparator).
        # Whether a position starts depends on no choice (Fmax: `start` stays two LUTs deep); which
        # context it is (`pick`, one-hot, and `picked`, its number) selects the values it loads.
        start, starts = Signal(name="start"), [Signal(name=f"start{k}") for k in range(n)]
        everyone = (1 << n) - 1
        after = Signal(n, name="after", init=everyone & ~1)
        ready = Cat(*runnable)
        later = after & ready
        candidates = Mux(later.any(), later, ready)
        pick = [candidates[k] & ~_any([candidates[j] for j in range(k)]) for k in range(n)]
        picked = Signal(range(n), name="picked")
        m.d.comb += [start.eq(can_start & ready.any()),
                     picked.eq(Cat(*[_any([pick[k] for k in range(n) if k >> b & 1]) for b in range(len(picked))]))]
        for k in range(n):
            m.d.comb += starts[k].eq(start & pick[k])
            with m.If(starts[k]):
                m.d.sync += after.eq(everyone & ~((2 << k) - 1))
        fresh = Signal()   # the step at `addr` is the first of an output position
        m.d.sync += fresh.eq(start)
        with m.If(start):
            m.d.sync += [busy.eq(1), addr.eq(table([c.base for c in contexts], picked)),
                         end.eq(table([c.base + c.steps - 1 for c in contexts], picked)),
                         at_end.eq(table([c.steps == 1 for c in contexts], picked)), ctx.eq(picked),
                         half.eq(_any([pick[k] & read_half[k] for k in range(n)]))]
        with m.Elif(busy & at_end):
            m.d.sync += [busy.eq(0), at_end.eq(0)]
        with m.Elif(busy):
            m.d.sync += [addr.eq(addr + 1), at_end.eq(addr + 1 == end)]
        for k, c in enumerate(contexts):
            i = self.input(k)
            filled = i.valid & i.ready & fill_last[k]

            def loaded_after(h, k=k, filled=filled):
                return loaded[k].bit_select(h, 1) | (filled & (fill_half[k] == h))

            m.d.sync += runnable[k].eq(Mux(starts[k], loaded_after(~read_half[k]) & (queues[k].free >= 2 * c.folds),
                                           loaded_after(read_half[k]) & (queues[k].free >= c.folds)))
            with m.If(starts[k]):
                m.d.sync += read_half[k].eq(~read_half[k])
            m.d.comb += queues[k].reserve.eq(starts[k])
        m.d.comb += [self.busy[k].eq(busy & (ctx == k)) for k in range(n)]
        control = None
        if prog.control_rom:
            control = self._rom(m, "control", prog.control_rom, prog.control_width)
            m.d.comb += control.addr.eq(addr)

        # -- read: counters and read addresses ----------------------------------------------------------
        valid1, start1, end1 = Signal(), Signal(), Signal()
        ctx1, half1 = Signal(range(n), reset_less=True), Signal(reset_less=True)
        addr1 = Signal(range(total_steps), reset_less=True)
        m.d.sync += [valid1.eq(busy), start1.eq(busy & fresh), end1.eq(busy & at_end), ctx1.eq(ctx),
                     half1.eq(half), addr1.eq(addr)]
        word = control.data if control is not None else Const(0, 1)
        # k: the step within its fold, f: the fold within the output position
        # (one statement: the Verilog's signal names depend on it, and it must stay byte-identical)
        k_next, f_reg, prev_last = (Signal(range(max(2, total_steps + 1))), Signal(range(max(2, prog.folds + 1))),
                                    Signal())
        new_fold = start1 | prev_last
        k1 = Mux(new_fold, 0, k_next)
        f1 = Mux(start1, 0, Mux(prev_last, f_reg + 1, f_reg))
        counted = [c.fold_steps for c in contexts]
        # k1 == the fold's last step, as a choice between two comparisons of registers (Fmax)
        at_last = Mux(new_fold, table([int(s == 1) for s in counted], ctx1),
                      k_next == table([(s or 1) - 1 for s in counted], ctx1))
        if all(s is not None for s in counted):
            last1 = at_last
        else:
            rom_last = word[prog.last.offset]
            uniform = table([int(s is not None) for s in counted], ctx1)
            last1 = Mux(uniform, at_last, rom_last)
        last1_s = Signal(name="last1")
        m.d.comb += last1_s.eq(last1)
        with m.If(valid1):
            m.d.sync += [k_next.eq(k1 + 1), f_reg.eq(f1), prev_last.eq(last1_s)]
        for k, c in enumerate(contexts):
            active = valid1 & (ctx1 == k)
            for j, (port, f) in enumerate(zip(stores[k], c.ports)):
                if isinstance(f, Field):
                    offset = _field(word, f)
                    m.d.comb += port.addr.eq(Mux(half1, offset + c.layer.words, offset))
                else:
                    m.d.comb += port.addr.eq(self._affine(m, f, active, start1, prev_last, half1, c.layer.words,
                                                          f"{c.layer.name}_p{j}"))
            filled = self.input(k).valid & self.input(k).ready & fill_last[k]
            release = active & end1
            for h in range(2):
                with m.If(filled & (fill_half[k] == h)):
                    m.d.sync += [full[k][h].eq(1), loaded[k][h].eq(1)]
                with m.Else():
                    with m.If(release & (half1 == h)):
                        m.d.sync += full[k][h].eq(0)
                    with m.If(starts[k] & (read_half[k] == h)):
                        m.d.sync += loaded[k][h].eq(0)
        weight_word = None
        if prog.weight_rom:
            wport = self._rom(m, "weights", prog.weight_rom, prog.weight_width)
            m.d.comb += wport.addr.eq(addr1)
            weight_word = wport.data   # at the select stage
        fold1 = Signal(range(max(2, prog.folds)), name="fold1")
        m.d.comb += fold1.eq(table([c.fold_base for c in contexts], ctx1) + f1)

        # -- select: element of each port's word -------------------------------------------------------
        valid2, ctx2, first2, last2, fold2 = self._delay(m, [valid1, ctx1, new_fold, last1_s, fold1], 1, "s2")
        sel2 = {}
        for f in {f for c in contexts for _, f in c.sources.values() if isinstance(f, Field)}:
            reg = Signal(unsigned(f.width), name=f"select{f.offset}", reset_less=True)
            m.d.sync += reg.eq(_field(word, f))
            sel2[f] = reg

        # -- operand: registered operands and weights ------------------------------------------------
        valid3, ctx3, first3, last3, fold3 = self._delay(m, [valid2, ctx2, first2, last2, fold2], 1, "s3")
        variable = prog.variable_lanes
        in_logic = set(variable[len(variable) - min(self.lut_lanes, len(variable)):])
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
                        data = stores[k][port].data
                        bits = c.layer.in_type.bits
                        element = data.word_select(sel2[sub] if isinstance(sub, Field) else sub, bits)
                        with m.Case(k):
                            m.d.comb += operand.eq(element.as_signed() if c.layer.in_type.signed else element)
                x3 = Signal(signed(prog.operand.bits), name=f"x{p}_{l}_r", reset_less=True)
                m.d.sync += x3.eq(operand)
                product = Signal(signed(prog.operand.bits + prog.weight.bits), name=f"p{p}_{l}", reset_less=True,
                                 attrs=KEEP)
                if isinstance(w, int):
                    m.d.sync += product.eq(const_multiply(x3, w))
                else:
                    w3 = Signal(signed(prog.weight.bits), name=f"w{p}_{l}_r", reset_less=True)
                    m.d.sync += w3.eq(_field(weight_word, w))
                    m.d.sync += product.eq(lut_multiply(x3, w3) if (p, l) in in_logic else x3 * w3)
                products[p][l] = product
        valid4, ctx4, first4, last4, fold4 = self._delay(m, [valid3, ctx3, first3, last3, fold3], 1, "s4")

        # -- sum ----------------------------------------------------------------------------------------
        trees = [_tree(m, [x for x in products[p] if x is not None], prog.acc.bits, f"sum{p}") for p in range(pe)]
        depth = max(lat for _, lat in trees)  # PEs without multipliers have shallower trees
        sums = [self._delay(m, [None, s], depth - lat, f"sum{p}_align")[1] for p, (s, lat) in enumerate(trees)]
        valid5, ctx5, first5, last5, fold5 = self._delay(m, [valid4, ctx4, first4, last4, fold4], depth, "s5")
        # fold ROM: read one cycle ahead, so its word is out at the accumulate stage
        m.submodules.folds = fold_mem = memory.Memory(shape=unsigned(max(1, pe * prog.acc.bits)),
                                                      depth=max(1, prog.folds), init=prog.fold_rom,
                                                      attrs=self._attrs("folds"))
        fold_port = fold_mem.read_port()
        fold_early = self._delay(m, [valid4, fold4], depth - 1, "s5e")[1]
        m.d.comb += fold_port.addr.eq(fold_early)

        # -- accumulate -----------------------------------------------------------------------------------
        valid6, ctx6, last6, fold6 = self._delay(m, [valid5, ctx5, last5, fold5], 1, "s6")
        accs = []
        for p in range(pe):
            acc = Signal(signed(prog.acc.bits), name=f"acc{p}", reset_less=True)
            with m.If(valid5):
                m.d.sync += acc.eq(Mux(first5, _field(fold_port.data, prog.bias[p]), acc) + sums[p])
            accs.append(acc)
        fold_end = Signal(name="fold_end")
        m.d.comb += fold_end.eq(valid6 & last6)
        self._requantize(m, accs, fold_end, ctx6, fold6, fold5, queues)
        return m

    def _rom(self, m: Module, name: str, words: tuple[int, ...], width: int):
        """A ROM submodule `name`, placed as the plan says; returns its (registered) read port."""
        rom = memory.Memory(shape=unsigned(width), depth=len(words), init=words, attrs=self._attrs(name))
        m.submodules[name] = rom
        return rom.read_port(src_loc_at=1)  # named as the caller names it

    def _attrs(self, name: str):
        return memory_attrs(self.placement.get(name))

    def _affine(self, m: Module, a: Affine, active, start, prev_last, half, words: int, name: str):
        """The read address half*words + a.step*k + a.fold*f + a.offset at the read stage, a mux of
        registers (Fmax: it goes straight to a block RAM's address)."""
        if a.constant:
            return Mux(half, a.offset + words, a.offset)
        width = range(max(2, 2 * words))
        first = Mux(half, a.offset + words, a.offset)
        next_fold, next_step = Signal(width, name=f"{name}_next_fold"), Signal(width, name=f"{name}_next_step")
        address = Signal(width, name=f"{name}_addr")
        m.d.comb += address.eq(Mux(start, first, Mux(prev_last, next_fold, next_step)))
        with m.If(active):
            m.d.sync += next_step.eq(address + a.step)
            with m.If(start):
                m.d.sync += next_fold.eq(first + a.fold)
            with m.Elif(prev_last):
                m.d.sync += next_fold.eq(next_fold + a.fold)
        return address

    def _requantize(self, m: Module, accs: list, fold_end, ctx, fold, fold_before, queues) -> None:
        """The PE results of each finished fold through the shared requantizers into the output queues."""
        prog = self.program
        rq = prog.requant
        contexts = prog.contexts
        roundings = {c.layer.requant.rounding for c in contexts}
        assert len(roundings) == 1, "one rounding mode per model"
        rounding = roundings.pop()
        out_bits = max(c.layer.out_type.bits + (0 if c.layer.out_type.signed else 1) for c in contexts)
        params = None
        if rq.rom:
            m.submodules.requant = rom = memory.Memory(shape=unsigned(rq.width), depth=len(rq.rom), init=rq.rom,
                                                       attrs=self._attrs("requant"))
            params = rom.read_port()

        def requantizers(inputs, rq_ctx, valid):
            word = params.data if params is not None else None
            zero_point = table([c.layer.requant.zero_point for c in contexts], rq_ctx)
            lo = table([c.layer.requant.lo for c in contexts], rq_ctx)
            hi = table([c.layer.requant.hi for c in contexts], rq_ctx)
            return [requantize(m, x, _field(word, rq.multiplier[r]), _field(word, rq.shift[r]), zero_point, lo, hi,
                               rounding, signed(out_bits), valid=valid, max_shift=rq.max_shift,
                               min_shift=rq.min_shift, name=f"rq{r}") for r, x in enumerate(inputs)]

        if rq.drain == 1:  # a requantizer per PE: the accumulators feed them directly
            if params is not None:
                m.d.comb += params.addr.eq(fold_before)
            outs = requantizers(accs, ctx, fold_end)
            valid_out, ctx_out = self._delay(m, [fold_end, ctx], REQUANT_LATENCY, "rq_out")
            payload = outs
        else:
            outs, valid_out, ctx_out, payload = self._drain(m, accs, fold_end, ctx, fold, params, requantizers)
        for k, c in enumerate(contexts):
            queue = queues[k]
            m.d.comb += queue.w.valid.eq(valid_out & (ctx_out == k))
            m.d.comb += [queue.w.payload[p].eq(payload[p]) for p in range(c.pe)]

    def _drain(self, m: Module, accs: list, fold_end, ctx, fold, params, requantizers):
        """D > 1: hold a fold's results, feed R of them per cycle to the requantizers, collect the outputs."""
        prog = self.program
        rq = prog.requant
        contexts = prog.contexts
        r, d = rq.count, rq.drain
        n = len(contexts)
        pending = [Signal.like(a, name=f"pending{p}", reset_less=True) for p, a in enumerate(accs)]
        draining, j = Signal(), Signal(range(d))
        d_ctx, d_fold = Signal(range(n), reset_less=True), Signal.like(fold, name="drain_fold", reset_less=True)
        last_j = j == table([-(-c.pe // r) - 1 for c in contexts], d_ctx)
        with m.If(draining):
            m.d.sync += j.eq(j + 1)
            with m.If(last_j):
                m.d.sync += draining.eq(0)
        with m.If(fold_end):  # the engine never ends a fold before the last one drained (min_requantizers)
            m.d.sync += [draining.eq(1), j.eq(0), d_ctx.eq(ctx), d_fold.eq(fold)]
            m.d.sync += [q.eq(a) for q, a in zip(pending, accs)]
        if params is not None:
            m.d.comb += params.addr.eq(d_fold * rq.stride + j)
        # requantizer inputs: group j of the pending results, registered with their ROM word
        inputs = [Signal.like(accs[0], name=f"rq_in{k}", reset_less=True) for k in range(r)]
        for k in range(r):
            group = [pending[g * r + k] if g * r + k < len(pending) else 0 for g in range(d)]
            with m.Switch(j):
                for g, value in enumerate(group):
                    with m.Case(g):
                        m.d.sync += inputs[k].eq(value)
        valid_in, j_in, ctx_in, last_in = self._delay(m, [draining, j, d_ctx, last_j], 1, "rq_in")
        outs = requantizers(inputs, ctx_in, valid_in)
        valid_o, j_o, ctx_o, last_o = self._delay(m, [valid_in, j_in, ctx_in, last_in], REQUANT_LATENCY, "rq_o")
        collected = [Signal(signed(len(outs[0])), name=f"out{p}", reset_less=True) for p in range(prog.pe)]
        for p in range(prog.pe):
            with m.If(valid_o & (j_o == p // r)):
                m.d.sync += collected[p].eq(outs[p % r])
        valid_out, ctx_out = Signal(), Signal(range(n), reset_less=True)
        m.d.sync += [valid_out.eq(valid_o & last_o), ctx_out.eq(ctx_o)]
        return outs, valid_out, ctx_out, collected

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


def _any(bits):
    if not bits:
        return Const(0)
    result = bits[0]
    for bit in bits[1:]:
        result = result | bit
    return result
