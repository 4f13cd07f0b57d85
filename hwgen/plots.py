"""Pictures of reports and experiment tables (matplotlib, drawn off screen).

* `report_plot`: a compile output per layer: MACs, the FPGA engines' busy cycles and multiplier
  utilization, the estimated resources by unit, RVV instructions;
* `bench_plot`: experiments' metric against inferences/s and against LUT4s, Pareto fronts marked.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

from .errors import InvalidOptionError
from .outdir import read_json, reading, write_file

__all__ = ["report_plot", "layers_plot", "bench_plot", "pareto_front", "check_path"]

#: PNG metadata fixed, so the same data gives the same file.
_METADATA = {"Software": None}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def check_path(path: str | Path) -> None:
    """Refuse a plot file name hwgen cannot write (before any work)."""
    path = Path(path)
    if path.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise InvalidOptionError(f"{path}: a plot is written as .png, .svg or .pdf")
    if path.is_dir():
        raise InvalidOptionError(f"{path}: is a directory; give a file name for the plot")
    if not (path.parent if str(path.parent) else Path(".")).is_dir():
        raise InvalidOptionError(f"{path}: cannot write the plot: {path.parent} is not a directory")


def _save(fig, path: Path) -> None:
    check_path(path)
    kind = path.suffix.lower()[1:]
    buffer = io.BytesIO()
    fig.savefig(buffer, format=kind, dpi=110, metadata=_METADATA if kind == "png" else None)
    write_file(path, buffer.getvalue(), what="plot")


def report_plot(out_dir: str | Path, path: str | Path) -> None:
    """Per-layer panels of a compile output (the FPGA and RVV panels if those targets were compiled)."""
    out = Path(out_dir)
    with reading(out / "report.json"):
        model = read_json(out / "report.json")
    layers_plot(model, path, fpga=_optional(out / "fpga" / "report.json"),
                resources=_optional(out / "fpga" / "resources.json"), rvv=_optional(out / "rvv" / "report.json"))


def layers_plot(model: Mapping, path: str | Path, *, fpga: Mapping | None = None, resources: Mapping | None = None,
                rvv: Mapping | None = None) -> None:
    """Per-layer panels from report.json contents: the model's, and each target's if given."""
    path = Path(path)
    plt = _pyplot()
    panels = 1 + (fpga is not None) * 2 + (resources is not None) + (rvv is not None and "per_inference" in rvv)
    fig, axes = plt.subplots(panels, 1, figsize=(10, 2.6 * panels), squeeze=False)
    axes = list(axes[:, 0])
    layers = [l["name"] for l in model["layers"]]
    ax = axes.pop(0)
    ax.bar(range(len(layers)), [l["macs"] for l in model["layers"]], color="#bbbbbb", label="MACs")
    ax.bar(range(len(layers)), [l["nonzero_macs"] for l in model["layers"]], color="#3b75af", label="non-zero")
    ax.set_ylabel("MACs")
    ax.set_title(f"{model['model']}: per layer")
    ax.legend(loc="upper right", fontsize=8)
    _layer_ticks(ax, layers)
    if fpga is not None:
        names = [l["node"] for l in fpga["layers"]]
        ax = axes.pop(0)
        ax.bar(range(len(names)), [l["expected_busy"] for l in fpga["layers"]], color="#3b75af", label="model")
        measured = [l["measured_busy"] for l in fpga["layers"]]
        if any(m is not None for m in measured):
            ax.plot(range(len(names)), [m or 0 for m in measured], "o", color="#e1812c", label="measured")
        ax.axhline(fpga["expected_interval"], color="#c03d3e", lw=1, ls="--", label="interval")
        ax.set_ylabel("busy cycles")
        ax.legend(loc="upper right", fontsize=8)
        _layer_ticks(ax, names)
        ax = axes.pop(0)
        engines = fpga["engines"]
        ax.bar(range(len(engines)), [e["expected_utilization"] for e in engines], color="#3a923a")
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("multiplier utilization")
        ax.set_xticks(range(len(engines)), [f"{e['name']}\n{e['fold']}" for e in engines], fontsize=7)
    if resources is not None:
        units = resources["estimate"]["units"]
        ax = axes.pop(0)
        ax.bar(range(len(units)), [u["logic"] for u in units], color="#8c613c", label="LUT4 (estimate)")
        ax.set_ylabel("LUT4")
        ax.set_title(f"estimated for {resources['device']}: {resources['estimate']['logic']:,} LUT4, "
                     f"{resources['estimate']['dsp']} DSP, {resources['estimate']['bram']} BRAM", fontsize=9)
        _layer_ticks(ax, [u["name"] for u in units])
    if rvv is not None and "per_inference" in rvv:
        ax = axes.pop(0)
        vlen = min(rvv["per_inference"], key=int)
        rows = rvv["layers"]
        ax.bar(range(len(rows)), [r.get("instructions", {}).get(vlen, 0) for r in rows], color="#845b97")
        ax.set_ylabel(f"RVV instructions\n(VLEN {vlen})")
        _layer_ticks(ax, [r["node"] for r in rows])
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def _optional(path: Path) -> dict | None:
    if not path.is_file():
        return None
    with reading(path):
        return read_json(path)


def _layer_ticks(ax, names: Sequence[str]) -> None:
    short = [n if len(n) <= 18 else n[:8] + ".." + n[-8:] for n in names]
    ax.set_xticks(range(len(names)), short, rotation=60, ha="right", fontsize=7)


def pareto_front(points: Sequence[tuple[float, float]], *, x_larger_better: bool) -> list[int]:
    """Indices of the points no other point beats in both the metric (y, larger is better) and x."""
    sign = 1 if x_larger_better else -1
    front = []
    for i, (x, y) in enumerate(points):
        beaten = any((sign * x2 >= sign * x and y2 >= y) and (sign * x2 > sign * x or y2 > y)
                     for j, (x2, y2) in enumerate(points) if j != i)
        if not beaten:
            front.append(i)
    return front


def bench_plot(rows: Sequence[Mapping], path: str | Path) -> None:
    """Metric against inferences/s and against LUT4s, one point per experiment (a colour per model,
    a marker per device), the Pareto fronts drawn and their points labelled. Rows of other metrics
    than the most common one are left out (accuracy and agreement are not one axis)."""
    ok = [r for r in rows if r.get("status") == "ok" and str(r.get("value", "")) != ""]
    if not ok:
        raise InvalidOptionError("no finished experiments to plot")
    metrics = [r["metric"] for r in ok]
    metric = max(dict.fromkeys(metrics), key=metrics.count)   # one metric per plot: the most common
    ok = [r for r in ok if r["metric"] == metric]
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    models = sorted({Path(str(r["model"])).stem for r in ok})
    devices = sorted({str(r.get("device", "")) for r in ok})
    colours = plt.get_cmap("tab10")
    markers = "osD^v<>ph*"
    for ax, column, label, larger in ((axes[0], "inferences_per_s", "FPGA inferences/s", True),
                                      (axes[1], "logic", "LUT4s", False)):
        pts = [(float(r[column]), float(r["value"]), r) for r in ok if str(r.get(column, "")) != ""]
        if not pts:
            ax.set_visible(False)
            continue
        front = pareto_front([(x, y) for x, y, _ in pts], x_larger_better=larger)
        line = sorted((pts[i][0], pts[i][1]) for i in front)
        ax.plot([p[0] for p in line], [p[1] for p in line], color="#888888", lw=1, ls="--", zorder=1,
                label="Pareto front")
        for x, y, r in pts:
            model = Path(str(r["model"])).stem
            ax.scatter(x, y, s=40, color=colours(models.index(model) % 10), zorder=3,
                       marker=markers[devices.index(str(r.get("device", ""))) % len(markers)])
        for i in front:
            x, y, r = pts[i]
            ax.annotate(_point_label(r), (x, y), fontsize=7, xytext=(4, -10), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel(label + (" (more is better)" if larger else " (fewer is better)"))
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], ls="", marker="o", color=colours(i % 10), label=m) for i, m in enumerate(models)]
    handles += [plt.Line2D([], [], ls="", marker=markers[i % len(markers)], color="#444444", label=d)
                for i, d in enumerate(devices) if d]
    handles.append(plt.Line2D([], [], color="#888888", ls="--", label="Pareto front"))
    fig.legend(handles=handles, loc="lower center", ncol=min(4, len(handles)), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.1 + 0.04 * (len(handles) // 4), 1, 1))
    _save(fig, Path(path))
    plt.close(fig)


def _point_label(row: Mapping) -> str:
    """What tells the front's points apart: the device and multiplier budget."""
    short = {"multipliers=": "m=", "multiplier_bits=": "M bits=", "device=": ""}
    parts = [short[key] + p[len(key):] for p in str(row.get("options", "")).split()
             for key in short if p.startswith(key)]
    return " ".join(parts)
