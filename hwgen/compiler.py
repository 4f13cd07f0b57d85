"""The whole compile: ONNX model -> imported IR -> passes -> final IR and report, and the files a
compile output holds."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import onnx

from . import irjson
from .errors import InvalidOptionError, UnsupportedModelError
from .fixed import MULTIPLIER_BITS, Rounding
from .frontend import LoweringConfig, import_model, import_onnx, survey_model
from .ir import Graph
from .outdir import OutputDir
from .passes import run_passes
from .report import Report, build_report

__all__ = ["CompileOptions", "Compiled", "compile_model", "Survey", "survey"]


@dataclass(frozen=True)
class CompileOptions:
    """How real scales become integers: the rounding of every requantization (RNE as ONNX
    specifies, or RNU, cheaper in hardware) and the bits of its multipliers."""

    rounding: Rounding = Rounding.RNE
    multiplier_bits: int = MULTIPLIER_BITS

    def __post_init__(self):
        try:
            object.__setattr__(self, "rounding", Rounding(self.rounding))
        except ValueError:
            raise InvalidOptionError(f"rounding must be one of {', '.join(r.value for r in Rounding)}, "
                                     f"not {self.rounding!r}") from None
        if not isinstance(self.multiplier_bits, int) or not 2 <= self.multiplier_bits <= 32:
            raise InvalidOptionError(f"--multiplier-bits must be 2..32, not {self.multiplier_bits}")


@dataclass(frozen=True)
class Compiled:
    """A compiled model: its IR and report, and each target's generated files (in memory)."""

    source: Path
    options: CompileOptions
    imported: Graph   # straight from the front end
    graph: Graph      # after the IR passes: what every backend implements
    report: Report
    artifacts: Mapping[str, Mapping[str, bytes]] = field(default_factory=dict)  # target -> {file name: bytes}

    @property
    def ir(self) -> Graph:
        return self.graph

    def with_artifacts(self, target: str, files: Mapping[str, bytes]) -> Compiled:
        return replace(self, artifacts={**self.artifacts, target: dict(files)})

    def files(self) -> dict[str, bytes]:
        """Every file of the compile output, by its path inside OUT."""
        files = {
            "ir.json": irjson.dumps(self.graph).encode(),
            "ir.txt": (str(self.graph) + "\n").encode(),
            "report.json": (json.dumps(self.report.to_json(), indent=1) + "\n").encode(),
            "report.txt": (self.report.to_text() + "\n").encode(),
        }
        for target, target_files in self.artifacts.items():
            files.update({f"{target}/{name}": data for name, data in target_files.items()})
        return files

    def write(self, out_dir: str | Path, *, force: bool = False) -> list[str]:
        """Write the compile output to `out_dir` (see `hwgen.outdir`: nothing of yours is deleted or
        overwritten unless `force`); returns the files of an earlier output there that this one
        does not have (removed)."""
        return OutputDir.prepare(out_dir, force=force).write(self.write_into)

    def write_into(self, directory: Path) -> None:
        """Write every file of the compile output below `directory` (a fresh, empty one)."""
        for name, data in self.files().items():
            path = directory / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)


@dataclass(frozen=True)
class Survey:
    """What hwgen makes of a model it cannot compile whole: the report of its supported part and
    every node it cannot import."""

    report: Report | None                         # None: nothing of the model is supported
    unsupported: tuple[UnsupportedModelError, ...]


def survey(model: str | Path | onnx.ModelProto, options: CompileOptions = CompileOptions()) -> Survey:
    """The supported part's report and the unsupported nodes (none: the model compiles)."""
    graph, unsupported = survey_model(model, LoweringConfig(options.rounding, options.multiplier_bits))
    report = None
    if graph.nodes and graph.outputs:
        imported = graph
        graph = run_passes(imported)
        report = build_report(graph, imported) if graph.nodes else None
    return Survey(report, tuple(unsupported))


def compile_model(model: str | Path | onnx.ModelProto, options: CompileOptions = CompileOptions()) -> Compiled:
    """An ONNX file (or model in memory) -> its IR after the passes, and the per-layer report."""
    config = LoweringConfig(options.rounding, options.multiplier_bits)
    if isinstance(model, onnx.ModelProto):
        imported, source = import_onnx(model, config), Path(f"{model.graph.name or 'model'}.onnx")
    else:
        imported, source = import_model(model, config), Path(model)
    graph = run_passes(imported)
    if not graph.nodes:
        raise UnsupportedModelError("the model has no integer operations for hwgen to compile (its quantized core is "
                                    "empty)")
    return Compiled(source, options, imported, graph, build_report(graph, imported))
