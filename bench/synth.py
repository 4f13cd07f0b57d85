"""Synthesis benchmark: what a Verilog accelerator costs on each device, and the calibration sweep.

    python bench/synth.py ACC.v --top acc [--devices ice40-up5k,ecp5-85k] [--ii CYCLES]
    python bench/synth.py --calibrate [--devices ...]   # writes bench/synth_calibration.csv
    python bench/synth.py --models [--only NAME,...] [--out DIR [--reuse]] [--router router2]
                                                       # writes bench/synth_models.csv

The first form synthesizes one accelerator (yosys + nextpnr + pack, fixed seed) for each device
and prints its resources and Fmax; with ``--ii`` (cycles per inference, as co-simulation measures
it) also inferences per second at Fmax.

``--models`` compiles each model of MODELS for its device (``hwgen compile --target fpga
--device D --measure``: the fitted folding, with the interval measured in Verilator), synthesizes
it (``hwgen synth OUT --device D``; person_detect on ecp5-85k routes on the static placer's
placement with router2, 59.5 MHz, and with router1, 74.5 MHz in 11 minutes) and prints, per
model x device: the folding chosen, hwgen's estimate against yosys's counts (LUT4, FF, DSP,
block RAM, error in %), Fmax, the measured interval, multiplier utilization and inferences per
second at Fmax.

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
from hwgen.synth.flow import PLACERS, ROUTERS
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


REPO = HERE.parent
#: (name, model, device): the designs ``--models`` builds, smallest first.
MODELS = (
    ("tinycnn", "examples/models/digits/tinycnn_fp32_qdq_s8s8_pc.onnx", "ice40-up5k"),
    ("tinycnn_unstruct50", "examples/models/digits/tinycnn_unstruct50_qdq_s8s8_pc.onnx", "ice40-up5k"),
    ("tinycnn_pruned", "examples/models/digits/tinycnn_pruned_qdq_s8s8_pc.onnx", "ice40-up5k"),
    ("tinycnn", "examples/models/digits/tinycnn_fp32_qdq_s8s8_pc.onnx", "ecp5-25k"),
    ("mobilenet", "examples/models/digits/mobilenet/mobilenet_fp32_qdq_s8s8_pc.onnx", "ecp5-45k"),
    ("person_detect", "examples/models/person_detect/person_detect_qdq.onnx", "ecp5-85k"),
)
MODELS_CSV = HERE / "synth_models.csv"
MODEL_FIELDS = ["model", "device", "budget", "lut_lanes", "interval", "utilization", "est_logic", "lut4",
                "est_ff", "ff", "est_dsp", "dsp", "est_bram", "bram", "placed_logic", "fmax_mhz", "inferences_per_s",
                "verilog_sha256", "status"]


def run_model(name: str, model: str, device: str, root: Path, reuse: bool = False, router: str = ROUTERS[0],
              placer: str | None = None) -> dict:
    """Compile (fitted to `device`, measured in Verilator), synthesize; one MODEL_FIELDS row.
    `reuse`: take a finished run already in `root` as it is; `router`, `placer`: nextpnr's
    (placer None: the device's)."""
    import subprocess

    def hwgen(argv: list[str]) -> str | None:
        """Runs the hwgen command; None on success, else its error line."""
        run = subprocess.run([str(Path(sys.executable).parent / "hwgen"), *argv], capture_output=True, text=True)
        errors = [line for line in run.stderr.splitlines() if "error" in line]
        return None if run.returncode == 0 else (errors[-1] if errors else f"exit {run.returncode}")

    out = root / f"{name}-{device}"
    row = {"model": name, "device": device, "status": "ok"}
    if not (reuse and (out / "synth" / device / "report.json").is_file()):
        failed = hwgen(["compile", str(REPO / model), "-o", str(out), "--target", "fpga", "--device", device,
                        "--measure"]) or hwgen(["synth", str(out), "--device", device, "--router", router,
                                                      *(["--placer", placer] if placer else [])])
        if failed:
            return {**row, "status": failed.removeprefix("hwgen: error: ")}
    manifest = json.loads((out / "fpga" / "manifest.json").read_text())
    fit = json.loads((out / "fpga" / "resources.json").read_text())
    cycles = json.loads((out / "fpga" / "report.json").read_text())
    r = json.loads((out / "synth" / device / "report.json").read_text())
    est, acc = r["estimate"], r["accelerator"]
    row.update(budget=fit["budget"], lut_lanes=sum(fit["lut_lanes"].values()),
               verilog_sha256=manifest["verilog_sha256"][:16],
               utilization=cycles.get("measured_utilization") or cycles.get("expected_utilization"),
               interval=r["interval"], est_logic=est["logic"], lut4=acc["logic"], est_ff=est["ff"], ff=acc["ff"],
               est_dsp=est["dsp"], dsp=acc["dsp"], est_bram=est["bram"], bram=acc["bram"],
               placed_logic=r["placed"]["logic"], fmax_mhz=r["fmax_mhz"],
               inferences_per_s=r["inferences_per_second"])
    return row


def _pct(est, got) -> str:
    return f"{est}/{got} ({100 * (est - got) / got:+.0f}%)" if got else f"{est}/{got}"


def format_models(rows: list[dict]) -> str:
    head = ["model", "device", "mults (logic)", "LUT4 est/yosys", "FF est/yosys", "DSP est/yosys",
            "BRAM est/yosys", "Fmax MHz", "II cycles", "util", "inf/s", "status"]
    lines = [head]
    for r in rows:
        if "lut4" not in r:
            lines.append([r["model"], r["device"]] + ["-"] * (len(head) - 3) + [r["status"]])
            continue
        util = r.get("utilization")
        lines.append([r["model"], r["device"], f"{r['budget']} ({r['lut_lanes']})", _pct(r["est_logic"], r["lut4"]),
                      _pct(r["est_ff"], r["ff"]), _pct(r["est_dsp"], r["dsp"]), _pct(r["est_bram"], r["bram"]),
                      f"{r['fmax_mhz']:.1f}" if r["fmax_mhz"] else "-", f"{r['interval']:,}",
                      f"{util:.3f}" if util else "-",
                      f"{r['inferences_per_s']:,.1f}" if r["inferences_per_s"] else "-", r["status"]])
    widths = [max(len(line[k]) for line in lines) for k in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)


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
    parser.add_argument("--models", action="store_true", help="compile, fit and synthesize the MODELS matrix")
    parser.add_argument("--only", default=None, help="with --models: comma-separated model names")
    parser.add_argument("--reuse", action="store_true", help="with --models and --out: keep finished runs")
    parser.add_argument("--csv", type=Path, default=CALIBRATION_CSV, help="where --calibrate writes")
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temp dir)")
    parser.add_argument("--router", default=ROUTERS[0], choices=ROUTERS,
                        help="with --models: nextpnr's router (router2 for person_detect on ecp5-85k)")
    parser.add_argument("--placer", default=None, choices=PLACERS,
                        help="with --models: nextpnr's placer (default: the device's)")
    args = parser.parse_args(argv)
    devices = [d.strip() for d in args.devices.split(",") if d.strip()]
    unknown = [d for d in devices if d not in DEVICES]
    if args.models:
        return _models(args)
    if unknown or (args.verilog is None) == (not args.calibrate):
        parser.error(f"unknown devices {unknown}" if unknown else "give a Verilog file, --calibrate or --models")

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


def _models(args) -> int:
    only = set(args.only.split(",")) if args.only else None
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        for name, model, device in MODELS:
            if only is None or name in only:
                rows.append(run_model(name, model, device, root, args.reuse, args.router, args.placer))
                print(format_models(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    print(format_models(rows))
    # rows of designs not run this time stay as they were
    kept = {}
    if MODELS_CSV.is_file():
        with open(MODELS_CSV, newline="") as f:
            kept = {(r["model"], r["device"]): r for r in csv.DictReader(f)}
    kept.update({(r["model"], r["device"]): r for r in rows})
    order = {(name, device): k for k, (name, _, device) in enumerate(MODELS)}
    with open(MODELS_CSV, "w", newline="") as f:
        writer = csv.DictWriter(f, MODEL_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(sorted(kept.values(), key=lambda r: order.get((r["model"], r["device"]), len(order))))
    print(f"wrote {MODELS_CSV}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
