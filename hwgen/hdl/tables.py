"""Compile-time constant tables: a constant where every entry agrees, else a small ROM-like mux."""

from __future__ import annotations

from collections.abc import Sequence

from amaranth import Array, Const, Value

__all__ = ["table", "channel_values"]


def table(values: Sequence[int], index: Value) -> int | Value:
    """values[index]: the int itself when all entries are equal (no logic at all)."""
    values = [int(v) for v in values]
    if len(set(values)) == 1:
        return values[0]
    return Array(Const(v) for v in values)[index]


def channel_values(per_channel: Sequence[int], channels: int) -> list[int]:
    """A requantization parameter (one value, or one per channel) as one value per channel."""
    per_channel = list(per_channel)
    return per_channel * channels if len(per_channel) == 1 else per_channel
