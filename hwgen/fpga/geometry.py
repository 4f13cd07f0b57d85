"""How a multiply-accumulate layer's weights meet its input, as a matrix-vector product.

Every Conv2d and Dense output position (pixel) is `acc[o] = bias[o] + sum_j W[o, j] * v[entry[o, j]]`:
`W` is the (Cout, K) matrix of the node's weights (K = KH*KW*Cin/groups, the fan-in of one output
channel, in the IR's (ky, kx, c) order) and `v` the input vector of that pixel as it arrives on the
engine's input stream, `lanes` elements per word. A convolution's vector comes from a window
generator, in (channel chunk, ky, kx, lane) order; a 1x1 convolution without padding or stride and
a Dense layer read the input stream directly, channels in order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..ir import Conv2d, Dense, Graph, Node

__all__ = ["MacGeometry", "mac_geometry", "needs_window", "fan_in", "vector_length", "MATRICES"]


@dataclass(frozen=True, eq=False)
class MacGeometry:
    name: str
    weights: np.ndarray   # (Cout, K) int64
    entry: np.ndarray     # (Cout, K) int64: index in the arriving input vector
    vector: int           # input vector length per pixel
    pixels: int           # output positions per inference

    @property
    def cout(self) -> int:
        return self.weights.shape[0]

    @property
    def fan_in(self) -> int:
        return self.weights.shape[1]

    @property
    def nonzero(self) -> int:
        return int(np.count_nonzero(self.weights))


class _ConvMatrix:
    """A Conv2d: its vector is a window (channel chunk, ky, kx, lane), or for a plain 1x1
    convolution the input pixel itself."""

    def needs_window(self, node: Conv2d) -> bool:
        return node.kernel != (1, 1) or node.stride != (1, 1) or any(node.pads)

    def vector_length(self, node: Conv2d, graph: Graph) -> int:
        kh, kw = node.kernel
        c = graph.tensor(node.inputs[0]).shape[-1]
        return kh * kw * c if self.needs_window(node) else c

    def geometry(self, node: Conv2d, graph: Graph, lanes: int, w: np.ndarray, pixels: int) -> MacGeometry:
        cout, k = w.shape
        cin = graph.tensor(node.inputs[0]).shape[-1]
        kh, kw = node.kernel
        taps = kh * kw
        cg = cin // node.groups
        group = np.arange(cout) // (cout // node.groups)            # (Cout,)
        j = np.arange(k)
        tap, c_local = j // cg, j % cg                               # (K,)
        channel = group[:, None] * cg + c_local[None, :]             # (Cout, K)
        if self.needs_window(node):
            if cin % lanes:
                raise ValueError(f"{lanes} lanes do not divide {cin} channels")
            entry = ((channel // lanes) * taps + tap[None, :]) * lanes + channel % lanes
            return MacGeometry(node.name, w, entry, taps * cin, pixels)
        return MacGeometry(node.name, w, channel, cin, pixels)


class _DenseMatrix:
    """A Dense layer: its vector is the input row, read straight off the stream."""

    def needs_window(self, node: Dense) -> bool:
        return False

    def vector_length(self, node: Dense, graph: Graph) -> int:
        return graph.tensor(node.inputs[0]).shape[-1]

    def geometry(self, node: Dense, graph: Graph, lanes: int, w: np.ndarray, pixels: int) -> MacGeometry:
        cout, k = w.shape
        return MacGeometry(node.name, w, np.array(np.broadcast_to(np.arange(k), (cout, k))), k, pixels)


#: op type -> how its weights meet its input (the weighted ops of the IR).
MATRICES = {Conv2d: _ConvMatrix(), Dense: _DenseMatrix()}


def needs_window(node: Node) -> bool:
    """Whether the node needs a window generator (any convolution but a plain 1x1)."""
    return MATRICES[type(node)].needs_window(node)


def fan_in(node: Node) -> int:
    """K: the number of weights feeding one output channel."""
    return int(node.weights[0].size)


def vector_length(node: Node, graph: Graph) -> int:
    """Entries of the input vector per output position (the window for a convolution)."""
    return MATRICES[type(node)].vector_length(node, graph)


def mac_geometry(node: Node, graph: Graph, lanes: int) -> MacGeometry:
    """The matrix view of a Conv2d or Dense node whose input vector arrives `lanes` per word."""
    pixels = math.prod(graph.tensor(node.output).shape[:-1])
    return MATRICES[type(node)].geometry(node, graph, lanes, node.weights.reshape(node.out_channels, -1), pixels)
