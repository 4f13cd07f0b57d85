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

__all__ = ["MacGeometry", "mac_geometry", "needs_window", "fan_in", "vector_length"]


def needs_window(node: Node) -> bool:
    """Whether a Conv2d needs a window generator (anything but a plain 1x1 convolution)."""
    return isinstance(node, Conv2d) and (node.kernel != (1, 1) or node.stride != (1, 1) or any(node.pads))


def fan_in(node: Node) -> int:
    """K: the number of weights feeding one output channel."""
    return int(node.weights[0].size)


def vector_length(node: Node, graph: Graph) -> int:
    """Entries of the input vector per output position (the window for a convolution)."""
    x = graph.tensor(node.inputs[0])
    if isinstance(node, Conv2d):
        kh, kw = node.kernel
        return kh * kw * x.shape[-1] if needs_window(node) else x.shape[-1]
    return x.shape[-1]


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


def mac_geometry(node: Node, graph: Graph, lanes: int) -> MacGeometry:
    """The matrix view of a Conv2d or Dense node whose input vector arrives `lanes` per word."""
    out = graph.tensor(node.output)
    pixels = math.prod(out.shape[:-1])
    cout = node.out_channels
    w = node.weights.reshape(cout, -1)
    k = w.shape[1]
    if isinstance(node, Dense):
        entry = np.broadcast_to(np.arange(k), (cout, k))
        return MacGeometry(node.name, w, np.array(entry), k, pixels)
    assert isinstance(node, Conv2d)
    cin = graph.tensor(node.inputs[0]).shape[-1]
    kh, kw = node.kernel
    taps = kh * kw
    cg = cin // node.groups
    group = np.arange(cout) // (cout // node.groups)            # (Cout,)
    j = np.arange(k)
    tap, c_local = j // cg, j % cg                               # (K,)
    channel = group[:, None] * cg + c_local[None, :]             # (Cout, K)
    if needs_window(node):
        if cin % lanes:
            raise ValueError(f"{lanes} lanes do not divide {cin} channels")
        entry = ((channel // lanes) * taps + tap[None, :]) * lanes + channel % lanes
        return MacGeometry(node.name, w, entry, taps * cin, pixels)
    return MacGeometry(node.name, w, channel, cin, pixels)
