"""The frictions of the model-development loop: a fit checked before synthesis, `run OUT` reusing
a compile output, printed outputs."""

from __future__ import annotations

import numpy as np
import pytest

from hwgen.arrays import PRINT_MAX_VALUES, format_outputs
from tests.conftest import DIGITS, run_cli
from tests.rvv.rvv_support import needs_rvv

TINY = DIGITS / "tinycnn_fp32_qdq_s8s8_pc.onnx"
PRUNED = DIGITS / "tinycnn_pruned_qdq_s8s8_pc.onnx"


@pytest.fixture
def digits(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.load(DIGITS / "digits_test.npz")["X"][:5])
    return path


def test_a_default_compile_says_whether_it_fits_and_synth_refuses_in_seconds(tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "compile", TINY, "-o", out, "--target", "fpga")
    assert code == 0
    assert "does not fit ice40-up5k by hwgen's estimate (12 DSPs of 8" in err and "--device ice40-up5k" in err
    code, _, err = run_cli(capsys, "synth", out, "--device", "ice40-up5k")
    assert code == 2 and err.count("\n") == 1
    assert "needs 12 DSPs by hwgen's estimate, 4 more than the 8 it has" in err and "--device ice40-up5k" in err
    assert not (out / "synth").exists()
    code, _, err = run_cli(capsys, "compile", TINY, "-o", out, "--target", "fpga", "--device", "ice40-up5k")
    assert code == 0 and "no --device given" not in err


def test_run_on_a_compile_output(tmp_path, digits, capsys):
    out = tmp_path / "out"
    assert run_cli(capsys, "compile", PRUNED, "-o", out)[0] == 0
    code, printed, _ = run_cli(capsys, "run", out, "--input", digits, "--output", tmp_path / "a.npy")
    assert code == 0
    assert run_cli(capsys, "run", PRUNED, "--input", digits, "--output", tmp_path / "b.npy")[0] == 0
    assert np.array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))
    assert f"all values in {tmp_path / 'a.npy'}" not in printed   # 50 values: printed whole
    code, _, err = run_cli(capsys, "run", out, "--input", digits, "--multipliers", "4")
    assert code == 2 and "compile again" in err
    code, _, err = run_cli(capsys, "run", out, "--input", digits, "--arch", "sequential")
    assert code == 2 and "compile again" in err
    code, _, err = run_cli(capsys, "run", out, "--input", digits, "--check")
    assert code == 2 and "--check compares a backend" in err
    code, _, err = run_cli(capsys, "run", tmp_path, "--input", digits)
    assert code == 2 and "not a hwgen compile output" in err


@needs_rvv
def test_run_on_a_compile_output_on_rvv_checks(tmp_path, digits, capsys):
    out = tmp_path / "out"
    assert run_cli(capsys, "compile", PRUNED, "-o", out, "--target", "rvv", "--rvv-no-count")[0] == 0
    code, _, err = run_cli(capsys, "run", out, "--input", digits, "--backend", "rvv", "--vlen", "256", "--check")
    assert code == 0 and "5 sample(s) on rvv equal to the golden model, bit for bit" in err


def test_outputs_are_printed_whole_or_summarized():
    small = {"y": np.arange(-300, 300, dtype=np.int16).reshape(2, 300)}
    text = format_outputs(small)
    assert "..." not in text and "-300" in text and "299" in text
    big = {"map": np.zeros((1, PRINT_MAX_VALUES + 1), np.int8)}
    assert format_outputs(big) == f"map: int8[1, {PRINT_MAX_VALUES + 1}], {PRINT_MAX_VALUES + 1:,} values in [0, 0] " \
                                  "(give --output Y.npz for all values)"
    assert "all values in y.npz" in format_outputs(big, "y.npz")


def test_a_silent_build_step_is_said_to_be_still_running(monkeypatch, tmp_path):
    """The Verilator C++ build's longest file prints nothing for minutes: every HEARTBEAT_SECONDS
    of silence says it is still running; a tool that keeps printing gets no such line."""
    from hwgen.sim import verilator

    monkeypatch.setattr(verilator, "HEARTBEAT_SECONDS", 0.2)
    silent, loud = [], []
    verilator._run_tool("sh", ["sh", "-c", "echo start; sleep 0.9; echo end"], tmp_path, still=silent.append)
    verilator._run_tool("sh", ["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do echo $i; sleep 0.05; done"], tmp_path,
                        still=loud.append)
    assert 2 <= len(silent) <= 5 and all(s >= 0.2 for s in silent)
    assert loud == []
