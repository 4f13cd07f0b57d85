"""The two FPGA architectures hwgen builds."""

from __future__ import annotations

import enum

__all__ = ["Arch"]


class Arch(enum.StrEnum):
    """`dataflow`: one unit per layer, streaming, weights on chip (fastest where it fits);
    `sequential`: one MAC array runs the layers from a compiled program, activations in two banks
    (`hwgen.fpga.sequential`)."""

    DATAFLOW = "dataflow"
    SEQUENTIAL = "sequential"
