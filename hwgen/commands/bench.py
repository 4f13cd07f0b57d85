"""`hwgen bench MODEL... [--data D] [--table T.csv] [--plot P.png]`: one experiment row per model
and configuration, appended to an experiment table and printed as markdown."""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
from pathlib import Path

from ..devices import DEVICES
from ..experiments import Experiment, ExperimentTable, experiment_id, experiment_row, markdown
from ..plots import bench_plot, check_path
from ..progress import progress_bar
from .options import HelpFormatter


def register(sub) -> None:
    p = sub.add_parser("bench", help="measure models into an experiment table (metric, size, speed, resources)",
                       description="One row per model and configuration: metric on the data (top-1 accuracy "
                                   "against labels, else agreement with onnxruntime), MACs, parameters, sparsity, "
                                   "bits, FPGA interval, utilization, resources and inferences/s, RVV "
                                   "instructions. Rows already in --table (same model, data and options) are "
                                   "reused, not measured again.",
                       formatter_class=HelpFormatter)
    add_experiment_options(p)
    p.add_argument("models", type=Path, nargs="+", metavar="MODEL", help="quantized ONNX models")
    p.add_argument("--device", dest="devices", action="append", choices=list(DEVICES), default=None,
                   help="FPGA to fit and estimate for (repeatable: one row per device; default: ice40-up5k)")
    p.add_argument("--multipliers", dest="multipliers", action="append", type=int, default=None, metavar="N",
                   help="multiplier budget (repeatable: one row per budget; default: the fastest that fits)")
    p.add_argument("--rerun", action="store_true", help="measure again experiments the table already has")
    p.set_defaults(func=run)


def add_experiment_options(p: argparse.ArgumentParser, *, table_required: bool = False) -> None:
    p.add_argument("--data", type=Path, default=None, metavar="LABELLED.npz|IMAGE_DIR",
                   help="inputs (.npz named as the model's inputs, or x) with labels y; or a directory of images "
                        "(in class subdirectories for labels). Default: 8 random inputs, seed 0")
    p.add_argument("--samples", type=int, default=None, metavar="N", help="use at most N samples of --data")
    p.add_argument("--targets", default="fpga,rvv", metavar="T[,T]", help="fpga, rvv or both")
    p.add_argument("--vlen", default="128", metavar="V[,V]", help="VLENs to count RVV instructions at")
    p.add_argument("--measure", action="store_true", help="FPGA cycles measured in Verilator, not the cycle model")
    p.add_argument("--synth", action="store_true", help="resources and Fmax from yosys and nextpnr (minutes)")
    p.add_argument("--seed", type=int, default=1, help="nextpnr placement seed (with --synth)")
    p.add_argument("--table", type=Path, default=None, metavar="T.csv", required=table_required,
                   help="the experiment table to add rows to (made if missing)")
    p.add_argument("--plot", type=Path, default=None, metavar="P.png",
                   help="plot the metric against inferences/s and LUT4s, Pareto fronts marked")


def base_experiment(args: argparse.Namespace, model: Path) -> Experiment:
    from .compile import targets

    return Experiment(model, args.data, tuple(targets(args.targets)), vlens=_vlens(args.vlen), measure=args.measure,
                      synth=args.synth, seed=args.seed, samples=args.samples)


def _vlens(text: str) -> tuple[int, ...]:
    from ..backends.rvv import RvvOptions

    try:
        vlens = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        vlens = ()
    for v in vlens or (0,):
        RvvOptions(vlen=v)  # one line naming the choices
    return vlens


def open_table(path: Path | None) -> ExperimentTable | None:
    return None if path is None else ExperimentTable.open(path)


def run(args: argparse.Namespace) -> int:
    if args.plot:
        check_path(args.plot)
    table = open_table(args.table)
    experiments = []
    for model, device, budget in itertools.product(args.models, args.devices or [None], args.multipliers or [None]):
        experiments.append(dataclasses.replace(base_experiment(args, model), device=device, multipliers=budget))
    rows = []
    failed = 0
    hashes: dict = {}
    with progress_bar(len(experiments), "bench") as bar:
        for exp in experiments:
            row = None
            if table is not None and not args.rerun:
                found = table.find(experiment_id(exp, hashes))
                row = dict(found) if found else None
            if row is None:
                row = experiment_row(exp, progress=bar.describe)
                if table is not None:
                    table.add(row)
            failed += row.get("status") != "ok"
            rows.append(row)
            bar.advance()
    print(markdown(rows))
    if args.plot:
        bench_plot(table.rows if table is not None else rows, args.plot)
        print(f"wrote {args.plot}")
    if table is not None:
        print(f"{len(rows)} row(s) in {args.table}")
    if failed:
        print(f"hwgen: bench: {failed} of {len(rows)} experiment(s) failed (the table says why)", file=sys.stderr)
        return 1
    return 0
