"""ONNX -> IR: load and check the model, run the pre-import passes, import QDQ and QOperator ops."""

from __future__ import annotations

from pathlib import Path

import onnx

from ..errors import UnsupportedModelError
from ..ir import Graph
from .graph import OnnxGraph
from .importer import import_graph, survey_graph
from .load import check_model, load_model
from .lower import LoweringConfig
from .onnx_passes import ONNX_PASSES, run_onnx_passes

__all__ = ["LoweringConfig", "import_model", "import_onnx", "load_model", "survey_model", "ONNX_PASSES"]


def import_onnx(model: onnx.ModelProto, config: LoweringConfig = LoweringConfig()) -> Graph:
    """An in-memory ONNX model -> IR graph (before the IR passes)."""
    graph = OnnxGraph.from_model(check_model(model))
    return import_graph(run_onnx_passes(graph), config)


def import_model(path: str | Path, config: LoweringConfig = LoweringConfig()) -> Graph:
    """An ONNX file -> IR graph (before the IR passes)."""
    graph = OnnxGraph.from_model(load_model(path))
    return import_graph(run_onnx_passes(graph), config)


def survey_model(model: str | Path | onnx.ModelProto,
                 config: LoweringConfig = LoweringConfig()) -> tuple[Graph, list[UnsupportedModelError]]:
    """The IR of the model's supported part, and every node hwgen cannot import, with why (the nodes
    that only depend on those are left out silently)."""
    loaded = check_model(model) if isinstance(model, onnx.ModelProto) else load_model(model)
    return survey_graph(run_onnx_passes(OnnxGraph.from_model(loaded)), config)
