"""Per-layer cost of a model: MACs (dense and non-zero), parameters, sparsity and bit widths."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .fixed import type_for_range
from .ir import Graph, Node
from .names import terminal

__all__ = ["LayerRow", "Report", "build_report"]


@dataclass(frozen=True)
class LayerRow:
    name: str
    op: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    macs: int              # dense multiply-accumulates per inference
    nonzero_macs: int      # with zero weights skipped
    params: int            # weights + biases in the IR
    imported_params: int   # as the ONNX tensors were shaped, before dead channels were removed
    weight_sparsity: float   # fraction of zero weights (as imported)
    channel_sparsity: float  # fraction of output channels whose weights are all zero (as imported)
    channels_removed: int
    weight_bits: int | None
    activation_bits: int
    accumulator_bits: int | None
    output_bits: int


@dataclass(frozen=True)
class Report:
    model: str
    layers: tuple[LayerRow, ...]
    host_tail: tuple[str, ...]

    @property
    def totals(self) -> dict:
        rows = self.layers
        weights = sum(r.params for r in rows)
        return {
            "macs": sum(r.macs for r in rows),
            "nonzero_macs": sum(r.nonzero_macs for r in rows),
            "params": weights,
            "imported_params": sum(r.imported_params for r in rows),
            "channels_removed": sum(r.channels_removed for r in rows),
        }

    def to_json(self) -> dict:
        t = self.totals
        t["nonzero_mac_fraction"] = t["nonzero_macs"] / t["macs"] if t["macs"] else 0.0
        return {"model": self.model, "layers": [asdict(r) for r in self.layers], "totals": t,
                "host_tail": list(self.host_tail)}

    def to_text(self) -> str:
        head = ("layer", "op", "in", "out", "MACs", "nz MACs", "params", "w sparse", "ch sparse", "bits w/x/acc/y")
        lines = []
        for r in self.layers:
            bits = "/".join("-" if b is None else str(b) for b in
                            (r.weight_bits, r.activation_bits, r.accumulator_bits, r.output_bits))
            removed = f" (-{r.channels_removed} ch)" if r.channels_removed else ""
            lines.append((terminal(r.name), r.op, "x".join(map(str, r.input_shape)), "x".join(map(str, r.output_shape)),
                          f"{r.macs:,}", f"{r.nonzero_macs:,}", f"{r.params:,}{removed}",
                          f"{r.weight_sparsity:.1%}" if r.weight_bits is not None else "",
                          f"{r.channel_sparsity:.1%}" if r.weight_bits is not None else "", bits))
        t = self.totals
        frac = t["nonzero_macs"] / t["macs"] if t["macs"] else 0.0
        total = ("total", "", "", "", f"{t['macs']:,}", f"{t['nonzero_macs']:,} ({frac:.1%})",
                 f"{t['params']:,}", "", "", "")
        widths = [max(len(row[i]) for row in [head, total, *lines]) for i in range(len(head))]
        fmt = lambda row: "  ".join(c.ljust(w) if i < 4 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
        out = [f"model {terminal(self.model)}", fmt(head), fmt(tuple("-" * w for w in widths)), *map(fmt, lines),
               fmt(tuple("-" * w for w in widths)), fmt(total)]
        if t["imported_params"] != t["params"]:
            out.append(f"params as imported: {t['imported_params']:,}; {t['channels_removed']} dead channels removed")
        if self.host_tail:
            out.append(f"host tail (float, after the last DequantizeLinear): {' -> '.join(self.host_tail)}")
        return "\n".join(out)


def _weight_bits(node: Node) -> int | None:
    if not node.weighted:
        return None
    w = node.weights
    return type_for_range(min(int(w.min(initial=0)), -1), int(w.max(initial=0))).bits


def build_report(graph: Graph, imported: Graph | None = None) -> Report:
    """Rows for every node of `graph`; sparsity and removed channels compare with `imported`."""
    before = {n.name: n for n in (imported or graph).nodes}
    rows = []
    for node in graph.nodes:
        macs, nz = node.macs(graph)
        orig = before.get(node.name, node)
        if orig.weighted:
            w = orig.weights
            channel_rows = orig.weight_rows()
            sparsity = 1.0 - np.count_nonzero(w) / w.size
            dead = float(np.mean(~channel_rows.any(axis=1)))
            removed = orig.out_channels - node.out_channels
        else:
            sparsity, dead, removed = 0.0, 0.0, 0
        x = graph.tensor(node.inputs[0])
        acc = getattr(node, "acc", None)
        rows.append(LayerRow(
            name=node.name, op=node.op, input_shape=x.shape, output_shape=graph.tensor(node.output).shape,
            macs=macs, nonzero_macs=nz, params=node.params, imported_params=orig.params,
            weight_sparsity=float(sparsity), channel_sparsity=dead, channels_removed=removed,
            weight_bits=_weight_bits(node), activation_bits=x.dtype.bits,
            accumulator_bits=acc.bits if acc is not None else None,
            output_bits=graph.tensor(node.output).dtype.bits))
    return Report(graph.name, tuple(rows), graph.tail.ops if graph.tail else ())
