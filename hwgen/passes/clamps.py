"""Folding a standalone clamp into the requantization that produces its input."""

from __future__ import annotations

from dataclasses import replace

from ..ir import Graph, Node, Requant, Requantize


def _is_identity_clamp(node: Node, graph: Graph) -> bool:
    """A Requantize that only clamps: multiplier exactly 1 and the same zero point."""
    if not isinstance(node, Requantize):
        return False
    rq = node.requant
    return (rq.channels == 1 and rq.multiplier[0] == 1 << rq.shift[0]
            and graph.tensor(node.inputs[0]).zero_point == rq.zero_point)


def _tighten(rq: Requant, clamp: Requant) -> Requant:
    return replace(rq, lo=max(rq.lo, clamp.lo), hi=min(rq.hi, clamp.hi))


def fold_clamps(graph: Graph) -> Graph:
    """requant(acc) then clamp to [lo, hi] is requant(acc) with its clamp narrowed to [lo, hi].

    The producer then writes the clamp's (possibly narrower) output type directly,
    e.g. the 4-bit activations of a QONNX / QCDQ model.
    """
    for clamp in [n for n in graph.nodes if _is_identity_clamp(n, graph)]:
        source = clamp.inputs[0]
        producer = graph.producer(source)
        if (producer is None or source in graph.outputs or len(graph.consumers(source)) != 1
                or not producer.requantizations()):
            continue
        folded = replace(producer.with_requants(lambda rq, c=clamp.requant: _tighten(rq, c)), outputs=clamp.outputs)
        tensors = {k: t for k, t in graph.tensors.items() if k != source}
        nodes = tuple(folded if n is producer else n for n in graph.nodes if n is not clamp)
        graph = replace(graph, nodes=nodes, tensors=tensors)
    return graph
