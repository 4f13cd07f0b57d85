"""`hwgen run MODEL --input X [--backend golden|rtl|rvv]`: the model's outputs."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .. import api
from ..arrays import check_output_path, load_inputs, save_outputs
from ..compiler import compile_model
from ..images import is_image
from .options import (
    HelpFormatter,
    add_fpga_options,
    add_model_options,
    add_rvv_options,
    compile_options,
    fpga_options,
    rvv_options,
)


def register(sub) -> None:
    p = sub.add_parser("run", help="run a model on inputs (golden model or generated code)",
                       formatter_class=HelpFormatter)
    add_model_options(p)
    p.add_argument("--input", type=Path, required=True, metavar="X",
                   help="input array (.npy), arrays named as the model's inputs (.npz), or an image (.png, .jpg, "
                        ".bmp, ...: made into the input as the model's config file says)")
    p.add_argument("--config", type=Path, default=None, metavar="CONFIG.json",
                   help="the model's config file (image preprocessing; default: MODEL's stem + .json, if there)")
    p.add_argument("--output", type=Path, default=None, metavar="Y.npy",
                   help="where to save the outputs (.npy; an .npz of arrays named as the outputs)")
    p.add_argument("--backend", choices=list(api.BACKENDS), default="golden",
                   help="golden: the reference model; rtl: Verilator simulation; rvv: RISC-V under QEMU")
    add_fpga_options(p, compiling=False)
    add_rvv_options(p, compiling=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    compiled = compile_model(args.model, compile_options(args))
    if args.output is not None:
        check_output_path(args.output, list(compiled.graph.model_outputs))
    if is_image(args.input):
        feeds, _ = api.image_input(compiled, args.input, args.config)
    else:
        feeds = load_inputs(args.input, compiled.graph)
    outputs = api.run_outputs(compiled, feeds, args.backend, fpga=fpga_options(args), rvv=rvv_options(args))
    if args.output is None:
        for name, y in outputs.items():
            print(f"{name}: {np.array2string(y, threshold=64)}")
    else:
        save_outputs(args.output, outputs)
    return 0
