#!/usr/bin/env python3
"""Fits the sequential engine's logic model (`hwgen/fpga/seq_calibration.py`) to yosys's counts.

    .venv/bin/python bench/calibrate_sequential.py            # synthesize the design set, fit, write (~30 min)
    .venv/bin/python bench/calibrate_sequential.py --refit    # refit bench/sequential_calibration.csv
    .venv/bin/python bench/calibrate_sequential.py --check    # the current seq_calibration.py vs the CSV

iCE40 logic cells (a LUT4 and a flip-flop share one) are fitted as one factor on (LUT4 + FF) from
the nextpnr placements in PLACED_ICE40 (measured with `hwgen synth OUT --device ice40-up5k`).

Every design of DESIGNS (a model, an array size L, a weight source, the requantization
multipliers' bits) is compiled to a sequential engine and synthesized whole (flattened) by yosys
for each family: iCE40 with its activation banks in SB_SPRAM256KA cells, as on a UP5K, ECP5 with
them in block RAM. bench/sequential_calibration.csv gets one row per design and family: the
features of `hwgen.fpga.seqresources.seq_features`, yosys's LUT4s, flip-flops, DSPs, block RAMs,
SPRAMs and LUT RAM cells, and hwgen's counted DSPs, block RAMs and SPRAMs next to them.

Fit: per family and resource, non-negative least squares of the counts over the features, rows
weighted by 1/sqrt(count) (relative error, roughly); --check prints each design's estimate
against yosys and the leave-one-out error. Results are cached in --work by the Verilog's hash.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from calibrate_resources import cached_yosys, nnls  # noqa: E402
from sequential import MODELS  # noqa: E402  (bench/sequential.py's models)

import hwgen  # noqa: E402
from hwgen.backends.fpga import to_verilog  # noqa: E402
from hwgen.devices import DEVICES  # noqa: E402
from hwgen.fpga.outputs import hardware_graph  # noqa: E402
from hwgen.fpga.seqresources import seq_estimate, seq_features  # noqa: E402
from hwgen.fpga.sequential import WeightSource, make_seq_plan  # noqa: E402
from hwgen.synth.report import yosys_resources  # noqa: E402

#: (model of MODELS, L, weights, multiplier bits)
DESIGNS = [
    ("tinycnn", 1, "qspi", 31), ("tinycnn", 2, "rom", 31), ("tinycnn", 2, "qspi", 31), ("tinycnn", 2, "spi", 16),
    ("tinycnn", 3, "qspi", 31), ("tinycnn", 4, "rom", 31), ("tinycnn", 4, "qspi", 16), ("tinycnn", 6, "qspi", 31),
    ("tinycnn_unstruct50", 4, "qspi", 31), ("person_detect", 2, "qspi", 31), ("person_detect", 2, "qspi", 16),
    ("person_detect", 4, "qspi", 31), ("person_detect", 5, "rom", 31),
]
#: The device each family is synthesized for (yosys does not check capacity).
FAMILY_DEVICES = {"ice40": "ice40-up5k", "ecp5": "ecp5-85k"}
#: The largest array synthesized per family: the UP5K's 8 DSPs hold a 2x2 array and its requantizer.
MAX_LANES = {"ice40": 4, "ecp5": 12}
#: iCE40 logic cells placed by nextpnr (`hwgen synth OUT --device ice40-up5k`, seed 1, with the
#: synthesis harness) against yosys's LUT4s and flip-flops of the same engines: (design, LUT4, FF,
#: cells). A logic cell holds a LUT4 and a flip-flop; how many pair up is fitted as one factor:
#: cells = SEQ_CELLS * (LUT4 + FF).
PLACED_ICE40 = [
    ("tinycnn_L1_qspi_m31", 1341, 1462, 2367),
    ("tinycnn_L2_qspi_m31", 1634, 1941, 3057),
    ("person_detect_L2_qspi_m31", 2508, 2841, 4238),
]
CSV_PATH = ROOT / "bench/sequential_calibration.csv"
OUT_PATH = ROOT / "hwgen/fpga/seq_calibration.py"
FEATURES = ("const", "array_bits", "lane_bits", "requant_bits", "layers", "word_bits", "flash", "blocks")


def design_name(model: str, lanes: int, weights: str, bits: int) -> str:
    return f"{model}_L{lanes}_{weights}_m{bits}"


def synthesize(verilog: str, top: str, device, work: Path) -> dict:
    script = "\n".join([f"read_verilog -lib -specify +/{device.family.value}/cells_sim.v", "read_verilog design.v",
                        f"{device.synth_command} -top {top}", "tee -q -o stat.json stat -json", ""])
    out = cached_yosys(verilog, script, work, "stat.json", device.family.value)
    return json.loads((out / "stat.json").read_text())


def measure(work: Path) -> list[dict]:
    rows = []
    graphs = {}
    for model, lanes, weights, bits in DESIGNS:
        name = design_name(model, lanes, weights, bits)
        if (model, bits) not in graphs:
            graphs[model, bits] = hardware_graph(hwgen.compile(MODELS[model], multiplier_bits=bits).graph)[0]
        graph = graphs[model, bits]
        for family, device_name in FAMILY_DEVICES.items():
            if lanes > MAX_LANES[family]:
                continue
            device = DEVICES[device_name]
            print(f"{name} {family}", flush=True)
            plan, program = make_seq_plan(graph, lanes, 1, WeightSource(weights), spram_banks=device.sprams > 0)
            used = yosys_resources(synthesize(to_verilog(graph, plan), plan.top, device, work), plan.top)
            est = seq_estimate(program, device)
            rows.append({"design": name, "family": family, "features": json.dumps(seq_features(program, device.family)),
                         "lut": used.logic, "ff": used.ff, "dsp": used.dsp, "dsp_model": est.dsp, "bram": used.bram,
                         "bram_model": est.bram, "spram": used.spram, "spram_model": est.spram,
                         "lutram": used.lutram})
    return rows


def fit(rows: list[dict], family: str, what: str, skip: str | None = None) -> dict[str, float]:
    rows = [r for r in rows if r["family"] == family and r["design"] != skip]
    a = np.array([[json.loads(r["features"])[k] for k in FEATURES] for r in rows], dtype=float)
    b = np.array([float(r[what]) for r in rows])
    w = 1 / np.sqrt(np.maximum(b, 1.0))
    x = nnls(a * w[:, None], b * w)
    return {k: float(f"{v:.4g}") for k, v in zip(FEATURES, x) if abs(v) > 1e-9}


def cells_factor() -> float:
    """Least squares of placed cells over LUT4 + FF, through the origin."""
    pairs = np.array([(lut + ff, cells) for _, lut, ff, cells in PLACED_ICE40], dtype=float)
    return float(f"{(pairs[:, 0] @ pairs[:, 1]) / (pairs[:, 0] @ pairs[:, 0]):.4g}")


def predict(coef: dict[str, float], row: dict) -> float:
    return sum(coef.get(k, 0.0) * v for k, v in json.loads(row["features"]).items())


def write(coefs: dict) -> None:
    lines = ['"""The sequential engine\'s logic model, fitted to yosys by bench/calibrate_sequential.py. GENERATED: do '
             'not edit.', "",
             "Regenerate with `.venv/bin/python bench/calibrate_sequential.py` (or `--refit` from",
             f"bench/sequential_calibration.csv). Fitted on the {len(DESIGNS)} designs of DESIGNS, on iCE40 those of",
             f"arrays up to {MAX_LANES['ice40']}x{MAX_LANES['ice40']}.",
             "SEQ_LOGIC[family][\"lut\"|\"ff\"][feature]: LUT4s / flip-flops per unit of each feature of",
             "seqresources.seq_features.", '"""', "", "SEQ_LOGIC = {"]
    for family in sorted(coefs):
        lines.append(f"    {family!r}: {{")
        for what in ("lut", "ff"):
            lines.append(f"        {what!r}: {{")
            lines += [f"            {k!r}: {v!r}," for k, v in sorted(coefs[family][what].items())]
            lines.append("        },")
        lines.append("    },")
    lines += ["}", "", "# iCE40 logic cells per (LUT4 + flip-flop), from nextpnr's placements of PLACED_ICE40",
              f"SEQ_CELLS = {{'ice40': {cells_factor()!r}}}", ""]
    OUT_PATH.write_text("\n".join(lines))
    print(f"wrote {OUT_PATH.relative_to(ROOT)}")


def check(rows: list[dict], coefs: dict) -> None:
    head = f"{'design':36} {'family':6} {'LUT4':>6} {'est':>6} {'err':>6} {'l-o-o':>6}  {'FF':>6} {'est':>6} {'err':>6}"
    print(head)
    errors: dict[str, list[float]] = {}
    for r in rows:
        cells = []
        for what in ("lut", "ff"):
            actual, est = float(r[what]), predict(coefs[r["family"]][what], r)
            cells += [f"{actual:6.0f}", f"{est:6.0f}", f"{100 * (est - actual) / actual:+5.1f}%"]
            if what == "lut":
                loo = predict(fit(rows, r["family"], what, skip=r["design"]), r)
                cells.append(f"{100 * (loo - actual) / actual:+5.1f}%")
                errors.setdefault(r["family"], []).append(abs(loo - actual) / actual)
        print(f"{r['design']:36} {r['family']:6} " + " ".join(cells[:4]) + "  " + " ".join(cells[4:]))
        if (int(r["dsp"]), int(r["bram"]), int(r["spram"])) != (int(r["dsp_model"]), int(r["bram_model"]),
                                                                 int(r["spram_model"])):
            print(f"    counted DSP/BRAM/SPRAM {r['dsp_model']}/{r['bram_model']}/{r['spram_model']}, "
                  f"yosys {r['dsp']}/{r['bram']}/{r['spram']}")
    for family, e in sorted(errors.items()):
        print(f"{family}: LUT4 leave-one-out error mean {100 * np.mean(e):.1f} %, max {100 * max(e):.1f} %")
    factor = cells_factor()
    for name, lut, ff, cells in PLACED_ICE40:
        print(f"{name}: placed {cells} iCE40 logic cells, {factor} x (LUT4 + FF) = {factor * (lut + ff):.0f} "
              f"({100 * (factor * (lut + ff) - cells) / cells:+.1f} %)")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--refit", action="store_true", help="refit the CSV, no synthesis")
    p.add_argument("--check", action="store_true", help="print the current coefficients against the CSV")
    p.add_argument("--work", type=Path, default=Path("/tmp/hwgen_seq_calibration"))
    args = p.parse_args()
    if not (args.refit or args.check):
        rows = measure(args.work)
        with CSV_PATH.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    with CSV_PATH.open() as f:
        rows = list(csv.DictReader(f))
    if args.check:
        from hwgen.fpga.seq_calibration import SEQ_LOGIC
        check(rows, SEQ_LOGIC)
        return 0
    coefs = {family: {what: fit(rows, family, what) for what in ("lut", "ff")} for family in FAMILY_DEVICES}
    write(coefs)
    check(rows, coefs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
