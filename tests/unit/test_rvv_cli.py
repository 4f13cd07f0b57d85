"""`hwgen compile --target rvv` and `hwgen run --backend rvv` without the RISC-V toolchain:
the generated files, determinism, the report, and the errors."""

from __future__ import annotations

import json

import onnx
import pytest

from hwgen.backends import rvv as backend
from hwgen.cli import main

from ..conftest import DIGITS, NODE_TESTS, load_pb, run_cli
from .test_models import _bind_all_but_first

TINY = DIGITS / "tinycnn_fp32_qdq_u8s8_pt.onnx"
FILES = ["Makefile", "kernels.h", "main.c", "model.c", "model.h", "report.json", "tail.c", "tail.h",
         "test_expected.bin", "test_input.bin"]


@pytest.fixture
def no_toolchain(monkeypatch):
    monkeypatch.setattr("hwgen.sim.qemu.missing_rvv_tools", lambda: ["qemu-user"])


def test_compile_writes_the_library(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "compile", TINY, "-o", tmp_path / "out", "--target", "rvv", "--rvv-no-count")
    assert code == 0 and "rvv/" in out
    rvv = tmp_path / "out" / "rvv"
    assert sorted(p.name for p in rvv.iterdir()) == FILES
    header = (rvv / "model.h").read_text()
    # parameters named after the ONNX input and output
    assert ("int hwgen_tinycnn_fp32_qdq_u8s8_pt_run(const uint8_t *in_input, uint8_t *out_logits, void *scratch);"
            in header)
    # activations 1024 + 2048 bytes, and conv2's line buffer: 3 padded rows of 10 pixels x 16 channels
    assert "#define HWGEN_TINYCNN_FP32_QDQ_U8S8_PT_SCRATCH_BYTES 3552" in header
    assert "#define HWGEN_TINYCNN_FP32_QDQ_U8S8_PT_OUTPUT0_ZERO_POINT 163" in header
    assert (rvv / "test_input.bin").stat().st_size == backend.TEST_SAMPLES * 64
    assert (rvv / "test_expected.bin").stat().st_size == backend.TEST_SAMPLES * 10
    report = json.loads((rvv / "report.json").read_text())
    assert report["not_counted"] == "skipped (--rvv-no-count)"
    assert report["scratch_bytes"] == report["scratch_live_peak_bytes"] == 3552
    assert [layer["kernel"] for layer in report["layers"]] == [
        "hwgen_conv_u8_u8_w8p_m4_t4_rne", "hwgen_conv_u8_u8_w8p_m8_t3_rne", "hwgen_maxpool_u8_m2",
        "hwgen_conv_u8_u8_w8_m4_rne"]


def test_compile_is_deterministic(tmp_path, capsys):
    for name in ("a", "b"):
        run_cli(capsys, "compile", TINY, "-o", tmp_path / name, "--target", "rvv", "--rvv-no-count",
                "--rounding", "rnu")
    for f in (tmp_path / "a" / "rvv").iterdir():
        assert f.read_bytes() == (tmp_path / "b" / "rvv" / f.name).read_bytes(), f.name
    assert "hwgen_store_u8_m4_rnu" in (tmp_path / "a" / "rvv" / "kernels.h").read_text()


def test_without_the_toolchain_compile_says_why_there_are_no_counts(tmp_path, capsys, no_toolchain):
    code, _, _ = run_cli(capsys, "compile", TINY, "-o", tmp_path / "out", "--target", "rvv")
    assert code == 0
    report = json.loads((tmp_path / "out" / "rvv" / "report.json").read_text())
    assert report["not_counted"] == "RVV toolchain incomplete, missing: qemu-user"
    assert "per_inference" not in report


def test_without_the_toolchain_run_fails_with_exit_code_1(tmp_path, capsys, no_toolchain):
    x = tmp_path / "x.npy"
    import numpy as np

    np.save(x, np.load(DIGITS / "digits_test.npz")["X"][:2])
    code, _, err = run_cli(capsys, "run", TINY, "--input", x, "--backend", "rvv")
    assert code == 1
    assert err == ("hwgen: error: hwgen run --backend rvv needs clang-19 and qemu-riscv64: RVV toolchain "
                   "incomplete, missing: qemu-user\n")


def test_a_model_the_backend_cannot_compile_gets_one_line_and_no_output(tmp_path, capsys):
    folder = NODE_TESTS / "test_qlinearmatmul_3D_int8_float32"
    inputs = [load_pb(p) for p in sorted((folder / "test_data_set_0").glob("input_*.pb"))]
    path = tmp_path / "matmul3d.onnx"
    onnx.save(_bind_all_but_first(onnx.load(folder / "model.onnx"), inputs), path)
    code, _, err = run_cli(capsys, "compile", path, "-o", tmp_path / "out", "--target", "rvv")
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith("hwgen: error: node ") and "(Dense): batched MatMul (weights (2, 3, 4)) is not supported " \
                                                         "by the RVV backend" in err
    assert not (tmp_path / "out").exists()


def test_report_of_a_compile_output_shows_the_rvv_report(tmp_path, capsys):
    run_cli(capsys, "compile", TINY, "-o", tmp_path / "out", "--target", "rvv", "--rvv-no-count")
    code, out, _ = run_cli(capsys, "report", tmp_path / "out")
    assert code == 0
    assert "== rvv" in out and "hwgen_tinycnn_fp32_qdq_u8s8_pt_run(): scratch" in out
    assert "/conv1/Conv" in out and "not counted: " in out
    assert backend.describe(tmp_path) is None


def test_vlen_must_be_one_qemu_supports(tmp_path, capsys):
    assert main(["run", str(TINY), "--input", "x.npy", "--backend", "rvv", "--vlen", "64"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 64" in err and err.count("\n") == 1
