"""Compiling schedules to ROM contents: read ports, operand selects and weight constants."""

import numpy as np

from hwgen.fixed import IntType, Rounding
from hwgen.fpga.geometry import MacGeometry
from hwgen.fpga.program import LayerProgram, compile_engine
from hwgen.fpga.schedule import build_schedule
from hwgen.ir import Requant

REQUANT = Requant((1 << 30,), (30,), 0, -128, 127, Rounding.RNE)


def layer(weights, pe, simd, lanes, name="layer"):
    cout, k = weights.shape
    geom = MacGeometry(name, weights, np.broadcast_to(np.arange(k), (cout, k)).copy(), k, 1)
    return LayerProgram(name, build_schedule(geom, pe, simd), lanes, k, IntType(8, True), IntType(8, True),
                        np.zeros(cout, dtype=np.int64), REQUANT, IntType(20, True))


def unpack(program, f, step):
    return f if isinstance(f, int) else (program.rom[step] >> f.offset) & ((1 << f.width) - 1)


def test_dense_layer_reads_one_word_per_step_through_one_port():
    w = np.arange(1, 33).reshape(4, 8)
    prog = compile_engine([layer(w, 2, 4, lanes=4)], 2, 4)
    (ctx,) = prog.contexts
    assert len(ctx.ports) == 1
    assert all(isinstance(sub, int) for _, sub in ctx.sources.values())  # lane l always takes element l
    assert [unpack(prog, ctx.ports[0], t) for t in range(4)] == [0, 1, 0, 1]


def test_fully_unrolled_layer_has_constant_weights_and_no_multiplier_for_zeros():
    w = np.array([[3, 0, -2], [0, 0, 5]])
    prog = compile_engine([layer(w, 2, 3, lanes=3)], 2, 3)
    assert prog.weights == {(0, 0): 3, (0, 1): 0, (0, 2): -2, (1, 0): 0, (1, 1): 0, (1, 2): 5}
    assert prog.multipliers == 3
    assert len(prog.rom) == 1


def test_fold_flags_and_fold_index():
    w = np.ones((4, 2), dtype=np.int64)
    prog = compile_engine([layer(w, 1, 1, lanes=2)], 1, 1)
    flags = [(unpack(prog, prog.first, t), unpack(prog, prog.last, t), unpack(prog, prog.fold, t),
              unpack(prog, prog.pixel_last, t)) for t in range(len(prog.rom))]
    assert flags == [(1, 0, 0, 0), (0, 1, 0, 0), (1, 0, 1, 0), (0, 1, 1, 0), (1, 0, 2, 0), (0, 1, 2, 0),
                     (1, 0, 3, 0), (0, 1, 3, 1)]


def test_contexts_share_the_rom_and_their_fields_overlap():
    a = layer(np.arange(1, 9).reshape(2, 4), 2, 2, lanes=1, name="a")
    b = layer(np.arange(1, 13).reshape(3, 4), 1, 2, lanes=1, name="b")
    prog = compile_engine([a, b], 2, 2)
    assert [c.base for c in prog.contexts] == [0, a.schedule.steps]
    assert [c.fold_base for c in prog.contexts] == [0, a.schedule.folds]
    assert len(prog.rom) == a.schedule.steps + b.schedule.steps
    port_bits = lambda c: {(f.offset, f.width) for f in c.ports if not isinstance(f, int)}
    assert port_bits(prog.contexts[0]) & port_bits(prog.contexts[1])  # one region, reused
    # lanes b does not use hold weight 0 during b's steps
    assert all(unpack(prog, prog.weights[1, l], t) == 0 for l in range(2) for t in range(2, 8))


def test_sparse_layer_reads_per_lane():
    w = np.array([[1, 0, 0, 2, 0, 0, 3, 4], [0, 5, 6, 0, 0, 7, 0, 0]])
    prog = compile_engine([layer(w, 2, 2, lanes=2)], 2, 2)
    assert len(prog.rom) == 2  # 4 non-zeros per channel over 2 lanes, not 8 / 2
    assert prog.multipliers == 4
