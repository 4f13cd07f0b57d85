"""ConvTranspose as a convolution of its stride phases, then DepthToSpace and a crop.

With stride s and kernel K, output index o = q*s + r (phase r) is the sum over j of
x[q - j] * w[j*s + r]: for each phase a correlation of x, padded by J - 1 = ceil(K/s) - 1 on
each side, with the phase's taps of w reversed. One Conv2d computes every phase of every output
channel (s*s*Cout channels, in DepthToSpace's order), DepthToSpace interleaves the phases into
the full (H + J - 1)*s output, and a Slice keeps the rows and columns the pads select. No MAC is
spent on the zeros a direct transposed convolution would insert.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import onnx

from .attrs import pair
from .graph import attribute
from .lower import Act, OutQuant
from .qdq import bias_input
from .values import Pending

if TYPE_CHECKING:  # the importer calls these handlers
    from .importer import Importer


def phase_weights(w: np.ndarray, stride: tuple[int, int], groups: int) -> np.ndarray:
    """ConvTranspose weights (Cin, Cout/g, KH, KW) as Conv weights (g * sy*sx * Cout/g, Cin/g, JH, JW):
    group-major, then phase (ry, rx), then output channel, each phase's taps reversed."""
    cin, cog, kh, kw = w.shape
    (sy, sx), cig = stride, cin // groups
    jh, jw = -(-kh // sy), -(-kw // sx)
    padded = np.zeros((cin, cog, jh * sy, jw * sx), dtype=w.dtype)
    padded[:, :, :kh, :kw] = w
    # tap (ty, tx) of phase (ry, rx) is w[.., (J-1-ty)*s + ry, (J-1-tx)*s + rx]
    taps = padded.reshape(groups, cig, cog, jh, sy, jw, sx)[:, :, :, ::-1, :, ::-1, :]
    conv = taps.transpose(0, 4, 6, 2, 1, 3, 5)  # (g, ry, rx, o, ci, ty, tx)
    return np.ascontiguousarray(conv.reshape(groups * sy * sx * cog, cig, jh, jw))


def phase_channels(groups: int, phases: int, cog: int) -> list[int]:
    """DepthToSpace's channel map: output (phase, channel c = group*cog + o) reads conv channel
    (group, phase, o)."""
    return [(c // cog) * phases * cog + p * cog + c % cog for p in range(phases) for c in range(groups * cog)]


def conv_transpose(ctx: Importer, node: onnx.NodeProto) -> None:
    x = ctx.deq(node, 0)
    w = ctx.weights(node, 1)
    if w.values.ndim != 4 or not x.act.is_map:
        ctx.fail(node, "hwgen handles 2-D transposed convolution (NCHW input, weights (Cin, Cout/groups, KH, KW)) only")
    groups = attribute(node, "group", 1)
    cin, cog, kh, kw = w.values.shape
    h, wd, c = x.act.tensor.shape
    if groups < 1 or cin % groups or c != cin:
        ctx.fail(node, f"weights {list(w.values.shape)} with group={groups} do not fit the {c} input channels")
    stride, dilation = pair(node, "strides", 1), pair(node, "dilations", 1)
    if dilation != (1, 1):
        ctx.fail(node, f"dilations {list(dilation)}: hwgen handles undilated transposed convolution only")
    if attribute(node, "output_shape") is not None:
        ctx.fail(node, "the output_shape attribute is not supported; give pads and output_padding")
    auto_pad = attribute(node, "auto_pad", "NOTSET")
    if auto_pad not in ("NOTSET", "VALID"):
        ctx.fail(node, f"auto_pad {auto_pad!r}: hwgen takes explicit pads")
    pads = list(attribute(node, "pads", [0, 0, 0, 0])) if auto_pad == "NOTSET" else [0, 0, 0, 0]
    out_pad = list(attribute(node, "output_padding", [0, 0]))
    if len(pads) != 4 or len(out_pad) != 2 or any(p < 0 for p in pads + out_pad):
        ctx.fail(node, f"pads {pads} and output_padding {out_pad} must be non-negative, for 2 axes")
    if any(p >= s for p, s in zip(out_pad, stride)):
        ctx.fail(node, f"output_padding {out_pad} must be smaller than the strides {list(stride)}")
    full = [(n - 1) * s + k + p for n, s, k, p in zip((h, wd), stride, (kh, kw), out_pad)]
    out_hw = [f - pads[i] - pads[i + 2] for i, f in enumerate(full)]
    if any(n <= 0 for n in out_hw):
        ctx.fail(node, f"pads {pads} leave an empty output")

    # weight scale and zero point per output channel (ONNX layout: axis 1, within a group)
    cout = groups * cog
    scale = w.scale.reshape(-1)
    zp = w.zero_point.reshape(-1)
    for name, a in (("scale", scale), ("zero point", zp)):
        if a.size not in (1, cog, cout) or (a.size > 1 and w.axis != 1):
            ctx.fail(node, f"weight {name} must be per tensor or per output channel (axis 1)")
    scale = np.resize(scale, cout) if scale.size in (1, cog) else scale
    zp = np.resize(zp, cout) if zp.size in (1, cog) else zp
    w_eff = _subtract_zero_point(w.values, zp, groups)
    weights = phase_weights(w_eff, stride, groups)
    phases = stride[0] * stride[1]
    channels = phase_channels(groups, phases, cog)
    conv_scale = np.empty(len(channels))
    conv_scale[channels] = np.tile(scale, phases)
    bias, bias_scale = bias_input(ctx, node, 2)
    if bias is not None:
        if bias.size not in (1, cout):
            ctx.fail(node, f"bias has {bias.size} values for {cout} output channels")
        conv_bias = np.empty(len(channels), dtype=bias.dtype)
        conv_bias[channels] = np.tile(np.broadcast_to(bias, (cout,)), phases)
        if bias_scale is not None:
            conv_bias_scale = np.empty(len(channels))
            conv_bias_scale[channels] = np.tile(np.broadcast_to(bias_scale, (cout,)), phases)
            bias_scale = conv_bias_scale
        bias = conv_bias
    jh, jw = weights.shape[2:]
    rows = [-(-(pads[i] + out_hw[i]) // stride[i]) for i in range(2)]  # phase rows and columns needed
    conv_pads = (jh - 1, jw - 1, max(0, rows[0] - h), max(0, rows[1] - wd))

    def emit(out: OutQuant, name: str) -> Act:
        y = ctx.builder.conv(f"{node.name}/phases", x.act, x.scale, weights, 0, conv_scale, bias, bias_scale,
                             stride=(1, 1), dilation=(1, 1), pads=conv_pads, groups=groups, out=out,
                             out_name=f"{name}/phases", op=node.op_type)
        y = ctx.builder.depth_to_space(f"{node.name}/interleave", y, stride, channels, out_name=f"{name}/full")
        full_h, full_w, _ = y.tensor.shape
        if (pads[0], pads[1], out_hw[0], out_hw[1]) == (0, 0, full_h, full_w):
            return y
        return ctx.builder.slice(node.name, y, (pads[0], pads[1], 0), (pads[0] + out_hw[0], pads[1] + out_hw[1], cout),
                                 onnx_shape=(1, cout, *out_hw), out_name=name)

    ctx.set(node, Pending(node, emit))


def _subtract_zero_point(w: np.ndarray, zp: np.ndarray, groups: int) -> np.ndarray:
    """w - the zero point of each output channel (channel g*cog + o is output o of group g)."""
    cin, cog = w.shape[:2]
    per_group = zp.reshape(groups, cog)
    return w.astype(np.int64) - per_group[np.arange(cin) // (cin // groups)][:, :, None, None]


HANDLERS = {"ConvTranspose": conv_transpose}
