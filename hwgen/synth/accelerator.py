"""The accelerator a synthesis run takes, found in a compile output (or given as a Verilog file), and
the synthesis reports kept there.

    find_accelerator(OUT)   -> the Verilog, its top module and stream ports, from OUT/fpga/manifest.json
    describe(OUT)           -> the reports under OUT/synth/, as text for `hwgen report OUT`
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidOptionError
from ..outdir import read_json
from .harness import StreamPorts, stream_ports
from .report import SynthReport

__all__ = ["Accelerator", "find_accelerator", "verilog_accelerator", "describe"]


@dataclass(frozen=True)
class Accelerator:
    """The Verilog to synthesize, its top module, its stream ports, and (when the FPGA backend
    recorded it) the sha256 of the Verilog that passed co-simulation."""

    verilog: Path
    top: str
    ports: StreamPorts
    verified_sha256: str | None = None
    flash: dict | None = None      # a sequential engine's flash: manifest.json's "flash" section


def find_accelerator(out: Path) -> Accelerator:
    """The accelerator in a compile output ``OUT``, from ``OUT/fpga/manifest.json``: its ``top``,
    ``verilog`` file name and payload widths (the FPGA backend's ``ports.i.signals.i__payload``,
    or plain ``in_width`` / ``out_width``), and ``verilog_sha256`` if recorded. Without a
    manifest, the single ``OUT/fpga/*.v``, its top module named as the file."""
    fpga = out / "fpga"
    if not fpga.is_dir():
        raise InvalidOptionError(f"{out}: no fpga/ directory; run `hwgen compile MODEL -o {out} --target fpga` "
                                 "first, or pass a Verilog file with --top")
    manifest = fpga / "manifest.json"
    if manifest.is_file():
        data = read_json(manifest)
        try:
            top = data["top"]
            if "ports" in data:
                widths = (data["ports"]["i"]["signals"]["i__payload"], data["ports"]["o"]["signals"]["o__payload"])
            else:
                widths = (data["in_width"], data["out_width"])
        except KeyError as exc:
            raise InvalidOptionError(f"{manifest}: no {exc.args[0]!r}") from None
        if "flash" in data and not {"lines", "address", "image", "signals"} <= set(data["flash"]):
            raise InvalidOptionError(f"{manifest}: its flash section was written by an earlier hwgen; compile again")
        flash = data.get("flash", {}).get("signals", {})   # a sequential engine's flash pins
        ports = StreamPorts(int(widths[0]), int(widths[1]),
                            extra_inputs=tuple((n, w) for n, w in flash.items() if n == "flash__dq"),
                            extra_outputs=tuple((n, w) for n, w in flash.items() if n != "flash__dq"))
        return Accelerator(fpga / data.get("verilog", f"{top}.v"), top, ports, data.get("verilog_sha256"),
                           data.get("flash"))
    files = sorted(fpga.glob("*.v"))
    if len(files) != 1:
        raise InvalidOptionError(f"{fpga}: expected manifest.json or exactly one .v file, found "
                                 f"{[f.name for f in files]}")
    return verilog_accelerator(files[0], files[0].stem)


def verilog_accelerator(path: Path, top: str) -> Accelerator:
    try:
        return Accelerator(path, top, stream_ports(path.read_text(), top))
    except ValueError as exc:
        raise InvalidOptionError(f"{path}: {exc}") from None


def describe(out: Path) -> str | None:
    """The synthesis reports under ``OUT/synth/``, as text for ``hwgen report OUT`` (None if none)."""
    reports = sorted((out / "synth").glob("*/report.json"))
    return "\n".join(SynthReport.read(path).to_text() for path in reports) or None
