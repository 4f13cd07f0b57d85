"""A model's config file: how an image becomes its input, and how its outputs become detections.

The file is JSON, next to the model with the same stem (`blazeface.onnx` -> `blazeface.json`) or
named with `--config`. Both sections are optional:

    {"image": {"color": "RGB", "resize": "stretch", "scale": 0.00784313725, "offset": -1.0},
     "detect": {"anchors": {...}, "decode": {...}, "nms": {...}}}

`image`: the model input is `pixel * scale + offset` per channel (lists for per-channel values)
after converting to `color` and resizing to the model's input size; an integer input rounds that
half to even and then saturates (`"integers": "saturate"`) or wraps (`"wrap"`: the pixel bytes are
the two's-complement int8 values, as TensorFlow Lite Micro's example images store them).

`detect`: MediaPipe's option names, so a MediaPipe graph's options copy over: `anchors` as
SsdAnchorsCalculatorOptions, `decode` as TensorsToDetectionsCalculatorOptions plus `boxes` and
`scores` (the model outputs holding them), `nms` as NonMaxSuppressionCalculatorOptions.
Every key is checked: a missing, unknown or wrongly typed one is one line naming the file and key.
"""

from __future__ import annotations

import enum
import json
import math
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidOptionError

__all__ = ["Color", "Resize", "Integers", "Layout", "ImageConfig", "Anchors", "Decode", "Nms", "NmsKind",
           "DetectConfig", "ModelConfig", "load_config", "config_for", "parse_config"]

MAX_CONFIG_BYTES = 1 << 20


class Color(enum.Enum):
    RGB = "RGB"
    BGR = "BGR"
    L = "L"          # grayscale

    @property
    def channels(self) -> int:
        return 1 if self is Color.L else 3


class Resize(enum.Enum):
    STRETCH = "stretch"      # to the input size, aspect ratio not kept
    LETTERBOX = "letterbox"  # scaled to fit, centred, the rest filled with black
    NONE = "none"            # the image must have the input size already


class Integers(enum.Enum):
    SATURATE = "saturate"
    WRAP = "wrap"


class Layout(enum.Enum):
    NCHW = "NCHW"
    NHWC = "NHWC"


class NmsKind(enum.Enum):
    DEFAULT = "DEFAULT"     # hard NMS: a box overlapping a kept one is dropped
    WEIGHTED = "WEIGHTED"   # MediaPipe's: overlapping boxes are averaged, weighted by score


@dataclass(frozen=True)
class ImageConfig:
    color: Color
    resize: Resize
    scale: tuple[float, ...]      # one value, or one per channel
    offset: tuple[float, ...]
    integers: Integers
    layout: Layout | None         # None: from the input's shape
    input: str | None             # the model input it feeds (None: the only one)


@dataclass(frozen=True)
class Anchors:
    """MediaPipe's SsdAnchorsCalculatorOptions (a port of TensorFlow's SSD anchor generator)."""

    num_layers: int
    min_scale: float
    max_scale: float
    input_size_height: int
    input_size_width: int
    strides: tuple[int, ...]
    anchor_offset_x: float = 0.5
    anchor_offset_y: float = 0.5
    aspect_ratios: tuple[float, ...] = (1.0,)
    feature_map_height: tuple[int, ...] = ()
    feature_map_width: tuple[int, ...] = ()
    reduce_boxes_in_lowest_layer: bool = False
    interpolated_scale_aspect_ratio: float = 1.0
    fixed_anchor_size: bool = False


@dataclass(frozen=True)
class Decode:
    """MediaPipe's TensorsToDetectionsCalculatorOptions, and which model outputs hold boxes and scores."""

    boxes: str
    scores: str
    num_boxes: int
    num_coords: int
    num_classes: int = 1
    box_coord_offset: int = 0
    keypoint_coord_offset: int = 4
    num_keypoints: int = 0
    num_values_per_keypoint: int = 2
    reverse_output_order: bool = False   # True: x, y, w, h; False: y, x, h, w
    x_scale: float = 1.0
    y_scale: float = 1.0
    w_scale: float = 1.0
    h_scale: float = 1.0
    apply_exponential_on_box_size: bool = False
    sigmoid_score: bool = True
    score_clipping_thresh: float = 0.0   # 0: no clipping of the logits
    min_score_thresh: float = 0.5


@dataclass(frozen=True)
class Nms:
    """MediaPipe's NonMaxSuppressionCalculatorOptions (overlap: intersection over union)."""

    min_suppression_threshold: float = 0.3
    algorithm: NmsKind = NmsKind.DEFAULT
    max_num_detections: int = 100


@dataclass(frozen=True)
class DetectConfig:
    anchors: Anchors
    decode: Decode
    nms: Nms


@dataclass(frozen=True)
class ModelConfig:
    path: Path | None
    image: ImageConfig | None = None
    detect: DetectConfig | None = None


class _Reader:
    """Typed access to one JSON object, every problem one line naming the file and the key."""

    def __init__(self, where: str, data, section: str):
        self.where, self.section = where, section
        if not isinstance(data, dict):
            self.fail(section or "the file", "must be a JSON object")
        self.data, self.used = data, set()

    def fail(self, key: str, why: str):
        raise InvalidOptionError(f"{self.where}: {key}: {why}")

    def key(self, name: str) -> str:
        return f"{self.section}.{name}" if self.section else name

    def _get(self, name: str, default, required: bool):
        self.used.add(name)
        if name not in self.data:
            if required:
                self.fail(self.key(name), "missing")
            return default, False
        return self.data[name], True

    def number(self, name: str, default=None, *, required=False, positive=False, low=None, high=None) -> float:
        value, given = self._get(name, default, required)
        if not given:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            self.fail(self.key(name), f"must be a finite number, not {json.dumps(value)[:40]}")
        if positive and value <= 0:
            self.fail(self.key(name), f"must be positive, not {value}")
        if (low is not None and value < low) or (high is not None and value > high):
            self.fail(self.key(name), f"must be between {low} and {high}, not {value}")
        return float(value)

    def integer(self, name: str, default=None, *, required=False, low=0, high=1 << 20) -> int:
        value, given = self._get(name, default, required)
        if not given:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.fail(self.key(name), f"must be an integer from {low} to {high}, not {json.dumps(value)[:40]}")
        return value

    def flag(self, name: str, default: bool) -> bool:
        value, given = self._get(name, default, False)
        if given and not isinstance(value, bool):
            self.fail(self.key(name), f"must be true or false, not {json.dumps(value)[:40]}")
        return value

    def text(self, name: str, default=None, *, required=False) -> str | None:
        value, given = self._get(name, default, required)
        if given and not isinstance(value, str):
            self.fail(self.key(name), f"must be a string, not {json.dumps(value)[:40]}")
        return value

    def choice(self, name: str, kind: type[enum.Enum], default):
        value, given = self._get(name, default, False)
        if not given:
            return default
        try:
            return kind(value)
        except (ValueError, TypeError):
            self.fail(self.key(name), f"must be one of {', '.join(repr(k.value) for k in kind)}, "
                      f"not {json.dumps(value)[:40]}")

    def numbers(self, name: str, default=(), *, required=False, integers=False, positive=False,
                scalar=False) -> tuple:
        value, given = self._get(name, default, required)
        if not given:
            return tuple(default)
        if scalar and not isinstance(value, list):
            value = [value]
        ok = isinstance(value, list) and len(value) <= 4096 and all(
            not isinstance(v, bool) and isinstance(v, int if integers else int | float)
            and math.isfinite(v) and (not positive or v > 0) for v in value)
        if not ok or not value and required:
            what = "positive " if positive else ""
            self.fail(self.key(name), f"must be a list of {what}{'integers' if integers else 'numbers'}, "
                      f"not {json.dumps(value)[:40]}")
        return tuple(int(v) if integers else float(v) for v in value)

    def section_of(self, name: str, *, required=False) -> _Reader | None:
        value, given = self._get(name, None, required)
        return _Reader(self.where, value, self.key(name)) if given else None

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            self.fail(self.key(unknown[0]), "unknown key" + (f" (known: {', '.join(sorted(self.used))})"
                                                           if self.used else ""))


def _image(r: _Reader) -> ImageConfig:
    color = r.choice("color", Color, Color.RGB)
    scale = r.numbers("scale", (1.0,), scalar=True)
    offset = r.numbers("offset", (0.0,), scalar=True)
    for key, values in (("scale", scale), ("offset", offset)):
        if len(values) not in (1, color.channels):
            r.fail(r.key(key), f"has {len(values)} values; give one, or one per channel ({color.channels})")
    image = ImageConfig(color, r.choice("resize", Resize, Resize.STRETCH), scale, offset,
                        r.choice("integers", Integers, Integers.SATURATE), r.choice("layout", Layout, None),
                        r.text("input"))
    r.done()
    return image


def _anchors(r: _Reader) -> Anchors:
    a = Anchors(
        num_layers=r.integer("num_layers", required=True, low=1, high=64),
        min_scale=r.number("min_scale", required=True, positive=True),
        max_scale=r.number("max_scale", required=True, positive=True),
        input_size_height=r.integer("input_size_height", required=True, low=1),
        input_size_width=r.integer("input_size_width", required=True, low=1),
        strides=r.numbers("strides", required=True, integers=True, positive=True),
        anchor_offset_x=r.number("anchor_offset_x", 0.5),
        anchor_offset_y=r.number("anchor_offset_y", 0.5),
        aspect_ratios=r.numbers("aspect_ratios", (1.0,), positive=True),
        feature_map_height=r.numbers("feature_map_height", (), integers=True, positive=True),
        feature_map_width=r.numbers("feature_map_width", (), integers=True, positive=True),
        reduce_boxes_in_lowest_layer=r.flag("reduce_boxes_in_lowest_layer", False),
        interpolated_scale_aspect_ratio=r.number("interpolated_scale_aspect_ratio", 1.0),
        fixed_anchor_size=r.flag("fixed_anchor_size", False),
    )
    if len(a.strides) != a.num_layers:
        r.fail(r.key("strides"), f"has {len(a.strides)} values for num_layers {a.num_layers}")
    for key in ("feature_map_height", "feature_map_width"):
        if getattr(a, key) and len(getattr(a, key)) != a.num_layers:
            r.fail(r.key(key), f"has {len(getattr(a, key))} values for num_layers {a.num_layers}")
    r.done()
    return a


def _decode(r: _Reader) -> Decode:
    d = Decode(
        boxes=r.text("boxes", required=True), scores=r.text("scores", required=True),
        num_boxes=r.integer("num_boxes", required=True, low=1),
        num_coords=r.integer("num_coords", required=True, low=4, high=4096),
        num_classes=r.integer("num_classes", 1, low=1, high=4096),
        box_coord_offset=r.integer("box_coord_offset", 0, high=4096),
        keypoint_coord_offset=r.integer("keypoint_coord_offset", 4, high=4096),
        num_keypoints=r.integer("num_keypoints", 0, high=1024),
        num_values_per_keypoint=r.integer("num_values_per_keypoint", 2, low=2, high=64),
        reverse_output_order=r.flag("reverse_output_order", False),
        x_scale=r.number("x_scale", 1.0, positive=True), y_scale=r.number("y_scale", 1.0, positive=True),
        w_scale=r.number("w_scale", 1.0, positive=True), h_scale=r.number("h_scale", 1.0, positive=True),
        apply_exponential_on_box_size=r.flag("apply_exponential_on_box_size", False),
        sigmoid_score=r.flag("sigmoid_score", True),
        score_clipping_thresh=r.number("score_clipping_thresh", 0.0, low=0.0, high=1e30),
        min_score_thresh=r.number("min_score_thresh", 0.5),
    )
    if d.box_coord_offset + 4 > d.num_coords:
        r.fail(r.key("box_coord_offset"), f"{d.box_coord_offset} + 4 box values exceed num_coords {d.num_coords}")
    end = d.keypoint_coord_offset + d.num_keypoints * d.num_values_per_keypoint
    if d.num_keypoints and end > d.num_coords:
        r.fail(r.key("num_keypoints"), f"{d.num_keypoints} keypoints from offset {d.keypoint_coord_offset} "
               f"exceed num_coords {d.num_coords}")
    r.done()
    return d


def _nms(r: _Reader | None) -> Nms:
    if r is None:
        return Nms()
    nms = Nms(r.number("min_suppression_threshold", 0.3, low=0.0, high=1.0),
              r.choice("algorithm", NmsKind, NmsKind.DEFAULT),
              r.integer("max_num_detections", 100, low=1, high=65535))
    r.text("overlap_type")  # MediaPipe's key; intersection over union is the one hwgen computes
    if r.data.get("overlap_type", "INTERSECTION_OVER_UNION") != "INTERSECTION_OVER_UNION":
        r.fail(r.key("overlap_type"), "hwgen computes INTERSECTION_OVER_UNION only")
    r.done()
    return nms


def parse_config(data, where: str, path: Path | None = None) -> ModelConfig:
    """A ModelConfig from parsed JSON; `where` names it in errors."""
    top = _Reader(where, data, "")
    image_r, detect_r = top.section_of("image"), top.section_of("detect")
    top.text("comment")  # free text for the reader of the file
    top.done()
    image = _image(image_r) if image_r is not None else None
    detect = None
    if detect_r is not None:
        anchors, decode = detect_r.section_of("anchors", required=True), detect_r.section_of("decode", required=True)
        nms = detect_r.section_of("nms")
        detect_r.done()
        detect = DetectConfig(_anchors(anchors), _decode(decode), _nms(nms))
    return ModelConfig(path, image, detect)


def load_config(path: str | Path) -> ModelConfig:
    """Read and check a config file; every problem is one InvalidOptionError line."""
    path = Path(path)
    if not path.is_file():
        raise InvalidOptionError(f"{path}: no such config file" if not path.exists() else f"{path}: not a file")
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise InvalidOptionError(f"{path}: {path.stat().st_size} bytes is too large for a config file")
        text = path.read_bytes().decode("utf-8")
        data = json.loads(text)
    except UnicodeDecodeError:
        raise InvalidOptionError(f"{path}: a config file is JSON text in UTF-8") from None
    except json.JSONDecodeError as exc:
        raise InvalidOptionError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except OSError as exc:
        raise InvalidOptionError(f"{path}: cannot read the config file: {exc.strerror}") from None
    return parse_config(data, str(path), path)


def config_for(model: str | Path, config: str | Path | None = None) -> ModelConfig:
    """The config given, else the one bundled next to the model (same stem, .json), else an empty one."""
    if config is not None:
        return load_config(config)
    beside = Path(model).with_suffix(".json")
    return load_config(beside) if beside.is_file() else ModelConfig(None)
