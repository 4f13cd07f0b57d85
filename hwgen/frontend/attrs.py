"""Convolution and pooling geometry from ONNX attributes (auto_pad, ceil_mode, defaults)."""

from __future__ import annotations

import math

import onnx

from ..errors import UnsupportedModelError
from ..ir import conv_output_hw
from .graph import attribute


def pair(node: onnx.NodeProto, name: str, default: int) -> tuple[int, int]:
    value = attribute(node, name, None)
    if value is None:
        return (default, default)
    if not isinstance(value, list) or not all(isinstance(v, int) for v in value):
        raise UnsupportedModelError(f"attribute {name}={value!r} must be a list of integers", node=node.name,
                                    op=node.op_type)
    if len(value) != 2:
        raise UnsupportedModelError(f"attribute {name}={list(value)}: hwgen handles 2-D ops only",
                                    node=node.name, op=node.op_type)
    if any(v <= 0 for v in value):
        raise UnsupportedModelError(f"attribute {name}={list(value)} must be positive", node=node.name,
                                    op=node.op_type)
    return (int(value[0]), int(value[1]))


def check_kernel_shape(node: onnx.NodeProto, weight_kernel) -> None:
    """A Conv's optional kernel_shape must be its weights' (ONNX infers it from them)."""
    declared = attribute(node, "kernel_shape", [])
    if declared and tuple(declared) != tuple(int(k) for k in weight_kernel):
        raise UnsupportedModelError(f"attribute kernel_shape={list(declared)} contradicts the weights' "
                                    f"{'x'.join(map(str, weight_kernel))} kernel", node=node.name, op=node.op_type)


def _auto_pads(node, mode: str, in_hw, kernel, stride, dilation) -> tuple[int, int, int, int]:
    if mode == "VALID":
        return (0, 0, 0, 0)
    begin, end = [], []
    for size, k, s, d in zip(in_hw, kernel, stride, dilation):
        out = math.ceil(size / s)
        total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        small, large = total // 2, total - total // 2
        begin.append(small if mode == "SAME_UPPER" else large)
        end.append(large if mode == "SAME_UPPER" else small)
    return (begin[0], begin[1], end[0], end[1])


def window_geometry(node: onnx.NodeProto, in_hw, kernel) -> tuple[tuple, tuple, tuple]:
    """(stride, dilation, pads as top, left, bottom, right) of a Conv or pool."""
    stride = pair(node, "strides", 1)
    dilation = pair(node, "dilations", 1)
    mode = attribute(node, "auto_pad", "NOTSET")
    if mode in ("SAME_UPPER", "SAME_LOWER", "VALID"):
        pads = _auto_pads(node, mode, in_hw, kernel, stride, dilation)
    elif mode == "NOTSET":
        pads = tuple(attribute(node, "pads", [0, 0, 0, 0]))
        if len(pads) != 4:
            raise UnsupportedModelError(f"pads={list(pads)}: hwgen handles 2-D ops only", node=node.name,
                                        op=node.op_type)
        if any(p < 0 for p in pads):
            raise UnsupportedModelError(f"negative pads {list(pads)}", node=node.name, op=node.op_type)
    else:
        raise UnsupportedModelError(f"unknown auto_pad {mode!r}", node=node.name, op=node.op_type)
    oh, ow = conv_output_hw(in_hw, kernel, stride, dilation, pads)
    if oh <= 0 or ow <= 0:
        raise UnsupportedModelError(f"the window {kernel} does not fit the {in_hw[0]}x{in_hw[1]} input",
                                    node=node.name, op=node.op_type)
    return stride, dilation, pads


def pool_geometry(node: onnx.NodeProto, in_hw) -> tuple[tuple, tuple, tuple, tuple]:
    """(kernel, stride, dilation, pads) of MaxPool / AveragePool, ceil_mode turned into extra end pads."""
    kernel = pair(node, "kernel_shape", 0)
    if attribute(node, "kernel_shape") is None:
        raise UnsupportedModelError("kernel_shape is required", node=node.name, op=node.op_type)
    stride, dilation, pads = window_geometry(node, in_hw, kernel)
    if attribute(node, "ceil_mode", 0):
        extra = []
        for axis in range(2):
            span = in_hw[axis] + pads[axis] + pads[axis + 2] - dilation[axis] * (kernel[axis] - 1) - 1
            out = -(-span // stride[axis]) + 1
            if (out - 1) * stride[axis] >= in_hw[axis] + pads[axis]:  # last window would start in padding
                out -= 1
            window = dilation[axis] * (kernel[axis] - 1) + 1
            extra.append(max(0, (out - 1) * stride[axis] + window - (in_hw[axis] + pads[axis] + pads[axis + 2])))
        pads = (pads[0], pads[1], pads[2] + extra[0], pads[3] + extra[1])
    return kernel, stride, dilation, pads
