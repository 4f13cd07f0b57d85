"""`hwgen sweep MODEL --set OPTION=V1,V2 [...] [--workers N | --scheduler ADDRESS]`: the product of
the option lists, each point an experiment, run on Dask, rows added to an experiment table."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..errors import InvalidOptionError
from ..experiments import markdown
from ..plots import bench_plot, check_path
from ..progress import progress_bar
from ..sweep import SWEEPABLE, SweepOptions, parse_set, points, run_sweep
from .bench import add_experiment_options, base_experiment, open_table
from .options import HelpFormatter


def register(sub) -> None:
    p = sub.add_parser("sweep", help="a design-space sweep over option lists, run on Dask",
                       description="Every combination of the --set lists is an experiment (compile, cycle model, "
                                   "optional synthesis), run as a task on a Dask cluster: a local one by default, or "
                                   "--scheduler ADDRESS. Rows go into --table as points finish; points it already "
                                   "has are not run again; a failed point is recorded with its error.",
                       formatter_class=HelpFormatter)
    p.add_argument("model", type=Path, metavar="MODEL", help="the quantized ONNX model")
    p.add_argument("--set", dest="sets", action="append", required=True, metavar="OPTION=V1,V2,...",
                   help="an option and its values (repeatable); OPTION is one of "
                        + ", ".join(n.replace("_", "-") for n in SWEEPABLE)
                        + " (multipliers may be auto; the values of vlens, targets and fold are lists themselves, so "
                          "they are separated by ;, as in vlens=128;128,512)")
    add_experiment_options(p, table_required=True)
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes of the local Dask cluster (default: the machine's cores, at most 8)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="use this Dask scheduler (tcp://host:8786) instead of a local cluster")
    p.add_argument("--rerun", action="store_true", help="run again points the table already has")
    # --plot (from the experiment options) draws the whole table, as bench's does
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.workers is not None and args.scheduler is not None:
        raise InvalidOptionError("give --workers (a local cluster) or --scheduler, not both")
    if args.plot:
        check_path(args.plot)
    table = open_table(args.table)
    experiments = points(base_experiment(args, args.model), [parse_set(s) for s in args.sets])
    options = SweepOptions(args.workers, args.scheduler, args.rerun)
    start = time.monotonic()
    counts = {"cached": 0, "ran": 0, "failed": 0}
    with progress_bar(len(experiments), "sweep") as bar:
        def on_row(row, cached):
            counts["cached" if cached else "ran"] += 1
            counts["failed"] += row.get("status") != "ok"
            bar.advance()
        rows = run_sweep(experiments, table, options, on_row)
    print(markdown(rows))
    if args.plot:
        bench_plot(table.rows, args.plot)
        print(f"wrote {args.plot}")
    print(f"{len(rows)} point(s): {counts['ran']} run, {counts['cached']} from {args.table}, "
          f"{counts['failed']} failed; {time.monotonic() - start:.1f} s")
    if counts["failed"]:
        print(f"hwgen: sweep: {counts['failed']} point(s) failed (the table says why)", file=sys.stderr)
        return 1
    return 0
