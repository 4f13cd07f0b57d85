"""Design-space sweeps: the product of option lists, each point an experiment, run on Dask.

Each point is a task (compile, cycle model, optional synthesis) on a `dask.distributed` cluster: a
local one of `workers` processes by default, or the scheduler at `scheduler` (a cluster of many
machines). Only this process writes the experiment table, one finished point at a time (a whole
file replaced by a rename), so an interrupted sweep leaves it consistent; points the table already
has (same model, data and options: the experiment id) are not run again; a point that fails is
recorded with its error and the others go on.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .errors import InvalidOptionError
from .experiments import Experiment, ExperimentTable, experiment_id, experiment_row

__all__ = ["SweepOptions", "points", "parse_set", "run_sweep", "SWEEPABLE"]

#: The options a sweep may vary (Experiment fields), as `--set NAME=V1,V2` spells them.
SWEEPABLE = ("device", "multipliers", "rounding", "multiplier_bits", "seed", "vlens", "targets", "measure", "fold")


@dataclass(frozen=True)
class SweepOptions:
    workers: int | None = None        # local cluster processes (default: the machine's cores, at most 8)
    scheduler: str | None = None      # address of an existing Dask scheduler instead of a local cluster
    rerun: bool = False               # run points the table already has


def parse_set(text: str) -> tuple[str, list[str]]:
    """`OPTION=V1,V2,...` as (field name, values)."""
    name, sep, values = text.partition("=")
    field = name.strip().lstrip("-").replace("-", "_")
    field = {"fold": "folds", "vlen": "vlens", "target": "targets"}.get(field, field)
    allowed = {"folds" if f == "fold" else f for f in SWEEPABLE}
    if not sep or field not in allowed:
        raise InvalidOptionError(f"--set {text!r}: give OPTION=V1,V2,... with OPTION one of "
                                 + ", ".join(sorted(n.replace("_", "-") for n in SWEEPABLE)))
    listed = [v.strip() for v in values.split(",") if v.strip()] if field not in ("folds", "targets", "vlens") \
        else [v.strip() for v in values.split(";") if v.strip()]
    if not listed:
        raise InvalidOptionError(f"--set {text!r}: no values")
    return field, listed


def _value(field: str, text: str):
    hint = {f.name: f.type for f in dataclasses.fields(Experiment)}[field]
    try:
        if field in ("multipliers", "multiplier_bits", "seed"):
            return None if text.lower() == "auto" else int(text)
        if field == "measure":
            return {"true": True, "false": False, "1": True, "0": False}[text.lower()]
        if field == "vlens":
            return tuple(int(v) for v in text.split(","))
        if field in ("targets", "folds"):
            return tuple(v for v in text.split(",") if v)
    except (ValueError, KeyError):
        raise InvalidOptionError(f"--set {field.replace('_', '-')}: {text!r} is not a value of type {hint}") from None
    return text


def points(base: Experiment, sets: Sequence[tuple[str, Sequence[str]]]) -> list[Experiment]:
    """The experiments of the product of the option lists (the last option varies fastest)."""
    fields = [f for f, _ in sets]
    if len(set(fields)) != len(fields):
        raise InvalidOptionError("an option is --set twice")
    values = [[_value(f, v) for v in vs] for f, vs in sets]
    return [dataclasses.replace(base, **dict(zip(fields, combo))) for combo in itertools.product(*values)]


def _workers(options: SweepOptions) -> int:
    if options.workers is not None:
        if options.workers < 1:
            raise InvalidOptionError(f"--workers must be >= 1, not {options.workers}")
        return options.workers
    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def run_sweep(experiments: Sequence[Experiment], table: ExperimentTable, options: SweepOptions = SweepOptions(),
              on_row: Callable[[Mapping, bool], None] | None = None) -> list[dict]:
    """Run the points not in the table on Dask and add each row as it finishes. Returns the rows of
    all points, in point order (cached ones included). `on_row(row, cached)` sees each as it comes."""
    from dask.distributed import Client, LocalCluster, as_completed

    hashes: dict = {}
    keys = [experiment_id(exp, hashes) for exp in experiments]
    rows: dict[int, dict] = {}
    todo = []
    for i, (exp, key) in enumerate(zip(experiments, keys)):
        found = None if options.rerun else table.find(key)
        if found is not None:
            rows[i] = dict(found)
            if on_row:
                on_row(found, True)
        elif key not in {keys[j] for j, _ in todo}:
            todo.append((i, exp))
    if todo:
        cluster = None
        if options.scheduler is None:
            cluster = LocalCluster(n_workers=min(_workers(options), len(todo)), threads_per_worker=1,
                                   processes=True, dashboard_address=None)
        client = Client(cluster if cluster is not None else options.scheduler)
        try:
            futures = {client.submit(experiment_row, exp, key=f"hwgen-point-{keys[i]}", pure=False): i
                       for i, exp in todo}
            for future in as_completed(futures):
                row = future.result()
                table.add(row)
                rows[futures[future]] = row
                if on_row:
                    on_row(row, False)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    for i, key in enumerate(keys):  # a point given twice has the row of its first
        if i not in rows:
            rows[i] = next(rows[j] for j in sorted(rows) if keys[j] == key)
    return [rows[i] for i in range(len(experiments))]

