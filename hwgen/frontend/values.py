"""What an ONNX tensor is while the importer walks the graph."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx

from .lower import Act, OutQuant


@dataclass(frozen=True)
class Deq:
    """A float tensor that is exactly DequantizeLinear(an integer activation)."""

    act: Act
    scale: float


@dataclass(frozen=True)
class QConst:
    """DequantizeLinear(initializer): quantized weights or bias, kept as integers."""

    values: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray
    axis: int


@dataclass(frozen=True)
class Const:
    """A plain initializer (float or integer)."""

    values: np.ndarray


@dataclass(frozen=True)
class Pending:
    """A float op on dequantized values, waiting for the QuantizeLinear that fixes its output.

    `emit(out, name)` builds the IR node(s) once the output quantization is known;
    Relu and Clip narrow [lo, hi], the real interval the output is clamped to. A
    multiply-accumulate op whose float result is a graph output (QONNX leaves the last
    layer unquantized) emits its raw accumulator, of real scale `acc_scale` per channel.
    """

    node: onnx.NodeProto
    emit: Callable[[OutQuant | None, str], Act]
    lo: float = -math.inf
    hi: float = math.inf
    acc_scale: np.ndarray | None = None  # multiply-accumulate ops: emit(None) outputs the raw accumulator
    island: Island | None = None         # an elementwise float function of one activation (a lookup table)


@dataclass(frozen=True)
class Island:
    """Float ops that compute an elementwise function of one dequantized activation, with no
    QuantizeLinear between them: `evaluate` maps float32 values of `source` (n,) to the result (n,)."""

    source: Deq
    evaluate: Callable[[np.ndarray], np.ndarray]


Value = Act | Deq | QConst | Const | Pending
