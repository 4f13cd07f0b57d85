"""What hardware pieces cost, in the terms of the resource model: memories (enumerated with their
shapes) and DSPs (counted exactly, the way `hwgen.hdl.arith` maps every multiplier).

Shared by the per-op units (`units`) and the whole-design estimate (`resources`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .hardware import chunk_widths, dsp_chunks, queue_storage

__all__ = ["UnitKind", "MemoryRole", "Memory", "queue_memory", "const_dsps", "signal_dsps", "requant_dsps",
           "requant_features"]


class UnitKind(enum.StrEnum):
    """A kind of hardware unit: the resource model fits one logic model per kind."""

    ENGINE = "engine"
    WINDOW = "window"
    MAXPOOL = "maxpool"
    AVGPOOL = "avgpool"
    GLOBAL_AVGPOOL = "global_avgpool"
    ADD = "add"
    REQUANTIZE = "requantize"
    CONCAT = "concat"
    LOOKUP = "lookup"
    MUL = "mul"
    AFFINE = "affine"
    MOVE = "move"   # pad, slice: counters that insert or drop words
    REMAP = "remap"  # nearest resize, depth-to-space: a row buffer read in another order
    GLUE = "glue"   # lane converters, forks, FIFOs and the performance counters


class MemoryRole(enum.StrEnum):
    WEIGHTS = "weights"
    CONTROL = "control"
    FOLDS = "folds"
    REQUANT = "requant"
    VECTORS = "vectors"
    QUEUE = "queue"
    LINE = "line"
    FIFO = "fifo"
    SUMS = "sums"
    TABLE = "table"   # a lookup unit's function tables
    ROWS = "rows"     # a remapping unit's row buffer
    VECTOR = "vector"  # a broadcast multiply's per-channel operand


@dataclass(frozen=True)
class Memory:
    """One memory of the design, as the hardware generator builds it."""

    name: str          # "<unit>.<local name>": what a plan's placement names
    unit: str          # the submodule it is in
    role: MemoryRole
    depth: int
    width: int
    rom: bool          # initialized and never written
    sync: bool         # a registered read port (can be block RAM)
    copies: int = 1    # identical memories written alike (a vector store's read ports)

    @property
    def bits(self) -> int:
        return self.depth * self.width * self.copies


def queue_memory(name: str, unit: str, depth: int, width: int, role: MemoryRole = MemoryRole.QUEUE) -> Memory:
    """A queue's memory, as `hardware.queue_storage` stores it."""
    storage = queue_storage(depth)
    return Memory(name, unit, role, storage.words, width, False, storage.registered)


def const_dsps(acc_bits: int, value: int) -> int:
    """DSPs of acc * value with a constant value: a chunk of it that is 0 or a power of two is a shift."""
    n, offset, count = dsp_chunks(acc_bits), 0, 0
    for width in chunk_widths(max(1, value.bit_length())):
        part = (value >> offset) & ((1 << width) - 1)
        offset += width
        if part and part & (part - 1):
            count += n
    return count


def signal_dsps(acc_bits: int, multiplier_bits: int) -> int:
    """DSPs of acc * multiplier with the multiplier a signal: a product of chunks per pair of chunks."""
    return dsp_chunks(acc_bits) * dsp_chunks(multiplier_bits)


def requant_dsps(acc_bits: int, multipliers: list[int]) -> int:
    """One requantizer's DSPs: its multiplier a signal (several values) or a constant."""
    if len(set(multipliers)) == 1:
        return const_dsps(acc_bits, multipliers[0])
    return signal_dsps(acc_bits, max(m.bit_length() for m in multipliers))


def requant_features(acc_bits: int, multipliers: list[int], shifts: list[int], lanes: int, out_bits: int) -> float:
    """The logic model's `requant_bits` of `lanes` requantizers."""
    product = acc_bits + max(m.bit_length() for m in multipliers) + 1
    levels = (max(shifts) - min(shifts)).bit_length() if len(set(shifts)) > 1 else 0
    return lanes * (product * (1 + levels) + 4 * out_bits)
