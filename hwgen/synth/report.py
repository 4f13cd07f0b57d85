"""What a synthesis run cost: yosys's cell counts, nextpnr's utilization and Fmax, as typed data.

Three sources, read from the files the tools write:

* ``yosys stat -json``: mapped cells per module. The flow keeps the accelerator a module of its
  own (``keep_hierarchy``), so its count excludes the I/O harness around it;
* nextpnr ``--report``: ``{"utilization": {bel: {"used", "available"}}, "fmax": {clock:
  {"achieved", "constraint"}}, "critical_paths": [...]}`` for the whole placed design;
* the yosys log: which memory became which primitive (``mapping memory top.mem via $__DP16KD_``).

The family-specific primitive names meet in one vocabulary, :class:`Resources`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..devices import Family

__all__ = ["Resources", "CriticalPath", "ClockTiming", "MemoryMapping", "ToolVersions", "SynthReport",
           "yosys_resources", "yosys_cells", "nextpnr_resources", "nextpnr_clocks", "memory_mappings",
           "is_bogus_clock", "REPORT_VERSION"]

REPORT_VERSION = 1  # bump when report.json changes shape


@dataclass(frozen=True, slots=True)
class Resources:
    """Counts of one design's FPGA primitives, in family-neutral names.

    From yosys: ``logic`` is LUT4s (ECP5: plus two per CCU2C carry cell, which occupies two LUT
    positions); ``carry`` counts SB_CARRY / CCU2C cells. From nextpnr: ``logic`` is placed logic
    cells (iCE40 ICESTORM_LC: a LUT4, a carry and a FF; ECP5 TRELLIS_COMB: one LUT4 position).
    """

    logic: int = 0
    ff: int = 0
    carry: int = 0
    dsp: int = 0      # SB_MAC16 / MULT18X18D
    bram: int = 0     # SB_RAM40_4K / DP16KD
    spram: int = 0    # SB_SPRAM256KA
    lutram: int = 0   # ECP5 distributed RAM: TRELLIS_DPR16X4 (yosys), TRELLIS_RAMW (nextpnr)
    io: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def to_json(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, int]) -> Resources:
        return cls(**{f.name: int(data.get(f.name, 0)) for f in fields(cls)})


# yosys cell type -> (Resources field, count per cell). One rule per line; types not listed
# (PFUMX, L6MUX21: muxes inside ECP5 slices; GND/VCC; instances of submodules) cost nothing here.
_YOSYS_RULES: dict[str, tuple[tuple[str, int], ...]] = {
    "SB_LUT4": (("logic", 1),),
    "SB_CARRY": (("carry", 1),),
    "SB_MAC16": (("dsp", 1),),
    "SB_SPRAM256KA": (("spram", 1),),
    "SB_IO": (("io", 1),),
    "LUT4": (("logic", 1),),
    "CCU2C": (("logic", 2), ("carry", 1)),  # a 2-bit carry cell fills both LUT4s of a slice half
    "TRELLIS_FF": (("ff", 1),),
    "MULT18X18D": (("dsp", 1),),
    "ALU54B": (("dsp", 1),),
    "DP16KD": (("bram", 1),),
    "PDPW16KD": (("bram", 1),),
    "TRELLIS_DPR16X4": (("lutram", 1),),
    "TRELLIS_IO": (("io", 1),),
}
# Families of names: every SB_DFF* flip-flop variant, every SB_RAM40_4K* port variant.
_YOSYS_PREFIX_RULES: tuple[tuple[str, str], ...] = (("SB_DFF", "ff"), ("SB_RAM40_4K", "bram"))


def _resources_of_cells(cells: Mapping[str, int]) -> Resources:
    totals = dict.fromkeys((f.name for f in fields(Resources)), 0)
    for cell, count in cells.items():
        rules = _YOSYS_RULES.get(cell)
        if rules is None:
            rules = tuple((name, 1) for prefix, name in _YOSYS_PREFIX_RULES if cell.startswith(prefix))
        for name, per_cell in rules:
            totals[name] += per_cell * count
    return Resources(**totals)


def _stat_module(stat: Mapping[str, Any], module: str) -> Mapping[str, Any]:
    modules = stat.get("modules", {})
    for key in (f"\\{module}", module):
        if key in modules:
            return modules[key]
    raise ValueError(f"yosys stat has no module {module!r}; it has {sorted(modules)}")


def yosys_cells(stat: Mapping[str, Any], module: str) -> dict[str, int]:
    """Cell type -> count in ``module`` of a ``stat -json`` result (submodule instances omitted)."""
    modules = {k.lstrip("\\") for k in stat.get("modules", {})}
    cells = _stat_module(stat, module).get("num_cells_by_type", {})
    return {k: int(v) for k, v in sorted(cells.items()) if k.lstrip("\\") not in modules}


def yosys_resources(stat: Mapping[str, Any], module: str | None = None) -> Resources:
    """Resources of ``module``, or of every module in the stat summed (each counted once)."""
    names = [module] if module is not None else [k.lstrip("\\") for k in stat.get("modules", {})]
    total = Resources()
    for name in names:
        total = total + _resources_of_cells(yosys_cells(stat, name))
    return total


# nextpnr bel type -> Resources field.
_NEXTPNR_BELS = {
    Family.ICE40: {"ICESTORM_LC": "logic", "ICESTORM_DSP": "dsp", "ICESTORM_RAM": "bram",
                   "ICESTORM_SPRAM": "spram", "SB_IO": "io"},
    Family.ECP5: {"TRELLIS_COMB": "logic", "TRELLIS_FF": "ff", "MULT18X18D": "dsp", "DP16KD": "bram",
                  "TRELLIS_RAMW": "lutram", "TRELLIS_IO": "io"},
}


def nextpnr_resources(report: Mapping[str, Any], family: Family, which: str = "used") -> Resources:
    """The ``used`` (or ``available``) counts of nextpnr's ``utilization`` table."""
    utilization = report.get("utilization", {})
    counts = {name: int(utilization[bel][which])
              for bel, name in _NEXTPNR_BELS[family].items() if bel in utilization}
    return Resources(**counts)


@dataclass(frozen=True, slots=True)
class CriticalPath:
    """The slowest register-to-register path of one clock, from nextpnr's report."""

    start: str               # cell the path launches from
    end: str                 # cell it is captured by
    delay_ns: float
    logic_ns: float
    routing_ns: float
    levels: int              # cells the path passes through (logic delay segments)
    sources: tuple[str, ...]  # HDL locations of its nets, first seen first

    def describe(self) -> str:
        where = f" ({', '.join(self.sources[:3])})" if self.sources else ""
        return (f"{self.start} -> {self.end}: {self.delay_ns:.2f} ns = {self.logic_ns:.2f} logic "
                f"+ {self.routing_ns:.2f} routing, {self.levels} levels{where}")


@dataclass(frozen=True, slots=True)
class ClockTiming:
    name: str            # the design's clock net, e.g. "clk"
    net: str             # nextpnr's name for it, e.g. "clk$SB_IO_IN_$glb_clk"
    fmax_mhz: float
    target_mhz: float
    critical_path: CriticalPath | None = None

    @property
    def met(self) -> bool:
        return self.fmax_mhz >= self.target_mhz


# A DSP's clock pin tied low becomes a "clock" nextpnr times (TOOLCHAIN.md); never a real one.
_BOGUS_CLOCK = re.compile(r"\$PACKER_(GND|VCC)_NET")


def is_bogus_clock(net: str) -> bool:
    return bool(_BOGUS_CLOCK.search(net))


def _clock_name(net: str) -> str:
    """The design's name for a clock net nextpnr decorated with buffer names."""
    name = re.sub(r"^\$glbnet\$", "", net)
    return re.split(r"\$(?:SB_IO_IN|TRELLIS_IO_IN|glb_clk)", name)[0].rstrip("_$") or net


def _round(x: float) -> float:
    return round(float(x), 3)


def _critical_path(entry: Mapping[str, Any]) -> CriticalPath:
    segments = entry.get("path", [])
    logic = sum(s["delay"] for s in segments if s.get("type") != "routing")
    routing = sum(s["delay"] for s in segments if s.get("type") == "routing")
    sources: list[str] = []
    for s in segments:
        for src in s.get("sources", []):
            if src not in sources and not src.startswith("/share/"):  # skip techmap library lines
                sources.append(src)
    return CriticalPath(
        start=segments[0]["from"]["cell"] if segments else "", end=segments[-1]["to"]["cell"] if segments else "",
        delay_ns=_round(logic + routing), logic_ns=_round(logic), routing_ns=_round(routing),
        levels=sum(1 for s in segments if s.get("type") == "logic"), sources=tuple(sources))


def nextpnr_clocks(report: Mapping[str, Any]) -> tuple[ClockTiming, ...]:
    """Fmax of each real clock (the bogus ``$PACKER_GND_NET`` left out), with its critical path."""
    paths = {}
    for entry in report.get("critical_paths", []):
        if entry.get("from") == entry.get("to"):  # same-clock, register to register
            paths[re.sub(r"^(pos|neg)edge ", "", entry.get("from", ""))] = entry
    clocks = []
    for net, timing in sorted(report.get("fmax", {}).items()):
        if is_bogus_clock(net):
            continue
        path = paths.get(net)
        clocks.append(ClockTiming(name=_clock_name(net), net=net, fmax_mhz=_round(timing["achieved"]),
                                  target_mhz=_round(timing["constraint"]),
                                  critical_path=_critical_path(path) if path else None))
    return tuple(clocks)


@dataclass(frozen=True, slots=True)
class MemoryMapping:
    """Where yosys put one memory of the design: block RAM, SPRAM, distributed RAM or logic."""

    name: str
    kind: str   # "bram" | "spram" | "lutram" | "logic" | "other:<cell>"


# yosys's memory_libmap names the cell it maps to; memory_map (to logic) names only the memory.
_LIBMAP_LINE = re.compile(r"^mapping memory (\S+) via (\S+)$")
_MAP_LINE = re.compile(r"^Mapping memory (\S+) in module (\S+):$")
_MEMORY_KINDS = (("RAM4K", "bram"), ("DP16KD", "bram"), ("PDPW16KD", "bram"), ("SPRAM", "spram"), ("DPR16X4", "lutram"))


def memory_mappings(yosys_log: str, module: str) -> tuple[MemoryMapping, ...]:
    """Memories of ``module`` and what each became, in log order."""
    found: dict[str, str] = {}
    for line in yosys_log.splitlines():
        line = line.strip()
        if m := _LIBMAP_LINE.match(line):
            owner, _, name = m[1].lstrip("\\").partition(".")
            cell = m[2]
            kind = next((k for key, k in _MEMORY_KINDS if key in cell), f"other:{cell}")
        elif m := _MAP_LINE.match(line):
            owner, name, kind = m[2].lstrip("\\"), m[1], "logic"
        else:
            continue
        if owner == module:
            found.setdefault(name.lstrip("\\"), kind)
    return tuple(MemoryMapping(name, kind) for name, kind in found.items())


@dataclass(frozen=True, slots=True)
class ToolVersions:
    yosys: str
    nextpnr: str
    pack: str


@dataclass(frozen=True)
class SynthReport:
    """One synthesis run: ``report.json``. Equal inputs give an equal report, byte for byte."""

    device: str
    part: str
    top: str
    verilog: str                 # file name of the synthesized Verilog, in the run directory
    verilog_sha256: str
    clock_mhz: float             # nextpnr's timing target
    seed: int
    tools: ToolVersions
    accelerator: Resources       # yosys, the accelerator alone
    cells: dict[str, int]        # yosys cell types of the accelerator
    placed: Resources            # nextpnr, the whole design: accelerator + harness (or board top)
    available: Resources         # nextpnr's capacity of the device
    clocks: tuple[ClockTiming, ...]
    memories: tuple[MemoryMapping, ...]
    harness: str                 # what surrounds the accelerator on the chip
    bitstream: str               # file name in the run directory
    board: str | None = None
    cosim_verified: bool | None = None  # True: the Verilog's sha256 is the one co-simulation passed
    estimate: dict[str, int] | None = None  # hwgen's resource model for the accelerator: logic, ff, dsp, bram
    interval: int | None = None  # cycles per inference (the plan's, or as co-simulation measured it)
    placer: str = "heap"         # nextpnr's placer and router
    router: str = "router1"
    version: int = field(default=REPORT_VERSION)

    @property
    def fmax_mhz(self) -> float | None:
        """The slowest real clock's Fmax (None if nextpnr timed no clock)."""
        return min((c.fmax_mhz for c in self.clocks), default=None)

    @property
    def inferences_per_second(self) -> float | None:
        """At Fmax, one inference every `interval` cycles (streamed back to back)."""
        if self.interval is None or self.fmax_mhz is None:
            return None
        return self.fmax_mhz * 1e6 / self.interval

    def estimate_errors(self) -> dict[str, float]:
        """(estimate - yosys) / yosys per resource the estimate has and yosys used."""
        if self.estimate is None:
            return {}
        used = self.accelerator.to_json()
        return {k: (v - used[k]) / used[k] for k, v in self.estimate.items() if used.get(k)}

    @property
    def timing_met(self) -> bool:
        return all(c.met for c in self.clocks)

    def to_json(self) -> dict[str, Any]:
        def clock(c: ClockTiming) -> dict[str, Any]:
            path = c.critical_path
            return {"name": c.name, "net": c.net, "fmax_mhz": c.fmax_mhz, "target_mhz": c.target_mhz,
                    "met": c.met,
                    "critical_path": None if path is None else {
                        "start": path.start, "end": path.end, "delay_ns": path.delay_ns,
                        "logic_ns": path.logic_ns, "routing_ns": path.routing_ns, "levels": path.levels,
                        "sources": list(path.sources)}}
        return {
            "version": self.version, "device": self.device, "part": self.part, "board": self.board,
            "top": self.top, "verilog": self.verilog, "verilog_sha256": self.verilog_sha256,
            "cosim_verified": self.cosim_verified,
            "clock_mhz": self.clock_mhz, "seed": self.seed, "placer": self.placer, "router": self.router,
            "tools": {"yosys": self.tools.yosys, "nextpnr": self.tools.nextpnr, "pack": self.tools.pack},
            "accelerator": self.accelerator.to_json(), "cells": dict(sorted(self.cells.items())),
            "placed": self.placed.to_json(), "available": self.available.to_json(),
            "fmax_mhz": self.fmax_mhz, "timing_met": self.timing_met,
            "clocks": [clock(c) for c in self.clocks],
            "memories": [{"name": m.name, "kind": m.kind} for m in self.memories],
            "harness": self.harness, "bitstream": self.bitstream,
            "estimate": self.estimate,
            "estimate_error": {k: round(v, 4) for k, v in self.estimate_errors().items()} or None,
            "interval": self.interval,
            "inferences_per_second": None if self.inferences_per_second is None else
            round(self.inferences_per_second, 1),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SynthReport:
        def clock(c: Mapping[str, Any]) -> ClockTiming:
            p = c.get("critical_path")
            path = None if p is None else CriticalPath(
                p["start"], p["end"], p["delay_ns"], p["logic_ns"], p["routing_ns"], p["levels"],
                tuple(p["sources"]))
            return ClockTiming(c["name"], c["net"], c["fmax_mhz"], c["target_mhz"], path)
        return cls(
            device=data["device"], part=data["part"], top=data["top"], verilog=data["verilog"],
            verilog_sha256=data["verilog_sha256"], clock_mhz=data["clock_mhz"], seed=data["seed"],
            tools=ToolVersions(**data["tools"]), accelerator=Resources.from_json(data["accelerator"]),
            cells=dict(data["cells"]), placed=Resources.from_json(data["placed"]),
            available=Resources.from_json(data["available"]),
            clocks=tuple(clock(c) for c in data["clocks"]),
            memories=tuple(MemoryMapping(m["name"], m["kind"]) for m in data["memories"]),
            harness=data["harness"], bitstream=data["bitstream"], board=data.get("board"),
            cosim_verified=data.get("cosim_verified"), estimate=data.get("estimate"),
            interval=data.get("interval"), placer=data.get("placer", "heap"), router=data.get("router", "router1"),
            version=data.get("version", REPORT_VERSION))

    def write(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def read(cls, path: Path) -> SynthReport:
        from ..outdir import read_json, reading

        with reading(path):
            return cls.from_json(read_json(path))

    def to_text(self) -> str:
        """A few lines for the terminal."""
        a, p, cap = self.accelerator, self.placed, self.available
        dsp, bram = ("SB_MAC16", "EBR 4k") if self.part.startswith("iCE40") else ("MULT18", "EBR 18k")

        def of(used: int, have: int) -> str:
            return f"{used}/{have} ({100 * used / have:.0f}%)" if have else f"{used}"
        lines = [
            f"{self.board or self.device} ({self.part}): {self.top} from {self.verilog} "
            f"sha256 {self.verilog_sha256[:16]}"
            + (" (the Verilog verified in co-simulation)" if self.cosim_verified else "") + f", seed {self.seed}"
            + (f", {self.placer} placer" if self.placer != "heap" else "")
            + (f", {self.router}" if self.router != "router1" else ""),
            f"  accelerator (yosys): {a.logic} LUT4, {a.ff} FF, {a.carry} carry, {a.dsp} {dsp}, "
            f"{a.bram} {bram}, {a.spram} SPRAM" + (f", {a.lutram} LUTRAM" if a.lutram else ""),
            f"  placed (nextpnr, with {self.harness}): logic {of(p.logic, cap.logic)}, {dsp} {of(p.dsp, cap.dsp)}, "
            f"{bram} {of(p.bram, cap.bram)}" + (f", SPRAM {of(p.spram, cap.spram)}" if cap.spram else "")
            + f", IO {p.io}",
        ]
        for c in self.clocks:
            verdict = "met" if c.met else "MISSED"
            lines.append(f"  Fmax {c.name}: {c.fmax_mhz:.2f} MHz (target {c.target_mhz:g}: {verdict})")
            if not c.met and c.critical_path is not None:
                lines.append(f"    critical path {c.critical_path.describe()}")
        if self.memories:
            lines.append("  memories: " + ", ".join(f"{m.name} -> {m.kind}" for m in self.memories))
        if self.estimate is not None:
            used = a.to_json()
            errors = self.estimate_errors()
            lines.append("  estimate vs yosys: " + ", ".join(
                f"{k} {v}/{used[k]}" + (f" ({100 * errors[k]:+.0f}%)" if k in errors else "")
                for k, v in self.estimate.items()))
        if self.inferences_per_second is not None:
            lines.append(f"  throughput: {self.inferences_per_second:,.1f} inferences/s at Fmax "
                         f"(interval {self.interval:,} cycles)")
        lines.append(f"  bitstream: {self.bitstream}")
        return "\n".join(lines)
