"""Synthesis benchmark: what a Verilog accelerator costs on each device, and the calibration sweep.

    python bench/synth.py ACC.v --top acc [--devices ice40-up5k,ecp5-85k] [--ii CYCLES]
    python bench/synth.py --calibrate [--devices ...]   # writes bench/synth_calibration.csv

The first form synthesizes one accelerator (yosys + nextpnr + pack, fixed seed) for each device
and prints its resources and Fmax; with ``--ii`` (cycles per inference, as co-simulation measures
it) also inferences per second at Fmax.

``--calibrate`` runs the probe designs of ``hwgen.synth.probes`` (N-lane int8 MACs with weights
streamed in or constant, ROMs and line buffers of several sizes) on each device and writes one
CSV row per run: the measurements an analytic resource model is fitted to. Rows for designs that
do not fit a device keep yosys's counts and say which resource overflows. The CSV holds only
deterministic values (no run times), so a rerun with the same tools gives the same file.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from hwgen.errors import HwgenError
from hwgen.synth import DEVICES, DoesNotFitError, Resources, synthesize
from hwgen.synth.harness import to_verilog
from hwgen.synth.probes import LineBuffer, MacArray, Rom
from hwgen.synth.report import yosys_resources

HERE = Path(__file__).resolve().parent
CALIBRATION_CSV = HERE / "synth_calibration.csv"
DEFAULT_DEVICES = ("ice40-up5k", "ecp5-85k")


@dataclass(frozen=True)
class Row:
    design: str
    device: str
    status: str               # "ok", or "does not fit: ..." / "failed: ..."
    accelerator: Resources    # yosys, the accelerator alone
    placed_logic: int | None  # nextpnr, with the harness
    available_logic: int
    fmax_mhz: float | None
    memories: str             # "name:kind ..." as yosys mapped them
    seconds: float


def run_one(verilog: Path, top: str, device: str, out_dir: Path) -> Row:
    start = time.perf_counter()
    available = DEVICES[device].logic
    try:
        result = synthesize(verilog, top, device, out_dir=out_dir)
    except DoesNotFitError as exc:  # yosys's counts are still worth keeping
        stat = json.loads((out_dir / "stat.json").read_text())
        return Row(top, device, str(exc).split(": ", 1)[1], yosys_resources(stat, top), None, available, None, "",
                   time.perf_counter() - start)
    except HwgenError as exc:
        return Row(top, device, f"failed: {exc}", Resources(), None, available, None, "", time.perf_counter() - start)
    r = result.report
    return Row(top, device, "ok", r.accelerator, r.placed.logic, r.available.logic, r.fmax_mhz,
               " ".join(f"{m.name}:{m.kind}" for m in r.memories), time.perf_counter() - start)


def format_table(rows: list[Row], ii: float | None = None) -> str:
    head = ["design", "device", "LUT4", "FF", "carry", "DSP", "BRAM", "SPRAM", "placed logic", "Fmax MHz",
            *(["inf/s"] if ii else []), "s", "status"]
    lines = [head]
    for r in rows:
        a = r.accelerator
        placed = f"{r.placed_logic} ({100 * r.placed_logic / r.available_logic:.0f}%)" if r.placed_logic else "-"
        fmax = f"{r.fmax_mhz:.1f}" if r.fmax_mhz else "-"
        rate = [f"{r.fmax_mhz * 1e6 / ii:,.0f}" if r.fmax_mhz else "-"] if ii else []
        lines.append([r.design, r.device, str(a.logic), str(a.ff), str(a.carry), str(a.dsp), str(a.bram),
                      str(a.spram), placed, fmax, *rate, f"{r.seconds:.1f}", r.status])
    widths = [max(len(line[k]) for line in lines) for k in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)


def calibration_designs() -> list[tuple[str, object]]:
    """(top module name, component) of the sweep, smallest first within each family."""
    designs: list[tuple[str, object]] = []
    for lanes in (1, 2, 4, 8, 16):
        designs.append((f"mac{lanes}", MacArray(lanes)))
    for lanes in (1, 2, 4, 8, 16):  # fixed pseudo-random int8 weights, none of them 0 or +-1
        weights = tuple(((37 * k + 11) % 200 - 100) or 3 for k in range(lanes))
        designs.append((f"mac{lanes}_const", MacArray(lanes, weights=weights)))
    for depth, width in ((256, 8), (1024, 8), (4096, 8), (16384, 8), (1024, 32)):
        designs.append((f"rom{depth}x{width}", Rom(depth, width)))
    for depth, width in ((256, 8), (1024, 8)):  # forced into LUTs: what a LUT ROM of weights costs
        designs.append((f"rom{depth}x{width}_lut", Rom(depth, width, ram_style="logic")))
    for depth, width in ((64, 8), (256, 8), (1024, 8), (4096, 8), (1024, 32)):
        designs.append((f"linebuf{depth}x{width}", LineBuffer(depth, width)))
    return designs


CSV_FIELDS = ["design", "device", "status", "lut4", "ff", "carry", "dsp", "bram", "spram", "lutram",
              "placed_logic", "available_logic", "fmax_mhz", "memories"]


def write_csv(rows: list[Row], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(CSV_FIELDS)
        for r in rows:
            a = r.accelerator
            writer.writerow([r.design, r.device, r.status, a.logic, a.ff, a.carry, a.dsp, a.bram, a.spram, a.lutram,
                             "" if r.placed_logic is None else r.placed_logic, r.available_logic,
                             "" if r.fmax_mhz is None else f"{r.fmax_mhz:.2f}", r.memories])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("verilog", type=Path, nargs="?", help="accelerator Verilog (omit with --calibrate)")
    parser.add_argument("--top", help="its top module (default: the file's name)")
    parser.add_argument("--devices", default=",".join(DEFAULT_DEVICES), help="comma-separated device names")
    parser.add_argument("--ii", type=float, default=None, metavar="CYCLES", help="cycles per inference")
    parser.add_argument("--calibrate", action="store_true", help="run the probe sweep, write the CSV")
    parser.add_argument("--csv", type=Path, default=CALIBRATION_CSV, help="where --calibrate writes")
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temp dir)")
    args = parser.parse_args(argv)
    devices = [d.strip() for d in args.devices.split(",") if d.strip()]
    unknown = [d for d in devices if d not in DEVICES]
    if unknown or (args.verilog is None) == (not args.calibrate):
        parser.error(f"unknown devices {unknown}" if unknown else "give a Verilog file or --calibrate")

    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        rows: list[Row] = []
        if args.calibrate:
            for top, component in calibration_designs():
                verilog = root / f"{top}.v"
                verilog.parent.mkdir(parents=True, exist_ok=True)
                verilog.write_text(to_verilog(component, top))
                for device in devices:
                    rows.append(run_one(verilog, top, device, root / top / device))
                    print(format_table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
            write_csv(rows, args.csv)
        else:
            top = args.top or args.verilog.stem
            rows = [run_one(args.verilog, top, device, root / device) for device in devices]
        print(format_table(rows, args.ii))
        if args.calibrate:
            print(f"wrote {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
