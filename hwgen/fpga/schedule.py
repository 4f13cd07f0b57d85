"""The step program of a multiply-accumulate layer at a folding, with zero weights skipped.

An engine has PE processing elements (one output channel each at a time) of SIMD multiplier
lanes. Output channel o = f*PE + p is computed by PE p during fold f. Its non-zero weights, in
order, are dealt to the SIMD lanes in turn, so lane l takes the l-th, (l+SIMD)-th, ... non-zero
weight: a fold lasts ceil(max non-zeros of its PE channels / SIMD) steps (at least one, so every
output is produced even when its weights are all zero). Zero weights therefore cost no step,
except where a PE waits for the busiest PE of its fold. A dense layer gets exactly
Cout*K/(PE*SIMD) steps per output position.

A fold that skipping cannot shorten (one of its channels has no zero to spare) keeps the dense
order instead, lane l taking weights l, l+SIMD, ...: then every PE reads the same inputs at the
same step, and the engine needs fewer read ports. The step count is the same either way.

A layer skips zeros only where that saves at least SKIP_MIN_SAVING of its steps: skipping gives
each lane a read address of its own in the control ROM (and a read port), while a dense order
is counted by the engine for free, so a nearly dense layer (1 % zeros) does not earn it back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import MacGeometry

__all__ = ["Schedule", "fold_steps", "steps_per_pixel", "build_schedule", "SKIP_MIN_SAVING"]

#: Zero weights are skipped in a layer (at a folding) only when that saves this fraction of its steps.
SKIP_MIN_SAVING = 0.05


def fold_steps(weights: np.ndarray, pe: int, simd: int) -> np.ndarray:
    """Steps of each fold of a (Cout, K) weight matrix; PE must divide Cout."""
    cout = weights.shape[0]
    if pe < 1 or simd < 1 or cout % pe:
        raise ValueError(f"PE={pe} must divide {cout} output channels and SIMD={simd} must be >= 1")
    weights = weights.reshape(cout, -1)
    dense = -(-weights.shape[1] // simd)
    nonzero = np.count_nonzero(weights, axis=1)
    skipped = np.maximum((-(-nonzero // simd)).reshape(cout // pe, pe).max(axis=1), 1)
    if skipped.sum() <= (1 - SKIP_MIN_SAVING) * dense * len(skipped):
        return skipped
    return np.full(len(skipped), dense)


def steps_per_pixel(weights: np.ndarray, pe: int, simd: int) -> int:
    return int(fold_steps(weights, pe, simd).sum())


@dataclass(frozen=True, eq=False)
class Schedule:
    """What every lane does at every step of one output position.

    `entry[t, p, l]` is the input vector index lane (p, l) multiplies at step t (-1: idle) and
    `weight[t, p, l]` its weight (0 when idle). `fold[t]` is the fold step t belongs to;
    `first` / `last` mark a fold's first and last step.
    """

    pe: int
    simd: int
    entry: np.ndarray
    weight: np.ndarray
    fold: np.ndarray
    first: np.ndarray
    last: np.ndarray

    @property
    def steps(self) -> int:
        return len(self.fold)

    @property
    def folds(self) -> int:
        return int(self.fold[-1]) + 1


def build_schedule(geom: MacGeometry, pe: int, simd: int) -> Schedule:
    steps_of = fold_steps(geom.weights, pe, simd)
    total = int(steps_of.sum())
    entry = np.full((total, pe, simd), -1, dtype=np.int64)
    weight = np.zeros((total, pe, simd), dtype=np.int64)
    fold = np.repeat(np.arange(len(steps_of)), steps_of)
    starts = np.concatenate([[0], np.cumsum(steps_of)[:-1]])
    k = geom.fan_in
    dense_steps = -(-k // simd)
    # Weights in the order their inputs arrive: a dense fold then reads the vector front to back,
    # an address the engine counts instead of storing (a convolution's weights are (ky, kx, c),
    # its window arrives channel chunk first).
    order = np.argsort(geom.entry, axis=1, kind="stable")
    for f, start in enumerate(starts):
        compact = steps_of[f] < dense_steps
        for p in range(pe):
            o = f * pe + p
            js = order[o][geom.weights[o, order[o]] != 0] if compact else order[o]
            t = start + np.arange(len(js)) // simd
            lane = np.arange(len(js)) % simd
            entry[t, p, lane] = geom.entry[o, js]
            weight[t, p, lane] = geom.weights[o, js]
    first = np.zeros(total, dtype=bool)
    first[starts] = True
    last = np.zeros(total, dtype=bool)
    last[starts + steps_of - 1] = True
    return Schedule(pe, simd, entry, weight, fold, first, last)
