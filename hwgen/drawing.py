"""Detections drawn on their image (Pillow), as PNG bytes."""

from __future__ import annotations

import io
from pathlib import Path

__all__ = ["draw_detections"]

BOX = (0, 255, 64)
POINT = (255, 48, 48)


def draw_detections(image_path: str | Path, detections: list[dict]) -> bytes:
    """The image with each detection's box, keypoints and score drawn (detections in image pixels)."""
    from PIL import Image, ImageDraw  # noqa: PLC0415 - Pillow loads only for images

    with Image.open(image_path) as opened:
        image = opened.convert("RGB")
    draw = ImageDraw.Draw(image)
    width = max(1, round(min(image.size) / 200))
    for d in detections:
        x0, y0, x1, y1 = d["box"]
        draw.rectangle((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), outline=BOX, width=width)
        r = 2 * width
        for x, y in d.get("keypoints", []):
            draw.ellipse((x - r, y - r, x + r, y + r), fill=POINT)
        draw.text((x0 + width, y0 - 12 * width if y0 > 12 * width else y1 + width), f"{d['score']:.3f}",
                  fill=BOX, font_size=10 * width)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
