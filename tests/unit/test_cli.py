"""The hwgen command: its outputs, and one clear line with exit code 2 for every kind of bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from ..conftest import DIGITS, PERSON, ROOT, run_cli
from .qmodels import GraphBuilder, Q, random_weights

TINY = DIGITS / "tinycnn_fp32_qdq_s8s8_pc.onnx"


def test_compile_writes_ir_and_report(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "compile", TINY, "-o", tmp_path / "out")
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".hwgen-output.json", "ir.json", "ir.txt",
                                                                    "report.json", "report.txt"]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["totals"]["macs"] == 309248 and report["totals"]["params"] == 9930
    assert "total" in out and "/conv1/Conv" in out


def test_compile_is_deterministic(tmp_path, capsys):
    run_cli(capsys, "compile", PERSON / "person_detect_qdq.onnx", "-o", tmp_path / "a")
    run_cli(capsys, "compile", PERSON / "person_detect_qdq.onnx", "-o", tmp_path / "b")
    for f in (tmp_path / "a").iterdir():
        assert f.read_bytes() == (tmp_path / "b" / f.name).read_bytes(), f.name


def test_compile_replaces_an_earlier_output(tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli(capsys, "compile", TINY, "-o", out)[0] == 0
    (out / "ir.txt").unlink()
    assert run_cli(capsys, "compile", TINY, "-o", out)[0] == 0
    assert (out / "ir.txt").exists() and (out / "ir.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary directories left behind


def test_run_golden_float_model(tmp_path, capsys, digits_images):
    np.save(tmp_path / "x.npy", digits_images[:20])
    code, _, err = run_cli(capsys, "run", TINY, "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy")
    assert code == 0, err
    y = np.load(tmp_path / "y.npy")
    labels = np.load(DIGITS / "digits_test.npz")["y"][:20]
    assert y.shape == (20, 10) and y.dtype == np.float32
    assert np.mean(y.argmax(axis=1) == labels) >= 0.9


def test_run_integer_model_prints_outputs(tmp_path, capsys):
    x = np.load(DIGITS / "tinycnn_fp32_qdq_s8s8_pc_intio_golden.npz")
    np.save(tmp_path / "x.npy", x["x_q"][:3])
    code, out, _ = run_cli(capsys, "run", DIGITS / "tinycnn_fp32_qdq_s8s8_pc_intio.onnx", "--input", tmp_path / "x.npy")
    assert code == 0
    assert out.startswith("logits_QuantizeLinear_Output: [[") and out.count("\n") == 3


def test_report_json(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "report", DIGITS / "tinycnn_unstruct50_qdq_s8s8_pc.onnx", "--json",
                           tmp_path / "r.json")
    assert code == 0
    totals = json.loads((tmp_path / "r.json").read_text())["totals"]
    assert totals["nonzero_macs"] < 0.6 * totals["macs"]


# -- bad input: one line, exit code 2, nothing written -------------------------------------------


def _save(model: onnx.ModelProto, path) -> str:
    onnx.save(model, path)
    return str(path)


def _unsupported_op_model(path):
    b = GraphBuilder()
    q = Q(0.02, 0)
    x = b.qdq(b.node("Hardmax", [b.qdq("x", q)]), q)
    w = random_weights(np.random.default_rng(0), (2, 1, 1, 1))
    y = b.qdq(b.node("Conv", [x, b.weights(w, np.full(2, 0.01, np.float32))]), q)
    return _save(b.model([("x", [1, 1, 4, 4])], y), path)


def _write(path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def _dynamic_model(path, dims):
    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)])
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


BAD_MODELS = {
    "missing file": (lambda p: str(p / "nope.onnx"), r"nope\.onnx: no such file"),
    "directory": (lambda p: str(p), r"not a file|not a hwgen compile output"),
    "not onnx": (lambda p: _write(p / "x.onnx", b"\x07hello, world\xff\xfe" * 50), r"not an ONNX model"),
    "empty": (lambda p: _write(p / "e.onnx", b""), r"empty file"),
    "truncated": (lambda p: _write(p / "t.onnx", TINY.read_bytes()[:7000]), r"not an ONNX model"),
    "float model": (lambda p: str(DIGITS / "tinycnn_fp32_fp32.onnx"),
                    r"node '/conv1/Conv' \(Conv\): the model is not quantized|used in float.*not quantized"),
    "dynamic quantization": (lambda p: str(DIGITS / "tinycnn_fp32_dyn_u8.onnx"),
                             r"node 'input_QuantizeLinear' \(DynamicQuantizeLinear\): dynamic quantization"),
    "unsupported op": (lambda p: _unsupported_op_model(p / "u.onnx"),
                       r"node 'Hardmax_\d+' \(Hardmax\): unsupported op"),
    "dynamic shape": (lambda p: _dynamic_model(p / "d.onnx", [1, 3, "height", 8]),
                      r"dynamic dimension 'height' at axis 2"),
    "absurd shape": (lambda p: _dynamic_model(p / "a.onnx", [1, 3, 100000, 100000]), r"absurd shape"),
}


@pytest.mark.parametrize("case", sorted(BAD_MODELS))
@pytest.mark.parametrize("command", ["compile", "report"])
def test_bad_models_get_one_line_and_exit_code_2(case, command, tmp_path, capsys):
    make, message = BAD_MODELS[case]
    model = make(tmp_path)
    out = tmp_path / "out"
    argv = [command, model] + (["-o", out] if command == "compile" else [])
    code, stdout, stderr = run_cli(capsys, *argv)
    assert code == 2
    assert stderr.count("\n") == 1 and stderr.startswith("hwgen: error: ")
    import re
    assert re.search(message, stderr), stderr
    assert "Traceback" not in stderr + stdout
    assert not out.exists()


def test_bad_run_inputs(tmp_path, capsys):
    np.save(tmp_path / "int.npy", np.zeros((1, 1, 8, 8), np.int8))
    np.save(tmp_path / "shape.npy", np.zeros((1, 1, 9, 8), np.float32))
    (tmp_path / "junk.npy").write_text("junk")
    cases = {"int.npy": r"input 'input' must be float \(float32\), got int8",
             "shape.npy": r"expected shape \[1, 1, 8, 8\] or \[B, 1, 8, 8\], got \[1, 1, 9, 8\]",
             "junk.npy": r"not a \.npy or \.npz file", "none.npy": r"no such file"}
    for name, message in cases.items():
        code, _, err = run_cli(capsys, "run", TINY, "--input", tmp_path / name)
        assert code == 2 and err.count("\n") == 1
        import re
        assert re.search(message, err), err


def test_bad_options(tmp_path, capsys):
    code, _, err = run_cli(capsys, "compile", TINY, "-o", tmp_path / "o", "--multiplier-bits", "40")
    assert code == 2 and "--multiplier-bits must be 2..32, not 40" in err
    code, _, err = run_cli(capsys, "compile", TINY, "-o", tmp_path / "o", "--target", "gpu")
    assert code == 2 and "unknown target 'gpu'" in err
    assert not (tmp_path / "o").exists()


def test_console_script_error_has_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "hwgen.cli", "report", str(tmp_path / "missing.onnx")],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"hwgen: error: {tmp_path / 'missing.onnx'}: no such file"]


def test_report_of_a_compile_output(tmp_path, capsys):
    run_cli(capsys, "compile", TINY, "-o", tmp_path / "out")
    code, out, _ = run_cli(capsys, "report", tmp_path / "out")
    assert code == 0 and out == (tmp_path / "out" / "report.txt").read_text()


def test_run_a_two_input_model_from_npz(tmp_path, capsys):
    b = GraphBuilder()
    y = b.qdq(b.node("Add", [b.qdq("a", Q(0.02, 3)), b.qdq("b", Q(0.05, -4))]), Q(0.06, 1))
    model = _save(b.model([("a", [1, 2, 3, 3]), ("b", [1, 2, 3, 3])], y), tmp_path / "add.onnx")
    rng = np.random.default_rng(0)
    a, c = (rng.uniform(-1, 1, size=(4, 2, 3, 3)).astype(np.float32) for _ in range(2))
    np.savez(tmp_path / "x.npz", a=a, b=c)
    code, _, err = run_cli(capsys, "run", model, "--input", tmp_path / "x.npz", "--output", tmp_path / "y.npy")
    assert code == 0, err
    assert np.abs(np.load(tmp_path / "y.npy") - (a + c)).max() <= 0.06 / 2 + 0.05 / 2 + 0.02 / 2 + 1e-6
    np.save(tmp_path / "a.npy", a)
    code, _, err = run_cli(capsys, "run", model, "--input", tmp_path / "a.npy")
    assert code == 2 and "the model has 2 inputs; pass an .npz with arrays named 'a', 'b'" in err


def test_report_lists_every_unsupported_node_after_the_supported_part(tmp_path, capsys):
    """Two unsupported ops on two branches: the table of what imports, then both, exit code 2;
    nodes that only depend on them are left out; compile still stops at the first."""
    b = GraphBuilder()
    q = Q(0.02, 0)
    x = b.qdq("x", q)
    w = b.weights(random_weights(np.random.default_rng(0), (4, 1, 3, 3)), np.full(4, 0.01, np.float32))
    y = b.qdq(b.node("Conv", [x, w], pads=[1, 1, 1, 1]), q)
    h = b.qdq(b.node("Hardmax", [y]), q)
    after = b.weights(random_weights(np.random.default_rng(1), (4, 4, 1, 1)), np.full(4, 0.01, np.float32))
    h = b.qdq(b.node("Conv", [h, after]), q)
    s = b.qdq(b.node("LpNormalization", [y]), q)
    out = b.qdq(b.node("Add", [h, s]), q)
    path = tmp_path / "two.onnx"
    onnx.save(b.model([("x", [1, 1, 6, 6])], out), path)
    code, text, err = run_cli(capsys, "report", path, "--json", tmp_path / "r.json")
    assert code == 2
    assert "Conv2d" in text.split("node(s) hwgen does not support")[0]
    unsupported = [line.strip() for line in text.splitlines() if line.startswith("  node ")]
    assert [u.split(" (")[1].split(")")[0] for u in unsupported] == ["Hardmax", "LpNormalization"]
    assert err.count("\n") == 1 and "2 unsupported node(s), the first: node 'Hardmax_" in err
    data = json.loads((tmp_path / "r.json").read_text())
    assert [u["op"] for u in data["unsupported"]] == ["Hardmax", "LpNormalization"]
    assert [r["op"] for r in data["report"]["layers"]] == ["Conv2d"]
    code, _, err = run_cli(capsys, "compile", path, "-o", tmp_path / "out")
    assert code == 2 and "Hardmax" in err and not (tmp_path / "out").exists()
