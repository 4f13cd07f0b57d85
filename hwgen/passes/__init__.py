"""IR -> IR passes, in one ordered pipeline. Each is a pure function Graph -> Graph."""

from __future__ import annotations

from ..ir import Graph, verify
from .accumulators import assign_accumulators
from .channels import remove_constant_channels, remove_unused_channels
from .clamps import fold_clamps

__all__ = ["PIPELINE", "run_passes"]

PIPELINE = (
    fold_clamps,               # a standalone clamp (QCDQ's Clip) narrows the requantization before it
    remove_constant_channels,  # all-zero filters: fold their constant output into consumers
    remove_unused_channels,    # outputs no consumer reads: drop them (cascades upstream)
    assign_accumulators,       # narrowest accumulators for what is left
)


def run_passes(graph: Graph, *, check: bool = True) -> Graph:
    """Run the pipeline; with `check`, verify the IR before and after every pass."""
    if check:
        verify(graph)
    for step in PIPELINE:
        graph = step(graph)
        if check:
            verify(graph)
    return graph
