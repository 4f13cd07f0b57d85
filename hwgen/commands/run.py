"""`hwgen run MODEL|OUT --input X [--backend golden|rtl|rvv|board] [--check]`: the model's outputs.

Given a compile output OUT instead of a model, it runs what was compiled: the IR of OUT/ir.json,
and for rtl the Verilog of OUT/fpga as written (nothing is generated again)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .. import api, golden, irjson
from ..arrays import check_output_path, format_outputs, load_inputs, save_outputs
from ..backends.fpga import load_output, progress, run_core_on_board, run_core_output
from ..backends.rvv import run_core_graph
from ..compiler import compile_model
from ..errors import InvalidOptionError
from ..fixed import MULTIPLIER_BITS, Rounding
from ..images import is_image, load_image
from ..ir import Graph
from ..modelconfig import load_config
from ..outdir import reading
from ..synth.board import DEFAULT_BAUD
from ..synth.host import DEFAULT_TIMEOUT
from .options import (
    HelpFormatter,
    add_fpga_options,
    add_model_options,
    add_rvv_options,
    compile_options,
    fpga_options,
    rvv_options,
)

#: The backend that is a real board (for compile outputs only: it needs the bitstream built from OUT).
BOARD = "board"


def register(sub) -> None:
    p = sub.add_parser("run", help="run a model on inputs (golden model or generated code)",
                       description="Run MODEL.onnx, or a compile output directory OUT (what was compiled, "
                                   "reused: nothing is generated again), on inputs.",
                       formatter_class=HelpFormatter)
    add_model_options(p, model_help="the quantized ONNX model, or a compile output directory OUT")
    p.add_argument("--input", type=Path, required=True, metavar="X",
                   help="input array (.npy), arrays named as the model's inputs (.npz), or an image (.png, .jpg, "
                        ".bmp, ...: made into the input as the model's config file says)")
    p.add_argument("--config", type=Path, default=None, metavar="CONFIG.json",
                   help="the model's config file (image preprocessing; default: MODEL's stem + .json, if there)")
    p.add_argument("--output", type=Path, default=None, metavar="Y.npy",
                   help="where to save the outputs (.npy; an .npz of arrays named as the outputs)")
    p.add_argument("--backend", choices=[*api.BACKENDS, BOARD], default="golden",
                   help="golden: the reference model; rtl: Verilator simulation; rvv: RISC-V under QEMU; board: "
                        "a board running OUT's `hwgen synth --board` bitstream, over its UART (--port)")
    p.add_argument("--check", action="store_true",
                   help="also run the golden model and say whether the backend's outputs equal it, bit for bit "
                        "(exit 1 if not)")
    add_fpga_options(p, compiling=False)
    add_rvv_options(p, compiling=False)
    board = p.add_argument_group("a board (--backend board, with a compile output OUT)")
    board.add_argument("--port", default=None, help="the board's serial port, e.g. /dev/ttyUSB1 (the iCEBreaker's "
                                                    "second FTDI channel), or a pyserial URL")
    board.add_argument("--baud", type=int, default=DEFAULT_BAUD, help="the rate the bitstream was built for")
    board.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                       help="how long to wait for one tensor's outputs")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.check and args.backend == "golden":
        raise InvalidOptionError("--check compares a backend (--backend rtl, rvv or board) with the golden model")
    if args.backend == BOARD and (not args.model.is_dir() or args.port is None):
        raise InvalidOptionError("--backend board runs a compile output OUT on a board, at --port: hwgen compile "
                                 "MODEL -o OUT --target fpga --device ice40-up5k, hwgen synth OUT --board icebreaker, "
                                 "program the board as it says, then hwgen run OUT --backend board --port PORT")
    if args.port is not None and args.backend != BOARD:
        raise InvalidOptionError("--port is for --backend board")
    if args.model.is_dir():
        graph, feeds, outputs = _run_output_dir(args)
    else:
        compiled = compile_model(args.model, compile_options(args))
        graph = compiled.graph
        if args.output is not None:
            check_output_path(args.output, list(graph.model_outputs))
        if is_image(args.input):
            feeds, _ = api.image_input(compiled, args.input, args.config)
        else:
            feeds = load_inputs(args.input, graph)
        outputs = api.run_outputs(compiled, feeds, args.backend, fpga=fpga_options(args), rvv=rvv_options(args))
    if args.output is not None:
        save_outputs(args.output, outputs)
    print(format_outputs(outputs, args.output))
    if args.check:
        return _check(graph, feeds, args.backend, outputs)
    return 0


def _run_output_dir(args: argparse.Namespace) -> tuple[Graph, dict[str, np.ndarray], dict[str, np.ndarray]]:
    out = args.model
    if not (out / "ir.json").is_file():
        raise InvalidOptionError(f"{out}: not a hwgen compile output (no ir.json)")
    if args.rounding != Rounding.RNE.value or args.multiplier_bits != MULTIPLIER_BITS:
        raise InvalidOptionError(f"{out}: --rounding and --multiplier-bits were fixed when it was compiled")
    if (args.fpga_multipliers is not None or args.fpga_folds or args.fpga_device is not None
            or args.fpga_arch is not None or args.fpga_weights is not None):
        raise InvalidOptionError(f"{out}: its accelerator was folded when it was compiled; compile again to change it")
    with reading(out / "ir.json"):
        graph = irjson.load(out / "ir.json")
    if args.output is not None:
        check_output_path(args.output, list(graph.model_outputs))
    feeds = _image_feeds(graph, args) if is_image(args.input) else load_inputs(args.input, graph)
    core = None
    if args.backend == "rtl":
        loaded = load_output(out, progress=progress("rtl"))
        core = lambda inputs: run_core_output(loaded, inputs)[0]  # noqa: E731
    elif args.backend == "rvv":
        core = lambda inputs: run_core_graph(graph, graph.name, inputs, rvv_options(args))  # noqa: E731
    elif args.backend == BOARD:
        loaded = load_output(out, progress=progress("board"))
        core = lambda inputs: run_core_on_board(loaded, inputs, args.port, args.baud, args.timeout)  # noqa: E731
    return graph, feeds, golden.run_model(graph, feeds, core=core)


def _image_feeds(graph: Graph, args: argparse.Namespace) -> dict[str, np.ndarray]:
    """An image as the input of a compile output: its preprocessing from --config."""
    if args.config is None:
        raise InvalidOptionError(f"{args.model}: give --config CONFIG.json (the model's config file) to run it on an "
                                 "image")
    config = load_config(args.config)
    port = api.image_port(graph, config)
    x, _ = load_image(args.input, port, config.image)
    return {port.onnx_name: x}


def _check(graph: Graph, feeds: dict[str, np.ndarray], backend: str, outputs: dict[str, np.ndarray]) -> int:
    expected = golden.run_model(graph, feeds)
    differ = sum(int(np.count_nonzero(outputs[k] != y)) for k, y in expected.items())
    total = sum(y.size for y in expected.values())
    samples = graph.input_ports[0].batch_of(np.asarray(feeds[graph.input_ports[0].onnx_name]))
    if differ:
        print(f"hwgen: run: MISMATCH: {differ} of {total} output values of {backend} differ from the golden model",
              file=sys.stderr)
        return 1
    print(f"hwgen: run: {samples} sample(s) on {backend} equal to the golden model, bit for bit", file=sys.stderr)
    return 0
