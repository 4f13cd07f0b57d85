"""SSD post-processing: anchors, box decoding, scores and non-maximum suppression.

The algorithms are MediaPipe's (SsdAnchorsCalculator, TensorsToDetectionsCalculator,
NonMaxSuppressionCalculator), with the options of `hwgen.modelconfig`. Every step after the
anchors is float32 arithmetic, one rounding per operation in a fixed order, so the C version
the RVV library generates (detect.c) gives bit-identical boxes:

* anchors are computed once in float64 and stored as float32 (C gets the same table);
* a score is `float32(sigmoid(clip(logit)))` evaluated in float64 from the float32 logit; for a
  quantized head that is a table of one entry per integer value (C uses that table), and
  `exp` of a box size likewise;
* candidates are ordered by score, highest first, ties by anchor index;
* weighted NMS sums in that order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .errors import InvalidOptionError
from .modelconfig import Anchors, Decode, DetectConfig, NmsKind

__all__ = ["Detection", "ssd_anchors", "score_of", "size_of", "decode", "non_max_suppression", "detect_outputs"]

F32 = np.float32


@dataclass(frozen=True)
class Detection:
    """One detection in the model input's normalized coordinates (0..1)."""

    score: float
    box: tuple[float, float, float, float]        # xmin, ymin, xmax, ymax
    keypoints: tuple[tuple[float, float], ...]    # (x, y) each
    anchor: int
    class_id: int


def _scale(min_scale: float, max_scale: float, index: int, count: int) -> float:
    if count == 1:
        return (min_scale + max_scale) * 0.5
    return min_scale + (max_scale - min_scale) * 1.0 * index / (count - 1.0)


def ssd_anchors(a: Anchors) -> np.ndarray:
    """The anchors (N, 4): x centre, y centre, width, height, as float32, in MediaPipe's order."""
    rows = []
    layer = 0
    while layer < a.num_layers:
        ratios, scales = [], []
        last = layer
        while last < a.num_layers and a.strides[last] == a.strides[layer]:
            scale = _scale(a.min_scale, a.max_scale, last, a.num_layers)
            if last == 0 and a.reduce_boxes_in_lowest_layer:
                ratios += [1.0, 2.0, 0.5]
                scales += [0.1, scale, scale]
            else:
                ratios += list(a.aspect_ratios)
                scales += [scale] * len(a.aspect_ratios)
                if a.interpolated_scale_aspect_ratio > 0.0:
                    following = 1.0 if last == a.num_layers - 1 else _scale(a.min_scale, a.max_scale, last + 1,
                                                                             a.num_layers)
                    scales.append(math.sqrt(scale * following))
                    ratios.append(a.interpolated_scale_aspect_ratio)
            last += 1
        sizes = [(s * math.sqrt(r), s / math.sqrt(r)) for s, r in zip(scales, ratios)]  # (w, h)
        if a.feature_map_height:
            fh, fw = a.feature_map_height[layer], a.feature_map_width[layer]
        else:
            fh = math.ceil(a.input_size_height / a.strides[layer])
            fw = math.ceil(a.input_size_width / a.strides[layer])
        for y in range(fh):
            for x in range(fw):
                for w, h in sizes:
                    cx, cy = (x + a.anchor_offset_x) / fw, (y + a.anchor_offset_y) / fh
                    rows.append((cx, cy, 1.0, 1.0) if a.fixed_anchor_size else (cx, cy, w, h))
        layer = last
    return np.array(rows, dtype=np.float64).astype(F32).reshape(-1, 4)


def score_of(logits: np.ndarray, d: Decode) -> np.ndarray:
    """float32 scores of float32 logits: clipped, then the sigmoid in float64, rounded once."""
    x = np.asarray(logits, dtype=F32).astype(np.float64)
    if d.score_clipping_thresh > 0:
        x = np.clip(x, -float(F32(d.score_clipping_thresh)), float(F32(d.score_clipping_thresh)))
    if not d.sigmoid_score:
        return x.astype(F32)
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-x))).astype(F32)


def size_of(raw: np.ndarray, scale: float, anchor_size: np.ndarray, exponential: bool) -> np.ndarray:
    """A decoded box width or height: raw / scale * anchor, or exp(raw / scale) * anchor (float32)."""
    t = np.asarray(raw, dtype=F32) / F32(scale)
    if exponential:
        with np.errstate(over="ignore"):
            t = np.exp(t.astype(np.float64)).astype(F32)
    return t * anchor_size


def decode(raw_boxes: np.ndarray, d: Decode, anchors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (N, 4: xmin, ymin, xmax, ymax) and keypoints (N, K, 2) from the float32 head (N, num_coords)."""
    raw = np.asarray(raw_boxes, dtype=F32)
    o = d.box_coord_offset
    cols = (o, o + 1, o + 2, o + 3) if d.reverse_output_order else (o + 1, o, o + 3, o + 2)  # x, y, w, h
    ax, ay, aw, ah = (anchors[:, k] for k in range(4))
    xc = raw[:, cols[0]] / F32(d.x_scale) * aw + ax
    yc = raw[:, cols[1]] / F32(d.y_scale) * ah + ay
    w = size_of(raw[:, cols[2]], d.w_scale, aw, d.apply_exponential_on_box_size)
    h = size_of(raw[:, cols[3]], d.h_scale, ah, d.apply_exponential_on_box_size)
    half = F32(0.5)
    boxes = np.stack([xc - w * half, yc - h * half, xc + w * half, yc + h * half], axis=1)
    keypoints = np.zeros((raw.shape[0], d.num_keypoints, 2), dtype=F32)
    for k in range(d.num_keypoints):
        c = d.keypoint_coord_offset + k * d.num_values_per_keypoint
        kx, ky = (c, c + 1) if d.reverse_output_order else (c + 1, c)
        keypoints[:, k, 0] = raw[:, kx] / F32(d.x_scale) * aw + ax
        keypoints[:, k, 1] = raw[:, ky] / F32(d.y_scale) * ah + ay
    return boxes, keypoints


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Intersection over union of one box with each of `others`, float32 as detect.c computes it."""
    x0 = np.maximum(box[0], others[:, 0])
    y0 = np.maximum(box[1], others[:, 1])
    x1 = np.minimum(box[2], others[:, 2])
    y1 = np.minimum(box[3], others[:, 3])
    inter = (x1 - x0) * (y1 - y0)
    area_a = (box[2] - box[0]) * (box[3] - box[1])
    area_b = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = area_a + area_b - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where((x0 < x1) & (y0 < y1) & (union > 0), inter / union, F32(0))
    return iou.astype(F32)


def non_max_suppression(order: np.ndarray, scores: np.ndarray, boxes: np.ndarray, keypoints: np.ndarray,
                        classes: np.ndarray, config: DetectConfig) -> list[Detection]:
    """MediaPipe's NMS over the candidates `order` (best first)."""
    nms = config.nms
    threshold = F32(nms.min_suppression_threshold)
    out: list[Detection] = []

    def detection(i: int, box, kps) -> Detection:
        return Detection(float(scores[i]), tuple(float(v) for v in box),
                         tuple((float(x), float(y)) for x, y in kps), int(i), int(classes[i]))

    if nms.algorithm is NmsKind.DEFAULT:
        kept: list[int] = []
        for i in order:
            if kept and (_iou(boxes[i], boxes[kept]) > threshold).any():
                continue
            kept.append(int(i))
            out.append(detection(i, boxes[i], keypoints[i]))
            if len(out) >= nms.max_num_detections:
                break
        return out
    remaining = np.asarray(order, dtype=np.int64)
    while remaining.size and len(out) < nms.max_num_detections:
        top = remaining[0]
        overlap = _iou(boxes[top], boxes[remaining]) > threshold
        overlap[0] = True   # the top box itself (even if it has no area)
        total = F32(0)
        box_sum = np.zeros(4, dtype=F32)
        kp_sum = np.zeros(keypoints.shape[1:], dtype=F32)
        for i in remaining[overlap]:  # in order: detect.c sums the same way
            s = scores[i]
            total = F32(total + s)
            box_sum = (box_sum + boxes[i] * s).astype(F32)
            kp_sum = (kp_sum + keypoints[i] * s).astype(F32)
        out.append(detection(top, box_sum / total, kp_sum / total))
        remaining = remaining[~overlap]
    return out


def _head(outputs: Mapping[str, np.ndarray], name: str, per_box: int, d: Decode) -> np.ndarray:
    if name not in outputs:
        raise InvalidOptionError(f"detect: the model has no output {name!r} (outputs: "
                                 f"{', '.join(map(repr, outputs))})")
    y = np.asarray(outputs[name])
    if y.size != d.num_boxes * per_box:
        raise InvalidOptionError(f"detect: output {name!r} has shape {list(y.shape)} ({y.size} values); the config "
                                 f"needs num_boxes {d.num_boxes} x {per_box}")
    if y.dtype.kind != "f":
        raise InvalidOptionError(f"detect: output {name!r} is {y.dtype}; detection decodes the model's float outputs")
    return y.astype(F32).reshape(d.num_boxes, per_box)


def detect_outputs(outputs: Mapping[str, np.ndarray], config: DetectConfig) -> list[Detection]:
    """Detections from one sample's model outputs (float arrays by output name)."""
    d = config.decode
    anchors = ssd_anchors(config.anchors)
    if anchors.shape[0] != d.num_boxes:
        raise InvalidOptionError(f"detect: the anchor options give {anchors.shape[0]} anchors; decode.num_boxes is "
                                 f"{d.num_boxes}")
    raw_boxes = _head(outputs, d.boxes, d.num_coords, d)
    logits = _head(outputs, d.scores, d.num_classes, d)
    class_scores = score_of(logits, d)
    classes = np.argmax(class_scores, axis=1)       # the first class of the highest score
    scores = class_scores[np.arange(d.num_boxes), classes]
    boxes, keypoints = decode(raw_boxes, d, anchors)
    candidates = np.flatnonzero(scores >= F32(d.min_score_thresh))
    order = candidates[np.lexsort((candidates, -scores[candidates].astype(np.float64)))]
    return non_max_suppression(order, scores, boxes, keypoints, classes, config)
