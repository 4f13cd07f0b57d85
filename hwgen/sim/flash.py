"""A sequential engine whose weights stream from SPI flash, made ready for Verilator: its Verilog, the
behavioural flash model (`rtl/spi_flash_model.v`) serving the flash image, and a top that connects
them (`templates/verilator/flash_top.v.j2`), so the stream harness drives the usual ports.

The model reads the image from a hex file named by content (`$XDG_CACHE_HOME/hwgen/flash/<sha256>.hex`),
so the same image gives the same Verilog text and a cached Verilator build.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.resources
import os
from pathlib import Path

from ..render import render
from .verilator import default_cache_dir

__all__ = ["simulation_top", "image_hex"]

MODEL_FILE = "spi_flash_model.v"


def image_hex(image: bytes, cache_dir: Path | None = None) -> Path:
    """The image as a $readmemh file (one byte per line), written once per content."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir("flash")
    path = root / f"{hashlib.sha256(image).hexdigest()}.hex"
    if not path.is_file():
        root.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.partial")
        partial.write_text("".join(f"{b:02x}\n" for b in image))
        partial.replace(path)
    return path


def simulation_top(verilog: str, top: str, image: bytes, base: int, ports: dict[str, int],
                   cache_dir: Path | None = None) -> tuple[str, str]:
    """(Verilog text, top module) of the accelerator `top` wired to a flash holding `image` at
    address `base`; `ports`: the bit widths of i__payload, o__payload and perf."""
    model = (importlib.resources.files("hwgen.rtl") / MODEL_FILE).read_text()
    wrapper = render("verilator", "flash_top.v.j2", dict(
        version=importlib.metadata.version("hwgen"), top=top, image_path=str(image_hex(image, cache_dir)),
        image_bytes=len(image), base=base, in_bits=ports["i"], out_bits=ports["o"], perf_bits=ports["perf"]))
    return verilog + "\n" + model + "\n" + wrapper, f"{top}_sim"
