"""The RVV backend's buffer plan: lifetimes, reuse, aliasing and the caller's buffers."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hwgen.fixed import IntType
from hwgen.ir import Graph, Requant, Requantize, Reshape, Rounding, Tensor
from hwgen.rvv.memory import ALIGN, Buffer, Location, place_greedy, plan_memory, storage_roots

I8 = IntType(8, True)
RQ = Requant((1 << 30,), (30,), 0, -128, 127, Rounding.RNE)


def chain(sizes, *, reshape_at=None, outputs=None) -> Graph:
    """x0 -> n1 -> x1 -> ... ; tensor i has sizes[i] int8 elements. (The planner reads only
    the schedule and the sizes, so the shapes need not make sense to the verifier.)"""
    tensors = {f"x{i}": Tensor(f"x{i}", (n,), I8, 0, (1.0,)) for i, n in enumerate(sizes)}
    nodes = []
    for i in range(1, len(sizes)):
        cls = Reshape if i == reshape_at else Requantize
        extra = {} if cls is Reshape else {"requant": RQ}
        nodes.append(cls(f"n{i}", (f"x{i - 1}",), (f"x{i}",), **extra))
    return Graph("g", tensors, tuple(nodes), ("x0",), tuple(outputs or (f"x{len(sizes) - 1}",)))


def plan(graph: Graph):
    roots, copies = storage_roots(graph)
    steps = [(n.inputs, n.output) for n in graph.nodes if not isinstance(n, Reshape)]
    steps += [((src,), None) for src, _ in copies]
    return plan_memory(graph, roots, steps, lambda t: graph.tensor(t).size), copies


def test_a_chain_ping_pongs_between_two_buffers():
    memory, copies = plan(chain([100, 100, 100, 100, 100]))
    assert copies == []
    assert memory.location("x0") == Location("input", 0)
    assert memory.location("x4") == Location("output", 0)
    offsets = [memory.location(f"x{i}").index for i in (1, 2, 3)]
    assert offsets == [0, 112, 0]  # 100 bytes rounded up to 112
    assert memory.scratch_bytes == memory.live_peak == 224


def test_reshape_aliases_its_input_and_outputs_go_to_the_caller():
    memory, copies = plan(chain([64, 64, 64, 64], reshape_at=3))
    assert copies == []
    # x2 is reshaped into the graph output, so the layer producing x2 writes the caller's buffer
    assert memory.location("x2") == memory.location("x3") == Location("output", 0)
    assert memory.scratch_bytes == 64


def test_outputs_that_alias_an_input_or_each_other_are_copied():
    g = chain([48, 48], reshape_at=1)  # the output is the input, reshaped
    _, copies = plan(g)
    assert copies == [("x0", 0)]
    g = chain([48, 48, 48], reshape_at=2, outputs=("x1", "x2"))  # x2 is x1 reshaped, both outputs
    memory, copies = plan(g)
    assert copies == [("x1", 1)]
    assert memory.location("x1") == memory.location("x2") == Location("output", 0)


def test_buffers_live_at_the_same_step_never_overlap():
    memory, _ = plan(chain([500, 30, 700, 20, 900, 10, 5]))
    for a in memory.buffers:
        for b in memory.buffers:
            if a is not b and a.first <= b.last and b.first <= a.last:
                assert a.offset + a.bytes <= b.offset or b.offset + b.bytes <= a.offset


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 5000), st.integers(0, 12), st.integers(0, 4)), min_size=1, max_size=25))
def test_greedy_placement_is_valid(specs):
    buffers = [Buffer(f"b{i}", -(-n // ALIGN) * ALIGN, first, first + span) for i, (n, first, span) in enumerate(specs)]
    placed = place_greedy(buffers)
    assert [b.tensor for b in placed] == [b.tensor for b in buffers]
    for i, a in enumerate(placed):
        assert a.offset % ALIGN == 0
        for b in placed[i + 1:]:
            if a.first <= b.last and b.first <= a.last:
                assert a.offset + a.bytes <= b.offset or b.offset + b.bytes <= a.offset
    peak = max(sum(b.bytes for b in placed if b.first <= t <= b.last) for t in range(20))
    size = max(b.offset + b.bytes for b in placed)
    assert peak <= size <= sum(b.bytes for b in placed)


def test_plan_is_deterministic():
    g = chain(list(np.random.default_rng(0).integers(1, 1000, 12)))
    assert plan(g) == plan(g)
