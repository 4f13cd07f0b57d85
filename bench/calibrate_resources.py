"""Fits the resource model's coefficients (`hwgen/fpga/calibration.py`) to yosys's counts.

    .venv/bin/python bench/calibrate_resources.py            # build, synthesize, fit, write (~30 min)
    .venv/bin/python bench/calibrate_resources.py --quick    # a smaller design set
    .venv/bin/python bench/calibrate_resources.py --refit    # refit bench/resource_calibration.csv, no synthesis
    .venv/bin/python bench/calibrate_resources.py --check    # the current calibration.py vs the CSV
    add --cv for leave-one-design-out errors

Measurements. Every design of the set (DESIGNS) is compiled and planned, its memories placed by a
fixed memory model (PLACEMENT_*, so the design set does not move when calibration.py does; the
hardware carries the placements as `ram_style` attributes), and synthesized for each family in ONE
yosys process: each direct submodule of the accelerator's network on its own (flattened inside:
an engine with its queues, a window, a pool, a converter, ...), the rest with those submodules as
black boxes ("top"), and the whole design flattened. (`synth_* -noflatten` would be one run, but
yosys 0.70's abc9 asserts on Amaranth's unflattened modules.) Submodules that are not units of
`resources.unit_features`, and the top, are the "glue" unit. bench/resource_calibration.csv gets
one row per unit per design per family (features, memories with their placement, yosys's counts),
a TOTAL row (sum of the units) and a FLAT row (the flattened synthesis: what the model must hit).

Fit, per family and per resource (LUT4s, flip-flops): non-negative least squares over all unit
rows at once; the columns are each kind's features plus the linear terms of
`resources.memory_logic` for the memories in each unit, shared by all kinds (memory FFs are exact
and not fitted). Rows are weighted by 1/sqrt(count + 20), between absolute and relative error.
Each coefficient is pulled weakly toward an analytic prior (PRIOR: the hand-written model) so
that features the design set cannot separate stay physical instead of fitting noise; a feature
the data do not need comes out 0 and is left out. A kind with no unit in the set takes a like
kind's coefficients (STAND_IN). Finally the coefficients are scaled per family by the median of
flat / sum-of-units totals (yosys optimizes across modules when flat).

Synthesis results are cached in --work (default /tmp/hwgen_resource_calibration), keyed by the
Verilog's hash: a rerun only synthesizes what changed. One yosys runs at a time.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import math
import os
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hwgen.devices import DEVICES, Family  # noqa: E402
from hwgen.fpga import resources  # noqa: E402
from hwgen.synth.report import Resources, yosys_resources  # noqa: E402
from hwgen.synth.tools import run_tool  # noqa: E402

CSV_PATH = ROOT / "bench" / "resource_calibration.csv"
PROBES = ROOT / "bench" / "synth_calibration.csv"
OUT_PATH = ROOT / "hwgen" / "fpga" / "calibration.py"
MODELS = ROOT / "examples" / "models" / "digits"
FAMILIES = {"ice40": "ice40-up5k", "ecp5": "ecp5-85k"}
# Fitted in this order; a kind with no unit in the design set takes the coefficients of its stand-in.
KINDS = ("engine", "window", "maxpool", "global_avgpool", "add", "glue", "avgpool", "requantize", "concat", "lookup",
         "mul", "affine", "move", "remap")
# The features resources.unit_features gives each kind.
KIND_FEATURES = {
    "engine": ("const", "contexts", "lut_lane_bits", "csd_bits", "adder_bits", "product_bits", "operand_mux_bits",
               "requant_bits", "drain_bits", "port_bits", "fold_bits"),
    "window": ("const", "address_bits", "lane_bits"),
    "maxpool": ("const", "lane_bits"), "concat": ("const", "lane_bits"),
    "avgpool": ("const", "lane_bits", "requant_bits"), "global_avgpool": ("const", "lane_bits", "requant_bits"),
    "add": ("const", "lane_bits", "requant_bits"), "requantize": ("const", "lane_bits", "requant_bits"),
    "glue": ("const", "convert_bits", "fork_bits", "counter_bits"),
    "lookup": ("const", "lane_bits"), "mul": ("const", "lane_bits", "requant_bits"),
    "affine": ("const", "lane_bits", "requant_bits"), "move": ("const", "lane_bits", "address_bits"),
    "remap": ("const", "lane_bits", "address_bits", "table_bits"),
}
ORDER = ("engine", "window", "maxpool", "avgpool", "global_avgpool", "add", "requantize", "concat", "lookup", "mul",
         "affine", "move", "remap", "glue")
STAND_IN = {"avgpool": "global_avgpool", "requantize": "add", "concat": "maxpool", "global_avgpool": "add",
            "add": "global_avgpool", "lookup": "maxpool", "mul": "add", "affine": "add", "move": "window",
            "remap": "window"}

DENSE = "tinycnn_fp32_qdq_s8s8_pc.onnx"
UNSTRUCT = "tinycnn_unstruct50_qdq_s8s8_pc.onnx"
PRUNED = "tinycnn_pruned_qdq_s8s8_pc.onnx"
PT = "tinycnn_fp32_qdq_u8s8_pt.onnx"
MOBILENET = "mobilenet/mobilenet_fp32_qdq_s8s8_pc.onnx"

# (name, model, multiplier budget, lut_lanes {engine: lanes})
DESIGNS = [
    ("dense_b2", DENSE, 2, {}),
    ("dense_b8", DENSE, 8, {}),
    ("dense_b32", DENSE, 32, {}),
    ("dense_b8_lut4", DENSE, 8, {"engine0": 4}),
    ("unstruct_b8", UNSTRUCT, 8, {}),
    ("pruned_b4", PRUNED, 4, {}),
    ("pruned_b16", PRUNED, 16, {}),
    ("pt_b8", PT, 8, {}),
    ("mobilenet_b4", MOBILENET, 4, {}),
    ("mobilenet_b16", MOBILENET, 16, {}),
    ("mobilenet_b16_lut8", MOBILENET, 16, {"engine0": 8}),
    ("dense_b16_lut8", DENSE, 16, {"engine0": 8}),
    ("pruned_pt_b8", "tinycnn_pruned_qdq_u8s8_pt.onnx", 8, {}),
    ("mobilenet_b2", MOBILENET, 2, {}),
    ("mobilenet_b32", MOBILENET, 32, {}),
    ("mobilenet_unstruct_b8", "mobilenet/mobilenet_unstruct50_qdq_s8s8_pc.onnx", 8, {}),
]
QUICK = {"dense_b8", "pruned_b16", "mobilenet_b4"}

# Linear terms of resources.memory_logic, by placement kind (the "select" term has a fixed 1).
MEM_LUT_FEATURES = ("bram_lut", "lutram_mux", "rom_lut", "ram_mux", "ram_decode")
# A ROM of random contents in LUTs: about width x depth / 16 LUT4s and their multiplexers, linear
# in its bits (the exponent could be fitted over a grid; the design set cannot tell it apart).
ROM_EXPS = (1.0,)
# Analytic priors (the hand-written model): LUT4s / FFs per unit of each feature, any kind.
PRIOR = {
    "lut": {"const": 40.0, "contexts": 20.0, "lut_lane_bits": 1.0, "csd_bits": 1.0, "adder_bits": 1.0,
            "product_bits": 0.2, "operand_mux_bits": 0.7, "requant_bits": 0.5, "drain_bits": 0.7, "port_bits": 2.0,
            "fold_bits": 0.0, "lane_bits": 1.0, "address_bits": 3.0, "convert_bits": 0.5, "fork_bits": 1.0,
            "counter_bits": 1.0},
    "ff": {"const": 20.0, "adder_bits": 1.0, "product_bits": 1.0, "requant_bits": 0.3, "drain_bits": 1.0,
           "port_bits": 2.0, "lane_bits": 1.0, "address_bits": 2.0, "convert_bits": 0.5, "counter_bits": 1.0},
}
PRIOR_MEMORY = {"bram_lut": 2.0, "lutram_mux": 0.5, "rom_lut": 1.5, "ram_mux": 0.5, "ram_decode": 1.0}
PRIOR_STRENGTH = 0.3
DROP_SHARE = 0.01
# The memory model that places the design set's memories (the hand-written one).
PLACEMENT_MEMORY = {f: {"bram_lut": 2.0, "lutram_mux": 0.5, "rom_lut": 1.0, "rom_exp": 1.0, "ram_mux": 0.5,
                        "ram_decode": 1.0} for f in FAMILIES}
PLACEMENT_BLOCK_WORTH = {"ice40": 60.0, "ecp5": 120.0}
WEIGHT_OFFSET = 20.0


# -- building and synthesizing ------------------------------------------------------------------------


def build(model: str, budget: int, lut_lanes: dict, family: str):
    import hwgen
    from hwgen.fpga import calibration
    from hwgen.fpga.plan import engine_programs, make_plan

    device = DEVICES[FAMILIES[family]]
    graph = hwgen.compile(str(MODELS / model)).graph
    plan = make_plan(graph, budget=budget, lut_lanes=lut_lanes or None)
    progs = engine_programs(graph, plan)
    # Placed by a fixed model (not the one being fitted): the design set, and so the synthesis
    # cache, does not change when calibration.py does.
    saved = calibration.MEMORY, calibration.BLOCK_WORTH
    calibration.MEMORY, calibration.BLOCK_WORTH = PLACEMENT_MEMORY, PLACEMENT_BLOCK_WORTH
    try:
        placed = resources.place_memories(resources.memories(graph, plan, progs), device)
    finally:
        calibration.MEMORY, calibration.BLOCK_WORTH = saved
    plan = dataclasses.replace(plan, placements=tuple(sorted(placed.items())))
    return graph, plan, progs, to_verilog(graph, plan)


def synthesize(verilog: str, top: str, family: str, work: Path) -> tuple[dict[str, dict], dict]:
    """yosys's stat -json of each direct submodule of the accelerator's network synthesized on its
    own (flattened inside), of the rest ("top": the submodules black boxes), and of the whole design
    flattened; cached by hash."""
    device = DEVICES[FAMILIES[family]]
    subs = sorted(set(re.findall(rf"^module \\{re.escape(top)}\.net\.(\w+) ", verilog, re.M)))
    synth = device.synth_command
    lines = ["read_verilog design.v", "design -save src"]
    for i, sub in enumerate(subs):
        lines += ["design -load src", f"hierarchy -top {top}.net.{sub}", f"{synth} -top {top}.net.{sub}",
                  f"tee -q -o stat_{i}.json stat -json"]
    lines += ["design -load src", "blackbox " + " ".join(f"{top}.net.{sub}" for sub in subs),
              f"{synth} -top {top}", "tee -q -o stat_top.json stat -json",
              "design -load src", f"{synth} -top {top}", "tee -q -o stat_flat.json stat -json", ""]
    out = cached_yosys(verilog, "\n".join(lines), work, "stat_flat.json", family)
    stats = {sub: json.loads((out / f"stat_{i}.json").read_text()) for i, sub in enumerate(subs)}
    stats["top"] = json.loads((out / "stat_top.json").read_text())
    return stats, json.loads((out / "stat_flat.json").read_text())


def cached_yosys(verilog: str, script: str, work: Path, result: str, label: str) -> Path:
    """Runs `script` on `verilog` (as design.v) in a directory of `work` named by their hash, unless
    an earlier run there left `result`; returns the directory."""
    # Escaped names of bits ("\\i__payload[0] ") collide with the wires abc9 reintegrates
    # (yosys 0.70 asserts `count_id(wire->name) == 0`): renamed, "\\i__payload_0_ ".
    for _ in range(2):
        verilog = re.sub(r"(\\\S*)\[(\d+)\] ", r"\1_\2_ ", verilog)
    out = work / hashlib.sha256((verilog + script).encode()).hexdigest()[:16]
    if not (out / result).exists():
        out.mkdir(parents=True, exist_ok=True)
        (out / "design.v").write_text(verilog)
        (out / "synth.ys").write_text(script)
        start = time.perf_counter()
        run_tool("yosys", ["-q", "-l", "yosys.log", "synth.ys"], cwd=out, log=out / "output.log")
        print(f"    yosys {label}: {time.perf_counter() - start:.0f} s", flush=True)
    return out


def to_verilog(graph, plan) -> str:
    """hwgen.backends.fpga.to_verilog (its body, should that module not import)."""
    try:
        from hwgen.backends.fpga import to_verilog as convert
    except ImportError:
        from amaranth.back import verilog

        from hwgen.hdl import Accelerator, Standalone

        os.environ["AMARANTH_USE_YOSYS"] = "builtin"
        return verilog.convert(Standalone(Accelerator(graph, plan)), name=plan.top, emit_src=False)
    return convert(graph, plan)


# -- measurement rows ---------------------------------------------------------------------------------


def _unit_of_module(module: str, top: str, units: set[str]) -> str:
    prefix = f"{top}.net."
    if module.startswith(prefix):
        head = module[len(prefix):].split(".")[0]
        if head in units:
            return head
    return "glue"


def memory_terms(mem: resources.Memory, kind: str, family: Family, rom_exp: float) -> tuple[dict, float, float]:
    """(linear LUT terms by MEMORY coefficient, fixed LUTs, fixed FFs) of `mem` placed as `kind`,
    mirroring resources.memory_logic."""
    select = max(0, math.ceil(math.log2(max(1, mem.depth))))
    if kind == "bram":
        return {"bram_lut": resources.bram_blocks(mem, family)}, 0.0, 0.0
    if kind == "lutram":
        return ({"lutram_mux": mem.copies * mem.width * max(0, -(-mem.depth // 16) - 1)}, 0.0,
                mem.copies * mem.width * (1 if mem.sync else 0))
    if mem.rom:
        return ({"rom_lut": mem.copies * mem.width * max(1.0, mem.depth / 16) ** rom_exp}, 0.0,
                mem.copies * mem.width * (1 if mem.sync else 0))
    return ({"ram_mux": mem.copies * mem.width * max(0, mem.depth - 1), "ram_decode": mem.depth},
            float(select), float(mem.depth * mem.width + mem.copies * (mem.width if mem.sync else 0)))


def design_rows(name: str, model: str, budget: int, lut_lanes: dict, family: str, work: Path) -> list[dict]:
    device = DEVICES[FAMILIES[family]]
    graph, plan, progs, verilog = build(model, budget, lut_lanes, family)
    print(f"  {name} {family}: {len(verilog) // 1000} kB Verilog", flush=True)
    stats, flat_stat = synthesize(verilog, plan.top, family, work)
    units = resources.unit_features(graph, plan, progs, device.family)
    names = {u.name for u in units}
    measured: dict[str, Resources] = defaultdict(Resources)
    for sub, stat in stats.items():
        unit = sub if sub in names else "glue"
        measured[unit] = measured[unit] + yosys_resources(stat)
    mems = resources.memories(graph, plan, progs)
    placed = dict(plan.placements)
    common = {"design": name, "family": family, "model": model, "budget": budget,
              "lut_lanes": json.dumps(lut_lanes, sort_keys=True)}
    rows = []
    for u in units:
        mem = [{"name": m.name, "role": m.role, "depth": m.depth, "width": m.width, "rom": int(m.rom),
                "sync": int(m.sync), "copies": m.copies, "kind": placed.get(m.name) or (
                    "lutram" if device.family is Family.ECP5 and not m.sync else "logic")}
               for m in mems if _unit_of_module(f"{plan.top}.net.{m.unit}", plan.top, names) == u.name]
        r = measured[u.name]
        rows.append({**common, "unit": u.name, "kind": u.kind, "dsp_model": u.dsp, "bram_model": sum(
            resources.bram_blocks(_mem(d), device.family) for d in mem if d["kind"] == "bram"),
            "features": json.dumps(u.features, sort_keys=True), "memories": json.dumps(mem, sort_keys=True),
            "lut": r.logic, "ff": r.ff, "carry": r.carry, "dsp": r.dsp, "bram": r.bram, "lutram": r.lutram,
            "spram": r.spram})
    total = sum(measured.values(), Resources())
    rows.append({**common, "unit": "TOTAL", "kind": "total", "dsp_model": sum(u.dsp for u in units),
                 "bram_model": sum(r["bram_model"] for r in rows), "features": "{}", "memories": "[]",
                 "lut": total.logic, "ff": total.ff, "carry": total.carry, "dsp": total.dsp, "bram": total.bram,
                 "lutram": total.lutram, "spram": total.spram})
    if flat_stat is not None:
        f = yosys_resources(flat_stat)
        rows.append({**rows[-1], "unit": "FLAT", "kind": "flat", "lut": f.logic, "ff": f.ff, "carry": f.carry,
                     "dsp": f.dsp, "bram": f.bram, "lutram": f.lutram, "spram": f.spram})
    return rows


def _mem(d: dict) -> resources.Memory:
    return resources.Memory(d["name"], "", d["role"], int(d["depth"]), int(d["width"]), bool(int(d["rom"])),
                            bool(int(d["sync"])), int(d["copies"]))


COLUMNS = ("design", "family", "model", "budget", "lut_lanes", "unit", "kind", "lut", "ff", "carry", "dsp",
           "dsp_model", "bram", "bram_model", "lutram", "spram", "features", "memories")


def write_csv(rows: list[dict]) -> None:
    with open(CSV_PATH, "w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: r[k] for k in COLUMNS})


def read_csv() -> list[dict]:
    with open(CSV_PATH, newline="") as f:
        return list(csv.DictReader(f))


# -- the fit --------------------------------------------------------------------------------------------


def nnls(a: np.ndarray, b: np.ndarray, iters: int = 500) -> np.ndarray:
    """Lawson-Hanson non-negative least squares: argmin |a x - b| with x >= 0."""
    n = a.shape[1]
    x = np.zeros(n)
    passive = np.zeros(n, bool)
    w = a.T @ (b - a @ x)
    tol = 1e-10 * max(1.0, float(np.abs(a).max(initial=0))) * max(a.shape)
    for _ in range(iters):
        if passive.all() or (w[~passive] <= tol).all():
            break
        j = int(np.argmax(np.where(passive, -np.inf, w)))
        passive[j] = True
        while True:
            s = np.zeros(n)
            s[passive] = np.linalg.lstsq(a[:, passive], b, rcond=None)[0]
            if (s[passive] > 0).all():
                break
            neg = passive & (s <= 0)
            alpha = np.min(x[neg] / (x[neg] - s[neg]))
            x = x + alpha * (s - x)
            passive &= x > tol
            x[~passive] = 0.0
        x = s
        w = a.T @ (b - a @ x)
    return x


def _columns(rows: list[dict], family: str) -> tuple[list[tuple[str, str]], dict]:
    cols: set[tuple[str, str]] = set()
    for r in rows:
        for k, v in json.loads(r["features"]).items():
            if v:
                cols.add((r["kind"], k))
    return sorted(cols), {}


def _matrix(rows: list[dict], family: str, what: str, rom_exp: float):
    fam = Family(family)
    unit_cols, _ = _columns(rows, family)
    mem_cols = [("memory", k) for k in MEM_LUT_FEATURES] if what == "lut" else []
    cols = unit_cols + mem_cols
    index = {c: i for i, c in enumerate(cols)}
    a = np.zeros((len(rows), len(cols)))
    y = np.zeros(len(rows))
    fixed = np.zeros(len(rows))
    for i, r in enumerate(rows):
        for k, v in json.loads(r["features"]).items():
            if (r["kind"], k) in index:
                a[i, index[(r["kind"], k)]] = v
        for d in json.loads(r["memories"]):
            terms, lut, ff = memory_terms(_mem(d), d["kind"], fam, rom_exp)
            if what == "lut":
                for k, v in terms.items():
                    a[i, index[("memory", k)]] += v
                fixed[i] += lut
            else:
                fixed[i] += ff
        y[i] = float(r[what])
    return cols, a, y, fixed


def fit_family(rows: list[dict], family: str, strength: float = PRIOR_STRENGTH) -> dict:
    """Non-negative least squares with a weak pull of every coefficient toward its analytic prior
    (PRIOR): one extra row per coefficient, worth `strength` typical rows of its feature, so a
    coefficient the data pin down follows the data and one they cannot separate stays physical."""
    units = [r for r in rows if r["family"] == family and r["kind"] not in ("total", "flat")]
    result = {}
    for what in ("lut", "ff"):
        best = None
        for rom_exp in (ROM_EXPS if what == "lut" else (1.0,)):
            cols, a, y, fixed = _matrix(units, family, what, rom_exp)
            w = 1.0 / np.sqrt(np.maximum(y, 0) + WEIGHT_OFFSET)
            aw = a * w[:, None]
            scale = np.array([np.sqrt(np.mean(col[col != 0] ** 2)) if (col != 0).any() else 0.0 for col in aw.T])
            prior = np.array([_prior(what, kind, k) for kind, k in cols])
            aug = np.vstack([aw, np.sqrt(strength) * np.diag(scale)])
            rhs = np.concatenate([(y - fixed) * w, np.sqrt(strength) * scale * prior])
            x = nnls(aug, rhs)
            # A unit feature worth under DROP_SHARE of its kind's total is dropped, and the rest refitted.
            keep = np.ones(len(cols), bool)
            for j, (kind, _) in enumerate(cols):
                if kind != "memory":
                    rows_of_kind = [i for i, r in enumerate(units) if r["kind"] == kind]
                    total = float(np.sum(a[rows_of_kind] @ x)) or 1.0
                    keep[j] = float(np.sum(a[rows_of_kind, j]) * x[j]) >= DROP_SHARE * total
            x = np.zeros(len(cols))
            x[keep] = nnls(aug[:, keep], rhs)
            x = np.where(scale > 0, x, prior)  # no data on a coefficient: its prior
            err = float(np.sum((aug @ x - rhs) ** 2))
            if best is None or err < best[0] - 1e-9:
                best = (err, rom_exp, cols, x)
        _, rom_exp, cols, x = best
        result[what] = {"rom_exp": rom_exp, "coef": {c: float(v) for c, v in zip(cols, x)}}
    return result


def _prior(what: str, kind: str, feature: str) -> float:
    if kind == "memory":
        return PRIOR_MEMORY[feature]
    return PRIOR[what].get(feature, 0.0)


def flat_factor(rows: list[dict], family: str, what: str) -> float:
    """Median of flat / noflatten totals over the designs synthesized both ways."""
    totals = {r["design"]: float(r[what]) for r in rows if r["family"] == family and r["kind"] == "total"}
    ratios = [float(r[what]) / totals[r["design"]] for r in rows
              if r["family"] == family and r["kind"] == "flat" and totals.get(r["design"])]
    return float(np.median(ratios)) if ratios else 1.0


def _round(v: float) -> float:
    if v == 0:
        return 0.0
    digits = max(0, 3 - int(math.floor(math.log10(abs(v)))))
    return round(v, min(digits, 6))


# ECP5 LUT RAM: a TRELLIS_DPR16X4 puts a PFU in RAM mode: slices A and B hold the memory (4 LUT
# positions), slice C the write port (TRELLIS_RAMW), and nextpnr packs nothing else into that slice.
# The probe designs hold too little LUT RAM to fit this (one probe, 8 cells), so it is measured on
# person_detect on ecp5-85k, 5,636 cells: nextpnr placed 79,760 TRELLIS_COMB for yosys's 35,748
# LUT4 + 3,721 CCU2C (2 positions each): (79,760 - 43,190) / 5,636 = 6.49 positions per cell.
ECP5_LUTRAM_POSITIONS = 6.5


def fit_cells() -> dict:
    """CELLS: placed logic cells (nextpnr) beyond the LUT4s. iCE40: an ICESTORM_LC holds a LUT4
    and a FF, so FFs that cannot share one with their LUT take cells of their own (at most one
    each), fitted on bench/synth_calibration.csv (the probe designs, placed and routed inside the
    I/O harness, whose cells are the fitted intercept). ECP5: FFs have their own bels; a LUT RAM
    cell takes ECP5_LUTRAM_POSITIONS TRELLIS_COMB positions."""
    with open(PROBES, newline="") as f:
        data = [r for r in csv.DictReader(f) if r["status"] == "ok" and r["placed_logic"]]
    rs = [r for r in data if DEVICES[r["device"]].family.value == "ice40"]
    a = np.array([[float(r["ff"]), 1.0] for r in rs])
    y = np.array([float(r["placed_logic"]) - float(r["lut4"]) for r in rs])
    x = min(1.0, max(0.0, float(np.linalg.lstsq(a, y, rcond=None)[0][0]))) if rs else 0.0
    return {"ice40": {"ff": round(x, 2), "lutram": 0.0}, "ecp5": {"ff": 0.0, "lutram": ECP5_LUTRAM_POSITIONS}}


def write_calibration(fits: dict, factors: dict, rows: list[dict]) -> None:
    from hwgen.fpga import calibration as old

    logic: dict = {}
    memory: dict = {}
    for family, fit in fits.items():
        logic[family] = {}
        for kind in KINDS:
            logic[family][kind] = {}
            fitted = any(kd == kind for (kd, _) in fit["lut"]["coef"])
            for what in ("lut", "ff"):
                if not fitted:  # no unit of this kind in the design set: borrow a like kind's
                    like = logic[family].get(STAND_IN.get(kind, ""))
                    logic[family][kind][what] = dict(like[what]) if like else dict(sorted(PRIOR[what].items()))
                    continue
                scale = factors[family][what]
                coef = {k: _round(v * scale) for (kd, k), v in sorted(fit[what]["coef"].items())
                        if kd == kind and _round(v * scale) != 0}
                for k in KIND_FEATURES[kind]:  # never nonzero in the design set: the prior
                    if (kind, k) not in fit[what]["coef"] and PRIOR[what].get(k):
                        coef[k] = PRIOR[what][k]
                coef = dict(sorted(coef.items()))
                logic[family][kind][what] = coef
        lut = fit["lut"]["coef"]
        scale = factors[family]["lut"]
        memory[family] = {k: _round(lut.get(("memory", k), 0.0) * scale) for k in MEM_LUT_FEATURES}
        memory[family]["rom_exp"] = fit["lut"]["rom_exp"]
    for family in old.LOGIC:  # a family not in the CSV keeps its coefficients
        if family not in fits:
            logic[family], memory[family] = old.LOGIC[family], old.MEMORY[family]
            factors[family] = {"lut": 1.0, "ff": 1.0}
    designs = sorted({r["design"] for r in rows})
    import textwrap

    borrowed = [f"{kind} (as {STAND_IN.get(kind, 'prior')})" for kind in ORDER
                if not any(kd == kind for (kd, _) in next(iter(fits.values()))["lut"]["coef"])] if fits else []
    lines = [
        '"""Resource model coefficients, fitted to yosys by bench/calibrate_resources.py. GENERATED: do not edit.',
        "",
        "Regenerate with `.venv/bin/python bench/calibrate_resources.py` (synthesizes the design set)",
        "or `.venv/bin/python bench/calibrate_resources.py --refit` (refits bench/resource_calibration.csv).",
        *textwrap.wrap(f"Fitted on {len(designs)} designs x {len(fits)} families: {', '.join(designs)}. "
                       f"Kinds not in the set: {', '.join(borrowed) or 'none'}.", 100),
        "LOGIC[family][kind][\"lut\"|\"ff\"][feature]: LUT4s / flip-flops per unit of each feature of",
        "resources.unit_features (features absent cost nothing); MEMORY[family]: resources.memory_logic's",
        "coefficients; CELLS: iCE40 from bench/synth_calibration.csv (nextpnr), ECP5 LUT RAM measured",
        "(calibrate_resources.ECP5_LUTRAM_POSITIONS); BLOCK_WORTH is not fitted.",
        "Scaled by flat / sum-of-units synthesis: "
        + ", ".join(f"{f} LUT x{factors[f]['lut']:.3f} FF x{factors[f]['ff']:.3f}" for f in sorted(factors)) + ".",
        '"""',
        "",
        "LOGIC = {",
    ]
    for family in sorted(logic):
        lines.append(f"    {family!r}: {{")
        for kind in sorted(KINDS, key=ORDER.index):
            lines.append(f"        {kind!r}: {{")
            for what in ("lut", "ff"):
                body = ", ".join(f"{k!r}: {v!r}" for k, v in logic[family][kind][what].items())
                lines.append(f"            {what!r}: {{{body}}},")
            lines.append("        },")
        lines.append("    },")
    lines.append("}")
    lines.append("MEMORY = {")
    for family in sorted(memory):
        body = ", ".join(f"{k!r}: {v!r}" for k, v in memory[family].items())
        lines.append(f"    {family!r}: {{{body}}},")
    lines.append("}")
    block = PLACEMENT_BLOCK_WORTH  # LUTs a block RAM is worth: a design choice, not fitted
    cells = fit_cells()
    lines.append(f"BLOCK_WORTH = {dict(sorted(block.items()))!r}")
    lines.append(f"CELLS = {dict(sorted(cells.items()))!r}")
    OUT_PATH.write_text("\n".join(lines) + "\n")


# -- checking --------------------------------------------------------------------------------------------


def predict(rows: list[dict]) -> list[dict]:
    """Per design and family, the model (as now in calibration.py) vs yosys (the flat synthesis;
    the sum of the separately synthesized units beside it), from the CSV rows alone."""
    import importlib

    from hwgen.fpga import calibration
    importlib.reload(calibration)
    out = []
    by_design = defaultdict(list)
    for r in rows:
        by_design[(r["design"], r["family"])].append(r)
    for (design, family), rs in by_design.items():
        fam = Family(family)
        lut = ff = 0.0
        bram = lutram = 0
        for r in rs:
            if r["kind"] in ("total", "flat"):
                continue
            coef = calibration.LOGIC[family][r["kind"]]
            feats = json.loads(r["features"])
            lut += sum(coef["lut"].get(k, 0.0) * v for k, v in feats.items())
            ff += sum(coef["ff"].get(k, 0.0) * v for k, v in feats.items())
            for d in json.loads(r["memories"]):
                l, f = resources.memory_logic(_mem(d), d["kind"], fam)
                lut, ff = lut + l, ff + f
                if d["kind"] == "bram":
                    bram += resources.bram_blocks(_mem(d), fam)
                elif d["kind"] == "lutram":
                    lutram += resources.lutram_cells(_mem(d))
        units = next(r for r in rs if r["kind"] == "total")
        flat = next((r for r in rs if r["kind"] == "flat"), units)
        out.append({"design": design, "family": family, "lut_est": lut, "ff_est": ff,
                    "dsp_est": int(units["dsp_model"]), "bram_est": bram, "lutram_est": lutram,
                    **{k: int(flat[k]) for k in ("lut", "ff", "dsp", "bram", "lutram")},
                    "lut_units": int(units["lut"]), "ff_units": int(units["ff"])})
    return out


def _pct(est: float, act: float) -> str:
    return f"{100 * (est - act) / act:+5.0f}%" if act else "    - "


def print_table(preds: list[dict]) -> None:
    print(f"{'design':20} {'fam':5} {'LUT est':>7} {'yosys':>6} {'err':>6} {'FF est':>6} {'yosys':>6} {'err':>6} "
          f"{'DSP e/y':>7} {'BRAM e/y':>8} {'LUTRAM e/y':>10} {'units LUT':>9} {'FF':>5}")
    worst: dict = {}
    for p in sorted(preds, key=lambda p: (p["family"], p["design"])):
        print(f"{p['design']:20} {p['family']:5} {p['lut_est']:7.0f} {p['lut']:6} {_pct(p['lut_est'], p['lut'])} "
              f"{p['ff_est']:6.0f} {p['ff']:6} {_pct(p['ff_est'], p['ff'])} {p['dsp_est']:>3}/{p['dsp']:<3} "
              f"{p['bram_est']:>4}/{p['bram']:<3} {p['lutram_est']:>5}/{p['lutram']:<4} "
              f"{p['lut_units']:9} {p['ff_units']:5}")
        for what in ("lut", "ff"):
            e = (p[f"{what}_est"] - p[what]) / max(1, p[what])
            if abs(e) > abs(worst.get((p["family"], what), (0, ""))[0]):
                worst[(p["family"], what)] = (e, p["design"])
    for (family, what), (e, design) in sorted(worst.items()):
        print(f"worst {family} {what}: {100 * e:+.0f}% ({design})")


def print_units(rows: list[dict]) -> None:
    """Per kind and family, the fitted unit model vs yosys (LUT, FF) summed over the design set."""
    import importlib

    from hwgen.fpga import calibration
    importlib.reload(calibration)
    acc = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0, 0])
    for r in rows:
        if r["kind"] in ("total", "flat"):
            continue
        fam = Family(r["family"])
        coef = calibration.LOGIC[r["family"]][r["kind"]]
        feats = json.loads(r["features"])
        lut = sum(coef["lut"].get(k, 0.0) * v for k, v in feats.items())
        ff = sum(coef["ff"].get(k, 0.0) * v for k, v in feats.items())
        for d in json.loads(r["memories"]):
            l, f = resources.memory_logic(_mem(d), d["kind"], fam)
            lut, ff = lut + l, ff + f
        a = acc[(r["family"], r["kind"])]
        a[0] += lut
        a[1] += float(r["lut"])
        a[2] += ff
        a[3] += float(r["ff"])
        a[4] += 1
    print(f"{'family':6} {'kind':10} {'n':>3} {'LUT est':>8} {'yosys':>7} {'FF est':>7} {'yosys':>7}")
    for (family, kind), a in sorted(acc.items()):
        print(f"{family:6} {kind:10} {a[4]:3} {a[0]:8.0f} {a[1]:7.0f} {a[2]:7.0f} {a[3]:7.0f}")


def cross_validate(rows: list[dict], strength: float = PRIOR_STRENGTH) -> None:
    """Leave one design out: refit without it (both families), estimate it; flat totals."""
    print("leave-one-design-out (each design estimated by a fit without it):")
    print(f"{'design':20} {'fam':5} {'LUT est':>7} {'yosys':>6} {'err':>6} {'FF est':>6} {'yosys':>6} {'err':>6}")
    errors = []
    for design in sorted({r["design"] for r in rows}):
        train = [r for r in rows if r["design"] != design]
        for family in sorted({r["family"] for r in rows if r["design"] == design}):
            fit = fit_family(train, family, strength)
            fam = Family(family)
            est = {"lut": 0.0, "ff": 0.0}
            test = [r for r in rows if r["design"] == design and r["family"] == family]
            for r in test:
                if r["kind"] in ("total", "flat"):
                    continue
                for what in est:
                    coef = fit[what]["coef"]
                    est[what] += flat_factor(train, family, what) * sum(
                        coef.get((r["kind"], k), _prior(what, r["kind"], k)) * v
                        for k, v in json.loads(r["features"]).items())
                for d in json.loads(r["memories"]):
                    terms, lut, ff = memory_terms(_mem(d), d["kind"], fam, fit["lut"]["rom_exp"])
                    est["lut"] += lut + flat_factor(train, family, "lut") * sum(
                        fit["lut"]["coef"].get(("memory", k), PRIOR_MEMORY[k]) * v for k, v in terms.items())
                    est["ff"] += ff
            flat = next((r for r in test if r["kind"] == "flat"), None) or next(r for r in test if r["kind"] == "total")
            print(f"{design:20} {family:5} {est['lut']:7.0f} {flat['lut']:>6} {_pct(est['lut'], float(flat['lut']))} "
                  f"{est['ff']:6.0f} {flat['ff']:>6} {_pct(est['ff'], float(flat['ff']))}")
            errors += [abs(est[w] / float(flat[w]) - 1) for w in est if float(flat[w])]
    print(f"mean |error| {100 * np.mean(errors):.1f}%, worst {100 * np.max(errors):.0f}%")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help=f"only {', '.join(sorted(QUICK))}")
    ap.add_argument("--refit", action="store_true", help="refit the CSV, no synthesis")
    ap.add_argument("--check", action="store_true", help="only print the current model vs the CSV")
    ap.add_argument("--cv", action="store_true", help="also leave-one-design-out errors")
    ap.add_argument("--prior", type=float, default=PRIOR_STRENGTH,
                    help="pull toward the analytic priors, in typical rows per coefficient (default %(default)s)")
    ap.add_argument("--designs", help="comma-separated subset of the design names")
    ap.add_argument("--families", default="ice40,ecp5")
    ap.add_argument("--work", type=Path, default=Path("/tmp/hwgen_resource_calibration"))
    args = ap.parse_args()
    families = args.families.split(",")
    if args.refit or args.check:
        rows = read_csv()
    else:
        wanted = set(args.designs.split(",")) if args.designs else (QUICK if args.quick else None)
        rows = []
        for name, model, budget, lut_lanes in DESIGNS:
            if wanted is None or name in wanted:
                for family in families:
                    rows += design_rows(name, model, budget, lut_lanes, family, args.work)
                    write_csv(rows)  # as it goes: --refit works on a partial set
    if not args.check:
        fams = sorted({r["family"] for r in rows})
        fits = {f: fit_family(rows, f, args.prior) for f in fams}
        factors = {f: {w: flat_factor(rows, f, w) for w in ("lut", "ff")} for f in fams}
        write_calibration(fits, factors, rows)
    print_units(rows)
    print_table(predict(rows))
    if args.cv:
        cross_validate(rows, args.prior)


if __name__ == "__main__":
    main()
