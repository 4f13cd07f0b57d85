"""The layer-sequential engine: one L x L MAC array runs a compiled program layer after layer.

What it runs is decided in `hwgen.fpga.sequential` (read its docstring first); this module builds
it. Ports as the dataflow accelerator's: `i` streams the input tensor in, `o` the output tensor
out, `perf` holds 32-bit counters (`fpga.sequential.seq_perf_counters`), and with weights in an SPI
flash, `flash` drives its pins. One inference goes:

    load     `i` words are written into bank 0 (byte-masked: a word may fill part of a bank word;
             the banks are `hdl.banks`: memories, or UP5K SPRAM cells)
    layers   for each layer: its descriptor is latched from a case table; the sequencer walks
             group, output position and step; the pipeline below computes; the requantized bytes
             go to the other bank. The next layer starts once the last byte is written.
    drain    the output map is read from its bank and sent on `o`

The MAC pipeline, one register stage per line, all stages held together while the requantizer
slot is busy when a result arrives (`advance`):

    issue      sequencer counters -> tile address (the group's half of the weight tile, step t)
    tile       tile entry out: tap offsets, address offset and L x L weights; the bank address
               (position base + offset) and whether the tap is inside the map -> bank read
    fetch      the bank word out (the pad value instead where the tap is outside)
    operand    the L operands registered (sign- or zero-extended)
    multiply   L x L products
    dot        L sums of L products
    accumulate acc = (first step ? bias : acc) + dot (or max(acc, dot)); the last step of a
               position hands the L accumulators to the requantizer slot

The slot requantizes R lanes a cycle (`hdl.requant`), and their bytes are written to the
output bank, byte-masked, REQUANT_LATENCY cycles later.

The weight loader takes the weight stream (`WeightRom`, or `hdl.flash.SpiFlashReader`) word by
word: a group's header into the header registers of one half, its steps into that half of the
tile. It fills a half while the engine computes from the other; counters of groups loaded and released (modulo
4) say which halves hold what.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..fixed import signed_bits
from ..fpga.hardware import COUNTER_BITS, REQUANT_LATENCY
from ..fpga.sequential import (
    ELEMENT_BITS,
    FLASH_HEADER_BYTES,
    Mode,
    SeqProgram,
    WeightSource,
    seq_perf_counters,
    stream_words,
    words_per_pixel,
)
from .banks import bank
from .flash import FlashPins, SpiFlashReader
from .requant import requantize
from .streams import word_stream

__all__ = ["WeightRom", "SequentialAccelerator"]

#: Groups loaded, started and released are counted modulo 4: the loader is at most two groups ahead
#: (the tile's two halves), so differences of 0, 1 or 2 are told apart without wide subtractions
#: (a 16-bit `loaded - released` had been on the UP5K's critical path).
GROUP_COUNT_BITS = 2


class WeightRom(wiring.Component):
    """The weight stream from a ROM, over and over (one word a cycle)."""

    def __init__(self, words: list[int], width: int):
        self.words, self.width = words, width
        super().__init__({"o": Out(stream.Signature(width))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.rom = rom = memory.Memory(shape=unsigned(self.width), depth=len(self.words), init=self.words)
        read = rom.read_port()
        address = Signal(range(len(self.words)))
        m.d.comb += [read.en.eq(~self.o.valid | self.o.ready), read.addr.eq(address), self.o.payload.eq(read.data)]
        with m.If(read.en):
            m.d.sync += [self.o.valid.eq(1),
                         address.eq(Mux(address == len(self.words) - 1, 0, address + 1))]
        return m


class _Fields:
    """Slices of a packed word, in order (least significant first)."""

    def __init__(self, word):
        self.word, self.offset = word, 0

    def take(self, bits: int, signed_: bool = False):
        value = self.word[self.offset:self.offset + bits]
        self.offset += bits
        return value.as_signed() if signed_ else value


def _byte_value(byte, is_signed) -> Signal:
    """A stored byte as the 9-bit signed operand (sign- or zero-extended by the layer's input type)."""
    return Mux(is_signed, byte.as_signed(), byte.as_unsigned())


class SequentialAccelerator(wiring.Component):
    def __init__(self, program: SeqProgram):
        self.program = program
        self.counters = seq_perf_counters([x.node for x in program.layers])
        members = {
            "i": In(word_stream(program.input_type, program.input_lanes)),
            "o": Out(word_stream(program.output_type, program.output_lanes)),
            "perf": Out(unsigned(COUNTER_BITS * len(self.counters))),
        }
        if program.weights is not WeightSource.ROM:
            members["flash"] = Out(FlashPins())
        super().__init__(members)

    def elaborate(self, platform):  # noqa: C901 - one engine, one place
        m = Module()
        p, fmt = self.program, self.program.fmt
        lanes, layers = p.lanes, p.layers
        n_layers = len(layers)
        tile_depth = p.tile_depth
        elements = ELEMENT_BITS

        # -- widths -----------------------------------------------------------------------------
        max_words = max(p.bank_words)
        addr_bits = fmt.address_bits
        bases = [(-layer.pads[0] * layer.in_shape[1] - layer.pads[1]) * words_per_pixel(layer.in_shape[2], lanes)
                 for layer in layers]
        row_steps = [layer.stride[0] * layer.in_shape[1] * words_per_pixel(layer.in_shape[2], lanes)
                     for layer in layers]
        col_steps = [layer.stride[1] * words_per_pixel(layer.in_shape[2], lanes) for layer in layers]
        span = max(max_words, *row_steps) * 2 + max(max(t[:, 2].max() for t in layer.taps) for layer in layers)
        pos_shape = signed(signed_bits(min(bases) - span, span))
        dim_shape = signed(fmt.dim_bits)
        value_shape = signed(elements + 2)   # a stored byte as a signed or unsigned value, and clamps
        product_bits = elements + 1 + fmt.weight_bits
        dot_shape = signed(product_bits + max(1, (lanes - 1).bit_length()))
        acc_shape = signed(max(fmt.acc_bits, dot_shape.width + 1))

        # -- memories ---------------------------------------------------------------------------
        # A bank is only read or only written at any time, and one address serves both (`banks`).
        banks = []
        for b, words in enumerate(p.bank_words):
            m.submodules[f"bank{b}"] = unit = bank(words, lanes, p.spram_banks)
            banks.append(unit)
        tile = memory.Memory(shape=unsigned(fmt.entry_bits), depth=2 * tile_depth, init=[])
        m.submodules.tile = tile
        tile_write, tile_read = tile.write_port(), tile.read_port(domain="sync")
        if p.weights is WeightSource.ROM:
            m.submodules.weights = source = WeightRom(stream_words(p), fmt.word_bits)
        else:
            m.submodules.weights = source = SpiFlashReader(p.flash_address + FLASH_HEADER_BYTES, p.stream_length,
                                                           fmt.word_bytes, fmt.word_bits, p.weights.lines)
            wiring.connect(m, source.flash, wiring.flipped(self.flash))

        # -- the layer descriptor ---------------------------------------------------------------
        layer = Signal(range(max(2, n_layers)), name="layer")
        groups_max = max(x.groups for x in layers)
        shapes = {
            "mode": 1, "x_signed": 1, "in_bank": 1, "h": dim_shape, "w": dim_shape, "last_oy": dim_shape,
            "last_ox": dim_shape, "last_group": range(max(2, groups_max)), "groups": range(max(2, groups_max + 1)),
            "sy": dim_shape, "sx": dim_shape, "iy_init": dim_shape, "ix_init": dim_shape, "base": pos_shape,
            "col_step": pos_shape, "row_step": pos_shape, "pad": elements, "zero_point": value_shape,
            "lo": value_shape, "hi": value_shape,
        }
        d = {name: Signal(shape, name=f"layer_{name}") for name, shape in shapes.items()}

        def latch(k: int):
            x = layers[k]
            values = dict(mode=int(x.mode), x_signed=int(x.x_signed), in_bank=x.in_bank, h=x.in_shape[0],
                          w=x.in_shape[1], last_oy=x.out_shape[0] - 1, last_ox=x.out_shape[1] - 1,
                          last_group=x.groups - 1, groups=x.groups, sy=x.stride[0], sx=x.stride[1],
                          iy_init=-x.pads[0], ix_init=-x.pads[1], base=bases[k], col_step=col_steps[k],
                          row_step=row_steps[k], pad=x.pad_value & 0xFF, zero_point=x.zero_point, lo=x.lo, hi=x.hi)
            return [d[name].eq(value) for name, value in values.items()]

        # -- the weight loader ------------------------------------------------------------------
        loaded = Signal(GROUP_COUNT_BITS, name="groups_loaded")
        released = Signal(GROUP_COUNT_BITS, name="groups_released")
        # a group's last step number (steps - 1), taken off as the header arrives: the sequencer
        # compares against it every cycle (a subtraction there was on the UP5K's critical path)
        head_last = [Signal(fmt.steps_bits, name=f"head{h}_last_step") for h in range(2)]
        head_bias = [[Signal(signed(fmt.acc_bits), name=f"head{h}_bias{j}") for j in range(lanes)] for h in range(2)]
        head_mult = [[Signal(fmt.multiplier_bits, name=f"head{h}_multiplier{j}") for j in range(lanes)]
                     for h in range(2)]
        head_shift = [[Signal(fmt.shift_bits, name=f"head{h}_shift{j}") for j in range(lanes)] for h in range(2)]
        entry_count = Signal(fmt.steps_bits + 1, name="load_entry")   # 0: a header word comes next
        load_steps = Signal(fmt.steps_bits, name="load_steps")
        header_words = fmt.header_words
        header_part = Signal(range(max(2, header_words)), name="load_header_part")
        header_low = Signal(max(1, (header_words - 1) * fmt.word_bits), name="load_header_low")
        load_half = loaded[0]
        room = (loaded - released)[:GROUP_COUNT_BITS] != 2
        m.d.comb += source.o.ready.eq(room)
        word = source.o.payload
        with m.If(source.o.valid & room):
            with m.If(entry_count == 0):
                with m.If(header_part != header_words - 1):   # the header's lower words
                    m.d.sync += [header_part.eq(header_part + 1),
                                 header_low.eq(Cat(header_low, word)[fmt.word_bits:] if header_words > 1 else 0)]
                with m.Else():
                    f = _Fields(Cat(header_low, word) if header_words > 1 else word)
                    steps = f.take(fmt.steps_bits)
                    fields = [(f.take(fmt.acc_bits, True), f.take(fmt.multiplier_bits), f.take(fmt.shift_bits))
                              for _ in range(lanes)]
                    m.d.sync += [load_steps.eq(steps), entry_count.eq(1), header_part.eq(0)]
                    for h in range(2):
                        with m.If(load_half == h):
                            m.d.sync += head_last[h].eq(steps - 1)
                            for j, (b, mult, s) in enumerate(fields):
                                m.d.sync += [head_bias[h][j].eq(b), head_mult[h][j].eq(mult),
                                             head_shift[h][j].eq(s)]
            with m.Else():
                m.d.comb += [tile_write.en.eq(1), tile_write.data.eq(word),
                             tile_write.addr.eq(load_half * tile_depth + entry_count - 1)]
                with m.If(entry_count == load_steps):
                    m.d.sync += [entry_count.eq(0), loaded.eq(loaded + 1)]
                with m.Else():
                    m.d.sync += entry_count.eq(entry_count + 1)

        # -- the sequencer ----------------------------------------------------------------------
        group_number = Signal(GROUP_COUNT_BITS, name="group_number")   # groups started, modulo 4
        half = group_number[0]
        tile_ready = group_number != loaded
        group = Signal.like(d["last_group"], name="group")
        step = Signal(fmt.steps_bits, name="step")
        oy, ox = Signal(dim_shape, name="oy"), Signal(dim_shape, name="ox")
        iy0, ix0 = Signal(dim_shape, name="iy0"), Signal(dim_shape, name="ix0")
        row_base, pos_base = Signal(pos_shape, name="row_base"), Signal(pos_shape, name="pos_base")
        out_pixel = Signal(addr_bits + 1, name="out_pixel")
        last_step = Mux(half, head_last[1], head_last[0])
        running = Signal(name="running")      # the layer's sequencer has positions left to issue
        advance = Signal(name="advance")
        issue = Signal(name="issue")
        m.d.comb += issue.eq(running & tile_ready)

        first, last = step == 0, step == last_step
        last_position = (ox == d["last_ox"]) & (oy == d["last_oy"])
        last_of_group = last & last_position

        def position_start():
            return [oy.eq(0), ox.eq(0), iy0.eq(d["iy_init"]), ix0.eq(d["ix_init"]), row_base.eq(d["base"]),
                    pos_base.eq(d["base"]), out_pixel.eq(0), step.eq(0)]

        with m.If(issue & advance):
            with m.If(~last):
                m.d.sync += step.eq(step + 1)
            with m.Elif(~last_position):
                m.d.sync += [step.eq(0), out_pixel.eq(out_pixel + d["groups"])]
                with m.If(ox == d["last_ox"]):
                    m.d.sync += [ox.eq(0), oy.eq(oy + 1), ix0.eq(d["ix_init"]), iy0.eq(iy0 + d["sy"]),
                                 row_base.eq(row_base + d["row_step"]), pos_base.eq(row_base + d["row_step"])]
                with m.Else():
                    m.d.sync += [ox.eq(ox + 1), ix0.eq(ix0 + d["sx"]), pos_base.eq(pos_base + d["col_step"])]
            with m.Else():
                m.d.sync += [*position_start(), group.eq(group + 1), group_number.eq(group_number + 1)]
                with m.If(group == d["last_group"]):
                    m.d.sync += [running.eq(0), group.eq(0)]

        m.d.comb += [tile_read.addr.eq(half * tile_depth + step), tile_read.en.eq(advance)]

        # -- the pipeline -----------------------------------------------------------------------
        def stage(name, **shapes):
            return {k: Signal(v, name=f"{name}_{k}") for k, v in shapes.items()}

        control = dict(valid=1, first=1, last=1, last_of_group=1, half=1, out_addr=addr_bits + 1)
        s1 = stage("tile", **control, iy0=dim_shape, ix0=dim_shape, pos_base=pos_shape)
        with m.If(advance):
            m.d.sync += [s1["valid"].eq(issue), s1["first"].eq(first), s1["last"].eq(last),
                         s1["last_of_group"].eq(last_of_group), s1["half"].eq(half),
                         s1["out_addr"].eq(out_pixel + group), s1["iy0"].eq(iy0), s1["ix0"].eq(ix0),
                         s1["pos_base"].eq(pos_base)]
        entry = _Fields(tile_read.data)
        ty, tx = entry.take(fmt.tap_bits), entry.take(fmt.tap_bits)
        offset = entry.take(fmt.offset_bits)
        weights = [[entry.take(fmt.weight_bits, True) for _ in range(lanes)] for _ in range(lanes)]
        iy, ix = s1["iy0"] + ty, s1["ix0"] + tx
        inside = (iy >= 0) & (iy < d["h"]) & (ix >= 0) & (ix < d["w"])
        address = Signal(pos_shape, name="tap_address")
        m.d.comb += address.eq(s1["pos_base"] + offset)
        for unit in banks:   # held with the pipeline: a frozen fetch keeps its word
            with m.If(~unit.writes):
                m.d.comb += [unit.address.eq(address[:len(unit.address)]), unit.read_enable.eq(advance)]

        s2 = stage("fetch", **control, inside=1)
        s2_weights = [[Signal(signed(fmt.weight_bits), name=f"fetch_w{o}_{j}") for j in range(lanes)]
                      for o in range(lanes)]
        with m.If(advance):
            m.d.sync += [s2[k].eq(s1[k]) for k in control] + [s2["inside"].eq(inside)]
            m.d.sync += [s2_weights[o][j].eq(weights[o][j]) for o in range(lanes) for j in range(lanes)]
        bank_word = Mux(d["in_bank"], banks[1].read_data, banks[0].read_data)
        xs = [Mux(s2["inside"], bank_word[j * elements:(j + 1) * elements], d["pad"]) for j in range(lanes)]

        # the bank's output is registered before it meets the multipliers: a block RAM's clock-to-out,
        # the pad multiplexer and a DSP's multiply in one cycle were the critical path
        s_op = stage("operand", **control)
        operands = [Signal(signed(elements + 1), name=f"operand{j}") for j in range(lanes)]
        op_weights = [[Signal(signed(fmt.weight_bits), name=f"operand_w{o}_{j}") for j in range(lanes)]
                      for o in range(lanes)]
        with m.If(advance):
            m.d.sync += [s_op[k].eq(s2[k]) for k in control]
            m.d.sync += [operands[j].eq(_byte_value(x, d["x_signed"])) for j, x in enumerate(xs)]
            m.d.sync += [op_weights[o][j].eq(s2_weights[o][j]) for o in range(lanes) for j in range(lanes)]

        s3 = stage("multiply", **control)
        products = [[Signal(signed(product_bits), name=f"product{o}_{j}") for j in range(lanes)] for o in range(lanes)]
        with m.If(advance):
            m.d.sync += [s3[k].eq(s_op[k]) for k in control]
            m.d.sync += [products[o][j].eq(operands[j] * op_weights[o][j]) for o in range(lanes) for j in range(lanes)]

        s4 = stage("dot", **control)
        dots = [Signal(dot_shape, name=f"dot{o}") for o in range(lanes)]
        with m.If(advance):
            m.d.sync += [s4[k].eq(s3[k]) for k in control]
            for o in range(lanes):
                total = products[o][0]
                for j in range(1, lanes):
                    total = total + products[o][j]
                m.d.sync += dots[o].eq(total)

        # accumulate, and hand a finished position to the requantizer slot
        accs = [Signal(acc_shape, name=f"acc{o}") for o in range(lanes)]
        nexts = []
        for o in range(lanes):
            start = Mux(s4["first"], Mux(s4["half"], head_bias[1][o], head_bias[0][o]), accs[o])
            total = Signal(acc_shape, name=f"acc{o}_next")
            m.d.comb += total.eq(Mux(d["mode"] == int(Mode.MAX), Mux(dots[o] > start, dots[o], start), start + dots[o]))
            nexts.append(total)
        per_slot = lanes // p.requantizers
        slot_valid = Signal(name="slot_valid")
        slot_part = Signal(range(max(2, per_slot)), name="slot_part")
        slot_done = slot_valid & (slot_part == per_slot - 1)
        slot_acc = [Signal(acc_shape, name=f"slot_acc{o}") for o in range(lanes)]
        slot_mult = [Signal(fmt.multiplier_bits, name=f"slot_multiplier{o}") for o in range(lanes)]
        slot_shift = [Signal(fmt.shift_bits, name=f"slot_shift{o}") for o in range(lanes)]
        slot_addr = Signal(addr_bits + 1, name="slot_addr")
        hand_off = s4["valid"] & s4["last"]
        m.d.comb += advance.eq(~(hand_off & slot_valid & ~slot_done))
        with m.If(advance & s4["valid"]):
            m.d.sync += [a.eq(n) for a, n in zip(accs, nexts)]
        with m.If(advance & s4["valid"] & s4["last_of_group"]):
            m.d.sync += released.eq(released + 1)
        with m.If(slot_valid):
            m.d.sync += slot_part.eq(Mux(slot_done, 0, slot_part + 1))
        with m.If(slot_done):
            m.d.sync += slot_valid.eq(0)
        with m.If(advance & hand_off):
            m.d.sync += [slot_valid.eq(1), slot_part.eq(0), slot_addr.eq(s4["out_addr"])]
            for o in range(lanes):
                m.d.sync += [slot_acc[o].eq(nexts[o]),
                             slot_mult[o].eq(Mux(s4["half"], head_mult[1][o], head_mult[0][o])),
                             slot_shift[o].eq(Mux(s4["half"], head_shift[1][o], head_shift[0][o]))]

        # requantize R lanes a cycle; write them REQUANT_LATENCY cycles later
        r = p.requantizers
        results = []
        for k in range(r):
            def pick(values, k=k):
                return Cat(*values).word_select(slot_part * r + k, len(values[0]))
            acc_k = Signal(acc_shape, name=f"rq{k}_acc")
            mult_k = Signal(fmt.multiplier_bits, name=f"rq{k}_multiplier")
            shift_k = Signal(fmt.shift_bits, name=f"rq{k}_shift")
            m.d.comb += [acc_k.eq(pick(slot_acc)), mult_k.eq(pick(slot_mult)), shift_k.eq(pick(slot_shift))]
            results.append(requantize(m, acc_k, mult_k, shift_k, d["zero_point"], d["lo"], d["hi"], p.rounding,
                                      value_shape, valid=slot_valid, min_shift=fmt.min_shift, max_shift=fmt.max_shift,
                                      name=f"rq{k}"))
        write_valid, write_addr, write_part = slot_valid, slot_addr, slot_part
        write_valids = []
        for k in range(REQUANT_LATENCY):
            v = Signal(name=f"write_valid_d{k + 1}")
            a = Signal(addr_bits + 1, name=f"write_addr_d{k + 1}")
            part = Signal.like(slot_part, name=f"write_part_d{k + 1}")
            m.d.sync += [v.eq(write_valid), a.eq(write_addr), part.eq(write_part)]
            write_valid, write_addr, write_part = v, a, part
            write_valids.append(v)
        requant_busy = Signal(name="requant_busy")   # bytes still on their way to the bank
        m.d.comb += requant_busy.eq(Cat(slot_valid, *write_valids).any())

        # -- the top-level phases ---------------------------------------------------------------
        phase = Signal(range(4), name="phase")   # 0 load, 1 start layer, 2 layer, 3 drain
        LOAD, START, LAYER, DRAIN = range(4)
        h0, w0, c0 = p.input_shape
        in_lanes = p.input_lanes
        load_pixel = Signal(range(max(2, h0 * w0)), name="load_pixel")
        load_channel = Signal(range(max(2, c0)), name="load_channel")
        load_lane = Signal(range(max(2, lanes)), name="load_lane")
        load_addr = Signal(addr_bits + 1, name="load_addr")
        in_flight = Signal(name="in_flight")
        m.d.comb += in_flight.eq(s1["valid"] | s2["valid"] | s_op["valid"] | s3["valid"] | s4["valid"] | requant_busy)

        # bank writes: the input in phase LOAD, the requantizers' bytes during a layer
        computing = (phase == START) | (phase == LAYER)
        m.d.comb += [banks[0].writes.eq((phase == LOAD) | (computing & d["in_bank"])),
                     banks[1].writes.eq(computing & ~d["in_bank"])]
        for unit in banks:
            with m.If(unit.writes & (phase == LOAD)):   # lane l takes element l % in_lanes of the input word
                mask = (Const((1 << in_lanes) - 1, lanes) << load_lane)[:lanes]
                m.d.comb += [unit.address.eq(load_addr[:len(unit.address)]),
                             unit.write_data.eq(Cat(*([_widen(self.i.payload[j], p.input_type, elements)
                                                       for j in range(in_lanes)] * (lanes // in_lanes)))),
                             unit.write_enable.eq(Mux(self.i.valid, mask, 0))]
            with m.Elif(unit.writes):
                m.d.comb += [unit.address.eq(write_addr[:len(unit.address)]),
                             unit.write_data.eq(Cat(*[res[:elements] for res in results] * (lanes // r))),
                             unit.write_enable.eq(Mux(write_valid, ((1 << r) - 1) << (write_part * r), 0))]

        with m.Switch(phase):
            with m.Case(LOAD):   # a pixel's last input word is the last bank word it fills
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    with m.If(load_channel + in_lanes >= c0):
                        m.d.sync += [load_channel.eq(0), load_lane.eq(0), load_pixel.eq(load_pixel + 1),
                                     load_addr.eq(load_addr + 1)]
                        with m.If(load_pixel == h0 * w0 - 1):
                            m.d.sync += [phase.eq(START), layer.eq(0), load_pixel.eq(0), load_addr.eq(0)]
                    with m.Else():
                        m.d.sync += load_channel.eq(load_channel + in_lanes)
                        with m.If(load_lane + in_lanes == lanes):
                            m.d.sync += [load_lane.eq(0), load_addr.eq(load_addr + 1)]
                        with m.Else():
                            m.d.sync += load_lane.eq(load_lane + in_lanes)
            with m.Case(START):   # the descriptor, and the sequencer at the layer's first position
                with m.Switch(layer):
                    for k in range(n_layers):
                        with m.Case(k):
                            x = layers[k]
                            m.d.sync += [*latch(k), iy0.eq(-x.pads[0]), ix0.eq(-x.pads[1]),
                                         row_base.eq(bases[k]), pos_base.eq(bases[k])]
                m.d.sync += [phase.eq(LAYER), running.eq(1), group.eq(0), oy.eq(0), ox.eq(0), out_pixel.eq(0),
                             step.eq(0)]
            with m.Case(LAYER):
                with m.If(~running & ~in_flight):
                    with m.If(layer == n_layers - 1):
                        m.d.sync += phase.eq(DRAIN)
                    with m.Else():
                        m.d.sync += [phase.eq(START), layer.eq(layer + 1)]
            with m.Case(DRAIN):
                self._drain(m, banks[p.output_bank], phase, LOAD, addr_bits)

        # -- performance counters ---------------------------------------------------------------
        counters = []
        for k, x in enumerate(layers):
            count = Signal(COUNTER_BITS, name=f"perf_steps_{x.ident}")
            with m.If((layer == k) & issue & advance):
                m.d.sync += count.eq(count + 1)
            counters.append(count)
        for name, on in (("array", (phase == LAYER) | (phase == START)),
                         ("stall", (phase == LAYER) & running & ~tile_ready)):
            count = Signal(COUNTER_BITS, name=f"perf_{name}")
            with m.If(on):
                m.d.sync += count.eq(count + 1)
            counters.append(count)
        m.d.comb += self.perf.eq(Cat(*counters))
        return m

    def _drain(self, m: Module, unit, phase, next_phase: int, addr_bits: int) -> None:
        """Read the output map word by word and send its channels on `o`, `output_lanes` at a time."""
        p = self.program
        lanes, out_lanes = p.lanes, p.output_lanes
        h, w, c = p.output_shape
        words = words_per_pixel(c, lanes)
        chunks = lanes // out_lanes
        address = Signal(addr_bits + 1, name="drain_addr")
        channel = Signal(range(max(2, words * lanes + 1)), name="drain_channel")   # of the pixel
        chunk = Signal(range(max(2, chunks)), name="drain_chunk")
        fetched = Signal(name="drain_fetched")
        total = h * w * words
        m.d.comb += [unit.address.eq(address[:len(unit.address)]), unit.read_enable.eq(~fetched)]
        with m.If(~fetched):
            m.d.sync += [fetched.eq(1), chunk.eq(0)]
        with m.Else():
            m.d.comb += self.o.valid.eq(1)
            data = unit.read_data.word_select(chunk, out_lanes * ELEMENT_BITS)
            for j in range(out_lanes):
                m.d.comb += self.o.payload[j].eq(data[j * ELEMENT_BITS:j * ELEMENT_BITS + p.output_type.bits])
            with m.If(self.o.ready):
                end_of_pixel = channel + out_lanes >= c
                with m.If(end_of_pixel | (chunk == chunks - 1)):
                    m.d.sync += [fetched.eq(0), address.eq(address + 1),
                                 channel.eq(Mux(end_of_pixel, 0, channel + out_lanes))]
                    with m.If(end_of_pixel & (address == total - 1)):
                        m.d.sync += [phase.eq(next_phase), address.eq(0)]
                with m.Else():
                    m.d.sync += [chunk.eq(chunk + 1), channel.eq(channel + out_lanes)]


def _widen(value, itype, bits: int):
    """An input element as a stored byte: sign- or zero-extended from its type's width."""
    raw = Value.cast(value).as_unsigned()
    if itype.bits >= bits:
        return raw[:bits]
    rest = bits - itype.bits
    return Cat(raw, raw[-1].replicate(rest) if itype.signed else Const(0, rest))
