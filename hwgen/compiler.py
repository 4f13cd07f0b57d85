"""The whole compile: ONNX file -> imported IR -> passes -> final IR and report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import UnsupportedModelError
from .fixed import MULTIPLIER_BITS, Rounding
from .frontend import LoweringConfig, import_model
from .ir import Graph
from .passes import run_passes
from .report import Report, build_report

__all__ = ["CompileOptions", "Compiled", "compile_model"]


@dataclass(frozen=True)
class CompileOptions:
    rounding: Rounding = Rounding.RNE
    multiplier_bits: int = MULTIPLIER_BITS


@dataclass(frozen=True)
class Compiled:
    source: Path
    options: CompileOptions
    imported: Graph   # straight from the front end
    graph: Graph      # after the IR passes: what every backend implements
    report: Report


def compile_model(path: str | Path, options: CompileOptions = CompileOptions()) -> Compiled:
    imported = import_model(path, LoweringConfig(options.rounding, options.multiplier_bits))
    graph = run_passes(imported)
    if not graph.nodes:
        raise UnsupportedModelError("the model has no integer operations for hwgen to compile (its quantized core is "
                                    "empty)")
    return Compiled(Path(path), options, imported, graph, build_report(graph, imported))
