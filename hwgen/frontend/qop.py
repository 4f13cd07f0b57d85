"""QOperator graphs: ops that take integer tensors and their quantization parameters directly.

Standard ONNX QLinearConv, QLinearMatMul, ConvInteger and MatMulInteger, and the
com.microsoft contrib ops that onnxruntime's QOperator output really contains
(QGemm, QLinearAdd, QLinearGlobalAveragePool, QLinearAveragePool).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import onnx

from .attrs import check_kernel_shape, pool_geometry, window_geometry
from .graph import attribute
from .lower import Act, OutQuant, check_scales
from .qdq import _out_quant
from .values import Const

if TYPE_CHECKING:  # the importer calls these handlers
    from .importer import Importer


def _input(ctx: Importer, node: onnx.NodeProto, x_idx: int, scale_idx: int | None, zp_idx: int) -> tuple[Act, float]:
    """An integer input with its (checked or newly bound) scale and zero point."""
    x = ctx.act(node, x_idx)
    scale = float(check_scales(ctx.scalar(node, scale_idx), node.name, node.op_type, f"scale {node.input[scale_idx]!r}")
                  ) if scale_idx is not None else 1.0
    zp = ctx.scalar(node, zp_idx, 0)
    zp_array = ctx.const(node, zp_idx)
    if zp_array is not None and zp_array.dtype != x.tensor.dtype.numpy_dtype():
        ctx.fail(node, f"zero point type {zp_array.dtype} differs from the input type {x.tensor.dtype}")
    return ctx.bind(node, x, scale, int(zp)), scale


def _weights(ctx: Importer, node: onnx.NodeProto, idx: int) -> np.ndarray:
    v = ctx.value(node, idx)
    if not isinstance(v, Const) or v.values.dtype.kind not in "iu":
        ctx.fail(node, f"weights {node.input[idx]!r} must be a constant integer tensor")
    return v.values


def _per_channel(ctx: Importer, node: onnx.NodeProto, idx: int | None, channels: int, default):
    a = ctx.const(node, idx) if idx is not None else None
    if a is None:
        return np.full(channels, default)
    if a.size not in (1, channels):
        ctx.fail(node, f"{node.input[idx]!r} has {a.size} values for {channels} output channels")
    if a.dtype.kind == "f":  # a scale
        check_scales(a, node.name, node.op_type, f"scale {node.input[idx]!r}")
    return np.broadcast_to(a.reshape(-1), (channels,))


def _conv(ctx: Importer, node: onnx.NodeProto, *, x_idx, x_scale_idx, x_zp_idx, w_idx, w_scale_idx, w_zp_idx,
          out: OutQuant | None, bias_idx: int | None) -> None:
    x, x_scale = _input(ctx, node, x_idx, x_scale_idx, x_zp_idx)
    w = _weights(ctx, node, w_idx)
    if w.ndim != 4 or len(x.onnx_shape) != 4:
        ctx.fail(node, "hwgen handles 2-D convolution (NCHW input, OIHW weights) only")
    check_kernel_shape(node, w.shape[2:])
    cout = w.shape[0]
    w_scale = _per_channel(ctx, node, w_scale_idx, cout, 1.0).astype(np.float64)
    w_zp = _per_channel(ctx, node, w_zp_idx, cout, 0).astype(np.int64)
    bias = ctx.const(node, bias_idx) if bias_idx is not None else None
    stride, dilation, pads = window_geometry(node, x.tensor.shape[:2], w.shape[2:])
    ctx.set(node, ctx.builder.conv(node.name, x, x_scale, w, w_zp, w_scale, bias,
                                   None if bias is None else x_scale * w_scale, stride=stride, dilation=dilation,
                                   pads=pads, groups=attribute(node, "group", 1), out=out, out_name=node.output[0],
                                   op=node.op_type))


def qlinear_conv(ctx: Importer, node: onnx.NodeProto) -> None:
    _conv(ctx, node, x_idx=0, x_scale_idx=1, x_zp_idx=2, w_idx=3, w_scale_idx=4, w_zp_idx=5,
          out=_out_quant(ctx, node, 6, 7), bias_idx=8)


def conv_integer(ctx: Importer, node: onnx.NodeProto) -> None:
    _conv(ctx, node, x_idx=0, x_scale_idx=None, x_zp_idx=2, w_idx=1, w_scale_idx=None, w_zp_idx=3,
          out=None, bias_idx=None)


def _matmul(ctx: Importer, node: onnx.NodeProto, *, a_idx, a_scale_idx, a_zp_idx, b_idx, b_scale_idx, b_zp_idx,
            out: OutQuant | None, transposed=False, alpha=1.0, bias_idx=None) -> None:
    x, x_scale = _input(ctx, node, a_idx, a_scale_idx, a_zp_idx)
    w = _weights(ctx, node, b_idx)
    if w.ndim not in (2, 3) or (transposed and w.ndim != 2):
        ctx.fail(node, "the constant operand must be a matrix (or a stack of matrices)")
    matrix = w if transposed else np.swapaxes(w, -1, -2)  # (N, K) or (G, N, K)
    n = matrix.shape[-2]
    w_scale = _per_channel(ctx, node, b_scale_idx, n, 1.0).astype(np.float64) * alpha
    w_zp = _per_channel(ctx, node, b_zp_idx, n, 0).astype(np.int64)
    bias = ctx.const(node, bias_idx) if bias_idx is not None else None
    ctx.set(node, ctx.builder.dense(node.name, x, x_scale, matrix, w_zp, w_scale, bias,
                                    None if bias is None else x_scale * w_scale, out=out,
                                    out_name=node.output[0], op=node.op_type))


def qlinear_matmul(ctx: Importer, node: onnx.NodeProto) -> None:
    _matmul(ctx, node, a_idx=0, a_scale_idx=1, a_zp_idx=2, b_idx=3, b_scale_idx=4, b_zp_idx=5,
            out=_out_quant(ctx, node, 6, 7))


def matmul_integer(ctx: Importer, node: onnx.NodeProto) -> None:
    _matmul(ctx, node, a_idx=0, a_scale_idx=None, a_zp_idx=2, b_idx=1, b_scale_idx=None, b_zp_idx=3, out=None)


def qgemm(ctx: Importer, node: onnx.NodeProto) -> None:
    """com.microsoft QGemm: A, a_scale, a_zp, B, b_scale, b_zp, C (int32, scale a*b*alpha), y_scale, y_zp."""
    if attribute(node, "transA", 0):
        ctx.fail(node, "transA=1 is not supported")
    if len(node.input) < 8 or not node.input[7]:
        ctx.fail(node, "QGemm with a float output (no y_scale) is not supported")
    alpha = float(attribute(node, "alpha", 1.0))
    if alpha <= 0:
        ctx.fail(node, f"alpha={alpha} must be positive")
    _matmul(ctx, node, a_idx=0, a_scale_idx=1, a_zp_idx=2, b_idx=3, b_scale_idx=4, b_zp_idx=5,
            out=_out_quant(ctx, node, 7, 8), transposed=bool(attribute(node, "transB", 0)), alpha=alpha,
            bias_idx=6)


def qlinear_add(ctx: Importer, node: onnx.NodeProto) -> None:
    a, a_scale = _input(ctx, node, 0, 1, 2)
    b, b_scale = _input(ctx, node, 3, 4, 5)
    ctx.set(node, ctx.builder.add(node.name, a, a_scale, b, b_scale, out=_out_quant(ctx, node, 6, 7),
                                  out_name=node.output[0], op=node.op_type))


def _nchw(ctx: Importer, node: onnx.NodeProto, x: Act) -> None:
    if attribute(node, "channels_last", 0):
        ctx.fail(node, "channels_last=1 is not supported (hwgen reads NCHW graphs)")
    if len(x.onnx_shape) != 4:
        ctx.fail(node, "hwgen pools NCHW feature maps only")


def qlinear_global_average_pool(ctx: Importer, node: onnx.NodeProto) -> None:
    x, x_scale = _input(ctx, node, 0, 1, 2)
    _nchw(ctx, node, x)
    ctx.set(node, ctx.builder.global_avgpool(node.name, x, x_scale, out=_out_quant(ctx, node, 3, 4),
                                             out_name=node.output[0], op=node.op_type))


def qlinear_average_pool(ctx: Importer, node: onnx.NodeProto) -> None:
    x, x_scale = _input(ctx, node, 0, 1, 2)
    _nchw(ctx, node, x)
    kernel, stride, dilation, pads = pool_geometry(node, x.tensor.shape[:2])
    if dilation != (1, 1):
        ctx.fail(node, "dilated average pooling is not supported")
    if attribute(node, "ceil_mode", 0) and pads != window_geometry(node, x.tensor.shape[:2], kernel)[2]:
        ctx.fail(node, "ceil_mode=1 that adds windows is not supported for average pooling")
    ctx.set(node, ctx.builder.avgpool(node.name, x, x_scale, kernel=kernel, stride=stride, pads=pads,
                                      count_include_pad=bool(attribute(node, "count_include_pad", 0)),
                                      out=_out_quant(ctx, node, 3, 4), out_name=node.output[0], op=node.op_type))


def dynamic_quantize_linear(ctx: Importer, node: onnx.NodeProto) -> None:
    ctx.fail(node, "dynamic quantization computes activation scales at run time, which fixed-point hardware "
                   "cannot do exactly; quantize the model statically (onnxruntime.quantization.quantize_static)")


HANDLERS = {
    "QLinearConv": qlinear_conv,
    "ConvInteger": conv_integer,
    "QLinearMatMul": qlinear_matmul,
    "MatMulInteger": matmul_integer,
}

#: onnxruntime's contrib ops (domain com.microsoft) that QOperator graphs use.
MICROSOFT_HANDLERS = {
    "QGemm": qgemm,
    "QLinearAdd": qlinear_add,
    "QLinearGlobalAveragePool": qlinear_global_average_pool,
    "QLinearAveragePool": qlinear_average_pool,
}

#: Ops recognised only to refuse them with the reason.
REFUSALS = {
    "DynamicQuantizeLinear": dynamic_quantize_linear,
}
