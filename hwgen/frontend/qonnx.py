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
from ..fixed import IntType, Rounding
from ..ir import MAX_LOOKUP_BITS
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


def bipolar_quant(ctx: Importer, node: onnx.NodeProto) -> None:
    """BipolarQuant(x, scale) = scale where x >= 0, else -scale: binary weights are the integers +-1;
    a binary activation of a quantized one is a lookup table."""
    scale = ctx.const(node, 1)
    if scale is None or scale.size != 1 or not np.isfinite(scale).all() or float(scale.reshape(())) <= 0:
        ctx.fail(node, "scale must be one positive finite constant")
    s = float(scale.reshape(()))
    v = ctx.value(node, 0)
    if isinstance(v, Const):
        if v.values.dtype.kind != "f":
            ctx.fail(node, "binarizes an integer constant")
        signs = np.where(v.values >= 0, 1, -1).astype(np.int8)
        ctx.set(node, QConst(signs, np.array([s]), np.zeros(1, dtype=np.int64), 0))
        return
    if isinstance(v, Pending):
        ctx.fail(node, f"binarizes the float result of node {v.node.name!r} ({v.node.op_type}): a threshold, which "
                       "hwgen has no integer form for; quantize that output with Quant first")
    x = ctx.deq(node, 0)
    t = x.act.tensor
    if t.dtype.bits > MAX_LOOKUP_BITS:
        ctx.fail(node, f"input is {t.dtype}: binarizing it takes a lookup table, of at most {MAX_LOOKUP_BITS}-bit "
                       "inputs")
    binary = IntType(2, True)
    table = fixed.lookup_table(lambda r: np.where(r >= 0, s, -s).astype(np.float32), t.dtype, x.scale, t.zero_point,
                               binary, s, 0)
    out = OutQuant(binary, s, 0, -1, 1)
    act = ctx.builder.lookup(node.name, x.act, table.reshape(1, -1), (), "BipolarQuant", out=out,
                             out_name=node.output[0])
    ctx.set(node, Deq(act, s))


_TRUNC_ROUNDING = {"FLOOR": Rounding.RNU, "CEIL": Rounding.RNU, "ROUND": Rounding.RNE}


def trunc(ctx: Importer, node: onnx.NodeProto) -> None:
    """Trunc (Brevitas' truncating average pool, QONNX opset 1 and 2): the input's integers on the grid
    `scale` shifted right by k bits, rounded as rounding_mode says, to out_bitwidth bits.

    v1 (5 inputs): k = in_bitwidth - out_bitwidth and the result keeps the scale; v2 (7 inputs):
    k = log2(out_scale / scale) and the result has out_scale. An affine op computes it exactly:
    floor(q / 2**k) = round_shift_rnu(q - 2**(k-1), k), ceil likewise from q + 2**(k-1) - 1."""
    def number(i: int) -> float:
        value = ctx.scalar(node, i)
        if value is None or not np.isfinite(value):
            ctx.fail(node, f"input {i} must be one finite constant")
        return float(value)

    if len(node.input) not in (5, 7):
        ctx.fail(node, f"{len(node.input)} inputs: Trunc has 5 (opset 1) or 7 (opset 2)")
    scale, zero_point, in_bits = number(1), number(2), number(3)
    if len(node.input) == 7:
        out_scale, out_bits = number(4), number(6)
        k = int(round(np.log2(out_scale / scale)))
    else:
        out_bits = number(4)
        k = int(in_bits - out_bits)
        out_scale = scale
    mode = str(attribute(node, "rounding_mode", "FLOOR")).upper()
    if mode not in _TRUNC_ROUNDING:
        ctx.fail(node, f"rounding_mode {mode!r}: Trunc rounds with FLOOR, CEIL or ROUND")
    if zero_point != 0:
        ctx.fail(node, f"zero point {zero_point:g}: hwgen truncates integers of zero point 0")
    if not (1 <= out_bits <= 32 and 1 <= in_bits <= 32 and out_bits == int(out_bits) and in_bits == int(in_bits)) \
            or k < 0 or scale <= 0:
        ctx.fail(node, f"bit widths {in_bits:g} -> {out_bits:g} and scales must make a right shift")
    signed, narrow = bool(attribute(node, "signed", 1)), bool(attribute(node, "narrow", 0))
    wide = IntType(int(in_bits), signed)
    grid = OutQuant(wide, scale, 0, wide.lo, wide.hi)
    v = ctx.value(node, 0)
    if isinstance(v, Pending):
        q = v.emit(grid, f"{node.output[0]}/integers")
    else:
        x = ctx.deq(node, 0)
        q = x.act if grid.same_as(x.act.tensor) else ctx.builder.requantize(
            f"{node.name}/integers", x.act, x.scale, out=grid, out_name=f"{node.output[0]}/integers")
    out_type = IntType(int(out_bits), signed)
    lo = out_type.lo + (1 if narrow and signed else 0)
    hi = out_type.hi - (1 if narrow and not signed else 0)
    offset = 0 if k == 0 else {"FLOOR": -(1 << (k - 1)), "CEIL": (1 << (k - 1)) - 1, "ROUND": 0}[mode]
    out = OutQuant(out_type, out_scale, 0, lo, hi)
    act = ctx.builder.affine_integers(node.name, q, 1, offset, k, _TRUNC_ROUNDING[mode], out=out,
                                      out_name=node.output[0])
    ctx.set(node, Deq(act, out_scale))


HANDLERS = {"Quant": quant, "BipolarQuant": bipolar_quant, "Trunc": trunc}
