"""The cycle model: busy cycles per inference of every hardware unit, from the plan's lanes and folds.

Every unit moves at most one stream word per cycle, and every engine issues one step per cycle,
so a unit's busy cycles are its words (or steps) per inference. In steady state the slowest unit
sets the initiation interval; engines are the slow ones by design (the balancer gives the others
enough lanes). Zero-weight skipping is in the engines' step counts.
"""

from __future__ import annotations

import math

from ..ir import Add, AvgPool, Concat, Conv2d, Dense, GlobalAvgPool, Graph, MaxPool, Node, Requantize, Reshape
from .folding import Fold
from .geometry import needs_window
from .schedule import steps_per_pixel

__all__ = ["mac_busy", "window_busy", "unit_busy", "stream_words"]


def stream_words(graph: Graph, tensor: str, lanes: int) -> int:
    """Words of a tensor on a stream of `lanes` elements per word."""
    return graph.tensor(tensor).size // lanes


def mac_busy(node: Node, graph: Graph, fold: Fold) -> int:
    """Engine steps per inference of a Conv2d / Dense layer."""
    pixels = math.prod(graph.tensor(node.output).shape[:-1])
    return pixels * steps_per_pixel(node.weights.reshape(node.out_channels, -1), fold.pe, fold.simd)


def window_busy(node: Node, graph: Graph, lanes: int) -> int:
    """Words a window generator emits per inference: every tap of every output position."""
    oh, ow, _ = graph.tensor(node.output).shape
    kh, kw = node.kernel
    return oh * ow * kh * kw * graph.tensor(node.inputs[0]).shape[-1] // lanes


def unit_busy(node: Node, graph: Graph, in_lanes: int, fold: Fold | None = None) -> int:
    """Busy cycles per inference of the unit implementing `node` (engine steps for MAC layers)."""
    if isinstance(node, (Conv2d, Dense)):
        return mac_busy(node, graph, fold)
    if isinstance(node, (MaxPool, AvgPool)):
        return window_busy(node, graph, in_lanes)
    if isinstance(node, (GlobalAvgPool, Add, Requantize)):
        return stream_words(graph, node.inputs[0], in_lanes)
    if isinstance(node, Concat):
        return stream_words(graph, node.output, in_lanes)
    if isinstance(node, Reshape):
        return 0
    raise TypeError(f"no cycle model for {node.op}")


def has_window(node: Node) -> bool:
    return isinstance(node, (MaxPool, AvgPool)) or needs_window(node)
