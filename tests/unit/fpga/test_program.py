"""Compiling schedules to ROM contents: read ports, operand selects, weights and shared requantizers."""

import numpy as np
import pytest

from hwgen.fixed import IntType, Rounding
from hwgen.fpga.geometry import MacGeometry
from hwgen.fpga.program import Affine, LayerProgram, compile_engine, min_requantizers, reduce_multiplier
from hwgen.fpga.schedule import build_schedule, fold_steps
from hwgen.ir import Requant

REQUANT = Requant((1 << 30,), (30,), 0, -128, 127, Rounding.RNE)


def layer(weights, pe, simd, lanes, name="layer", requant=REQUANT):
    cout, k = weights.shape
    geom = MacGeometry(name, weights, np.broadcast_to(np.arange(k), (cout, k)).copy(), k, 1)
    return LayerProgram(name, build_schedule(geom, pe, simd), lanes, k, IntType(8, True), IntType(8, True),
                        np.arange(cout, dtype=np.int64) - 1, requant, IntType(20, True))


def unpack(rom, f, step):
    return f if isinstance(f, int) else (rom[step] >> f.offset) & ((1 << f.width) - 1)


def signed(value, width):
    return value - (1 << width) if value >> (width - 1) else value


def test_dense_layer_reads_through_one_counted_port_and_needs_no_control_rom():
    w = np.arange(1, 33).reshape(4, 8)
    prog = compile_engine([layer(w, 2, 4, lanes=4)], 2, 4)
    (ctx,) = prog.contexts
    assert ctx.ports == (Affine(1, 0, 0),)   # word k at step k of every fold
    assert ctx.fold_steps == 2 and prog.uniform_folds
    assert all(isinstance(sub, int) for _, sub in ctx.sources.values())  # lane l always takes element l
    assert prog.control_rom == () and prog.last is None
    # the weight ROM holds exactly the weights, lane l of PE p taking w[o, step*4 + l]
    for t in range(prog.steps):
        fold, k = divmod(t, 2)
        for p in range(2):
            for l in range(4):
                f = prog.weights[p, l]
                assert signed(unpack(prog.weight_rom, f, t), f.width) == w[fold * 2 + p, k * 4 + l]


def test_fully_unrolled_layer_has_constant_weights_and_no_multiplier_for_zeros():
    w = np.array([[3, 0, -2], [0, 0, 5]])
    prog = compile_engine([layer(w, 2, 3, lanes=3)], 2, 3)
    assert prog.weights == {(0, 0): 3, (0, 1): 0, (0, 2): -2, (1, 0): 0, (1, 1): 0, (1, 2): 5}
    assert prog.multipliers == 3
    assert prog.weight_rom == () and prog.variable_lanes == [] and len(prog.constant_lanes) == 3


def test_fold_rom_holds_each_folds_biases():
    w = np.ones((4, 2), dtype=np.int64)
    prog = compile_engine([layer(w, 2, 1, lanes=2)], 2, 1)
    biases = [[signed(unpack(prog.fold_rom, f, fold), f.width) for f in prog.bias] for fold in range(prog.folds)]
    assert biases == [[-1, 0], [1, 2]]


def test_skipped_zeros_need_a_control_rom_and_a_last_bit_when_folds_differ():
    w = np.array([[0, 0, 0, 1, 0, 0, 0, 0], [0, 3, 0, 0, 6, 0, 8, 0]])  # fold 0: 1 step, fold 1: 3
    prog = compile_engine([layer(w, 1, 1, lanes=1)], 1, 1)
    assert list(fold_steps(w, 1, 1)) == [1, 3]
    assert prog.last is not None and not prog.uniform_folds
    assert [unpack(prog.control_rom, prog.last, t) for t in range(prog.steps)] == [1, 0, 0, 1]
    (ctx,) = prog.contexts
    (port,) = ctx.ports
    assert not isinstance(port, Affine)  # addresses 3, then 1, 4, 6: from the ROM
    assert [unpack(prog.control_rom, port, t) for t in range(prog.steps)] == [3, 1, 4, 6]


def test_contexts_share_the_control_rom_and_their_fields_overlap():
    sparse = lambda rng, shape: rng.integers(-3, 4, shape) * (rng.random(shape) < 0.4)
    rng = np.random.default_rng(1)
    a = layer(sparse(rng, (2, 12)), 2, 2, lanes=1, name="a")
    b = layer(sparse(rng, (4, 12)), 1, 2, lanes=1, name="b")
    prog = compile_engine([a, b], 2, 2)
    assert [c.base for c in prog.contexts] == [0, a.schedule.steps]
    assert [c.fold_base for c in prog.contexts] == [0, a.schedule.folds]
    assert len(prog.control_rom) == len(prog.weight_rom) == a.schedule.steps + b.schedule.steps
    port_bits = lambda c: {(f.offset, f.width) for f in c.ports if not isinstance(f, Affine)}
    assert port_bits(prog.contexts[0]) & port_bits(prog.contexts[1])  # one region, reused
    # lanes b does not use hold weight 0 during b's steps
    for l in range(2):
        f = prog.weights[1, l]
        assert all(unpack(prog.weight_rom, f, t) == 0 for t in range(a.schedule.steps, prog.steps))


def test_sparse_layer_skips_zeros():
    w = np.array([[1, 0, 0, 2, 0, 0, 3, 4], [0, 5, 6, 0, 0, 7, 0, 0]])
    prog = compile_engine([layer(w, 2, 2, lanes=2)], 2, 2)
    assert prog.steps == 2  # 4 non-zeros per channel over 2 lanes, not 8 / 2
    assert prog.multipliers == 4


def test_requantizers_are_shared_as_far_as_the_folds_allow():
    # a fold of 4 PEs takes 2 steps: 2 requantizers drain it in 2 cycles, just in time
    assert min_requantizers([(4, np.array([2, 2, 2]))]) == 2
    assert min_requantizers([(4, np.array([8, 8]))]) == 1
    # the shortest fold of any context, or the first fold of the next position, decides
    assert min_requantizers([(4, np.array([8, 1])), (2, np.array([8]))]) == 4
    w = np.arange(1, 65).reshape(8, 8)
    per_channel = Requant(tuple(range(1 << 20, (1 << 20) + 8)), tuple(range(20, 28)), 0, -128, 127, Rounding.RNE)
    prog = compile_engine([layer(w, 8, 2, lanes=2, requant=per_channel)], 8, 2)
    rq = prog.requant
    assert (rq.count, rq.drain) == (2, 4)
    # word fold*stride + j holds channel j*R + k's (M, s) for requantizer k
    for j in range(rq.drain):
        for k in range(rq.count):
            o = j * rq.count + k
            want = reduce_multiplier(per_channel.multiplier[o], per_channel.shift[o])
            got = tuple(unpack(rq.rom, f, j) for f in (rq.multiplier[k], rq.shift[k]))
            assert got == want
    with pytest.raises(ValueError, match="1 to 8 requantizers"):
        compile_engine([layer(w, 8, 2, lanes=2)], 8, 2, requantizers=9)


def test_reduce_multiplier_keeps_the_quotient():
    for m, s in [(3 << 5, 9), (1 << 30, 30), (12, 1), (0, 7), (5, 0)]:
        rm, rs = reduce_multiplier(m, s)
        assert rs >= 0 and (m == 0 or rm * (1 << s) == m * (1 << rs))
        assert m == 0 or rm % 2 or rs == 0
