"""QDQ graphs: float ops between DequantizeLinear and QuantizeLinear, as quantize_static writes them.

A float op on dequantized inputs becomes `Pending`; the QuantizeLinear after it
(through any Relu / Clip, which become clamp bounds) fixes the output type and
emits the integer IR node. Shape ops and MaxPool also work on integer tensors
directly, as QOperator graphs use them.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

import numpy as np
import onnx

from ..fixed import IntType, type_for_range
from .attrs import check_kernel_shape, pool_geometry, window_geometry
from .graph import attribute
from .lower import Act, OutQuant, check_scales, ir_shape_of
from .values import Const, Deq, Pending, QConst

if TYPE_CHECKING:  # the importer calls these handlers
    from .importer import Importer


def _out_quant(ctx: Importer, node: onnx.NodeProto, scale_idx: int, zp_idx: int, lo=-math.inf, hi=math.inf,
               default_dtype=np.uint8) -> OutQuant:
    scale = ctx.scalar(node, scale_idx)
    zp = ctx.const(node, zp_idx)
    if zp is not None and zp.size != 1:
        ctx.fail(node, "activations must be quantized per tensor (one zero point)")
    if zp is not None and zp.dtype.kind not in "iu":
        ctx.fail(node, f"quantizes to {zp.dtype}; hwgen quantizes to integers (8, 16 or 32 bits)")
    dtype = IntType.from_numpy(zp.dtype if zp is not None else default_dtype)
    if scale is None or not np.isfinite(scale) or scale <= 0:
        ctx.fail(node, f"scale must be a positive finite number, not {scale!r}")
    return OutQuant.of(dtype, scale, int(zp.reshape(()).item()) if zp is not None else 0, lo, hi)


# -- QuantizeLinear / DequantizeLinear ---------------------------------------------------


def dequantize_linear(ctx: Importer, node: onnx.NodeProto) -> None:
    if ctx.g.is_const(node.input[0]):
        values = ctx.const(node, 0)
        if values.dtype.kind not in "iu":
            ctx.fail(node, f"dequantizes {values.dtype} values; hwgen needs integer weights")
        scale = check_scales(ctx.const(node, 1), node.name, node.op_type, "weight scale")
        zp = ctx.const(node, 2, np.zeros(1, dtype=np.int64)).astype(np.int64)
        if scale.ndim > 1:
            ctx.fail(node, "blocked quantization of weights is not supported")
        axis = attribute(node, "axis", 1)
        ctx.set(node, QConst(values, scale, zp, axis % max(values.ndim, 1)))
        return
    act = ctx.act(node, 0, as_map=False)
    scale = ctx.const(node, 1)
    zp = ctx.const(node, 2, np.zeros(1, dtype=np.int64))
    if scale.size != 1 or zp.size != 1:
        ctx.fail(node, "activations must be quantized per tensor (one scale, one zero point)")
    check_scales(scale, node.name, node.op_type)
    act = ctx.bind(node, act, float(scale.reshape(())), int(zp.reshape(())))
    ctx.values[node.input[0]] = act
    ctx.set(node, Deq(act, float(scale.reshape(()))))


def quantize_linear(ctx: Importer, node: onnx.NodeProto) -> None:
    v = ctx.value(node, 0)
    if isinstance(v, Pending):
        out = _out_quant(ctx, node, 1, 2, v.lo, v.hi)
        ctx.set(node, v.emit(out, node.output[0]))
    elif isinstance(v, Deq):
        out = _out_quant(ctx, node, 1, 2)
        if out.same_as(v.act.tensor) and not out.clamps:
            ctx.set(node, v.act)  # Q(DQ(x)) with the same parameters is x
        else:
            ctx.set(node, ctx.builder.requantize(node.name, v.act, v.scale, out=out, out_name=node.output[0]))
    elif isinstance(v, Const):
        ctx.fail(node, "quantizes a constant that is not a weight; hwgen needs it as an initializer")
    else:
        ctx.deq(node, 0)  # raises with the precise reason


# -- activations folded into clamp bounds ------------------------------------------------


def _clamp(ctx: Importer, node: onnx.NodeProto, lo: float, hi: float) -> None:
    v = ctx.value(node, 0)
    if isinstance(v, Act):  # Clip of a QuantizeLinear's integers (QCDQ): a narrower integer type
        t = v.tensor
        lo = t.dtype.lo if lo == -math.inf else max(t.dtype.lo, math.ceil(lo))
        hi = t.dtype.hi if hi == math.inf else min(t.dtype.hi, math.floor(hi))
        if lo > hi:
            ctx.fail(node, f"clips to the empty range [{lo}, {hi}]")
        narrow = type_for_range(min(lo, t.zero_point), max(hi, t.zero_point))
        out = OutQuant(narrow, t.scale[0], t.zero_point, lo, hi)
        ctx.set(node, ctx.builder.requantize(node.name, v, t.scale[0], out=out, out_name=node.output[0]))
        return
    if isinstance(v, Pending):
        ctx.set(node, dataclasses.replace(v, lo=max(v.lo, lo), hi=min(v.hi, hi)))
        return
    x = ctx.deq(node, 0)

    def emit(out: OutQuant, name: str) -> Act:
        return ctx.builder.requantize(node.name, x.act, x.scale, out=out, out_name=name)

    ctx.set(node, Pending(node, emit, lo, hi))


def relu(ctx: Importer, node: onnx.NodeProto) -> None:
    _clamp(ctx, node, 0.0, math.inf)


def clip(ctx: Importer, node: onnx.NodeProto) -> None:
    if ctx.g.opset < 11:
        lo, hi = attribute(node, "min", -math.inf), attribute(node, "max", math.inf)
    else:
        lo, hi = ctx.scalar(node, 1, -math.inf), ctx.scalar(node, 2, math.inf)
    _clamp(ctx, node, float(lo), float(hi))


# -- multiply-accumulate ------------------------------------------------------------------


def bias_input(ctx: Importer, node: onnx.NodeProto, index: int):
    """(values, scale) of an optional bias: DequantizeLinear(int32) keeps integers, float has scale None."""
    v = ctx.value(node, index)
    if v is None:
        return None, None
    if isinstance(v, QConst):
        if np.any(v.zero_point != 0):
            ctx.fail(node, "bias with a non-zero zero point")
        return v.values.reshape(-1), v.scale.reshape(-1)
    if isinstance(v, Const):
        return v.values.reshape(-1), None
    ctx.fail(node, f"bias {node.input[index]!r} must be constant")


def _per_output(ctx: Importer, node: onnx.NodeProto, w: QConst, out_axis: int, channels: int):
    """Weight scale and zero point per output channel (they must be per tensor or along `out_axis`)."""
    for name, a in (("scale", w.scale), ("zero point", w.zero_point)):
        if a.size not in (1, channels) or (a.size > 1 and w.axis != out_axis):
            ctx.fail(node, f"weight {name} must be per tensor or per output channel")
    return (np.broadcast_to(w.scale.reshape(-1), (channels,)),
            np.broadcast_to(w.zero_point.reshape(-1), (channels,)))


def conv(ctx: Importer, node: onnx.NodeProto) -> None:
    x = ctx.deq(node, 0)
    w = ctx.weights(node, 1)
    if w.values.ndim != 4 or len(x.act.onnx_shape) != 4:
        ctx.fail(node, "hwgen handles 2-D convolution (NCHW input, OIHW weights) only")
    check_kernel_shape(node, w.values.shape[2:])
    w_scale, w_zp = _per_output(ctx, node, w, 0, w.values.shape[0])
    bias, bias_scale = bias_input(ctx, node, 2)
    h, wd, _ = x.act.tensor.shape
    stride, dilation, pads = window_geometry(node, (h, wd), w.values.shape[2:])

    def emit(out: OutQuant, name: str) -> Act:
        return ctx.builder.conv(node.name, x.act, x.scale, w.values, w_zp, w_scale, bias, bias_scale,
                                stride=stride, dilation=dilation, pads=pads, groups=attribute(node, "group", 1),
                                out=out, out_name=name, op=node.op_type)

    ctx.set(node, Pending(node, emit, acc_scale=x.scale * w_scale.astype(np.float64)))


def _dense(ctx: Importer, node: onnx.NodeProto, x: Deq, w: QConst, transposed: bool, alpha: float,
           bias_index: int | None, beta: float = 1.0) -> None:
    """w is (K, N) unless `transposed` ((N, K)); alpha scales the product, beta the bias."""
    if w.values.ndim != 2:
        ctx.fail(node, "weights must be a matrix")
    if alpha <= 0:
        ctx.fail(node, f"alpha={alpha} must be positive")
    n = w.values.shape[0] if transposed else w.values.shape[1]
    w_scale, w_zp = _per_output(ctx, node, w, 0 if transposed else 1, n)
    matrix = w.values if transposed else w.values.T
    bias, bias_scale = bias_input(ctx, node, bias_index) if bias_index is not None else (None, None)
    if bias is not None and beta != 1.0:
        bias, bias_scale = bias.astype(np.float64) * beta * (bias_scale if bias_scale is not None else 1.0), None

    def emit(out: OutQuant, name: str) -> Act:
        return ctx.builder.dense(node.name, x.act, x.scale, matrix, w_zp, w_scale * alpha, bias,
                                 bias_scale if bias_scale is None else bias_scale * alpha,
                                 out=out, out_name=name, op=node.op_type)

    ctx.set(node, Pending(node, emit, acc_scale=x.scale * w_scale.astype(np.float64) * alpha))


def gemm(ctx: Importer, node: onnx.NodeProto) -> None:
    if attribute(node, "transA", 0):
        ctx.fail(node, "transA=1 is not supported")
    _dense(ctx, node, ctx.deq(node, 0), ctx.weights(node, 1), bool(attribute(node, "transB", 0)),
           float(attribute(node, "alpha", 1.0)), 2, float(attribute(node, "beta", 1.0)))


def matmul(ctx: Importer, node: onnx.NodeProto) -> None:
    _dense(ctx, node, ctx.deq(node, 0), ctx.weights(node, 1), False, 1.0, None)


# -- pools and elementwise -----------------------------------------------------------------


def _exact(ctx: Importer, node: onnx.NodeProto, v, build) -> None:
    """Ops that only move integers (max, reshape) run exactly on the integer tensor; on a
    dequantized input their result is the dequantization of that, on the same grid."""
    act = build(node.output[0])
    ctx.set(node, Deq(act, v.scale) if isinstance(v, Deq) else act)


def maxpool(ctx: Importer, node: onnx.NodeProto) -> None:
    if len(node.output) > 1 and node.output[1]:
        ctx.fail(node, "the Indices output is not supported")
    v = ctx.value(node, 0)
    x = ctx.deq(node, 0).act if isinstance(v, Deq) else ctx.act(node, 0)
    if len(x.onnx_shape) != 4:
        ctx.fail(node, "hwgen pools NCHW feature maps only")
    kernel, stride, dilation, pads = pool_geometry(node, x.tensor.shape[:2])

    def pool(name: str) -> Act:
        return ctx.builder.maxpool(node.name, x, kernel=kernel, stride=stride, dilation=dilation, pads=pads,
                                   out_name=name)

    _exact(ctx, node, v, pool)


def average_pool(ctx: Importer, node: onnx.NodeProto) -> None:
    x = ctx.deq(node, 0)
    if len(x.act.onnx_shape) != 4:
        ctx.fail(node, "hwgen pools NCHW feature maps only")
    if attribute(node, "dilations") is not None and any(d != 1 for d in attribute(node, "dilations")):
        ctx.fail(node, "dilated average pooling is not supported")
    kernel, stride, dilation, pads = pool_geometry(node, x.act.tensor.shape[:2])
    if attribute(node, "ceil_mode", 0) and pads != window_geometry(node, x.act.tensor.shape[:2], kernel)[2]:
        ctx.fail(node, "ceil_mode=1 that adds windows is not supported for average pooling")
    include = bool(attribute(node, "count_include_pad", 0))

    def emit(out: OutQuant, name: str) -> Act:
        return ctx.builder.avgpool(node.name, x.act, x.scale, kernel=kernel, stride=stride, pads=pads,
                                   count_include_pad=include, out=out, out_name=name, op=node.op_type)

    ctx.set(node, Pending(node, emit))


def global_average_pool(ctx: Importer, node: onnx.NodeProto) -> None:
    x = ctx.deq(node, 0)
    if len(x.act.onnx_shape) != 4:
        ctx.fail(node, "hwgen pools NCHW feature maps only")

    def emit(out: OutQuant, name: str) -> Act:
        return ctx.builder.global_avgpool(node.name, x.act, x.scale, out=out, out_name=name, op=node.op_type)

    ctx.set(node, Pending(node, emit))


def concat(ctx: Importer, node: onnx.NodeProto) -> None:
    """Along any axis but the batch: an NCHW map's axis is the IR's (H, W, C) one it stands for; other
    tensors (and 4-D ones held flat) are held in ONNX order."""
    values = [ctx.value(node, i) for i in range(len(node.input))]
    xs = [v.act if isinstance(v, Deq) else v for v in values]
    if any(isinstance(x, Act) and x.flat for x in xs) and not all(isinstance(x, Act) and x.flat for x in xs):
        xs = [ctx.deq(node, i).act if isinstance(v, Deq) else ctx.act(node, i) for i, v in enumerate(values)]
    xs = [x if isinstance(x, Act) else ctx.act(node, i) for i, x in enumerate(xs)]
    rank = len(xs[0].onnx_shape)
    axis = attribute(node, "axis", 1)
    if not -rank <= axis < rank or any(len(x.onnx_shape) != rank for x in xs):
        ctx.fail(node, f"axis {axis} does not fit inputs of shapes {[list(x.onnx_shape) for x in xs]}")
    axis %= rank
    ir_axis = xs[0].ir_axis(axis)
    if ir_axis is None:
        ctx.fail(node, "concatenates along the batch axis; hwgen compiles one sample")
    if any(x.chw is not None and not x.is_map for x in xs):
        ctx.fail(node, "concatenates flattened feature maps, whose values hwgen holds in channels-last order")
    for x in xs:
        if x.onnx_shape[:axis] + x.onnx_shape[axis + 1:] != xs[0].onnx_shape[:axis] + xs[0].onnx_shape[axis + 1:]:
            ctx.fail(node, f"cannot concatenate shapes {[list(x.onnx_shape) for x in xs]} on axis {axis}")
    shape = list(xs[0].onnx_shape)
    shape[axis] = sum(x.onnx_shape[axis] for x in xs)
    chw = ir_shape_of(tuple(shape), f"output of {node.name!r}")[1] if xs[0].is_map else None

    def build(out: OutQuant, name: str) -> Act:
        parts = []
        for i, (v, x) in enumerate(zip(values, xs)):
            if not out.same_as(x.tensor) or out.clamps:
                x = ctx.builder.requantize(f"{node.name}/requant{i}", x, v.scale if isinstance(v, Deq) else
                                           x.tensor.scale[0], out=out, out_name=f"{name}/in{i}")
            parts.append(x)
        return ctx.builder.concat(node.name, parts, axis=ir_axis, out_name=name, onnx_out_shape=tuple(shape),
                                  chw=chw)

    if all(isinstance(v, Act) for v in values):
        t = xs[0].tensor
        if any(x.tensor.dtype != t.dtype or x.tensor.zero_point != t.zero_point or
               np.float32(x.tensor.scale[0]) != np.float32(t.scale[0]) for x in xs):
            ctx.fail(node, "concatenates integer tensors of different quantization")
        ctx.set(node, build(OutQuant(t.dtype, t.scale[0], t.zero_point, t.dtype.lo, t.dtype.hi), node.output[0]))
    else:
        if not all(isinstance(v, Deq) for v in values):
            ctx.fail(node, "mixes integer and float inputs")
        ctx.set(node, Pending(node, build))


# -- shape ops ------------------------------------------------------------------------------


def _reshaped(ctx: Importer, node: onnx.NodeProto, x: Act, shape: tuple[int, ...]):
    """(IR shape, chw) of x viewed as ONNX `shape`, if no data has to move in the channels-last IR."""
    if int(np.prod(shape)) != x.tensor.size:
        ctx.fail(node, f"cannot reshape {list(x.onnx_shape)} to {list(shape)}")
    sample = shape[1:] if len(shape) >= 2 and shape[0] == 1 else shape
    if len(sample) == 1:
        return (sample[0],), x.chw  # flattening keeps the IR order
    ir_shape, chw = ir_shape_of(tuple(shape), f"output of {node.name!r}")
    if chw == x.chw or (chw is None and x.chw is None):
        return ir_shape, chw
    ctx.fail(node, f"reshaping {list(x.onnx_shape)} to {list(shape)} would reorder data in the "
                   "channels-last layout")


def _target_shape(ctx: Importer, node: onnx.NodeProto, x_shape: tuple[int, ...]) -> tuple[int, ...]:
    if node.op_type == "Flatten":
        axis = attribute(node, "axis", 1) % (len(x_shape) + 1)
        return (int(np.prod(x_shape[:axis])), int(np.prod(x_shape[axis:])))
    known = ctx.onnx_shape(node.output[0])
    if known is not None:
        return known
    if node.op_type == "Reshape":
        target = [int(d) for d in ctx.const(node, 1)]
        target = [x_shape[i] if d == 0 else d for i, d in enumerate(target)]
        if -1 in target:
            rest = int(np.prod([d for d in target if d != -1]))
            target[target.index(-1)] = int(np.prod(x_shape)) // max(rest, 1)
        return tuple(target)
    ctx.fail(node, "output shape unknown")


def reshape(ctx: Importer, node: onnx.NodeProto) -> None:
    """Reshape, Flatten, Squeeze, Unsqueeze: on integer tensors directly, on float ones until a Q."""
    v = ctx.value(node, 0)
    x = v.act if isinstance(v, Deq) else ctx.act(node, 0, as_map=False)
    shape = _target_shape(ctx, node, x.onnx_shape)
    ir_shape, chw = _reshaped(ctx, node, x, shape)

    def view(name: str) -> Act:
        if ir_shape == x.tensor.shape:
            return Act(x.tensor, tuple(shape), chw)
        return ctx.builder.reshape(node.name, x, ir_shape=ir_shape, onnx_shape=shape, chw=chw, out_name=name)

    _exact(ctx, node, v, view)


def identity(ctx: Importer, node: onnx.NodeProto) -> None:
    ctx.set(node, ctx.value(node, 0))


HANDLERS = {
    "QuantizeLinear": quantize_linear,
    "DequantizeLinear": dequantize_linear,
    "Relu": relu,
    "Clip": clip,
    "Conv": conv,
    "Gemm": gemm,
    "MatMul": matmul,
    "MaxPool": maxpool,
    "AveragePool": average_pool,
    "GlobalAveragePool": global_average_pool,
    "Concat": concat,
    "Reshape": reshape,
    "Flatten": reshape,
    "Squeeze": reshape,
    "Unsqueeze": reshape,
    "Identity": identity,
}
