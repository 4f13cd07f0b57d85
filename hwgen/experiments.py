"""Experiments: one model compiled with one set of options, measured, as one row of a table.

The people who use hwgen prune, quantize, compile, measure and compare, and keep a table of what
they tried. `run_experiment` computes one row: the model's metric on data (top-1 accuracy against
labels, or agreement with onnxruntime), its size (MACs, parameters, sparsity, bits), the FPGA
accelerator's cycles and resources (cycle model and estimate, or Verilator and yosys/nextpnr),
and the RISC-V vector code's instructions. The same experiment gives the same numbers; its id is
a hash of the model's and data's contents and the options, so a table (`ExperimentTable`) knows
which rows it already has.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import hashlib
import io
import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx

from . import api, backends, golden
from .arrays import check_input
from .backends.fpga import FpgaOptions
from .compiler import Compiled, CompileOptions, compile_model
from .devices import DEVICES
from .errors import HwgenError, InvalidOptionError
from .fixed import MULTIPLIER_BITS, Rounding
from .images import is_image
from .outdir import reading
from .reference import ort_tensors
from .version import __version__

__all__ = ["Experiment", "ExperimentTable", "run_experiment", "experiment_row", "experiment_id", "COLUMNS", "load_data",
           "markdown"]

#: Random inputs when no data is given: this many samples from this seed.
RANDOM_SAMPLES = 8
RANDOM_SEED = 0

#: The table's columns, in order (RVV columns per VLEN are added after `rvv_constant_bytes`).
COLUMNS = (
    "experiment", "date", "model", "model_sha256", "data", "data_sha256", "options",
    "metric", "value", "samples",
    "macs", "nonzero_macs", "params", "weight_sparsity", "weight_bits", "activation_bits",
    "device", "multipliers", "interval_cycles", "utilization", "cycles_from",
    "logic", "ff", "dsp", "bram", "resources_from", "clock_mhz", "clock_from", "inferences_per_s",
    "rvv_constant_bytes",
)
TRAILING = ("status", "error")


@dataclass(frozen=True)
class Experiment:
    """What to compile and measure. `targets`: "fpga", "rvv"; `device`: the FPGA to fit and estimate
    for (default: ice40-up5k when fpga is a target); `measure`: cycles in Verilator instead of the
    cycle model; `synth`: resources and Fmax from yosys/nextpnr (`seed`: nextpnr's)."""

    model: Path
    data: Path | None = None
    targets: tuple[str, ...] = ("fpga", "rvv")
    device: str | None = None
    multipliers: int | None = None
    folds: tuple[str, ...] = ()
    rounding: str = Rounding.RNE.value
    multiplier_bits: int = MULTIPLIER_BITS
    vlens: tuple[int, ...] = (128,)
    measure: bool = False
    synth: bool = False
    seed: int = 1
    samples: int | None = None   # at most this many data samples (None: all)

    def __post_init__(self):
        object.__setattr__(self, "model", Path(self.model))
        if self.data is not None:
            object.__setattr__(self, "data", Path(self.data))
        for name in ("targets", "folds", "vlens"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        unknown = [t for t in self.targets if t not in ("fpga", "rvv")]
        if unknown:
            raise InvalidOptionError(f"unknown target(s) {', '.join(map(repr, unknown))}; choose from fpga, rvv")
        if self.device is not None and self.device not in DEVICES:
            raise InvalidOptionError(f"unknown device {self.device!r}; choose from {', '.join(DEVICES)}")
        if self.synth and "fpga" not in self.targets:
            raise InvalidOptionError("synthesis needs the fpga target")
        if self.samples is not None and self.samples < 1:
            raise InvalidOptionError(f"samples must be >= 1, not {self.samples}")

    @property
    def fpga_device(self) -> str | None:
        if "fpga" not in self.targets:
            return None
        return self.device or "ice40-up5k"

    def options(self) -> dict:
        """The options that make the numbers (not the model or data), as the table records them."""
        d = asdict(self)
        for name in ("model", "data"):
            d.pop(name)
        d["device"] = self.fpga_device
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    def key(self, model_sha: str, data_sha: str | None) -> str:
        """The experiment's id: a hash of the model's and data's contents, the options and hwgen's
        version (another version may compute other numbers: it measures again)."""
        text = json.dumps({"model": model_sha, "data": data_sha, "options": self.options(), "hwgen": __version__},
                          sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def sha256_of(path: Path) -> str:
    """A file's sha256, or (a directory of images) the hash of its files' names and contents."""
    h = hashlib.sha256()
    with reading(path):
        if path.is_dir():
            for f in _image_files(path):
                h.update(str(f.relative_to(path)).encode() + b"\0" + f.read_bytes())
        else:
            h.update(path.read_bytes())
    return h.hexdigest()


def experiment_id(exp: Experiment, hashes: dict[Path, str]) -> str:
    """The experiment's id, hashing each model and data file once (`hashes` remembers them)."""
    for path in (exp.model, exp.data):
        if path is not None and path not in hashes:
            hashes[path] = sha256_of(path)
    return exp.key(hashes[exp.model], hashes.get(exp.data))


def _image_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and is_image(p))


# -- data ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Data:
    feeds: dict[str, np.ndarray]     # ONNX inputs, batch first
    labels: np.ndarray | None        # class index per sample
    samples: int


def load_data(path: Path | None, compiled: Compiled, limit: int | None = None) -> Data:
    """The model inputs (and labels) of `path`: an .npz of inputs named as the model's (or `x`,
    `X`, `x_q` for its one input) with labels `y` or `labels`; or a directory of images (the
    model's config file says how to make them inputs), in class subdirectories named by class
    index or, sorted, by class name. None: seeded random inputs."""
    if path is None:
        return _random_data(compiled)
    if path.is_dir():
        return _image_data(path, compiled, limit)
    if path.suffix != ".npz":
        raise InvalidOptionError(f"{path}: data must be an .npz of inputs and labels, or a directory of images")
    with reading(path):
        try:
            arrays = dict(np.load(path, allow_pickle=False))
        except (ValueError, OSError, EOFError) as exc:
            raise InvalidOptionError(f"{path}: not a readable .npz ({exc})") from None
    labels = next((arrays.pop(k) for k in ("y", "labels") if k in arrays), None)
    ports = compiled.graph.input_ports
    feeds = {}
    for port in ports:
        names = [port.onnx_name] + (["x", "X", "x_q"] if len(ports) == 1 else [])
        name = next((n for n in names if n in arrays), None)
        if name is None:
            raise InvalidOptionError(f"{path}: no array named {port.onnx_name!r}" + (" (or x, X, x_q)" if
                                                                                     len(ports) == 1 else ""))
        feeds[port.onnx_name] = check_input(arrays[name], port)
    batch = len(next(iter(feeds.values())))
    if limit is not None:
        feeds = {k: v[:limit] for k, v in feeds.items()}
        labels = None if labels is None else labels[:limit]
        batch = min(batch, limit)
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        if len(labels) != batch or labels.dtype.kind not in "iu":
            raise InvalidOptionError(f"{path}: labels must be {batch} integers, one per sample")
    return Data(feeds, labels, batch)


def _image_data(root: Path, compiled: Compiled, limit: int | None) -> Data:
    files = _image_files(root)[:limit]
    if not files:
        raise InvalidOptionError(f"{root}: no images (.png, .jpg, .bmp, ...)")
    classes = sorted({f.parent for f in files if f.parent != root})
    labels = None
    if classes and all(f.parent != root for f in files):
        names = [c.relative_to(root).as_posix() for c in classes]
        index = ({c: int(n) for c, n in zip(classes, names)} if all(n.isdigit() for n in names)
                 else {c: i for i, c in enumerate(classes)})
        labels = np.array([index[f.parent] for f in files], np.int64)
    feeds: dict[str, list[np.ndarray]] = {}
    for f in files:
        one, _ = api.image_input(compiled, f)
        for k, v in one.items():
            feeds.setdefault(k, []).append(v)
    return Data({k: np.concatenate(v) for k, v in feeds.items()}, labels, len(files))


def _random_data(compiled: Compiled) -> Data:
    rng = np.random.default_rng(RANDOM_SEED)
    feeds = {}
    for port in compiled.graph.input_ports:
        shape = (RANDOM_SAMPLES, *port.shape[1:]) if port.layout.batched else port.shape
        dtype = np.dtype(port.onnx_dtype)
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            feeds[port.onnx_name] = rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)
        else:  # floats over what the input's quantizer represents
            q, t = port.quantize, compiled.graph.tensor(port.tensor).dtype
            lo, hi = ((-1.0, 1.0) if q is None else
                      ((t.lo - max(q.zero_point)) * min(q.scale), (t.hi - min(q.zero_point)) * min(q.scale)))
            feeds[port.onnx_name] = rng.uniform(lo, hi, shape).astype(dtype)
    return Data(feeds, None, RANDOM_SAMPLES if compiled.graph.input_ports[0].layout.batched else 1)


# -- the metric ---------------------------------------------------------------------------------


def _metric(compiled: Compiled, model: onnx.ModelProto, data: Data) -> tuple[str, float]:
    ours = golden.run_model(compiled.graph, data.feeds)
    first = next(iter(ours.values()))
    classifier = len(ours) == 1 and first.ndim >= 2 and math.prod(first.shape[1:]) > 1 and \
        math.prod(first.shape[1:]) == max(first.shape[1:])
    if data.labels is not None:
        if not classifier:
            raise InvalidOptionError("labels need a classifier (one output of class scores per sample)")
        top1 = first.reshape(len(first), -1).argmax(axis=1)
        return "top1", float(np.mean(top1 == data.labels))
    theirs = ort_tensors(model, data.feeds, list(ours))
    if classifier:
        name = next(iter(ours))
        agree = first.reshape(len(first), -1).argmax(1) == theirs[name].reshape(len(first), -1).argmax(1)
        return "top1_agree_ort", float(np.mean(agree))
    equal = total = 0
    for name, y in ours.items():
        t = theirs[name].astype(y.dtype)
        same = np.isclose(y, t, rtol=1e-6, atol=0) if y.dtype.kind == "f" else y == t
        equal += int(np.count_nonzero(same))
        total += y.size
    return "values_equal_ort", equal / total if total else 1.0


# -- one experiment -----------------------------------------------------------------------------


def run_experiment(exp: Experiment, *, work: Path | None = None, progress=None) -> dict:
    """The table row of one experiment. `work`: where a synthesis may write (default: a temporary
    directory). Raises HwgenError for a model or option hwgen refuses."""
    say = progress or (lambda message: None)
    model_sha = sha256_of(exp.model)
    data_sha = sha256_of(exp.data) if exp.data is not None else None
    row: dict = {"experiment": exp.key(model_sha, data_sha),
                 "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"),
                 "model": str(exp.model), "model_sha256": model_sha[:16],
                 "data": str(exp.data) if exp.data is not None else f"random ({RANDOM_SAMPLES}, seed {RANDOM_SEED})",
                 "data_sha256": (data_sha or "")[:16], "options": _options_text(exp)}
    options = CompileOptions(exp.rounding, exp.multiplier_bits)
    say(f"{exp.model.name}: compiling")
    compiled = compile_model(exp.model, options)
    model = onnx.load(str(exp.model))
    say(f"{exp.model.name}: metric")
    data = load_data(exp.data, compiled, exp.samples)
    row["metric"], value = _metric(compiled, model, data)
    row["value"] = round(value, 4)
    row["samples"] = data.samples
    row.update(_size(compiled))
    if "fpga" in exp.targets:
        row.update(_fpga(exp, compiled, work, say))
    if "rvv" in exp.targets:
        row.update(_rvv(exp, compiled, say))
    row["status"] = "ok"
    return row


def experiment_row(exp: Experiment, *, progress=None) -> dict:
    """The experiment's row, or the row of its failure with the one-line error (never an exception
    but an interrupt or a bug in hwgen): what bench and each sweep point record."""
    try:
        return run_experiment(exp, progress=progress)
    except (HwgenError, OSError, ValueError, RuntimeError) as error:
        return failed_row(exp, error)


def _options_text(exp: Experiment) -> str:
    o = exp.options()
    parts = [f"targets={','.join(o['targets'])}"]
    if o["device"]:
        parts.append(f"device={o['device']}")
    for name in ("multipliers", "rounding", "multiplier_bits", "seed"):
        default = Experiment.__dataclass_fields__[name].default
        if o[name] != default and o[name] is not None:
            parts.append(f"{name}={o[name]}")
    parts += [f"fold={f}" for f in o["folds"]]
    if "rvv" in exp.targets:
        parts.append(f"vlen={','.join(map(str, o['vlens']))}")
    parts += [flag for flag in ("measure", "synth") if o[flag]]
    return " ".join(parts)


def _size(compiled: Compiled) -> dict:
    """Totals and bit widths of `hwgen report`; weight sparsity of the compiled IR's weights."""
    t = compiled.report.totals
    weighted = [n for n in compiled.graph.nodes if getattr(n, "weights", None) is not None]
    weights = sum(int(n.weights.size) for n in weighted)
    zeros = sum(int(np.count_nonzero(n.weights == 0)) for n in weighted)
    rows = compiled.report.layers
    wbits = sorted({r.weight_bits for r in rows if r.weight_bits is not None})
    abits = sorted({r.output_bits for r in rows})
    return {"macs": t["macs"], "nonzero_macs": t["nonzero_macs"], "params": t["params"],
            "weight_sparsity": round(zeros / weights, 4) if weights else 0.0,
            "weight_bits": "/".join(map(str, wbits)), "activation_bits": "/".join(map(str, abits))}


def _fpga(exp: Experiment, compiled: Compiled, work: Path | None, say) -> dict:
    device = exp.fpga_device
    say(f"{exp.model.name}: FPGA accelerator for {device}")
    fpga = FpgaOptions(device, exp.multipliers, exp.folds, exp.measure)
    files = backends.backend("fpga").emit(compiled, fpga)
    report = json.loads(files["report.json"])
    resources = json.loads(files["resources.json"])["estimate"]
    measured = report.get("measured") or {}
    interval = measured.get("interval") or report["expected_interval"]
    util = report["measured_utilization"] if measured.get("interval") else report["expected_utilization"]
    row = {"device": device, "multipliers": report["multipliers"], "interval_cycles": round(interval),
           "utilization": util, "cycles_from": "verilator" if measured.get("interval") else "model",
           "logic": resources["logic"], "ff": resources["ff"], "dsp": resources["dsp"], "bram": resources["bram"],
           "resources_from": "estimate", "clock_mhz": DEVICES[device].default_clock_mhz, "clock_from": "target"}
    if exp.synth:
        row.update(_synth(exp, compiled, files, device, work, say))
    row["inferences_per_s"] = round(row["clock_mhz"] * 1e6 / interval, 1)
    return row


def _synth(exp: Experiment, compiled: Compiled, files: Mapping[str, bytes], device: str, work: Path | None,
           say) -> dict:
    from .synth.flow import synthesize

    manifest = json.loads(files["manifest.json"])
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        verilog = Path(tmp) / manifest["verilog"]
        verilog.write_bytes(files[manifest["verilog"]])
        say(f"{exp.model.name}: yosys and nextpnr for {device}")
        result = synthesize(verilog, manifest["top"], device, out_dir=Path(tmp) / "synth", seed=exp.seed,
                            progress=lambda line: say(f"{exp.model.name}: {line}"))
        report = result.report
    used = report.placed
    fmax = report.fmax_mhz
    return {"logic": used.logic, "ff": used.ff, "dsp": used.dsp, "bram": used.bram, "resources_from": "nextpnr",
            "clock_mhz": round(fmax, 2) if fmax else DEVICES[device].default_clock_mhz,
            "clock_from": "nextpnr fmax" if fmax else "target"}


def _rvv(exp: Experiment, compiled: Compiled, say) -> dict:
    from .backends.rvv import generate_for, test_inputs
    from .rvv import measure
    from .rvv.program import RVV
    from .sim.qemu import missing_rvv_tools

    generated = generate_for(compiled)
    row: dict = {}
    counts = []
    inputs = test_inputs(compiled.graph, samples=1)
    if not missing_rvv_tools():
        for vlen in exp.vlens:
            say(f"{exp.model.name}: RVV instructions at VLEN {vlen}")
            counts.append(measure.count(generated, inputs, flavour=RVV, vlen=vlen))
    report = measure.report_json(generated, compiled.report.totals["macs"], counts, source=compiled.source.name,
                                 not_counted="the RVV tools are missing")
    row["rvv_constant_bytes"] = report["constant_bytes"]
    for vlen in exp.vlens:
        count = report.get("per_inference", {}).get(str(vlen), {})
        row[f"rvv_instructions_{vlen}"] = count.get("instructions", "")
        row[f"rvv_per_mac_{vlen}"] = count.get("per_mac", "")
    return row


# -- the table ----------------------------------------------------------------------------------


_HEADER_START = ",".join(COLUMNS[:3])


@dataclass
class ExperimentTable:
    """A CSV file of experiment rows, written by hwgen only: every change rewrites it whole through
    a temporary file and a rename, so an interrupted run leaves the table as it was before the row."""

    path: Path
    rows: list[dict] = field(default_factory=list)

    @classmethod
    def open(cls, path: str | Path) -> ExperimentTable:
        path = Path(path)
        if path.suffix != ".csv":
            raise InvalidOptionError(f"{path}: the experiment table must be a .csv file")
        if not path.exists():
            return cls(path)
        with reading(path):
            text = path.read_text()
        if not text.startswith(_HEADER_START):
            raise InvalidOptionError(f"{path}: not an hwgen experiment table (its header does not start with "
                                     f"{_HEADER_START}); hwgen does not overwrite it")
        return cls(path, list(csv.DictReader(io.StringIO(text))))

    def find(self, experiment: str) -> dict | None:
        """The last ok row of the experiment, if the table has one."""
        return next((r for r in reversed(self.rows) if r["experiment"] == experiment and r.get("status") == "ok"),
                    None)

    def add(self, row: Mapping) -> None:
        """Append a row (replacing an earlier failed row of the same experiment) and save."""
        self.rows = [r for r in self.rows if not (r["experiment"] == row["experiment"] and r.get("status") != "ok")]
        self.rows.append({k: "" if v is None else v for k, v in row.items()})
        self.save()

    def columns(self) -> list[str]:
        return columns_of(self.rows)

    def save(self) -> None:
        text = to_csv(self.rows)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", newline="") as f:
                f.write(text)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def columns_of(rows: Iterable[Mapping]) -> list[str]:
    """COLUMNS, then the RVV columns the rows have (by VLEN), then status and error."""
    extra = sorted({k for r in rows for k in r if k.startswith("rvv_") and k not in COLUMNS},
                   key=lambda k: (int(k.rsplit("_", 1)[1]), k))
    return [*COLUMNS, *extra, *TRAILING]


def to_csv(rows: Sequence[Mapping]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, columns_of(rows), restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


#: The columns `markdown` shows (the rest stay in the CSV), with their headings.
SHOWN = {"experiment": "id", "model": "model", "options": "options", "metric": "metric", "value": "value",
         "nonzero_macs": "nz MACs", "params": "params", "weight_sparsity": "w sparse", "interval_cycles": "cycles",
         "utilization": "util", "logic": "LUT4", "dsp": "DSP", "bram": "BRAM", "clock_mhz": "MHz",
         "inferences_per_s": "inf/s", "rvv_constant_bytes": "RVV bytes"}


def markdown(rows: Sequence[Mapping]) -> str:
    """The table as markdown: the shown columns, plus instructions per inference at each VLEN."""
    cols = [c for c in SHOWN if any(str(r.get(c, "")) for r in rows)]
    cols += [c for c in columns_of(rows) if c.startswith("rvv_instructions_")]
    heads = [SHOWN[c] if c in SHOWN else f"RVV instr VLEN {c.rsplit('_', 1)[1]}" for c in cols] + ["status"]
    lines = ["| " + " | ".join(heads) + " |", "|" + "|".join("---" for _ in heads) + "|"]
    for r in rows:
        cells = [_cell(c, r.get(c, "")) for c in cols]
        status = r.get("status", "")
        cells.append(status if status == "ok" else f"{status}: {r.get('error', '')}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(column: str, value) -> str:
    text = "-" if value is None else str(value)   # a value this row does not have
    if column == "model":
        text = Path(text).name
    if column in ("nonzero_macs", "params", "interval_cycles", "rvv_constant_bytes") or column.startswith(
            "rvv_instructions_"):
        with contextlib.suppress(ValueError):
            text = f"{int(float(text)):,}"
    return text.replace("|", "\\|").replace("\n", " ")


def failed_row(exp: Experiment, error: BaseException) -> dict:
    """The row of an experiment that failed: what it was and the one-line error."""
    try:
        model_sha = sha256_of(exp.model)
    except HwgenError:
        model_sha = ""
    data_sha = ""
    if exp.data is not None:
        with contextlib.suppress(HwgenError):
            data_sha = sha256_of(exp.data)
    return {"experiment": exp.key(model_sha, data_sha or None),
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"),
            "model": str(exp.model), "model_sha256": model_sha[:16], "data": str(exp.data or ""),
            "data_sha256": data_sha[:16], "options": _options_text(exp), "status": "failed",
            "error": " ".join(str(error).split())[:300]}
