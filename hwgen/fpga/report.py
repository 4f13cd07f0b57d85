"""Cycle accounting of an accelerator: the model's expected cycles and, once simulated, measured ones.

Utilization = non-zero MACs / (multipliers x cycles), where multipliers are the lanes the
hardware has (a lane whose weights are all zero has no multiplier) and cycles the initiation
interval (per inference, inputs back to back). Per layer and per engine, the cycles are their
busy cycles instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

from ..ir import Graph
from ..names import terminal
from .plan import Plan
from .sequential import ARRAY
from .units import unit_of_op

__all__ = ["LayerCycles", "EngineCycles", "Measured", "CycleReport", "cycle_report", "sequential_cycle_report",
           "REPORT_FORMAT"]

REPORT_FORMAT = "hwgen-fpga-report/1"


@dataclass(frozen=True)
class LayerCycles:
    node: str
    op: str
    engine: str | None
    fold: str | None            # "PExSIMD" it runs at
    in_lanes: int
    out_lanes: int
    nonzero_macs: int           # per inference
    expected_busy: int          # engine steps (MAC layers) or stream words, per inference
    measured_busy: float | None = None


@dataclass(frozen=True)
class EngineCycles:
    name: str
    fold: str
    layers: tuple[str, ...]
    multipliers: int            # lanes with a multiplier
    lanes: int                  # PE x SIMD
    nonzero_macs: int
    expected_busy: int
    measured_busy: float | None = None

    @property
    def expected_utilization(self) -> float:
        return self.nonzero_macs / (self.multipliers * self.expected_busy) if self.multipliers else 0.0


@dataclass(frozen=True)
class Measured:
    samples: int
    latency: int                # cycles, first input word to last output word of one inference
    interval: float | None      # cycles per inference, inputs back to back
    cycles_per_second: float = 0.0  # simulation speed (not stored in report.json: it varies)


@dataclass(frozen=True)
class CycleReport:
    model: str
    budget: int | None
    lanes: int                  # multiplier lanes of all engines
    multipliers: int            # of which have a multiplier
    requant_multipliers: int    # one per PE and per lane of requantizing units
    rescale_multipliers: int    # residual adds: two constant multipliers per lane
    nonzero_macs: int
    expected_interval: int
    layers: tuple[LayerCycles, ...]
    engines: tuple[EngineCycles, ...]
    measured: Measured | None = None

    @property
    def expected_utilization(self) -> float:
        return _utilization(self.nonzero_macs, self.multipliers, self.expected_interval)

    @property
    def measured_utilization(self) -> float | None:
        if self.measured is None or not self.measured.interval:
            return None
        return _utilization(self.nonzero_macs, self.multipliers, self.measured.interval)

    def with_measurement(self, measured: Measured, counters: Mapping[str, int]) -> CycleReport:
        """This report with measured cycles; `counters` are busy cycles per inference by counter name."""
        layers = tuple(_replace(l, measured_busy=counters.get(f"layer:{l.node}")) for l in self.layers)
        engines = tuple(_replace(e, measured_busy=counters.get(f"engine:{e.name}")) for e in self.engines)
        return CycleReport(**{**self.__dict__, "layers": layers, "engines": engines, "measured": measured})

    def to_json(self) -> dict:
        d = asdict(self)
        d["format"] = REPORT_FORMAT
        d["expected_utilization"] = round(self.expected_utilization, 4)
        d["measured_utilization"] = None if self.measured_utilization is None else round(self.measured_utilization, 4)
        if self.measured is not None:
            d["measured"].pop("cycles_per_second")
        for e, engine in zip(d["engines"], self.engines):
            e["expected_utilization"] = round(engine.expected_utilization, 4)
        return d

    def to_text(self) -> str:
        head = ("layer", "op", "engine", "fold", "lanes in/out", "nz MACs", "busy (model)", "busy (measured)")
        rows = [(terminal(l.node), l.op, l.engine or "-", l.fold or "-", f"{l.in_lanes}/{l.out_lanes}",
                 f"{l.nonzero_macs:,}",
                 f"{l.expected_busy:,}", "-" if l.measured_busy is None else f"{l.measured_busy:,.0f}")
                for l in self.layers]
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        fmt = lambda r: "  ".join(c.ljust(w) if i < 5 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
        out = [f"FPGA accelerator for {terminal(self.model)}", fmt(head), fmt(tuple("-" * w for w in widths)),
               *map(fmt, rows)]
        out.append("")
        for e in self.engines:
            measured = "" if e.measured_busy is None else f", measured {e.measured_busy:,.0f}"
            out.append(f"{e.name}: {e.fold} = {e.lanes} lanes, {e.multipliers} multipliers, layers "
                       f"{', '.join(map(terminal, e.layers))}; busy {e.expected_busy:,} cycles{measured}; utilization "
                       f"{e.expected_utilization:.3f}")
        budget = f"budget {self.budget}" if self.budget is not None else "all layers folded by --fold"
        out.append(f"multipliers: {self.multipliers} of {self.lanes} lanes ({budget}); plus "
                   f"{self.requant_multipliers} requantization and {self.rescale_multipliers} rescale multipliers")
        out.append(f"model: interval {self.expected_interval:,} cycles/inference, utilization "
                   f"{self.expected_utilization:.3f}")
        if self.measured is not None:
            m = self.measured
            interval = "-" if m.interval is None else f"{m.interval:,.1f}"
            util = "-" if self.measured_utilization is None else f"{self.measured_utilization:.3f}"
            out.append(f"measured ({m.samples} inferences): latency {m.latency:,} cycles, interval {interval} "
                       f"cycles/inference, utilization {util}")
        return "\n".join(out)


def _replace(obj, **changes):
    return type(obj)(**{**obj.__dict__, **changes})


def _utilization(nonzero: int, multipliers: int, cycles: float) -> float:
    return nonzero / (multipliers * cycles) if multipliers and cycles else 0.0


def cycle_report(graph: Graph, plan: Plan, programs: Mapping) -> CycleReport:
    """The model's numbers; `programs` are the engines' compiled programs (for their multipliers)."""
    nonzero = {}
    for node in graph.nodes:
        if node.weighted:
            nonzero[node.name] = node.macs(graph)[1]
    layers = tuple(LayerCycles(s.node, s.op, s.engine, str(s.fold) if s.fold else None, s.in_lanes[0], s.out_lanes,
                               nonzero.get(s.node, 0), s.busy) for s in plan.layers)
    engines = tuple(EngineCycles(e.name, str(e.fold), e.layers, programs[e.name].multipliers, e.fold.multipliers,
                                 sum(nonzero[n] for n in e.layers), plan.engine_busy(e.name)) for e in plan.engines)
    requant = sum(e.fold.pe for e in plan.engines) + sum(unit_of_op(s.op).requantizers(s.out_lanes)
                                                         for s in plan.layers)
    rescale = sum(unit_of_op(s.op).rescalers(s.out_lanes) for s in plan.layers)
    return CycleReport(graph.name, plan.budget, plan.multipliers, sum(e.multipliers for e in engines), requant,
                       rescale, sum(nonzero.values()), plan.interval, layers, engines)


def sequential_cycle_report(model: str, program, cycles) -> CycleReport:
    """The numbers of a sequential engine (`sequential.SeqProgram`, its `SeqCycles`): one engine,
    the MAC array, running every layer; a layer's busy cycles are its array steps."""
    lanes = program.lanes * program.lanes
    fold = f"{program.lanes}x{program.lanes}"
    layers = tuple(LayerCycles(x.node, x.op, ARRAY, fold, program.lanes, program.lanes, x.macs, x.steps)
                   for x in program.layers)
    nonzero = sum(x.macs for x in program.layers)
    engine = EngineCycles(ARRAY, fold, tuple(x.node for x in program.layers), lanes, lanes, nonzero, cycles.compute)
    return CycleReport(model, lanes, lanes, lanes, program.requantizers, 0, nonzero, cycles.interval, layers,
                       (engine,))


def report_from_json(d: Mapping) -> CycleReport:
    if d.get("format") != REPORT_FORMAT:
        raise ValueError(f"not a {REPORT_FORMAT} file")
    layers = tuple(LayerCycles(**l) for l in d["layers"])
    engines = tuple(EngineCycles(**{**e, "layers": tuple(e["layers"])}) for e in
                    ({k: v for k, v in e.items() if k != "expected_utilization"} for e in d["engines"]))
    measured = Measured(**d["measured"]) if d["measured"] else None
    keep = {k: d[k] for k in ("model", "budget", "lanes", "multipliers", "requant_multipliers", "rescale_multipliers",
                              "nonzero_macs", "expected_interval")}
    return CycleReport(**keep, layers=layers, engines=engines, measured=measured)
