"""Images as model inputs: decoded by Pillow, converted as the model's config states.

`load_image` returns the input array (the model input's ONNX type and shape) and a `Placement`,
which maps a point in the model input's normalized coordinates back to image pixels.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import budget
from .errors import InvalidOptionError
from .fixed import IntType
from .ir import InputPort
from .modelconfig import Color, ImageConfig, Integers, Layout, Resize

__all__ = ["IMAGE_SUFFIXES", "is_image", "Placement", "load_image", "input_geometry"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm", ".webp")
MAX_PIXELS = 64 << 20   # Pillow's decompression-bomb guard, made an error


def is_image(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


@dataclass(frozen=True)
class Placement:
    """Where the model input sits in the image: input (u, v) in [0, 1] -> image pixel (x, y)."""

    image_size: tuple[int, int]      # (width, height)
    origin: tuple[float, float]      # image pixel of the input's top-left corner
    extent: tuple[float, float]      # image pixels the input's width and height cover

    def to_image(self, u: float, v: float) -> tuple[float, float]:
        return self.origin[0] + u * self.extent[0], self.origin[1] + v * self.extent[1]


def input_geometry(port: InputPort, config: ImageConfig) -> tuple[Layout, int, int, int]:
    """(layout, height, width, channels) of the image input `port`."""
    shape = port.shape
    if len(shape) == 4 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) != 3:
        raise InvalidOptionError(f"input {port.onnx_name!r} has shape {list(port.shape)}; an image input is "
                                 "[1, C, H, W] or [1, H, W, C]")
    layout = config.layout
    if layout is None:
        layout = Layout.NCHW if shape[0] in (1, 3) and shape[2] not in (1, 3) else Layout.NHWC
    c, h, w = shape if layout is Layout.NCHW else (shape[2], shape[0], shape[1])
    if c != config.color.channels:
        raise InvalidOptionError(f"input {port.onnx_name!r} has {c} channel(s) ({layout.value} "
                                 f"{list(port.shape)}); the config's color {config.color.value!r} has "
                                 f"{config.color.channels}")
    return layout, h, w, c


def _open(path: Path):
    from PIL import Image, UnidentifiedImageError  # noqa: PLC0415 - Pillow loads only for images

    if not path.is_file():
        raise InvalidOptionError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
            if image.width * image.height > MAX_PIXELS:
                raise InvalidOptionError(f"{path}: {image.width}x{image.height} pixels is more than hwgen reads "
                                         f"({MAX_PIXELS} pixels)")
            budget.require(image.width * image.height * 8, f"decoding {path}")
            image.load()
    except InvalidOptionError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:
        raise InvalidOptionError(f"{path}: not an image Pillow can read ({type(exc).__name__}: "
                                 f"{str(exc)[:80]})") from None
    return image


def load_image(path: str | Path, port: InputPort, config: ImageConfig) -> tuple[np.ndarray, Placement]:
    """The model input made from an image file, and where it sits in the image."""
    from PIL import Image  # noqa: PLC0415

    path = Path(path)
    layout, h, w, _ = input_geometry(port, config)
    image = _open(path)
    mode = "L" if config.color is Color.L else "RGB"
    image = image.convert(mode)
    size = image.size
    if config.resize is Resize.NONE:
        if size != (w, h):
            raise InvalidOptionError(f"{path}: {size[0]}x{size[1]} pixels; the config says no resizing and the "
                                     f"model input is {w}x{h}")
        placement = Placement(size, (0.0, 0.0), (float(w), float(h)))
    elif config.resize is Resize.STRETCH:
        image = image.resize((w, h), Image.Resampling.BILINEAR) if size != (w, h) else image
        placement = Placement(size, (0.0, 0.0), (float(size[0]), float(size[1])))
    else:  # letterbox: scaled to fit, centred on black
        k = min(w / size[0], h / size[1])
        sw, sh = max(1, round(size[0] * k)), max(1, round(size[1] * k))
        canvas = Image.new(mode, (w, h))
        canvas.paste(image.resize((sw, sh), Image.Resampling.BILINEAR), ((w - sw) // 2, (h - sh) // 2))
        image = canvas
        placement = Placement(size, (-((w - sw) // 2) / k, -((h - sh) // 2) / k), (w / k, h / k))
    pixels = np.asarray(image, dtype=np.uint8).reshape(h, w, -1)
    if config.color is Color.BGR:
        pixels = pixels[:, :, ::-1]
    return _to_input(pixels, port, config, layout), placement


def _to_input(pixels: np.ndarray, port: InputPort, config: ImageConfig, layout: Layout) -> np.ndarray:
    want = np.dtype(port.onnx_dtype)
    scale = np.array(config.scale, dtype=np.float64)
    offset = np.array(config.offset, dtype=np.float64)
    if want.kind == "f":
        # float32 arithmetic, as a preprocessing script in numpy would do it
        x = pixels.astype(np.float32) * scale.astype(np.float32) + offset.astype(np.float32)
        x = x.astype(want)
    else:
        exact = pixels.astype(np.float64) * scale + offset
        values = np.round(exact).astype(np.int64)  # half to even
        itype = IntType.from_numpy(want)
        if config.integers is Integers.WRAP:
            span = 1 << itype.bits
            x = ((values - itype.lo) % span + itype.lo).astype(want)
        else:
            x = np.clip(values, itype.lo, itype.hi).astype(want)
    x = x.transpose(2, 0, 1) if layout is Layout.NCHW else x
    return x.reshape(port.shape)
