"""The component that builds each IR op, in `BUILDERS` (keyed by op type, as `fpga.units.UNITS`).

A builder makes the op's unit from the node, the graph and the node's plan, and returns its
input streams, its output stream and its busy signal. Ops that run on a MAC engine get the
engine's context ports; a reshape builds nothing (the accelerator passes its stream through).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from amaranth import Module

from ..fpga.plan import LayerSpec
from ..fpga.units import avgpool_counts
from ..ir import Add, AvgPool, Concat, Conv2d, Dense, GlobalAvgPool, Graph, MaxPool, Node, Requantize, Reshape
from .elementwise import AddUnit, ConcatUnit, RequantizeUnit
from .pool import AvgPoolUnit, GlobalAvgPoolUnit, MaxPoolUnit

__all__ = ["Built", "BUILDERS"]


@dataclass
class Built:
    """A node's hardware as the accelerator wires it."""

    inputs: list        # one input stream per node input
    output: object      # its output stream
    busy: object        # high in the cycles it works


def _engine_context(m: Module, node: Node, graph: Graph, spec: LayerSpec, engines) -> Built:
    engine, k = engines[node.name]
    return Built([engine.input(k)], engine.output(k), engine.busy[k])


def _submodule(m: Module, spec: LayerSpec, unit, inputs: list | None = None) -> Built:
    m.submodules[spec.ident] = unit
    return Built(inputs if inputs is not None else [unit.i], unit.o, unit.busy)


def _maxpool(m, node: MaxPool, graph, spec, engines) -> Built:
    x = graph.tensor(node.inputs[0])
    return _submodule(m, spec, MaxPoolUnit(x.dtype, spec.in_lanes[0], node.kernel[0] * node.kernel[1]))


def _avgpool(m, node: AvgPool, graph, spec, engines) -> Built:
    x, y = graph.tensor(node.inputs[0]), graph.tensor(node.output)
    return _submodule(m, spec, AvgPoolUnit(x.dtype, y.dtype, spec.in_lanes[0], x.shape[-1],
                                           node.kernel[0] * node.kernel[1], x.zero_point, node.acc,
                                           avgpool_counts(node, x.shape[:2]), node.requants))


def _global_avgpool(m, node: GlobalAvgPool, graph, spec, engines) -> Built:
    x, y = graph.tensor(node.inputs[0]), graph.tensor(node.output)
    return _submodule(m, spec, GlobalAvgPoolUnit(x.dtype, y.dtype, spec.in_lanes[0], x.shape[-1],
                                                 x.shape[0] * x.shape[1], x.zero_point, node.acc, node.requant))


def _add(m, node: Add, graph, spec, engines) -> Built:
    x, b, y = graph.tensor(node.inputs[0]), graph.tensor(node.inputs[1]), graph.tensor(node.output)
    unit = AddUnit(x.dtype, b.dtype, y.dtype, spec.in_lanes[0], x.shape[-1], node.lhs_multiplier,
                   node.rhs_multiplier, node.bias, node.acc, node.requant)
    return _submodule(m, spec, unit, [unit.a, unit.b])


def _requantize(m, node: Requantize, graph, spec, engines) -> Built:
    x, y = graph.tensor(node.inputs[0]), graph.tensor(node.output)
    return _submodule(m, spec, RequantizeUnit(x.dtype, y.dtype, spec.in_lanes[0], x.shape[-1], x.zero_point,
                                              node.requant))


def _concat(m, node: Concat, graph, spec, engines) -> Built:
    x = graph.tensor(node.inputs[0])
    unit = ConcatUnit(x.dtype, spec.in_lanes[0], [graph.tensor(t).shape[-1] for t in node.inputs])
    return _submodule(m, spec, unit, unit.inputs())


def _reshape(m, node: Reshape, graph, spec, engines) -> Built:
    raise AssertionError("a reshape passes its stream through; it has no unit")


#: op type -> builder(m, node, graph, spec, engines) -> Built; `engines` maps a MAC node to its
#: (engine, context index).
BUILDERS: dict[type[Node], Callable[..., Built]] = {
    Conv2d: _engine_context,
    Dense: _engine_context,
    MaxPool: _maxpool,
    AvgPool: _avgpool,
    GlobalAvgPool: _global_avgpool,
    Add: _add,
    Requantize: _requantize,
    Concat: _concat,
    Reshape: _reshape,
}
