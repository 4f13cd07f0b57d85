"""Folding: how many multipliers each multiply-accumulate layer gets, and which layers share them.

A layer runs on an *engine* of PE x SIMD multipliers (PE output channels in parallel, SIMD
inputs in parallel). Small layers would waste a whole engine, so consecutive layers may share
one: the engine runs one output position of one layer at a time, each layer at the largest
folding that divides its own shape (PE | Cout, SIMD | K). The balancer picks the engines:

1. find the smallest initiation interval II (cycles per inference of the busiest engine) that
   the multiplier budget allows, by binary search over II with a dynamic program that splits
   the layer sequence into engines using the fewest multipliers for that II;
2. give back multipliers that buy less than `SLACK` of throughput: the final design is the
   cheapest one within SLACK of that II.

`--fold LAYER=PE,SIMD` pins a layer to an engine of its own; the others share what is left.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..errors import InvalidOptionError
from ..ir import Graph, Node
from ..names import identifier
from .geometry import fan_in, needs_window
from .schedule import steps_per_pixel

__all__ = ["Fold", "MacLayer", "EngineChoice", "mac_layers", "parse_folds", "context_fold", "balance",
           "SLACK", "DEFAULT_MULTIPLIERS"]

#: The default multiplier budget of `hwgen compile --target fpga`: the iCE40 UP5K's eight DSPs,
#: the smallest FPGA hwgen targets.
DEFAULT_MULTIPLIERS = 8

#: Throughput the balancer gives up to save multipliers (2 %).
SLACK = 0.02


@dataclass(frozen=True)
class Fold:
    pe: int
    simd: int

    @property
    def multipliers(self) -> int:
        return self.pe * self.simd

    def __str__(self) -> str:
        return f"{self.pe}x{self.simd}"


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


@dataclass(frozen=True, eq=False)
class MacLayer:
    """A Conv2d or Dense node as the balancer sees it."""

    node: Node
    pixels: int   # output positions per inference
    taps: int     # window taps: the fill of one input vector takes at least this many cycles

    @property
    def name(self) -> str:
        return self.node.name

    @cached_property
    def weights(self) -> np.ndarray:
        return self.node.weights.reshape(self.node.out_channels, -1)

    @property
    def cout(self) -> int:
        return self.node.out_channels

    @property
    def fan_in(self) -> int:
        return fan_in(self.node)

    @property
    def nonzero_macs(self) -> int:
        return int(np.count_nonzero(self.weights)) * self.pixels

    def cycles(self, fold: Fold) -> int:
        """Busy cycles per inference at `fold` (PE | Cout, SIMD | K)."""
        return self.pixels * self._steps(fold.pe, fold.simd)

    def _steps(self, pe: int, simd: int) -> int:
        cache = self.__dict__.setdefault("_steps_cache", {})
        if (pe, simd) not in cache:
            cache[pe, simd] = steps_per_pixel(self.weights, pe, simd)
        return cache[pe, simd]


def mac_layers(graph: Graph) -> list[MacLayer]:
    layers = []
    for node in graph.nodes:
        if node.weighted:
            out = graph.tensor(node.output)
            taps = node.kernel[0] * node.kernel[1] if needs_window(node) else 1
            layers.append(MacLayer(node, math.prod(out.shape[:-1]), taps))
    return layers


def context_fold(layer: MacLayer, pe: int, simd: int) -> Fold:
    """The folding a layer runs at on a PE x SIMD engine: the largest divisors that fit."""
    return Fold(max(d for d in _divisors(layer.cout) if d <= pe),
                max(d for d in _divisors(layer.fan_in) if d <= simd))


@dataclass(frozen=True)
class EngineChoice:
    fold: Fold
    layers: tuple[str, ...]  # IR node names, in graph order
    pinned: bool = False     # chosen by --fold


# -- options -------------------------------------------------------------------------------------


def _find_layer(layers: Sequence[MacLayer], name: str) -> MacLayer:
    for layer in layers:
        if name == layer.name:
            return layer
    for layer in layers:
        if name == identifier(layer.name):
            return layer
    known = ", ".join(repr(layer.name) for layer in layers) or "none"
    raise InvalidOptionError(f"--fold {name}=...: no multiply-accumulate layer named {name!r} "
                             f"(layers: {known})")


def parse_folds(specs: Sequence[str], layers: Sequence[MacLayer]) -> dict[str, Fold]:
    """`LAYER=PE,SIMD` options -> {node name: Fold}; LAYER is the node name or its identifier."""
    folds: dict[str, Fold] = {}
    for spec in specs:
        name, eq, value = spec.rpartition("=")
        parts = value.split(",")
        if not eq or not name or len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise InvalidOptionError(f"--fold expects LAYER=PE,SIMD (e.g. conv1=4,9), not {spec!r}")
        layer = _find_layer(layers, name)
        pe, simd = (int(p) for p in parts)
        if pe < 1 or simd < 1:
            raise InvalidOptionError(f"--fold {spec}: PE and SIMD must be >= 1")
        if layer.cout % pe:
            raise InvalidOptionError(f"--fold {spec}: PE={pe} does not divide the {layer.cout} output channels "
                                     f"of {layer.name!r} (divisors: {_divisors(layer.cout)})")
        if layer.fan_in % simd:
            raise InvalidOptionError(f"--fold {spec}: SIMD={simd} does not divide the fan-in K={layer.fan_in} "
                                     f"of {layer.name!r} (divisors: {_divisors(layer.fan_in)})")
        if layer.name in folds:
            raise InvalidOptionError(f"--fold given twice for layer {layer.name!r}")
        folds[layer.name] = Fold(pe, simd)
    return folds


# -- the balancer --------------------------------------------------------------------------------


class _Table:
    """Cycles of every layer on every candidate engine shape, with prefix sums over layers."""

    def __init__(self, layers: Sequence[MacLayer], budget: int):
        pes = sorted({d for layer in layers for d in _divisors(layer.cout)})
        simds = sorted({d for layer in layers for d in _divisors(layer.fan_in)})
        self.shapes = [Fold(p, s) for p in pes for s in simds if p * s <= budget]
        self.multipliers = np.array([f.multipliers for f in self.shapes], dtype=np.int64)
        cycles = np.array([[layer.cycles(context_fold(layer, f.pe, f.simd)) for f in self.shapes]
                           for layer in layers], dtype=np.int64)
        self.prefix = np.vstack([np.zeros(len(self.shapes), dtype=np.int64), np.cumsum(cycles, axis=0)])
        self.slowest = int(cycles[:, 0].sum())  # everything on one multiplier

    def group_cycles(self, start: int, stop: int) -> np.ndarray:
        return self.prefix[stop] - self.prefix[start]


def _partition(table: _Table, n: int, interval: int) -> tuple[int, list[tuple[int, int, Fold]]] | None:
    """Fewest multipliers splitting layers [0, n) into engines of at most `interval` cycles each.

    Ties go to more engines (less sharing). Returns (multipliers, [(start, stop, shape)]).
    """
    big = np.iinfo(np.int64).max // 4
    best: list[tuple[int, int, tuple[int, int] | None]] = [(0, 0, None)] + [(big, 0, None)] * n
    for stop in range(1, n + 1):
        for start in range(stop):
            if best[start][0] >= big:
                continue
            fits = table.group_cycles(start, stop) <= interval
            if not fits.any():
                continue
            k = int(np.argmin(np.where(fits, table.multipliers, big)))
            cand = (best[start][0] + int(table.multipliers[k]), best[start][1] - 1, (start, k))
            if cand[:2] < best[stop][:2]:
                best[stop] = cand
    if best[n][0] >= big:
        return None
    groups, stop = [], n
    while stop:
        start, k = best[stop][2]
        groups.append((start, stop, table.shapes[k]))
        stop = start
    return best[n][0], groups[::-1]


def balance(layers: Sequence[MacLayer], budget: int | None, pinned: dict[str, Fold] | None = None
            ) -> list[EngineChoice]:
    """Engines for `layers` within `budget` multipliers (pinned layers get engines of their own).

    `budget` may be None only when every layer is pinned.
    """
    pinned = pinned or {}
    engines = [EngineChoice(fold, (name,), pinned=True) for name, fold in pinned.items()]
    free = [layer for layer in layers if layer.name not in pinned]
    if budget is None:
        if free:
            raise InvalidOptionError("a multiplier budget is needed for the layers without --fold")
        return _in_order(engines, layers)
    if budget < 1:
        raise InvalidOptionError(f"--multipliers must be >= 1, not {budget}")
    left = budget - sum(fold.multipliers for fold in pinned.values())
    if free and left < 1:
        raise InvalidOptionError(f"--multipliers {budget} leaves nothing for the layers without --fold: the "
                                 f"--fold options already use {budget - left}")
    if free:
        engines += _balance_free(free, left)
    return _in_order(engines, layers)


def _in_order(engines: list[EngineChoice], layers: Sequence[MacLayer]) -> list[EngineChoice]:
    order = {layer.name: i for i, layer in enumerate(layers)}
    return sorted(engines, key=lambda e: order[e.layers[0]])


def _balance_free(layers: Sequence[MacLayer], budget: int) -> list[EngineChoice]:
    table = _Table(layers, budget)
    nonzero = sum(layer.nonzero_macs for layer in layers)
    fill_bound = max(layer.pixels * layer.taps for layer in layers)
    lo, hi = max(1, nonzero // budget, fill_bound), max(table.slowest, fill_bound)
    while lo < hi:
        mid = (lo + hi) // 2
        found = _partition(table, len(layers), mid)
        if found is not None and found[0] <= budget:
            hi = mid
        else:
            lo = mid + 1
    found = _partition(table, len(layers), int(lo * (1 + SLACK)))
    assert found is not None and found[0] <= budget
    return [EngineChoice(shape, tuple(layer.name for layer in layers[start:stop]))
            for start, stop, shape in found[1]]
