"""The FPGA commands end to end: compile, the generated test bench, hwgen sim and hwgen run --backend rtl."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.cosim, pytest.mark.skipif(shutil.which("verilator") is None,
                                                    reason="verilator not found on PATH (apt-get install verilator)")]

ROOT = Path(__file__).resolve().parents[3]
MODEL = ROOT / "examples" / "models" / "digits" / "tinycnn_pruned_qdq_s8s8_pc.onnx"


def hwgen(*args, env):
    return subprocess.run([sys.executable, "-m", "hwgen.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=ROOT)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A fresh build cache, so the first build really builds."""
    return {**os.environ, "XDG_CACHE_HOME": str(tmp_path_factory.mktemp("cache"))}


@pytest.fixture(scope="module")
def out(tmp_path_factory, env):
    out = tmp_path_factory.mktemp("compiled") / "out"
    done = hwgen("compile", MODEL, "-o", out, "--target", "fpga", "--multipliers", "8", "--measure", env=env)
    assert done.returncode == 0, done.stderr
    assert "verilating" in done.stderr  # build progress is shown
    return out


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    x = np.load(ROOT / "examples" / "models" / "digits" / "digits_test.npz")["X"][:12].astype(np.float32)
    path = tmp_path_factory.mktemp("inputs") / "x.npy"
    np.save(path, x)
    return path


def test_compile_measures_cycles(out):
    report = json.loads((out / "fpga" / "report.json").read_text())
    measured = report["measured"]
    assert measured["samples"] == 4 and measured["latency"] > 0
    assert report["expected_interval"] <= measured["interval"] < 1.1 * report["expected_interval"]
    assert 0.8 < report["measured_utilization"] <= 1.0
    for layer in report["layers"]:
        if layer["engine"] is not None:
            assert layer["measured_busy"] == layer["expected_busy"], layer["node"]


def test_generated_test_bench_passes(out, env):
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(out / "fpga")],
                          capture_output=True, text=True, env=env, cwd=out)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 passed" in done.stdout


def test_run_backend_rtl_equals_golden_and_reuses_the_build(out, images, env, tmp_path):
    rtl = hwgen("run", MODEL, "--backend", "rtl", "--multipliers", "8", "--input", images, "--output",
                tmp_path / "rtl.npy", env=env)
    assert rtl.returncode == 0, rtl.stderr
    assert "cached build" in rtl.stderr and "verilating" not in rtl.stderr
    assert "12 inference(s)" in rtl.stderr
    ref = hwgen("run", MODEL, "--input", images, "--output", tmp_path / "golden.npy", env=env)
    assert ref.returncode == 0, ref.stderr
    assert np.array_equal(np.load(tmp_path / "rtl.npy"), np.load(tmp_path / "golden.npy"))


def test_sim_with_trace(out, images, env, tmp_path):
    trace = tmp_path / "wave.fst"
    done = hwgen("sim", out, "--input", images, "--trace", trace, env=env)
    assert done.returncode == 0, done.stderr
    assert "equal to the golden model, bit for bit" in done.stderr
    assert trace.stat().st_size > 1000


def test_sim_records_its_measurement(out, images, env):
    done = hwgen("sim", out, "--input", images, env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "fpga" / "report.json").read_text())
    assert report["measured"]["samples"] == 12
    assert "measured (12 inferences)" in (out / "fpga" / "report.txt").read_text()


def test_sim_with_stalls(out, images, env):
    done = hwgen("sim", out, "--input", images, "--stall", "0.4", env=env)
    assert done.returncode == 0, done.stderr


def broken_copy(out: Path, tmp_path: Path) -> Path:
    """A copy of OUT whose Verilog computes wrong outputs."""
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    verilog = broken / "fpga" / "hwgen_main_graph.v"
    text = verilog.read_text()
    # change the bias of the first output channel (bits 0.. of the fold ROM's first word) by 2**12
    line = next(l for l in text.splitlines() if "folds[0] = " in l)
    value = line.split("= ")[1].rstrip(";")
    width, digits = value.split("'h")
    flipped = f"{width}'h{int(digits, 16) ^ (1 << 12):0{len(digits)}x}"
    verilog.write_text(text.replace(line, line.replace(value, flipped)))
    return broken


def test_sim_catches_a_wrong_accelerator(out, images, env, tmp_path):
    broken = broken_copy(out, tmp_path)
    done = hwgen("sim", broken, "--input", images, env=env)
    assert done.returncode == 1
    assert "MISMATCH" in done.stderr


def test_sim_refuses_a_bad_stall(out, images, env):
    done = hwgen("sim", out, "--input", images, "--stall", "1.5", env=env)
    assert done.returncode == 2 and "--stall must be in [0, 1)" in done.stderr


def test_run_on_the_compile_output_reuses_its_verilog_and_checks(out, images, env, tmp_path):
    """`hwgen run OUT --backend rtl --check`: the Verilog compile wrote (the cached build: nothing
    generated or verilated again), and a line saying it equals the golden model."""
    done = hwgen("run", out, "--backend", "rtl", "--check", "--input", images, "--output", tmp_path / "rtl.npy",
                 env=env)
    assert done.returncode == 0, done.stderr
    assert "cached build" in done.stderr and "verilating" not in done.stderr
    assert "12 sample(s) on rtl equal to the golden model, bit for bit" in done.stderr
    assert hwgen("run", MODEL, "--input", images, "--output", tmp_path / "golden.npy", env=env).returncode == 0
    assert np.array_equal(np.load(tmp_path / "rtl.npy"), np.load(tmp_path / "golden.npy"))


def test_run_check_catches_a_wrong_accelerator(out, images, env, tmp_path):
    broken = broken_copy(out, tmp_path)
    done = hwgen("run", broken, "--backend", "rtl", "--check", "--input", images, env=env)
    assert done.returncode == 1 and "MISMATCH" in done.stderr and "differ from the golden model" in done.stderr


def test_sim_saves_outputs_and_writes_vcd(out, images, env, tmp_path):
    trace = tmp_path / "wave.vcd"
    done = hwgen("sim", out, "--input", images, "--output", tmp_path / "y.npz", "--trace", trace, env=env)
    assert done.returncode == 0, done.stderr
    head = trace.read_bytes()[:4096]
    assert b"$timescale" in head and b"$var" in head   # VCD text, not FST
    ref = hwgen("run", MODEL, "--input", images, "--output", tmp_path / "golden.npz", env=env)
    assert ref.returncode == 0
    got, want = np.load(tmp_path / "y.npz"), np.load(tmp_path / "golden.npz")
    assert sorted(got) == sorted(want) and all(np.array_equal(got[k], want[k]) for k in want)


def test_an_experiment_with_measured_cycles():
    """`hwgen bench --measure`: the interval and utilization come from Verilator, close to the model."""
    from hwgen.experiments import Experiment, run_experiment

    row = run_experiment(Experiment(MODEL, targets=("fpga",), device="ice40-up5k", measure=True))
    model = run_experiment(Experiment(MODEL, targets=("fpga",), device="ice40-up5k"))
    assert row["cycles_from"] == "verilator" and model["cycles_from"] == "model"
    assert model["interval_cycles"] <= row["interval_cycles"] < 1.1 * model["interval_cycles"]
    assert row["utilization"] <= model["utilization"]
