"""`hwgen compile --target fpga`: its files, determinism, option errors, and `hwgen report` text."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from hwgen.backends import fpga
from hwgen.cli import main

TINY = "examples/models/digits/tinycnn_fp32_qdq_s8s8_pc.onnx"
FILES = {"accelerator.py", "manifest.json", "report.json", "report.txt", "test_accelerator.py",
         "hwgen_main_graph.v"}


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "out"
    assert main(["compile", TINY, "-o", str(out), "--target", "fpga", "--multipliers", "16"]) == 0
    return out


def test_writes_the_fpga_files(out):
    assert {p.name for p in (out / "fpga").iterdir()} == FILES


def test_same_model_and_options_give_identical_files(out, tmp_path):
    again = tmp_path / "again"
    assert main(["compile", TINY, "-o", str(again), "--target", "fpga", "--multipliers", "16"]) == 0
    for name in FILES:
        assert (out / "fpga" / name).read_bytes() == (again / "fpga" / name).read_bytes(), name


def test_no_absolute_paths_in_the_output(out):
    for path in (out / "fpga").iterdir():
        text = path.read_text()
        assert str(out) not in text and str(Path.cwd()) not in text and "/home/" not in text, path.name


def test_manifest_describes_the_ports(out):
    m = json.loads((out / "fpga" / "manifest.json").read_text())
    assert m["top"] == "hwgen_main_graph"
    i, o = m["ports"]["i"], m["ports"]["o"]
    assert i["shape"] == [8, 8, 1] and i["dtype"] == "i8" and i["signals"]["i__payload"] == 8 * i["lanes"]
    assert o["shape"] == [10] and o["words_per_sample"] * o["lanes"] == 10
    assert len(m["ports"]["perf"]["counters"]) * 32 == m["ports"]["perf"]["bits"]
    assert m["plan"]["budget"] == 16
    assert "input_QuantizeLinear_Output" in (out / "ir.json").read_text()


def test_verilog_names_come_from_identifiers(out):
    verilog = (out / "fpga" / "hwgen_main_graph.v").read_text()
    assert "conv2_conv" in verilog and "/conv2/Conv" not in verilog


def test_importable_amaranth_top_makes_the_same_verilog(out):
    spec = importlib.util.spec_from_file_location("generated_accelerator", out / "fpga" / "accelerator.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    top = module.HwgenMainGraph()
    top._MustUse__silence = True  # only its ports matter here; the subprocess below elaborates it
    assert set(top.signature.members) == {"i", "o", "perf"}
    text = subprocess.run([sys.executable, str(out / "fpga" / "accelerator.py")], capture_output=True, text=True,
                          check=True).stdout
    assert text == (out / "fpga" / "hwgen_main_graph.v").read_text()


def test_describe_renders_the_cycle_report(out, tmp_path):
    text = fpga.describe(out)
    assert "engine0" in text and "utilization" in text and "/conv2/Conv" in text
    assert fpga.describe(tmp_path) is None


@pytest.mark.parametrize("options, message", [
    (["--multipliers", "0"], "hwgen: error: --multipliers must be >= 1, not 0"),
    (["--fold", "nope=1,1"], "hwgen: error: --fold nope=...: no multiply-accumulate layer named 'nope'"),
    (["--fold", "conv1_conv=3,1"], "hwgen: error: --fold conv1_conv=3,1: PE=3 does not divide the 16 output "
                                   "channels of '/conv1/Conv'"),
    (["--fold", "conv1_conv=4"], "hwgen: error: --fold expects LAYER=PE,SIMD"),
])
def test_bad_options_fail_with_one_line(tmp_path, capsys, options, message):
    assert main(["compile", TINY, "-o", str(tmp_path / "o"), "--target", "fpga", *options]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_sim_needs_a_compiled_fpga_output(tmp_path, capsys):
    (tmp_path / "x.npy").write_bytes(b"")
    assert main(["sim", str(tmp_path), "--input", str(tmp_path / "x.npy")]) != 0
