"""The accelerator's outputs: several tensors on its one output stream, and graph outputs the host assembles.

The accelerator has one output port, `o`. With one output tensor, `o` carries that tensor's words
(`hwgen.hdl.streams.word_layout`). With several, `o` is a tagged multiplex: payload bits
[0, data_bits) hold a word of the output whose index sits in bits [data_bits, data_bits +
tag_bits) (zero-padded above its own lanes x bits). Each output's words arrive in raster order;
the outputs interleave as they are produced (round robin among those ready).

A graph output that concatenates along an axis the FPGA does not concatenate (an SSD head's
`Concat` of flattened box maps, on the box axis) is not built: its pieces are outputs of the
accelerator, and the host concatenates them (`assemble`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..fixed import IntType
from ..ir import Concat, Graph
from .units import unit

__all__ = ["HostConcat", "OutputStream", "OutputMux", "hardware_graph", "assemble", "output_mux"]


@dataclass(frozen=True)
class HostConcat:
    """A graph output the host concatenates from accelerator outputs."""

    output: str                 # the graph output
    pieces: tuple[str, ...]     # accelerator outputs, in order
    axis: int                   # axis of a sample's IR shape

    def to_json(self) -> dict:
        return {"output": self.output, "pieces": list(self.pieces), "axis": self.axis}


@dataclass(frozen=True)
class OutputStream:
    """One output tensor on `o`."""

    tensor: str
    dtype: IntType
    lanes: int
    shape: tuple[int, ...]

    @property
    def bits(self) -> int:
        return self.lanes * self.dtype.bits

    @property
    def words_per_sample(self) -> int:
        return math.prod(self.shape) // self.lanes


@dataclass(frozen=True)
class OutputMux:
    """How the output tensors share `o` (no tag with one output)."""

    streams: tuple[OutputStream, ...]

    @property
    def tag_bits(self) -> int:
        return 0 if len(self.streams) == 1 else (len(self.streams) - 1).bit_length()

    @property
    def data_bits(self) -> int:
        return max(s.bits for s in self.streams)

    @property
    def width(self) -> int:
        return self.data_bits + self.tag_bits

    @property
    def words_per_sample(self) -> int:
        return sum(s.words_per_sample for s in self.streams)


def _host_concat(graph: Graph, name: str) -> Concat | None:
    """The node making graph output `name`, if the host is to concatenate it instead."""
    node = graph.producer(name)
    if not isinstance(node, Concat) or graph.consumers(name) or unit(node).refusal(node, graph) is None:
        return None
    if any(graph.producer(t) is None for t in node.inputs):
        return None
    return node


def hardware_graph(graph: Graph) -> tuple[Graph, tuple[HostConcat, ...]]:
    """The graph the accelerator builds, and the graph outputs the host concatenates from its outputs."""
    concats, outputs, dropped = [], [], set()
    for name in graph.outputs:
        node = _host_concat(graph, name)
        if node is None:
            outputs.append(name)
            continue
        rank = len(graph.tensor(name).shape)
        concats.append(HostConcat(name, tuple(node.inputs), node.axis % rank))
        outputs += list(node.inputs)
        dropped.add(node.name)
    if not concats:
        return graph, ()
    outputs = list(dict.fromkeys(outputs))
    nodes = tuple(n for n in graph.nodes if n.name not in dropped)
    kept = {t for n in nodes for t in (*n.inputs, n.output)} | set(graph.inputs)
    tensors = {k: v for k, v in graph.tensors.items() if k in kept}
    return dataclasses.replace(graph, nodes=nodes, outputs=tuple(outputs), tensors=tensors), tuple(concats)


def assemble(outputs: Mapping[str, np.ndarray], concats: tuple[HostConcat, ...], graph: Graph) -> dict[str, np.ndarray]:
    """The graph's outputs (batch first) from the accelerator's."""
    made = {c.output: np.concatenate([outputs[p] for p in c.pieces], axis=1 + c.axis) for c in concats}
    return {name: made[name] if name in made else outputs[name] for name in graph.outputs}


def output_mux(graph: Graph, output_lanes: tuple[int, ...]) -> OutputMux:
    """The output streams of a hardware graph with these lanes."""
    return OutputMux(tuple(OutputStream(name, graph.tensor(name).dtype, lanes, graph.tensor(name).shape)
                           for name, lanes in zip(graph.outputs, output_lanes)))
