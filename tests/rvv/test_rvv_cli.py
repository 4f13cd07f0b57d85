"""`hwgen compile --target rvv` with instruction counts, the generated Makefile, and `hwgen run --backend rvv`."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

from hwgen.cli import main

from ..conftest import DIGITS, run_cli
from .rvv_support import needs_rvv

pytestmark = [pytest.mark.rvv, needs_rvv]

TINY = DIGITS / "tinycnn_fp32_qdq_s8s8_pc.onnx"
MOBILENET_U8 = DIGITS / "mobilenet" / "mobilenet_fp32_qdq_u8s8_pt_intio.onnx"


@pytest.fixture(scope="module")
def compiled_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "out"
    assert main(["compile", str(TINY), "-o", str(out), "--target", "rvv"]) == 0
    return out


def test_report_counts_instructions_per_layer_and_inference(compiled_out):
    report = json.loads((compiled_out / "rvv" / "report.json").read_text())
    assert report["macs"] == 309248
    per_inference = report["per_inference"]
    assert list(per_inference) == ["128", "256", "512"]
    for vlen, total in per_inference.items():
        layers = sum(layer["instructions"][vlen] for layer in report["layers"])
        assert layers < total["instructions"] < layers + 50  # plus the run function's calls
        assert total["per_mac"] == round(total["instructions"] / report["macs"], 4)
    assert per_inference["512"]["instructions"] < per_inference["128"]["instructions"]


def test_compile_with_counts_is_deterministic(compiled_out, tmp_path, capsys):
    run_cli(capsys, "compile", TINY, "-o", tmp_path / "again", "--target", "rvv")
    for f in (compiled_out / "rvv").iterdir():
        assert f.read_bytes() == (tmp_path / "again" / "rvv" / f.name).read_bytes(), f.name


@pytest.mark.skipif(shutil.which("make") is None, reason="no make on PATH")
@pytest.mark.parametrize("target, args", [("check", ["VLEN=128"]), ("check", ["VLEN=512"]), ("sanitize", [])])
def test_the_generated_makefile_checks_against_the_golden_model(compiled_out, tmp_path, target, args):
    work = tmp_path / "rvv"
    shutil.copytree(compiled_out / "rvv", work)
    proc = subprocess.run(["make", "-s", target, *args], cwd=work, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "samples equal the golden model" in proc.stdout


@pytest.mark.parametrize("vlen", ["128", "512"])
def test_run_backend_rvv_equals_the_golden_model(tmp_path, capsys, vlen):
    x = tmp_path / "x.npy"
    np.save(x, np.load(str(MOBILENET_U8).replace(".onnx", "_golden.npz"))["x_q"][:100])
    assert run_cli(capsys, "run", MOBILENET_U8, "--input", x, "--output", tmp_path / "golden.npy")[0] == 0
    assert run_cli(capsys, "run", MOBILENET_U8, "--input", x, "--output", tmp_path / "rvv.npy",
                   "--backend", "rvv", "--vlen", vlen)[0] == 0
    golden, rvv = np.load(tmp_path / "golden.npy"), np.load(tmp_path / "rvv.npy")
    assert rvv.shape == (100, 10) and rvv.dtype == np.uint8
    assert np.array_equal(rvv, golden)
