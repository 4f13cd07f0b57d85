"""detect.h / detect.c: the SSD post-processing of `hwgen.detect` in C, for the model's head outputs.

The C reads the integer core's outputs as `hwgen_<model>_run` writes them. Everything a float
function would compute per integer value (a score: sigmoid of the dequantized logit; a box size
under `exp`) is a table made here by `hwgen.detect` itself, and the anchors are hwgen.detect's
float32 anchors, so the C and Python detections are the same bit for bit (detect.c keeps one
rounding per operation: `#pragma STDC FP_CONTRACT OFF`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from ..detect import Detection, detect_outputs, score_of, size_of, ssd_anchors
from ..errors import UnsupportedModelError
from ..fixed import dequantize
from ..ir import Graph
from ..modelconfig import DetectConfig, NmsKind
from .types import c_float

__all__ = ["DetectHead", "detect_context", "head_ports", "dequantized_outputs", "python_detections",
           "encode_detections", "decode_detections"]

MAX_TABLE_BITS = 8


@dataclass(frozen=True)
class DetectHead:
    """A head output as detect.c reads it: which core output, and its quantization."""

    index: int            # the core output index (model.h's OUTPUTn)
    param: str            # its C parameter name in hwgen_<model>_run
    ctype: str
    lo: int
    hi: int
    scale: np.float32
    zero_point: int

    def dequantized(self) -> np.ndarray:
        """Every integer value's float, as the host's DequantizeLinear computes it (float32)."""
        return dequantize(np.arange(self.lo, self.hi + 1), self.scale, self.zero_point)


def dequantized_outputs(graph: Graph) -> dict[str, str]:
    """Core output (ONNX name) -> the model output a host-tail DequantizeLinear makes of it."""
    if graph.tail is None:
        return {}
    tail = onnx.load_from_string(graph.tail.model)
    return {n.input[0]: n.output[0] for n in tail.graph.node
            if n.op_type == "DequantizeLinear" and n.domain in ("", "ai.onnx") and n.output[0] in graph.model_outputs}


def head_ports(graph: Graph, outputs, config: DetectConfig) -> tuple[DetectHead, DetectHead]:
    """The core outputs holding the boxes and the scores (the model outputs the config names must be
    host-side DequantizeLinear of them, per tensor, in ONNX element order)."""
    made = {model: core for core, model in dequantized_outputs(graph).items()}
    onnx_of = {p.tensor: p for p in graph.output_ports}
    heads = []
    for key in ("boxes", "scores"):
        want = getattr(config.decode, key)
        if want not in made:
            raise UnsupportedModelError(f"detect.c: decode.{key} {want!r} must be a model output that the host only "
                                        "dequantizes (a DequantizeLinear of a core output)")
        index = next(i for i, name in enumerate(graph.outputs) if onnx_of[name].onnx_name == made[want])
        tensor = graph.tensor(graph.outputs[index])
        port = onnx_of[graph.outputs[index]]
        if port.layout.chw is not None:
            raise UnsupportedModelError(f"detect.c: output {want!r} is a feature map the core stores channels last; "
                                        "the SSD head outputs are (boxes, values) arrays")
        if len(tensor.scale) != 1:
            raise UnsupportedModelError(f"detect.c: output {want!r} has per-channel scales; detect.c dequantizes "
                                        "one scale per head")
        if tensor.dtype.bits > MAX_TABLE_BITS:
            raise UnsupportedModelError(f"detect.c: output {want!r} is {tensor.dtype}; detect.c tabulates heads of at "
                                        f"most {MAX_TABLE_BITS} bits")
        c = outputs[index]
        heads.append(DetectHead(index, c.name, c.ctype.name, tensor.dtype.lo, tensor.dtype.hi,
                                np.float32(tensor.scale[0]), tensor.zero_point))
    return heads[0], heads[1]


def _floats(values) -> list[str]:
    return [c_float(v) for v in np.asarray(values, dtype=np.float32).reshape(-1)]


def detect_context(graph: Graph, outputs, config: DetectConfig, prefix: str, model: str) -> dict:
    """What templates/rvv/detect.{h,c}.j2 need."""
    d = config.decode
    anchors = ssd_anchors(config.anchors)
    if anchors.shape[0] != d.num_boxes:
        raise UnsupportedModelError(f"detect.c: the anchor options give {anchors.shape[0]} anchors; decode.num_boxes "
                                    f"is {d.num_boxes}")
    boxes, scores = head_ports(graph, outputs, config)
    for head, per_box, key in ((boxes, d.num_coords, "boxes"), (scores, d.num_classes, "scores")):
        size = int(np.prod(graph.tensor(graph.outputs[head.index]).shape))
        if size != d.num_boxes * per_box:
            raise UnsupportedModelError(f"detect.c: output {getattr(d, key)!r} has {size} values; the config needs "
                                        f"num_boxes {d.num_boxes} x {per_box}")
    o = d.box_coord_offset
    x, y, w, h = (o, o + 1, o + 2, o + 3) if d.reverse_output_order else (o + 1, o, o + 3, o + 2)
    keypoints = []
    for k in range(d.num_keypoints):
        c = d.keypoint_coord_offset + k * d.num_values_per_keypoint
        keypoints.append((c, c + 1) if d.reverse_output_order else (c + 1, c))
    one = np.ones(1, dtype=np.float32)
    return dict(
        prefix=prefix, model=model, detect=f"hwgen_{model}_detect", detect_guard=f"{prefix}_DETECT_H",
        num_boxes=d.num_boxes, num_coords=d.num_coords, num_classes=d.num_classes,
        max_detections=config.nms.max_num_detections,
        num_keypoints=d.num_keypoints, keypoints=keypoints, coords=dict(x=x, y=y, w=w, h=h),
        boxes=boxes, scores=scores, weighted=config.nms.algorithm is NmsKind.WEIGHTED,
        anchors=[_floats(a) for a in anchors],
        score_table=_floats(score_of(scores.dequantized(), d)),
        min_score=c_float(d.min_score_thresh), iou_threshold=c_float(config.nms.min_suppression_threshold),
        exponential=d.apply_exponential_on_box_size,
        w_table=_floats(size_of(boxes.dequantized(), d.w_scale, one, True)) if d.apply_exponential_on_box_size else [],
        h_table=_floats(size_of(boxes.dequantized(), d.h_scale, one, True)) if d.apply_exponential_on_box_size else [],
        scales=dict(x=c_float(d.x_scale), y=c_float(d.y_scale), w=c_float(d.w_scale), h=c_float(d.h_scale)),
        box_scale=c_float(boxes.scale), order_type="uint16_t" if d.num_boxes <= 65535 else "uint32_t",
    )


def python_detections(graph: Graph, core: dict[str, np.ndarray], config: DetectConfig) -> list[Detection]:
    """hwgen.detect on one sample of the integer core's outputs (by IR tensor), dequantized as the
    host's DequantizeLinear does (`fixed.dequantize`)."""
    made = dequantized_outputs(graph)
    onnx_of = {p.tensor: p.onnx_name for p in graph.output_ports}
    outputs = {}
    for name, q in core.items():
        if onnx_of.get(name) in made:
            t = graph.tensor(name)
            outputs[made[onnx_of[name]]] = dequantize(q, t.scale[0], t.zero_point)
    return detect_outputs(outputs, config)


def encode_detections(detections: list[Detection], config: DetectConfig) -> bytes:
    """One sample's detections as detect_main.c writes them."""
    parts = [np.array([len(detections)], dtype="<i4").tobytes()]
    for d in detections:
        floats = [d.score, *d.box, *(v for point in d.keypoints for v in point)]
        parts.append(np.array(floats, dtype="<f4").tobytes())
        parts.append(np.array([d.anchor, d.class_id], dtype="<i4").tobytes())
    return b"".join(parts)


def decode_detections(data: bytes, config: DetectConfig, samples: int) -> list[list[Detection]]:
    """detect_main.c's output: `samples` lists of detections."""
    k = config.decode.num_keypoints
    record = 4 * (5 + 2 * k + 2)
    out, at = [], 0
    for _ in range(samples):
        count = int(np.frombuffer(data, "<i4", 1, at)[0])
        at += 4
        sample = []
        for _ in range(count):
            f = np.frombuffer(data, "<f4", 5 + 2 * k, at).astype(np.float64)
            anchor, class_id = np.frombuffer(data, "<i4", 2, at + 4 * (5 + 2 * k))
            sample.append(Detection(float(f[0]), tuple(f[1:5]), tuple(zip(f[5::2], f[6::2])), int(anchor),
                                    int(class_id)))
            at += record
        out.append(sample)
    if at != len(data):
        raise ValueError(f"detections: {len(data) - at} bytes left over")
    return out
