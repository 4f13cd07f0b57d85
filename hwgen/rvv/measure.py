"""Dynamic instruction counts of the generated code under QEMU, and OUT/rvv/report.json.

The TCG plugin counts executed instructions per function symbol. Every layer is its
own (noinline) function, so a layer's count is its symbol's; an inference is the
layers plus the run function's own few instructions. The RVV kernels have no
data-dependent branches, so their counts do not depend on the input (the tests
check this); the scalar kernels' clamps branch, so their counts are averaged over
the samples measured.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..version import __version__
from .codegen import Generated
from .plan import weight_ctype
from .program import RVV, Build, run

__all__ = ["VLENS", "Counts", "count", "report_json"]

#: The VLENs hwgen measures and verifies at.
VLENS = (128, 256, 512)


@dataclass(frozen=True)
class Counts:
    """Instructions per inference (averaged over the batch measured)."""

    build: str
    vlen: int
    per_layer: dict[str, float]   # layer function -> instructions
    per_inference: float
    samples: int


def count(generated: Generated, inputs: Mapping[str, np.ndarray], *, flavour: Build = RVV,
          vlen: int = 128, binary: Path | None = None) -> Counts:
    """Run a batch through one process under the counting plugin."""
    result = run(generated, inputs, flavour=flavour, vlen=vlen, count=True, binary=binary)
    batch = next(iter(inputs.values())).shape[0]
    symbols = result.counts.per_symbol
    per_layer = {layer.function: symbols.get(layer.function, 0) / batch for layer in generated.layers}
    total = sum(per_layer.values()) + symbols.get(generated.run, 0) / batch
    return Counts(flavour.name, vlen, per_layer, total, batch)


_ELEMENT_BYTES = {f"{sign}int{bits}_t": bits // 8 for sign in ("", "u") for bits in (8, 16, 32)}


def constant_bytes(generated: Generated) -> int:
    """Bytes of model.c's constant arrays: weights, biases, requantization parameters, tables."""
    return sum(len(a.values) * _ELEMENT_BYTES[a.ctype] for layer in generated.layers for a in layer.arrays)


def parameter_bytes(graph) -> int:
    """What the weights and biases need at least: each weight tensor in the C type the planner
    gives it (int8 or int16) and 4 bytes per bias."""
    total = 0
    for node in graph.nodes:
        w = getattr(node, "weights", None)
        if w is not None and w.size:
            total += w.size * weight_ctype(w).bytes
        b = getattr(node, "bias", None)
        if isinstance(b, np.ndarray):
            total += 4 * b.size
    return total


def _number(x: float):
    return int(x) if float(x).is_integer() else round(float(x), 1)


def report_json(generated: Generated, macs: int, counts: Sequence[Counts], *, source: str,
                not_counted: str | None = None) -> dict:
    """The content of OUT/rvv/report.json: kernels, memory plan and instruction counts."""
    memory = generated.memory
    weights = constant_bytes(generated)
    by_vlen = {str(c.vlen): c for c in counts}
    layers = []
    for layer in generated.layers:
        v = layer.variant
        row = {"index": layer.index, "function": layer.function, "node": layer.node, "op": layer.op,
               "kernel": v.name, "lmul": v.lmul, "tile": v.tile, "macs": layer.macs}
        if counts:
            row["instructions"] = {vlen: _number(c.per_layer[layer.function]) for vlen, c in by_vlen.items()}
        layers.append(row)
    out = {
        "format": "hwgen-rvv-report/1",
        "generator": f"hwgen {__version__}",
        "source": source,
        "function": generated.run,
        "macs": macs,
        "scratch_bytes": memory.scratch_bytes,
        "scratch_live_peak_bytes": memory.live_peak,
        "constant_bytes": weights,
        "buffers": [{"tensor": b.tensor, "offset": b.offset, "bytes": b.bytes,
                     "first_layer": b.first, "last_layer": b.last} for b in memory.buffers],
        "layers": layers,
    }
    if counts:
        out["counted_with"] = (f"{counts[0].build} build ({RVV.describe()}), qemu-riscv64 TCG plugin "
                               f"insncount, {counts[0].samples} sample(s)")
        out["per_inference"] = {vlen: {"instructions": _number(c.per_inference),
                                       "per_mac": round(c.per_inference / macs, 4) if macs else None}
                                for vlen, c in by_vlen.items()}
    else:
        out["not_counted"] = not_counted
    return out
