"""tail.h / tail.c: the model's float host tail in C, where it is dequantize -> [Softmax] -> [quantize].

What onnxruntime runs after the integer core (`Graph.tail`) is, for classifiers, a DequantizeLinear,
a Softmax over the last axis and often a QuantizeLinear (person_detect). This module recognizes
those chains, one per model output, and hands templates/rvv/tail.{h,c}.j2 what they need; any
other tail stays with the caller (model.h says so). `reference` computes the C's results in
numpy with the same float32 steps: exp of each integer difference from the row's maximum is a
table made here, the sum runs in element order, and quantizing rounds half to even.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from ..fixed import dequantize, quantize_float, type_for_range
from ..ir import Graph
from ..names import comment, unique_identifiers
from .types import c_float

__all__ = ["TailChain", "tail_chains", "reference", "tail_context"]


@dataclass(frozen=True)
class TailChain:
    """One model output made from one core output by dequantize -> [Softmax(last axis)] -> [quantize]."""

    output: str                    # the model output
    core_index: int                # the core output (model.h's OUTPUTn)
    lo: int                        # the core output's integer range
    hi: int
    scale: np.float32              # its dequantization
    zero_point: int
    softmax: bool
    row: int                       # elements per softmax row (the last axis)
    size: int                      # elements
    out_scale: np.float32 | None   # QuantizeLinear after it (None: the output is float)
    out_zero_point: int
    out_lo: int
    out_hi: int
    out_ctype: str

    def exp_table(self) -> np.ndarray:
        """exp(scale x d) for d = q - row maximum, from -(hi - lo) to 0, as float32."""
        d = np.arange(self.lo - self.hi, 1, dtype=np.float32)
        return np.exp((np.float32(self.scale) * d).astype(np.float64)).astype(np.float32)


def _constant(tail: onnx.ModelProto, name: str) -> np.ndarray | None:
    for init in tail.graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    return None


def tail_chains(graph: Graph) -> tuple[TailChain, ...] | None:
    """The tail as chains the C implements, or None when it holds anything else."""
    if graph.tail is None:
        return ()
    tail = onnx.load_from_string(graph.tail.model)
    made = {o: n for n in tail.graph.node for o in n.output}
    core = {p.onnx_name: k for k, name in enumerate(graph.outputs) for p in graph.output_ports if p.tensor == name}
    chains = []
    for output in graph.tail.outputs:
        ops = []
        name = output
        while name in made:
            node = made[name]
            ops.append(node)
            name = node.input[0]
        ops.reverse()
        kinds = [n.op_type for n in ops]
        if name not in core or kinds not in (["DequantizeLinear"], ["DequantizeLinear", "Softmax"],
                                             ["DequantizeLinear", "Softmax", "QuantizeLinear"]):
            return None
        if any(n.domain not in ("", "ai.onnx") for n in ops):
            return None
        dq = ops[0]
        scale, zero = _constant(tail, dq.input[1]), _constant(tail, dq.input[2]) if len(dq.input) > 2 else 0
        if scale is None or np.size(scale) != 1 or (zero is not None and np.size(zero) != 1):
            return None
        t = graph.tensor(graph.outputs[core[name]])
        port = next(p for p in graph.output_ports if p.onnx_name == name)
        if port.layout.chw is not None:   # a map held channels-last: not the ONNX element order
            return None
        softmax = len(ops) > 1
        if softmax:
            axis = next((a.i for a in ops[1].attribute if a.name == "axis"), -1)
            rank = len(port.layout.onnx_shape)
            if axis % rank != rank - 1 or t.dtype.bits > 8:
                return None
        out_scale, out_zero, out_type = None, 0, None
        if len(ops) == 3:
            q = ops[2]
            out_scale = _constant(tail, q.input[1])
            zp = _constant(tail, q.input[2]) if len(q.input) > 2 else np.zeros((), np.uint8)
            if out_scale is None or zp is None or np.size(out_scale) != 1 or zp.dtype not in (np.int8, np.uint8):
                return None
            out_scale, out_zero, out_type = np.float32(out_scale), int(zp), np.dtype(zp.dtype)
        info = np.iinfo(out_type) if out_type is not None else None
        chains.append(TailChain(output, core[name], t.dtype.lo, t.dtype.hi, np.float32(scale),
                                int(zero if zero is not None else 0), softmax, t.shape[-1], t.size,
                                out_scale, out_zero, info.min if info else 0, info.max if info else 0,
                                {np.dtype(np.int8): "int8_t", np.dtype(np.uint8): "uint8_t"}.get(out_type, "float")))
    return tuple(chains)


def reference(chain: TailChain, q: np.ndarray) -> np.ndarray:
    """What tail.c computes for one sample's core output `q` (flat, in element order)."""
    q = np.asarray(q, dtype=np.int64).reshape(-1, chain.row)
    if not chain.softmax:
        y = dequantize(q, chain.scale, chain.zero_point)
    else:
        table = chain.exp_table()
        e = table[q - q.max(axis=1, keepdims=True) + (chain.hi - chain.lo)]
        total = np.zeros(len(q), np.float32)
        for k in range(chain.row):   # in element order, as the C loop adds
            total = (total + e[:, k]).astype(np.float32)
        y = (e / total[:, None]).astype(np.float32)
    if chain.out_scale is None:
        return y.reshape(-1)
    return quantize_float(y, chain.out_scale, chain.out_zero_point,
                          type_for_range(chain.out_lo, chain.out_hi)).reshape(-1)


def tail_context(graph: Graph, chains: tuple[TailChain, ...], outputs, prefix: str, model: str) -> dict:
    """What templates/rvv/tail.{h,c}.j2 need."""
    items = []
    results = unique_identifiers([f"y_{chain.output}" for chain in chains], prefix="y")
    for k, chain in enumerate(chains):
        port = outputs[chain.core_index]
        items.append(dict(index=k, chain=chain, param=port.name, ctype=port.ctype.name, result=results[k],
                          name=comment(chain.output),
                          table=[c_float(v) for v in chain.exp_table()] if chain.softmax else [],
                          scale=c_float(chain.scale), zero_point=chain.zero_point,
                          out_scale=c_float(chain.out_scale) if chain.out_scale is not None else None,
                          rows=chain.size // chain.row, macro=f"{prefix}_TAIL{k}"))
    return dict(tail=f"hwgen_{model}_tail", tail_guard=f"{prefix}_TAIL_H", tail_items=items)
