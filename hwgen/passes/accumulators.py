"""Accumulator widths derived from operand types and non-zero weight counts."""

from __future__ import annotations

from dataclasses import replace

from ..errors import UnsupportedModelError
from ..fixed import IntType, signed_bits
from ..ir import Graph, Node

#: requantize() multiplies the accumulator by a 31-bit multiplier in 64 bits.
MAX_REQUANT_ACC_BITS = 32


def with_derived_accumulator(node: Node, tensors) -> Node:
    """`node` with the narrowest signed accumulator that holds its worst case."""
    bound = node.accumulator_bound(tensors)
    bits = signed_bits(-bound, bound)
    if bits > 64:  # a bias or weight out of all proportion (a broken scale)
        raise UnsupportedModelError(f"the accumulator needs {bits} bits: its bias or weights are out of all "
                                    "proportion to its inputs (check their scales)", node=node.name, op=node.op)
    acc = IntType(bits, True)
    if acc.bits > MAX_REQUANT_ACC_BITS and node.requantizations():
        raise UnsupportedModelError(f"the accumulator needs {acc.bits} bits; hwgen requantizes at most "
                                    f"{MAX_REQUANT_ACC_BITS}", node=node.name, op=node.op)
    return replace(node, acc=acc)


def assign_accumulators(graph: Graph) -> Graph:
    """Re-derive every accumulator (earlier passes may have removed weights)."""
    nodes = tuple(with_derived_accumulator(n, graph.tensors) if n.accumulator_bound(graph.tensors) is not None else n
                  for n in graph.nodes)
    return replace(graph, nodes=nodes)
