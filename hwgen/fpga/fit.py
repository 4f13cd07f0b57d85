"""Device-aware folding: the fastest plan whose estimated resources fit a named FPGA.

`hwgen compile --target fpga --device D` asks for the plan with the shortest initiation interval
that fits D. A plan is built for a multiplier budget as usual (`make_plan`), then fitted:

1. multiplier lanes the DSPs cannot take (the requantizers' DSPs come first) are built from
   logic, engine by engine, the engines with the most lanes first;
2. memories are placed (`resources.place_memories`): block RAM, LUT RAM or logic; if nothing
   fits otherwise, the line buffers lose their slack rows (`plan.WINDOW_SLACK_ROWS`);
3. the estimate must leave every resource within the device: DSPs and block RAMs exactly
   (they are counted, not estimated), logic and flip-flops within LOGIC_MARGIN of the device,
   since the estimate is a model and the placer needs room.

The budget is searched over a ladder of budgets about a quarter apart (see `fit_device`). When
no budget fits, the error names the resource and the shortfall (at one multiplier) and says what
would fit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from ..devices import DEVICES, Device, Family
from ..errors import HwgenError
from ..ir import Graph
from .plan import WINDOW_SLACK_ROWS, Plan, engine_programs, make_plan
from .resources import Estimate, bram_blocks, estimate, lane_in_dsp, memories, place_memories
from .seqresources import SeqEstimate

__all__ = ["Fit", "fit_device", "fit_budget", "resources_text", "LOGIC_MARGIN", "budget_ladder", "DoesNotFitDevice",
           "overflows", "default_fit_note"]

#: Logic and flip-flops the estimate may use, as a fraction of the device's.
LOGIC_MARGIN = 0.85

#: The largest multiplier budget tried (far beyond any device's DSPs plus logic).
MAX_BUDGET = 4096

#: A multiplier lane built from logic costs at least this many LUT4s (an 8 x 8 product): the
#: device's logic bounds the budgets worth trying.
LUTS_PER_LANE = 40

#: Budgets in a row that overflow, after one fitted, before the search stops.
STOP_AFTER = 3


class DoesNotFitDevice(HwgenError):
    """The model does not fit the device at any folding."""


@dataclass(frozen=True)
class Fit:
    device: Device
    plan: Plan
    estimate: Estimate
    budget: int

    def summary(self) -> str:
        e, d = self.estimate, self.device
        lut_lanes = sum(s.lut_lanes for s in self.plan.engines)
        return (f"{d.name}: {self.budget} multipliers ({lut_lanes} in logic), interval {self.plan.interval:,} cycles; "
                f"estimated {e.cells:,}/{d.logic:,} logic, {e.ff:,} FF, {e.dsp}/{d.dsps} DSP, "
                f"{e.bram}/{d.brams} block RAM")

    def to_json(self) -> dict:
        return {"device": self.device.name, "budget": self.budget, "interval": self.plan.interval,
                "lut_lanes": {s.name: s.lut_lanes for s in self.plan.engines if s.lut_lanes},
                "logic_margin": LOGIC_MARGIN, "estimate": self.estimate.to_json()}


def default_fit_note(graph: Graph, plan: Plan, device: Device) -> str:
    """For a compile without --device: whether the plan fits `device` by the estimate, and if not,
    which option makes one that does."""
    found = overflows(estimate(graph, plan, engine_programs(graph, plan), device), device)
    if not found:
        return f"no --device given; this folding fits {device.name} by hwgen's estimate"
    what = ", ".join(f"{need:,} {name} of {have:,}" for name, need, have in found)
    return (f"no --device given; this folding does not fit {device.name} by hwgen's estimate ({what}): "
            f"--device {device.name} picks the fastest folding that fits")


def budget_ladder(limit: int = MAX_BUDGET) -> list[int]:
    """1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, ...: 2**k times 4/4, 5/4, 6/4 and 7/4,
    so steps are at most a third (numbers with small factors, which divide channel counts)."""
    ladder = {m << k >> 2 for k in range(limit.bit_length() + 2) for m in (4, 5, 6, 7) if (m << k) % 4 == 0}
    return sorted(b for b in ladder if 1 <= b <= limit)


def overflows(e: Estimate | SeqEstimate, device: Device, margin: float = LOGIC_MARGIN) -> list[tuple[str, int, int]]:
    """(resource, need, have) for every resource the estimate (of either architecture) exceeds; logic
    and flip-flops may use `margin` of the device (DSPs and block RAMs are counted: all of them)."""
    logic_cap = int(device.logic * margin)
    ff_cap = int(device.ffs * margin)
    checks = [("DSPs", e.dsp, device.dsps), ("block RAMs", e.bram, device.brams), ("SPRAMs", e.spram, device.sprams),
              ("logic cells" if device.family is Family.ICE40 else "LUT4s", e.cells, logic_cap),
              ("flip-flops", e.ff, ff_cap)]
    return [(name, need, have) for name, need, have in checks if need > have]


def _lut_lanes(plan: Plan, programs, excess: int, family: Family) -> dict[str, int]:
    """Lanes to build from logic so `excess` fewer DSPs are needed (iCE40 keeps narrow products in
    logic anyway: those lanes save nothing)."""
    movable = {e.name: len(programs[e.name].variable_lanes) if lane_in_dsp(programs[e.name], family) else 0
               for e in plan.engines}
    out = {}
    for name in sorted(movable, key=lambda n: (-movable[n], n)):
        if excess <= 0:
            break
        take = min(excess, movable[name])
        if take:
            out[name] = take
            excess -= take
    return out


class _Plans:
    """Plans and engine programs of one graph by budget: they do not depend on the device, and
    building them is what a fit spends its time on."""

    def __init__(self, graph: Graph, folds: Sequence[str]):
        self.graph, self.folds = graph, tuple(folds)
        self._cache: dict[int, tuple[Plan, dict]] = {}

    def get(self, budget: int) -> tuple[Plan, dict]:

        if budget not in self._cache:
            plan = make_plan(self.graph, budget=budget, folds=self.folds)
            self._cache[budget] = plan, engine_programs(self.graph, plan)
        return self._cache[budget]


def _try(plans: _Plans, device: Device, budget: int, slack: int = WINDOW_SLACK_ROWS) -> tuple[Plan, Estimate]:
    """The plan for `budget` and line-buffer `slack` rows, fitted to `device`, and its estimate."""
    graph = plans.graph
    plan, programs = plans.get(budget)
    plan = dataclasses.replace(plan, window_slack=slack)
    first = estimate(graph, plan, programs, device, placement={})
    lut = _lut_lanes(plan, programs, first.dsp - device.dsps, device.family) if first.dsp > device.dsps else {}
    engines = tuple(dataclasses.replace(e, lut_lanes=lut.get(e.name, 0)) for e in plan.engines)
    plan = dataclasses.replace(plan, engines=engines)
    placement = place_memories(memories(graph, plan, programs), device)
    plan = dataclasses.replace(plan, placements=tuple(sorted(placement.items())))
    return plan, estimate(graph, plan, programs, device)


def fit_device(graph: Graph, device: Device | str, folds: Sequence[str] = (), plans: _Plans | None = None) -> Fit:
    """The plan with the shortest interval (on the budget ladder) whose estimate fits `device`.

    Line buffers keep their slack rows if any budget fits with them: without them, producers
    that share an engine cannot run ahead, and a multi-engine design loses a third of its
    throughput (person_detect measured 187,783 cycles against 117,504 modelled). Only when
    nothing fits with them are they dropped.
    """
    if isinstance(device, str):
        device = DEVICES[device]
    plans = plans or _Plans(graph, folds)
    try:
        return _scan(plans, device, WINDOW_SLACK_ROWS)
    except DoesNotFitDevice:
        return _scan(plans, device, 0)


def _scan(plans: _Plans, device: Device, slack: int) -> Fit:
    """Fitting is not monotonic in the budget: a small budget puts many layers on one engine, and
    each layer it runs keeps its input buffer and output queue there. So the ladder is scanned
    upwards, up to as many lanes as the device's DSPs and logic could build, stopping after
    STOP_AFTER budgets in a row that overflow once one has fitted (or, before any has, that
    come no closer to fitting)."""
    limit = device.dsps + device.logic // LUTS_PER_LANE
    fitting: list[tuple[int, Plan, Estimate]] = []
    closest: tuple[float, int, Estimate] | None = None   # the miss that overflows least
    misses = 0
    for budget in budget_ladder(limit):
        plan, est = _try(plans, device, budget, slack)
        over = overflows(est, device)
        if not over:
            misses = 0
            fitting.append((budget, plan, est))
            continue
        worst = max(need / max(1, have) for _, need, have in over)
        if closest is None or worst < closest[0]:
            closest, misses = (worst, budget, est), 0
        else:
            misses += 1
        if misses >= STOP_AFTER * (1 if fitting else 2):
            break
    if not fitting:
        raise DoesNotFitDevice(_refusal(plans, device, closest[1], closest[2]))
    budget, plan, est = min(fitting, key=lambda f: (f[1].interval, f[0]))
    return Fit(device, plan, est, budget)


def fit_budget(graph: Graph, device: Device | str, budget: int, folds: Sequence[str] = ()) -> Fit:
    """The plan for `budget` multipliers, fitted to `device` (lanes in logic, memories placed), or
    a refusal naming the resource it overflows."""
    if isinstance(device, str):
        device = DEVICES[device]
    plans = _Plans(graph, folds)
    plan, est = _try(plans, device, budget)
    if overflows(est, device):
        plan, est = _try(plans, device, budget, 0)
    over = overflows(est, device)
    if over:
        resource, need, have = max(over, key=lambda o: o[1] / max(1, o[2]))
        raise DoesNotFitDevice(f"--multipliers {budget} does not fit {device.name}: the estimate needs {need:,} "
                               f"{resource}, {need - have:,} more than the {have:,} hwgen may use; leave out "
                               f"--multipliers to get the fastest folding that fits")
    return Fit(device, plan, est, budget)


def _fits_somewhere(plans: _Plans, device: Device) -> bool:
    try:
        fit_device(plans.graph, device, plans.folds, plans)
    except DoesNotFitDevice:
        return False
    return True


def _refusal(plans: _Plans, device: Device, budget: int, est: Estimate) -> str:
    graph = plans.graph
    resource, need, have = max(overflows(est, device), key=lambda o: o[1] / max(1, o[2]))
    shortfall = f"{need:,} {resource}, {need - have:,} more than the {have:,} hwgen may use"
    all_blocks = sum(bram_blocks(m, device.family) for m, _ in est.memories if m.sync)
    weight_blocks = sum(bram_blocks(m, device.family) for m, _ in est.memories if m.role == "weights")
    if resource != "block RAMs" and all_blocks > device.brams:
        # the real shortage: memories that block RAM cannot hold went to logic
        shortfall = (f"{all_blocks} block RAMs for its memories ({weight_blocks} for weights), "
                     f"{all_blocks - device.brams} more than the {device.brams} it has, and logic for the rest: "
                     + shortfall)
    bigger = [d.name for d in DEVICES.values() if d.logic > device.logic and _fits_somewhere(plans, d)][:1]
    weight_kbit = sum(est.weights.values()) / 1024
    hints = [f"a bigger device ({bigger[0]})" if bigger else "a bigger device than hwgen knows",
             f"pruning or fewer weight bits ({weight_kbit:,.0f} kbit of weights)",
             "--multiplier-bits 16 (narrower requantizers)" if resource == "DSPs" else None]
    return (f"{graph.name} does not fit {device.name} at any folding: the closest, {budget} multiplier(s), needs "
            f"{shortfall}; would fit: " + "; ".join(h for h in hints if h))


def resources_text(data: dict) -> str:
    """`resources.json` (a Fit's JSON, or a sequential engine's) as a few lines for `hwgen report OUT`."""
    e = data["estimate"]
    if data.get("arch") == "sequential":
        return (f"fitted to {data['device']}: sequential engine, {data['lanes']}x{data['lanes']} array, weights from "
                f"{data['weights']}, interval {data['interval']:,} cycles\n  estimate: {e['cells']:,} logic cells "
                f"({e['logic']:,} LUT4), {e['ff']:,} FF, {e['dsp']} DSP, {e['bram']} block RAM, {e['spram']} SPRAM")
    lines = [f"fitted to {data['device']}: {data['budget']} multipliers"
             + (f" ({sum(data['lut_lanes'].values())} of them built from logic)" if data["lut_lanes"] else "")
             + f", interval {data['interval']:,} cycles",
             f"  estimate: {e['cells']:,} logic cells ({e['logic']:,} LUT4), {e['ff']:,} FF, {e['dsp']} DSP, "
             f"{e['bram']} block RAM" + (f", {e['lutram']} LUT RAM cells" if e["lutram"] else "")]
    where = ", ".join(f"{bits / 1024:,.1f} kbit in {kind}" for kind, bits in e["weight_bits"].items())
    if where:
        lines.append(f"  weights: {where}")
    return "\n".join(lines)
