"""Where every tensor lives: the caller's input and output buffers, or one scratch arena.

The schedule is static, so each scratch tensor has a lifetime [first, last] in
layer steps; buffers whose lifetimes overlap must not overlap in memory. A greedy
planner (the one TFLite Micro uses) places the largest buffers first, each at the
lowest offset that clears every placed buffer it is live with. Reshape outputs
alias their input (no data moves); graph outputs are written straight into the
caller's output buffers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..ir import Graph

__all__ = ["ALIGN", "Location", "Buffer", "MemoryPlan", "storage_roots", "plan_memory", "place_greedy"]

#: Every scratch buffer starts at a multiple of this (int32 tensors and vector loads stay aligned).
ALIGN = 16


@dataclass(frozen=True)
class Location:
    kind: str   # input | output | scratch
    index: int  # the input or output port, or the byte offset in the arena


@dataclass(frozen=True)
class Buffer:
    tensor: str
    bytes: int   # rounded up to ALIGN
    first: int   # the step that writes it
    last: int    # the last step that reads it
    offset: int = 0


@dataclass(frozen=True)
class MemoryPlan:
    locations: dict[str, Location]
    workspaces: dict[int, int]   # step -> arena offset of its workspace (a line buffer)
    buffers: tuple[Buffer, ...]  # tensors and workspaces in the arena
    scratch_bytes: int
    live_peak: int  # the most bytes live at one step: no placement can use less

    def location(self, tensor: str) -> Location:
        return self.locations[tensor]


def storage_roots(graph: Graph) -> tuple[dict[str, str], list[tuple[str, int]]]:
    """(tensor -> the tensor whose storage it uses, [(source tensor, output port) to copy]).

    A graph output that is a graph input, or shares storage with an earlier output,
    is copied into its output buffer at the end.
    """
    roots = {name: name for name in graph.inputs}
    for node in graph.nodes:
        roots[node.output] = roots[node.inputs[0]] if node.is_view else node.output
    copies, claimed = [], set()
    for port, name in enumerate(graph.outputs):
        root = roots[name]
        if root in graph.inputs or root in claimed:
            copies.append((root, port))
        claimed.add(root)
    return roots, copies


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def place_greedy(buffers: Sequence[Buffer]) -> list[Buffer]:
    """Offsets for buffers: largest first, each at the lowest gap among the placed buffers it is live with."""
    placed: list[Buffer] = []
    for buf in sorted(buffers, key=lambda b: (-b.bytes, b.first, b.tensor)):
        live_with = sorted((p for p in placed if p.first <= buf.last and buf.first <= p.last),
                           key=lambda p: p.offset)
        offset = 0
        for p in live_with:
            if offset + buf.bytes <= p.offset:
                break
            offset = max(offset, p.offset + p.bytes)
        placed.append(Buffer(buf.tensor, buf.bytes, buf.first, buf.last, offset))
    order = {b.tensor: i for i, b in enumerate(buffers)}
    return sorted(placed, key=lambda b: order[b.tensor])


def plan_memory(graph: Graph, roots: dict[str, str], steps: Sequence[tuple[Sequence[str], str | None]],
                nbytes, workspaces: Sequence[int] = ()) -> MemoryPlan:
    """Place every tensor. `steps` are the layers' (inputs, output tensor) in schedule order (output
    None for a copy into an output port); `nbytes(tensor)` is a tensor's size in bytes;
    `workspaces[i]` the bytes step i needs for itself only (0: none)."""
    outputs = {}
    for j, name in enumerate(graph.outputs):
        outputs.setdefault(roots[name], j)
    inputs = {name: i for i, name in enumerate(graph.inputs)}
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for i, (ins, out) in enumerate(steps):
        for name in ins:
            last[roots[name]] = i
        if out is not None:
            first.setdefault(roots[out], i)
    tensors = [Buffer(root, _aligned(nbytes(root)), step, max(step, last.get(root, step)))
               for root, step in first.items() if root not in outputs and root not in inputs]
    work = [Buffer(f"workspace of layer {i}", _aligned(n), i, i) for i, n in enumerate(workspaces) if n]
    placed = place_greedy(tensors + work)
    offsets = {b.tensor: b.offset for b in placed[:len(tensors)]}
    locations: dict[str, Location] = {}
    for name, root in roots.items():
        if root in inputs:
            locations[name] = Location("input", inputs[root])
        elif root in outputs:
            locations[name] = Location("output", outputs[root])
        else:
            locations[name] = Location("scratch", offsets[root])
    work_offsets = {b.first: b.offset for b in placed[len(tensors):]}
    peak = max((sum(b.bytes for b in placed if b.first <= i <= b.last) for i in range(len(steps))), default=0)
    size = max((b.offset + b.bytes for b in placed), default=0)
    return MemoryPlan(locations, work_offsets, tuple(placed), size, peak)
