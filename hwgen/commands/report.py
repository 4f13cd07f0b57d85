"""`hwgen report MODEL|OUT`: per-layer MACs, parameters, sparsity and bit widths (and each target's
cycles or instruction counts for a compile output)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .. import backends
from ..compiler import Survey, compile_model, survey
from ..errors import HwgenError, InvalidOptionError, UnsupportedModelError
from ..outdir import reading, write_file
from ..plots import check_path, layers_plot, report_plot
from ..synth.accelerator import describe as describe_synthesis
from .options import HelpFormatter, add_model_options, compile_options


def register(sub) -> None:
    p = sub.add_parser("report", help="per-layer MACs, parameters, sparsity and bit widths",
                       description="Report on MODEL.onnx, or on a compile output directory OUT (with each "
                                   "target's cycles or instruction counts).",
                       formatter_class=HelpFormatter)
    add_model_options(p, model_help="the quantized ONNX model, or a compile output directory OUT")
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the report as JSON")
    p.add_argument("--plot", type=Path, default=None, metavar="FILE.png",
                   help="also draw it per layer: MACs; for OUT, the FPGA's cycles, utilization and resources and "
                        "the RVV instructions (.png, .svg or .pdf)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.plot:
        check_path(args.plot)
    if args.model.is_dir():  # a compile output: the model's report and each target's
        code = _output_dir(args.model)
        if args.plot:
            report_plot(args.model, args.plot)
            print(f"wrote {args.plot}")
        return code
    try:
        report = compile_model(args.model, compile_options(args)).report
    except UnsupportedModelError as error:  # say all that is missing, after the table of what is there
        try:
            found = survey(args.model, compile_options(args))
        except HwgenError:  # the model as a whole is the problem: compile's message says it best
            raise error from None
        if not found.unsupported:  # every node imports: the error came later
            raise
        return _report_survey(args, found)
    if args.json:
        write_file(args.json, json.dumps(report.to_json(), indent=1) + "\n", what="JSON report")
    print(report.to_text())
    if args.plot:
        layers_plot(report.to_json(), args.plot)
        print(f"wrote {args.plot}")
    return 0


def _report_survey(args: argparse.Namespace, found: Survey) -> int:
    if found.report is not None:
        print("the supported part of the model:")
        print(found.report.to_text())
        print()
    print(f"{len(found.unsupported)} node(s) hwgen does not support (nodes that only depend on them are left out):")
    for error in found.unsupported:
        print(f"  {error}")
    if args.json:
        data = {"report": found.report.to_json() if found.report else None,
                "unsupported": [{"node": e.node, "op": e.op, "reason": e.reason} for e in found.unsupported]}
        write_file(args.json, json.dumps(data, indent=1) + "\n", what="JSON report")
    raise UnsupportedModelError(f"{len(found.unsupported)} unsupported node(s), the first: {found.unsupported[0]}")


def _output_dir(out: Path) -> int:
    if not (out / "report.txt").exists():
        raise InvalidOptionError(f"{out}: not a hwgen compile output (no report.txt)")
    with reading(out / "report.txt"):
        print((out / "report.txt").read_text(), end="")
    for name in backends.TARGETS:
        text = backends.backend(name).describe(out)
        if text:
            print(f"\n== {name}\n{text}")
    text = describe_synthesis(out)
    if text:
        print(f"\n== synth\n{text}")
    return 0
