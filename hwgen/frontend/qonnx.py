"""QONNX graphs (Brevitas' export): the `Quant` op, a fused quantize + dequantize of any bit width.

    q = clamp(round(x / scale + zero_point), min, max);  y = (q - zero_point) * scale

On weights it yields integer constants; on an activation it fixes the output type
of the float op before it (as QuantizeLinear does in QDQ graphs) and the result is
again a dequantized value. Bit widths below 8 become narrow IR types (u4, i2, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import onnx

from .. import fixed
from ..errors import UnsupportedModelError
from ..fixed import IntType
from .graph import attribute
from .lower import OutQuant
from .values import Const, Deq, Pending, QConst

if TYPE_CHECKING:  # the importer calls these handlers
    from .importer import Importer

#: The domains QONNX's custom ops are exported under.
QONNX_DOMAINS = ("qonnx.custom_op.general", "finn.custom_op.general", "finn")


@dataclass(frozen=True)
class QuantSpec:
    scale: np.ndarray
    zero_point: np.ndarray
    itype: IntType
    narrow: bool

    @property
    def lo(self) -> int:
        return self.itype.lo + (1 if self.narrow and self.itype.signed else 0)

    @property
    def hi(self) -> int:
        return self.itype.hi - (1 if self.narrow and not self.itype.signed else 0)


def quant_spec(node: onnx.NodeProto, const) -> QuantSpec:
    """The parameters of a Quant node; `const(i)` returns its i-th input as a constant or None."""
    def fail(reason):
        raise UnsupportedModelError(reason, node=node.name, op=node.op_type)

    params = [const(i) for i in (1, 2, 3)]
    if any(p is None for p in params):
        fail("scale, zero point and bit width must be constants")
    scale, zero_point, bits = (np.asarray(p, dtype=np.float64) for p in params)
    mode = attribute(node, "rounding_mode", "ROUND")
    if mode != "ROUND":
        fail(f"rounding_mode {mode!r}: hwgen supports ROUND (ties to even)")
    if bits.size != 1 or not np.isfinite(bits.item()) or bits.item() != int(bits.item()) \
            or not 1 <= bits.item() <= 32:
        fail(f"bit width {bits.reshape(-1)[:4].tolist()} must be one integer from 1 to 32")
    if not np.all(np.isfinite(zero_point)) or np.any(zero_point != np.round(zero_point)):
        fail(f"zero point {zero_point.reshape(-1)[:4].tolist()} must be integers")
    if np.any(scale <= 0) or not np.all(np.isfinite(scale)):
        fail("scales must be positive and finite")
    itype = IntType(int(bits.item()), bool(attribute(node, "signed", 1)))
    return QuantSpec(scale, zero_point.astype(np.int64), itype, bool(attribute(node, "narrow", 0)))


def _per_channel(ctx: Importer, node: onnx.NodeProto, a: np.ndarray, ndim: int) -> tuple[np.ndarray, int]:
    """A broadcastable parameter as (values along one axis, that axis)."""
    if a.size == 1:
        return a.reshape(-1), 0
    shape = (1,) * (ndim - a.ndim) + a.shape
    axes = [i for i, d in enumerate(shape) if d > 1]
    if len(axes) != 1:
        ctx.fail(node, f"parameters of shape {list(a.shape)} vary along more than one axis")
    return a.reshape(-1), axes[0]


def quant(ctx: Importer, node: onnx.NodeProto) -> None:
    spec = quant_spec(node, lambda i: ctx.const(node, i))
    v = ctx.value(node, 0)
    if isinstance(v, Const):  # weights or a bias: integers on the grid
        if v.values.dtype.kind != "f":
            ctx.fail(node, "quantizes an integer constant")
        scale, axis = _per_channel(ctx, node, spec.scale, v.values.ndim)
        zp, zp_axis = _per_channel(ctx, node, spec.zero_point, v.values.ndim)
        if zp.size > 1 and zp_axis != axis:
            ctx.fail(node, "scale and zero point vary along different axes")
        shape = [1] * v.values.ndim
        if v.values.ndim:
            shape[axis] = -1
        q = fixed.quantize_float(v.values, spec.scale.astype(np.float32), spec.zero_point,
                                 IntType(spec.itype.bits, spec.itype.signed))
        q = np.clip(q, spec.lo, spec.hi)
        ctx.set(node, QConst(q, scale, zp if zp.size > 1 else zp.reshape(1), axis))
        return
    if spec.scale.size != 1 or spec.zero_point.size != 1:
        ctx.fail(node, "activations must be quantized per tensor")
    out = OutQuant.of(spec.itype, float(spec.scale.item()), int(spec.zero_point.item()))
    out = OutQuant(out.dtype, out.scale, out.zero_point, max(out.lo, spec.lo), min(out.hi, spec.hi))
    if isinstance(v, Pending):
        bounded = OutQuant.of(spec.itype, out.scale, out.zero_point, v.lo, v.hi)
        out = OutQuant(out.dtype, out.scale, out.zero_point, max(out.lo, bounded.lo), min(out.hi, bounded.hi))
        act = v.emit(out, node.output[0])
    elif isinstance(v, Deq):
        act = v.act if out.same_as(v.act.tensor) and not out.clamps else \
            ctx.builder.requantize(node.name, v.act, v.scale, out=out, out_name=node.output[0])
    else:
        ctx.deq(node, 0)  # raises with the reason
    ctx.set(node, Deq(act, out.scale))


HANDLERS = {"Quant": quant}
