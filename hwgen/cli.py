"""The `hwgen` command: compile, run and report, plus the targets' own subcommands."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from . import __version__, backends, golden, irjson
from .arrays import check_output_path, load_inputs, save_outputs
from .compiler import CompileOptions, Compiled, compile_model
from .console import EXIT_BROKEN_PIPE, EXIT_INTERNAL, configure_logging, error_line, one_line, safe_output, \
    silence_broken_stdout
from .errors import InvalidOptionError
from .fixed import MULTIPLIER_BITS, IntType, Rounding
from .ir import Graph, InputPort
from .outdir import OutputDir, reading, write_file

log = logging.getLogger("hwgen")


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, help="the quantized ONNX model")
    p.add_argument("--rounding", choices=[r.value for r in Rounding], default=Rounding.RNE.value,
                   help="requantization rounding: rne (ties to even, as ONNX) or rnu (ties up, cheaper in "
                        "hardware)")
    p.add_argument("--multiplier-bits", type=int, default=MULTIPLIER_BITS, metavar="N",
                   help="bits of the requantization multipliers, 2..32")


def _options(args: argparse.Namespace) -> CompileOptions:
    if not 2 <= args.multiplier_bits <= 32:
        raise InvalidOptionError(f"--multiplier-bits must be 2..32, not {args.multiplier_bits}")
    return CompileOptions(Rounding(args.rounding), args.multiplier_bits)


# -- hwgen compile ---------------------------------------------------------------------------


def write_outputs(compiled: Compiled, out: OutputDir, targets: list[str], args: argparse.Namespace) -> list[str]:
    """Write every file of the compile output into OUT (see `hwgen.outdir`); returns the files of
    an earlier compile there that this one replaced by nothing."""
    def fill(tmp: Path) -> None:
        irjson.dump(compiled.graph, tmp / "ir.json")
        (tmp / "ir.txt").write_text(str(compiled.graph) + "\n")
        (tmp / "report.json").write_text(json.dumps(compiled.report.to_json(), indent=1) + "\n")
        (tmp / "report.txt").write_text(compiled.report.to_text() + "\n")
        for target in targets:
            backends.backend(target).emit(compiled, tmp, args)

    return out.write(fill)


def _targets(text: str | None) -> list[str]:
    if not text:
        return []
    targets = [t.strip() for t in text.split(",") if t.strip()]
    for t in targets:
        if t not in backends.TARGETS:
            raise InvalidOptionError(f"unknown target {t!r}; choose from {', '.join(backends.TARGETS)}")
    return list(dict.fromkeys(targets))


def cmd_compile(args: argparse.Namespace) -> int:
    targets = _targets(args.target)
    out = OutputDir.prepare(args.output, force=args.force)
    compiled = compile_model(args.model, _options(args))
    removed = write_outputs(compiled, out, targets, args)
    if removed:
        groups = sorted({Path(rel).parts[0] + ("/" if len(Path(rel).parts) > 1 else "") for rel in removed})
        log.warning("removed the earlier compile's %s (not part of this one)", ", ".join(groups))
    print(compiled.report.to_text())
    print(f"wrote {args.output}/ (ir.json, ir.txt, report.json, report.txt"
          + "".join(f", {t}/" for t in targets) + ")")
    return 0


# -- hwgen run ---------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    compiled = compile_model(args.model, _options(args))
    if args.output is not None:
        check_output_path(args.output, list(compiled.graph.model_outputs))
    feeds = load_inputs(args.input, compiled.graph)
    core = None
    if args.backend != "golden":
        target = backends.backend({"rtl": "fpga", "rvv": "rvv"}[args.backend])
        core = lambda inputs: target.run_core(compiled, inputs, args)  # noqa: E731
    outputs = golden.run_model(compiled.graph, feeds, core=core)
    if args.output is None:
        for name, y in outputs.items():
            print(f"{name}: {np.array2string(y, threshold=64)}")
    else:
        save_outputs(args.output, outputs)
    return 0


# -- hwgen report ------------------------------------------------------------------------------


def cmd_report(args: argparse.Namespace) -> int:
    if args.model.is_dir():  # a compile output: the model's report and each target's
        return _report_output_dir(args.model)
    compiled = compile_model(args.model, _options(args))
    report = compiled.report
    if args.json:
        write_file(args.json, json.dumps(report.to_json(), indent=1) + "\n", what="JSON report")
    print(report.to_text())
    return 0


def _report_output_dir(out: Path) -> int:
    if not (out / "report.txt").exists():
        raise InvalidOptionError(f"{out}: not a hwgen compile output (no report.txt)")
    with reading(out / "report.txt"):
        print((out / "report.txt").read_text(), end="")
    from .synth.cli import describe as describe_synth

    for name, module in backends.available().items():
        text = module.describe(out) if (out / name).is_dir() and hasattr(module, "describe") else None
        if text:
            print(f"\n== {name}\n{text}")
    text = describe_synth(out) if (out / "synth").is_dir() else None
    if text:
        print(f"\n== synth\n{text}")
    return 0


# -- entry point -------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line that says where the help is, not a page of usage; and -v/-vv
    accepted after the subcommand too."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.prog != "hwgen":  # a subcommand
            self.add_argument("-v", "--verbose", dest="verbose_after", action="count", default=0,
                              help="more logging (-vv for debug)")

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {one_line(message)}; see {self.prog} --help\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hwgen", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Compile pruned, quantized ONNX models to bit-exact FPGA accelerators and RISC-V Vector C.")
    parser.add_argument("--version", action="version", version=f"hwgen {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    parser.set_defaults(verbose_after=0)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    targets = backends.available()

    p = sub.add_parser("compile", help="compile a model to IR, report and generated code",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _add_model_options(p)
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT",
                   help="output directory: new, empty, or an earlier hwgen output (whose files it replaces; "
                        "files you added stay)")
    p.add_argument("--force", action="store_true",
                   help="also write into a non-empty directory that is not an hwgen output, overwriting files "
                        "with the names hwgen writes (nothing else is removed)")
    p.add_argument("--target", default=None, metavar="T[,T]",
                   help=f"also generate code for these targets ({', '.join(backends.TARGETS)})")
    for module in targets.values():
        module.add_arguments(p)
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("run", help="run a model on inputs (golden model or generated code)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _add_model_options(p)
    p.add_argument("--input", type=Path, required=True, metavar="X.npy",
                   help="input array (.npy), or arrays named as the model's inputs (.npz)")
    p.add_argument("--output", type=Path, default=None, metavar="Y.npy", help="where to save the output")
    p.add_argument("--backend", choices=["golden", "rtl", "rvv"], default="golden",
                   help="golden: the reference model; rtl: Verilator simulation; rvv: RISC-V under QEMU")
    for module in targets.values():
        module.add_arguments(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("report", help="per-layer MACs, parameters, sparsity and bit widths",
                       description="Report on MODEL.onnx, or on a compile output directory OUT (with each "
                                   "target's cycles or instruction counts).",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _add_model_options(p)
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the report as JSON")
    p.set_defaults(func=cmd_report)

    for module in targets.values():
        if hasattr(module, "register_commands"):
            module.register_commands(sub)
    from .synth.cli import register_commands as add_synth_commands  # yosys / nextpnr flow

    add_synth_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The `hwgen` command. Every way it ends is an exit code and, on error, one line on stderr."""
    try:
        with safe_output():
            return _main(argv)
    except BrokenPipeError:
        silence_broken_stdout()
        return EXIT_BROKEN_PIPE


def _main(argv: list[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed as one line
        return exc.code if isinstance(exc.code, int) else 2
    configure_logging(args.verbose + args.verbose_after)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("hwgen: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        raise
    except Exception as exc:  # noqa: BLE001 - the one place every failure becomes one line
        line, code = error_line(exc)
        if code == EXIT_INTERNAL:
            log.debug("internal error", exc_info=True)
        print(f"hwgen: {one_line(line)}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
