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
from ..fpga.units import affine_shift, avgpool_counts, lane_tables, remap_tables
from ..ir import (
    Add,
    Affine,
    AvgPool,
    Concat,
    Conv2d,
    Dense,
    DepthToSpace,
    GlobalAvgPool,
    Graph,
    Lookup,
    MaxPool,
    Mul,
    Node,
    Pad,
    Requantize,
    Reshape,
    Resize,
    Slice,
    Transpose,
)
from .elementwise import AddUnit, ConcatUnit, RequantizeUnit
from .movement import PadUnit, RemapUnit, SliceUnit
from .pool import AvgPoolUnit, GlobalAvgPoolUnit, MaxPoolUnit
from .products import AffineUnit, LookupUnit, MulUnit

__all__ = ["Built", "BUILDERS"]


@dataclass
class Built:
    """A node's hardware as the accelerator wires it."""

    inputs: list        # one input stream per node input
    output: object      # its output stream
    busy: object        # high in the cycles it works


def _engine_context(m: Module, node: Node, graph: Graph, spec: LayerSpec, placed, engines) -> Built:
    engine, k = engines[node.name]
    return Built([engine.input(k)], engine.output(k), engine.busy[k])


def _submodule(m: Module, spec: LayerSpec, unit, inputs: list | None = None) -> Built:
    m.submodules[spec.ident] = unit
    return Built(inputs if inputs is not None else [unit.i], unit.o, unit.busy)


def _maxpool(m, node: MaxPool, graph, spec, placed, engines) -> Built:
    x = graph.tensor(node.inputs[0])
    return _submodule(m, spec, MaxPoolUnit(x.dtype, spec.in_lanes[0], node.kernel[0] * node.kernel[1]))


def _avgpool(m, node: AvgPool, graph, spec, placed, engines) -> Built:
    x, y = graph.tensor(node.inputs[0]), graph.tensor(node.output)
    return _submodule(m, spec, AvgPoolUnit(x.dtype, y.dtype, spec.in_lanes[0], x.shape[-1],
                                           node.kernel[0] * node.kernel[1], x.zero_point, node.acc,
                                           avgpool_counts(node, x.shape[:2]), node.requants))


def _global_avgpool(m, node: GlobalAvgPool, graph, spec, placed, engines) -> Built:
    x, y = graph.tensor(node.inputs[0]), graph.tensor(node.output)
    return _submodule(m, spec, GlobalAvgPoolUnit(x.dtype, y.dtype, spec.in_lanes[0], x.shape[-1],
                                                 x.shape[0] * x.shape[1], x.zero_point, node.acc, node.requant))


def _add(m, node: Add, graph, spec, placed, engines) -> Built:
    x, b, y = graph.tensor(node.inputs[0]), graph.tensor(node.inputs[1]), graph.tensor(node.output)
    unit = AddUnit(x.dtype, b.dtype, y.dtype, spec.in_lanes[0], x.shape[-1], node.lhs_multiplier,
                   node.rhs_multiplier, node.bias, node.acc, node.requant)
    return _submodule(m, spec, unit, [unit.a, unit.b])


def _requantize(m, node: Requantize, graph, spec, placed, engines) -> Built:
    x, y = graph.tensor(node.inputs[0]), graph.tensor(node.output)
    return _submodule(m, spec, RequantizeUnit(x.dtype, y.dtype, spec.in_lanes[0], x.shape[-1], x.zero_point,
                                              node.requant))


def _concat(m, node: Concat, graph, spec, placed, engines) -> Built:
    x = graph.tensor(node.inputs[0])
    unit = ConcatUnit(x.dtype, spec.in_lanes[0], [graph.tensor(t).shape[-1] for t in node.inputs])
    return _submodule(m, spec, unit, unit.inputs())


def _reshape(m, node: Reshape, graph, spec, placed, engines) -> Built:
    raise AssertionError("a reshape passes its stream through; it has no unit")


def _lookup(m, node: Lookup, graph, spec, placed, engines) -> Built:
    x, y = graph.tensor(node.inputs[0]), graph.tensor(node.output)
    lanes = spec.in_lanes[0]
    return _submodule(m, spec, LookupUnit(x.dtype, y.dtype, lanes, x.shape[-1], node.tables, node.channel_tables,
                                          lane_tables(node, x.shape[-1], lanes), placed))


def _mul(m, node: Mul, graph, spec, placed, engines) -> Built:
    a, b, y = (graph.tensor(t) for t in (*node.inputs, node.output))
    unit = MulUnit(a.dtype, b.dtype, y.dtype, spec.in_lanes[0], a.shape[-1], a.size // a.shape[-1], a.zero_point,
                   b.zero_point, b.shape != a.shape, node.acc, node.requant)
    return _submodule(m, spec, unit, [unit.a, unit.b])


def _affine(m, node: Affine, graph, spec, placed, engines) -> Built:
    x, y = graph.tensor(node.inputs[0]), graph.tensor(node.output)
    shift = affine_shift(node)
    signs = [(s > 0) - (s < 0) for s in node.scale]
    return _submodule(m, spec, AffineUnit(x.dtype, y.dtype, spec.in_lanes[0], x.shape[-1], x.zero_point, shift, signs,
                                          list(node.offset), node.acc, node.requant))


def _pad(m, node: Pad, graph, spec, placed, engines) -> Built:
    x = graph.tensor(node.inputs[0])
    return _submodule(m, spec, PadUnit(x.dtype, spec.in_lanes[0], x.shape, node.pads, node.value))


def _slice(m, node: Slice, graph, spec, placed, engines) -> Built:
    x = graph.tensor(node.inputs[0])
    return _submodule(m, spec, SliceUnit(x.dtype, spec.in_lanes[0], x.shape, node.starts, node.ends))


def _remap(m, node: Resize | DepthToSpace, graph, spec, placed, engines) -> Built:
    x, y = graph.tensor(node.inputs[0]), graph.tensor(node.output)
    lanes = spec.in_lanes[0]
    return _submodule(m, spec, RemapUnit(x.dtype, lanes, x.shape, y.shape, remap_tables(node, graph, lanes),
                                         placed.get("rows")))


def _not_built(m, node: Node, graph, spec, placed, engines) -> Built:
    raise AssertionError(f"the FPGA plan refuses {node.op} nodes (fpga.units.NotBuiltUnit)")


#: op type -> builder(m, node, graph, spec, placed, engines) -> Built; `placed`: where the plan puts the
#: unit's memories (by local name); `engines` maps a MAC node to its
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
    Lookup: _lookup,
    Mul: _mul,
    Affine: _affine,
    Pad: _pad,
    Slice: _slice,
    Resize: _remap,
    DepthToSpace: _remap,
    Transpose: _not_built,
}
