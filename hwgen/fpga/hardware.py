"""The facts of the generated hardware, defined once: `hwgen.hdl` builds what they say, and the cycle
and resource models count with the same numbers. No hardware tools are needed to read them.

* how multipliers map to DSPs (`DSP_CHUNK`, `chunk_widths`, `csd_digits`) and their latencies;
* the MAC engine's pipeline (`engine_latency`) and its output queues (`engine_queue_depth`);
* every unit's output queue depth, and how a queue of some depth is stored (`queue_storage`);
* where a memory can go (`MemoryKind`);
* the line buffer of a window generator (`window_rows`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "MemoryKind", "DSP_CHUNK", "DSP_MULTIPLY_LATENCY", "REQUANT_LATENCY", "chunk_widths", "dsp_chunks", "csd_digits",
    "TREE_LEVELS", "QUEUE_POSITIONS", "tree_latency", "engine_latency", "engine_queue_depth", "SMALL_QUEUE",
    "QueueStorage", "queue_storage", "WINDOW_QUEUE_DEPTH", "WINDOW_SLACK_ROWS", "window_rows",
    "POOL_QUEUE_DEPTH", "MAXPOOL_QUEUE_DEPTH", "ELEMENTWISE_QUEUE_DEPTH", "JOIN_QUEUE_DEPTH", "COUNTER_BITS",
    "LOOKUP_QUEUE_DEPTH", "REMAP_QUEUE_DEPTH", "REMAP_ROWS", "FLASH_READ", "FLASH_FAST_READ_QUAD_OUTPUT",
    "FLASH_QUAD_DUMMY_CLOCKS", "SPRAM_WIDTH", "SPRAM_WORDS", "sprams_for",
]


class MemoryKind(enum.StrEnum):
    """Where a memory goes; a plan's placement names one per memory."""

    BRAM = "bram"       # block RAM (a registered read port)
    LUTRAM = "lutram"   # ECP5 distributed RAM
    LOGIC = "logic"     # flip-flops and LUTs

    @property
    def ram_style(self) -> str:
        """The yosys `ram_style` attribute that puts a memory here."""
        return {"bram": "block", "lutram": "distributed", "logic": "logic"}[self.value]


# -- multipliers ---------------------------------------------------------------------------------

#: Widest operand chunk one DSP multiplies: the iCE40's 16x16 (signed or unsigned per operand);
#: ECP5's 18x18 signed takes a 16-bit unsigned chunk as 17 signed bits.
DSP_CHUNK = 16

#: Cycles from a DSP multiplier's operands to its product (operand, chunk, pair and total registers).
DSP_MULTIPLY_LATENCY = 4

#: Cycles of a requantizer: its multiply, then the rounding, the offset and the clamp.
REQUANT_LATENCY = DSP_MULTIPLY_LATENCY + 3


def chunk_widths(bits: int) -> list[int]:
    """`bits` split into nearly equal chunks of at most DSP_CHUNK (no tiny chunk yosys would put in LUTs)."""
    n = max(1, -(-bits // DSP_CHUNK))
    base, extra = divmod(bits, n)
    return [base + (1 if k < extra else 0) for k in range(n)]


def dsp_chunks(bits: int) -> int:
    return len(chunk_widths(bits))


def csd_digits(c: int) -> list[tuple[int, int]]:
    """Canonical signed digits of c: [(shift, +1 or -1)], no two adjacent, fewest non-zeros."""
    digits, k = [], 0
    while c:
        if c & 1:
            d = 2 - (c & 3)   # +1 if c = 1 mod 4, -1 if c = 3 mod 4
            digits.append((k, d))
            c -= d
        c >>= 1
        k += 1
    return digits


# -- the MAC engine ------------------------------------------------------------------------------

#: Adder tree levels between registers.
TREE_LEVELS = 3

#: Output positions an engine's output queue holds beyond its pipeline: slack between engines.
QUEUE_POSITIONS = 4


def tree_latency(simd: int) -> int:
    """Registered stages of an adder tree over `simd` products."""
    widest, tree = max(1, simd), 1
    while widest > 1:
        widest = -(-widest // (1 << TREE_LEVELS))
        tree += 1
    return tree


def engine_latency(simd: int, drain: int) -> int:
    """Cycles from an engine's issue to its output queue: issue, read, select, operand, multiply,
    the adder tree, accumulate, the requantizer, and a drain through shared requantizers."""
    return 5 + tree_latency(simd) + 1 + REQUANT_LATENCY + (0 if drain == 1 else drain + 3)


def engine_queue_depth(folds: int, latency: int) -> int:
    """Words of a context's output queue: QUEUE_POSITIONS output positions beyond the pipeline."""
    return QUEUE_POSITIONS * folds + latency + 2


# -- queues ----------------------------------------------------------------------------------------

#: Queues up to this deep are registers with a combinational read (LUT RAM, cheap to simulate);
#: deeper ones keep their words in a memory with a registered read (block RAM).
SMALL_QUEUE = 32


@dataclass(frozen=True)
class QueueStorage:
    """How a queue holds its words: a memory of `words`, read combinationally or through a
    registered port (then one word more sits in the port's output register)."""

    words: int
    registered: bool


def queue_storage(depth: int, kind: MemoryKind | None = None) -> QueueStorage:
    """The storage of a queue of `depth` words placed as `kind` (block RAM needs a registered read)."""
    if depth <= SMALL_QUEUE and kind != MemoryKind.BRAM:
        return QueueStorage(depth, False)
    return QueueStorage(depth, True)


#: A window generator's output queue: its read latency (2) plus room for a stalling consumer.
WINDOW_QUEUE_DEPTH = 5
#: Average and global average pooling: the requantizer's pipeline plus room.
POOL_QUEUE_DEPTH = REQUANT_LATENCY + 3
#: Max pooling: its pipeline (2) plus one.
MAXPOOL_QUEUE_DEPTH = 3
#: Add and requantize: the longest pipeline (Add's: its multipliers, then the requantizer) plus one.
ELEMENTWISE_QUEUE_DEPTH = DSP_MULTIPLY_LATENCY + REQUANT_LATENCY + 3
#: The FIFO after a join whose ready is combinational (Concat): it cuts the path.
JOIN_QUEUE_DEPTH = 2
#: Output queue of a lookup unit: its table read and the queue's credit loop.
LOOKUP_QUEUE_DEPTH = 4
#: Output queue of a remapping unit (nearest resize, depth-to-space): its buffer read and the credit loop.
REMAP_QUEUE_DEPTH = 4
#: Input rows a remapping unit holds: the row its outputs read while the next one arrives.
REMAP_ROWS = 2

#: Bits of every busy-cycle performance counter.
COUNTER_BITS = 32


# -- window generators -------------------------------------------------------------------------------

#: Line buffer rows beyond those a window needs, so a producer can run ahead of a consumer that
#: shares its engine with other layers (measured; see `hwgen.hdl.engine`). Device fitting may
#: drop them to save block RAM.
WINDOW_SLACK_ROWS = 4


def window_rows(shape: tuple[int, int, int], kernel: tuple[int, int], stride: tuple[int, int],
                dilation: tuple[int, int], slack: int = WINDOW_SLACK_ROWS) -> int:
    """Rows the line buffer of an (H, W, C) map holds: the window's span, a stride of rows being
    written, and up to `slack` more (no more than the map has)."""
    span = (kernel[0] - 1) * dilation[0] + 1
    return span + stride[0] + min(slack, max(0, shape[0] - span))


# -- the SPI flash a sequential engine streams its weights from ------------------------------------

#: Read Data: command and 24-bit address on io0, data on io1.
FLASH_READ = 0x03
#: Fast Read Quad Output: command and address on io0, dummy clocks, data on io0..io3.
FLASH_FAST_READ_QUAD_OUTPUT = 0x6B
FLASH_QUAD_DUMMY_CLOCKS = 8


# -- the iCE40 UltraPlus SPRAM (SB_SPRAM256KA) ------------------------------------------------------

SPRAM_WIDTH = 16
SPRAM_WORDS = 16384


def sprams_for(words: int, bits: int) -> int:
    """SB_SPRAM256KA cells a memory of `words` x `bits` takes (side by side, then deep)."""
    return -(-bits // SPRAM_WIDTH) * -(-words // SPRAM_WORDS)
