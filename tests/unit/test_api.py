"""The Python API: hwgen.compile and hwgen.run do what the command does, with typed options and
one-line errors."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import hwgen
from hwgen.cli import main

from ..conftest import DIGITS
from .qmodels import GraphBuilder, Q

TINY = DIGITS / "tinycnn_pruned_qdq_s8s8_pc.onnx"


def _tree(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != ".hwgen-output.json"}


def test_compile_write_equals_the_command(tmp_path, capsys):
    compiled = hwgen.compile(TINY, targets=("fpga", "rvv"), multipliers=16, count=False)
    compiled.write(tmp_path / "api")
    assert main(["compile", str(TINY), "-o", str(tmp_path / "cli"), "--target", "fpga,rvv", "--multipliers", "16",
                 "--rvv-no-count"]) == 0
    assert _tree(tmp_path / "api") == _tree(tmp_path / "cli")
    assert set(compiled.artifacts) == {"fpga", "rvv"} and "model.c" in compiled.artifacts["rvv"]
    assert compiled.ir is compiled.graph and compiled.report.totals["macs"] == 80896


def test_compile_takes_a_model_in_memory_and_whole_option_objects():
    a = hwgen.compile(onnx.load(TINY), targets=("fpga",), fpga=hwgen.FpgaOptions(multipliers=4))
    b = hwgen.compile(TINY, targets=("fpga",), multipliers=4)
    name = next(n for n in a.artifacts["fpga"] if n.endswith(".v"))
    assert a.artifacts["fpga"][name] == b.artifacts["fpga"][name]


def test_run_gives_the_models_outputs(tmp_path, capsys):
    x = np.load(DIGITS / "digits_test.npz")["X"][:6]
    y = hwgen.run(TINY, x)
    np.save(tmp_path / "x.npy", x)
    assert main(["run", str(TINY), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy")]) == 0
    assert np.array_equal(y, np.load(tmp_path / "y.npy"))
    assert np.array_equal(hwgen.run(hwgen.compile(TINY), {"input": x}), y)
    rnu = hwgen.run(TINY, x, rounding="rnu")
    assert rnu.shape == y.shape


def test_run_returns_a_dict_for_several_outputs():
    b = GraphBuilder()
    s = b.qdq("x", Q(0.05, 0))
    y1 = b.qdq(b.node("Add", [s, s]), Q(0.1, 0))
    y2 = b.qdq(b.node("Relu", [s]), Q(0.05, -128))
    model = b.model([("x", [1, 2, 3, 3])], y1)
    model.graph.output.append(onnx.helper.make_tensor_value_info(y2, onnx.TensorProto.FLOAT, None))
    x = np.random.default_rng(0).uniform(-2, 2, size=(2, 2, 3, 3)).astype(np.float32)
    outputs = hwgen.run(model, x)
    assert set(outputs) == {y1, y2}
    assert np.abs(outputs[y1] - 2 * x).max() <= 0.1 and outputs[y2].min() >= 0


@pytest.mark.parametrize("call, message", [
    (lambda: hwgen.compile(TINY, targets=("gpu",)), r"unknown target 'gpu'"),
    (lambda: hwgen.compile(TINY, frobnicate=1), r"unknown option\(s\) 'frobnicate'"),
    (lambda: hwgen.compile(TINY, rounding="up"), r"rounding must be one of rne, rnu"),
    (lambda: hwgen.compile(TINY, multiplier_bits=40), r"2\.\.32, not 40"),
    (lambda: hwgen.compile(TINY, targets=("fpga",), multipliers=0), r"--multipliers must be >= 1"),
    (lambda: hwgen.compile(TINY, device="xc7"), r"unknown device 'xc7'"),
    (lambda: hwgen.compile(TINY, vlen=64), r"--vlen must be one of"),
    (lambda: hwgen.run(TINY, np.zeros((1, 1, 8, 8), np.int8)), r"must be float"),
    (lambda: hwgen.run(TINY, np.zeros((1, 1, 8, 8), np.float32), backend="gpu"), r"unknown backend 'gpu'"),
    (lambda: hwgen.run(TINY, {"nope": np.zeros((1, 1, 8, 8), np.float32)}), r"no array for input\(s\) 'input'"),
])
def test_bad_options_raise_one_line_errors(call, message):
    with pytest.raises(hwgen.HwgenError, match=message) as info:
        call()
    assert "\n" not in str(info.value)
