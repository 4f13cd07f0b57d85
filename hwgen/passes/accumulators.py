"""Accumulator widths derived from operand types and non-zero weight counts."""

from __future__ import annotations

from dataclasses import replace

from ..errors import UnsupportedModelError
from ..fixed import IntType, signed_bits
from ..ir import AvgPool, Graph, Node, accumulator_bound

#: requantize() multiplies the accumulator by a 31-bit multiplier in 64 bits.
MAX_REQUANT_ACC_BITS = 32


def with_derived_accumulator(node: Node, tensors) -> Node:
    """`node` with the narrowest signed accumulator that holds its worst case."""
    bound = accumulator_bound(node, tensors)
    acc = IntType(signed_bits(-bound, bound), True)
    requants = node.requants.values() if isinstance(node, AvgPool) else [node.requant]
    if acc.bits > MAX_REQUANT_ACC_BITS and any(rq is not None for rq in requants):
        raise UnsupportedModelError(f"the accumulator needs {acc.bits} bits; hwgen requantizes at most "
                                    f"{MAX_REQUANT_ACC_BITS}", node=node.name, op=node.op)
    return replace(node, acc=acc)


def assign_accumulators(graph: Graph) -> Graph:
    """Re-derive every accumulator (earlier passes may have removed weights)."""
    nodes = tuple(with_derived_accumulator(n, graph.tensors) if hasattr(n, "acc") else n for n in graph.nodes)
    return replace(graph, nodes=nodes)
