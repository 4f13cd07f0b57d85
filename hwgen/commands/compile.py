"""`hwgen compile MODEL -o OUT [--target fpga,rvv]`: the IR, the report and each target's code."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import api, backends
from ..errors import InvalidOptionError
from ..logs import get_logger
from ..modelconfig import load_config
from ..outdir import OutputDir
from .options import (
    HelpFormatter,
    add_fpga_options,
    add_model_options,
    add_rvv_options,
    compile_options,
    fpga_options,
    rvv_options,
)

log = get_logger("compile")


def register(sub) -> None:
    p = sub.add_parser("compile", help="compile a model to IR, report and generated code",
                       formatter_class=HelpFormatter)
    add_model_options(p)
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT",
                   help="output directory: new, empty, or an earlier hwgen output (whose files it replaces; "
                        "files you added stay)")
    p.add_argument("--force", action="store_true",
                   help="also write into a non-empty directory that is not an hwgen output, overwriting files "
                        "with the names hwgen writes (nothing else is removed)")
    p.add_argument("--target", default=None, metavar="T[,T]",
                   help=f"also generate code for these targets ({', '.join(backends.TARGETS)})")
    p.add_argument("--config", type=Path, default=None, metavar="CONFIG.json",
                   help="the model's config file: its detect section adds detect.h/detect.c to the RVV library "
                        "(default: MODEL's stem + .json, if there)")
    add_fpga_options(p, compiling=True)
    add_rvv_options(p, compiling=True)
    p.set_defaults(func=run)


def targets(text: str | None) -> list[str]:
    names = list(dict.fromkeys(t.strip() for t in (text or "").split(",") if t.strip()))
    for name in names:
        if name not in backends.TARGETS:
            raise InvalidOptionError(f"unknown target {name!r}; choose from {', '.join(backends.TARGETS)}")
    return names


def run(args: argparse.Namespace) -> int:
    chosen = targets(args.target)
    options = compile_options(args)
    if args.config is not None:
        load_config(args.config)   # checked even when no target reads it
    out = OutputDir.prepare(args.output, force=args.force)   # refused before any work
    compiled = api.compile(args.model, chosen, rounding=options.rounding, multiplier_bits=options.multiplier_bits,
                           fpga=fpga_options(args), rvv=rvv_options(args))
    removed = out.write(compiled.write_into)
    if removed:
        groups = sorted({Path(rel).parts[0] + ("/" if len(Path(rel).parts) > 1 else "") for rel in removed})
        log.warning("removed the earlier compile's %s (not part of this one)", ", ".join(groups))
    print(compiled.report.to_text())
    print(f"wrote {args.output}/ (ir.json, ir.txt, report.json, report.txt" + "".join(f", {t}/" for t in chosen) + ")")
    return 0
