"""`hwgen detect MODEL --input IMAGE`: SSD detections, one JSON line each, optionally drawn."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .. import api
from ..compiler import compile_model
from ..drawing import draw_detections
from ..errors import InvalidOptionError
from ..logs import NOTICE, get_logger
from ..modelconfig import config_for
from ..outdir import write_file
from .options import (
    HelpFormatter,
    add_fpga_options,
    add_model_options,
    add_rvv_options,
    compile_options,
    fpga_options,
    rvv_options,
)

log = get_logger("detect")


def register(sub) -> None:
    p = sub.add_parser("detect", help="detect objects in an image (SSD decoding and NMS after the model)",
                       formatter_class=HelpFormatter,
                       description="Prints one JSON line per detection: score, box [x0, y0, x1, y1] and keypoints "
                                   "in image pixels, class, anchor. The backend changes only where the integer "
                                   "core runs; the detections are the same.")
    add_model_options(p, "the quantized ONNX detector")
    p.add_argument("--input", type=Path, required=True, metavar="IMAGE", help="the image (.png, .jpg, .bmp, ...)")
    p.add_argument("--config", type=Path, default=None, metavar="CONFIG.json",
                   help="preprocessing, anchors, decoding and NMS (default: MODEL's stem + .json)")
    p.add_argument("--backend", choices=list(api.BACKENDS), default="golden",
                   help="golden: the reference model; rtl: Verilator simulation; rvv: RISC-V under QEMU")
    p.add_argument("--draw", type=Path, default=None, metavar="OUT.png",
                   help="also write the image with the detections drawn (PNG)")
    add_fpga_options(p, compiling=False)
    add_rvv_options(p, compiling=False)
    p.set_defaults(func=detect)


def _check_draw_path(path: Path) -> None:
    if path.suffix.lower() != ".png":
        raise InvalidOptionError(f"{path}: --draw writes a PNG; give a file name ending in .png")
    if path.is_dir():
        raise InvalidOptionError(f"{path}: is a directory; give a file name for the drawing")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InvalidOptionError(f"{path}: cannot write the drawing: {parent} is not a directory")


def detect(args: argparse.Namespace) -> int:
    if args.draw is not None:
        _check_draw_path(args.draw)
    config = config_for(args.model, args.config)  # checked before the compile
    compiled = compile_model(args.model, compile_options(args))
    detections = api.detect_image(compiled, args.input, config, args.backend, fpga=fpga_options(args),
                                  rvv=rvv_options(args))
    for d in detections:
        print(json.dumps(d))
    log.log(NOTICE, "%d detection(s) on %s (scores of at least %s)", len(detections), args.input,
            config.detect.decode.min_score_thresh if config.detect else "?")
    if args.draw is not None:
        write_file(args.draw, draw_detections(args.input, detections), what="drawing")
    return 0
