"""Properties of the generated C: deterministic, clean under -Wall -Wextra, no raw ONNX names in code."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings

from hwgen.compiler import compile_model
from hwgen.rvv.codegen import generate

from ..conftest import DIGITS, PERSON
from ..rvv.ir_graphs import LAYERS, layers_graph

MODELS = [PERSON / "person_detect_qdq.onnx", DIGITS / "mobilenet" / "mobilenet_fp32_qop_u8s8_pc.onnx",
          DIGITS / "tinycnn_fp32_qdq_u8s8_pt.onnx"]
HOST_CC = shutil.which("cc")
needs_cc = pytest.mark.skipif(HOST_CC is None, reason="no host C compiler 'cc' on PATH")


def code_only(text: str) -> str:
    """C text without comments."""
    return re.sub(r"//[^\n]*", "", re.sub(r"/\*.*?\*/", "", text, flags=re.S))


def raw_names(graph) -> set[str]:
    """The ONNX-derived names of a graph that are not already lowercase C identifiers."""
    names = {n.name for n in graph.nodes} | set(graph.tensors)
    return {n for n in names if not re.fullmatch(r"[a-z_][a-z0-9_]*", n)}


def check_sources(files: dict[str, str], graph) -> None:
    for name, text in files.items():
        if name == "Makefile":
            continue
        code = code_only(text)
        assert "*/" not in code, f"{name}: a comment was closed early"
        for raw in raw_names(graph):
            assert raw not in code, f"{name} uses the raw name {raw!r}"
        assert text.isascii()


def compile_scalar(files: dict[str, str], tmp_path) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    proc = subprocess.run([HOST_CC, "-O1", "-Wall", "-Wextra", "-Werror", "-c", "model.c", "main.c"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_generation_is_deterministic_and_names_are_sanitized(path):
    graph = compile_model(path).graph
    first = generate(graph, path.stem, path.name).files
    assert generate(graph, path.stem, path.name).files == first
    check_sources(first, graph)
    run = f"hwgen_{path.stem.lower()}_run("
    assert run in first["model.h"] and run in first["model.c"]


def test_model_names_become_identifiers():
    graph = compile_model(DIGITS / "tinycnn_fp32_qdq_s8s8_pc.onnx").graph
    generated = generate(graph, "3rd model (v2).final", "x.onnx")
    assert generated.run == "hwgen_model_3rd_model_v2_final_run"
    assert "HWGEN_MODEL_3RD_MODEL_V2_FINAL_SCRATCH_BYTES" in generated.files["model.h"]


@needs_cc
@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_scalar_build_is_warning_free(path, tmp_path):
    graph = compile_model(path).graph
    compile_scalar(generate(graph, path.stem, path.name).files, tmp_path)


@needs_cc
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                HealthCheck.too_slow, HealthCheck.data_too_large])
@given(graph=layers_graph(tuple(LAYERS), every_kind=True))
def test_every_kernel_kind_with_hostile_names_is_clean(graph, tmp_path_factory):
    files = generate(graph, "random */ layers", "random.onnx").files
    check_sources(files, graph)
    compile_scalar(files, tmp_path_factory.mktemp("c"))
