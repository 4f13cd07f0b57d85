"""`hwgen compile --target fpga --arch sequential`: what it writes, and one clear line for what it refuses."""

from __future__ import annotations

import json
import re

from hwgen.fpga.sequential import FLASH_MAGIC

from ..conftest import DIGITS, PERSON, run_cli
from .test_cli import TINY


def test_sequential_compile_writes_the_engine_and_its_flash_image(tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "compile", TINY, "-o", out, "--target", "fpga", "--arch", "sequential",
                           "--weights", "qspi", "--flash-address", "0x200000", "--multipliers", "9")
    assert code == 0, err
    assert "sequential engine, a 3x3 MAC array" in err and "QSPI flash at 0x200000" in err
    manifest = json.loads((out / "fpga" / "manifest.json").read_text())
    assert manifest["arch"] == "sequential" and manifest["plan"]["lanes"] == 3
    assert manifest["flash"]["address"] == 0x200000 and manifest["flash"]["image"] == "weights.bin"
    assert set(manifest["ports"]) == {"i", "o", "perf"}
    image = (out / "fpga" / "weights.bin").read_bytes()
    assert image.startswith(FLASH_MAGIC)
    module = (out / "fpga" / manifest["verilog"]).read_text()
    assert "flash__sck" in module and "flash__dq" in module
    report = json.loads((out / "fpga" / "report.json").read_text())
    assert report["engines"][0]["fold"] == "3x3" and report["expected_interval"] == manifest["plan"]["interval"]
    # the same compile again: the same bytes
    again = tmp_path / "again"
    run_cli(capsys, "compile", TINY, "-o", again, "--target", "fpga", "--arch", "sequential", "--weights", "qspi",
            "--flash-address", "0x200000", "--multipliers", "9")
    for name in ("weights.bin", manifest["verilog"], "manifest.json"):
        assert (again / "fpga" / name).read_bytes() == (out / "fpga" / name).read_bytes(), name


def _refused(capsys, tmp_path, *argv) -> str:
    code, out, err = run_cli(capsys, "compile", *argv, "-o", tmp_path / "out", "--target", "fpga")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()
    return err


def test_a_model_with_a_residual_add_is_refused_by_node(tmp_path, capsys):
    err = _refused(capsys, tmp_path, DIGITS / "mobilenet" / "mobilenet_fp32_qdq_s8s8_pc.onnx", "--arch", "sequential")
    assert "node '/Add' (Add)" in err and "--arch dataflow" in err


def test_flash_weights_need_the_sequential_engine(tmp_path, capsys):
    err = _refused(capsys, tmp_path, TINY, "--weights", "spi")
    assert "--weights spi needs --arch sequential" in err


def test_the_sequential_engine_takes_no_fold(tmp_path, capsys):
    assert "--arch sequential takes no --fold" in _refused(capsys, tmp_path, TINY, "--arch", "sequential",
                                                           "--fold", "/conv1/Conv=1,1")


def test_on_the_up5k_the_banks_are_sprams(tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "compile", TINY, "-o", out, "--target", "fpga", "--arch", "sequential",
                           "--device", "ice40-up5k", "--multipliers", "4")
    assert code == 0, err
    manifest = json.loads((out / "fpga" / "manifest.json").read_text())
    assert manifest["plan"]["spram_banks"] is True and manifest["plan"]["lanes"] == 2
    # 2-byte words: one 16-bit SPRAM per bank
    assert (out / "fpga" / manifest["verilog"]).read_text().count("SB_SPRAM256KA ") == 2
    # a 4x4 array needs 16 product DSPs and 4 for its requantizer: the UP5K has 8
    err = _refused(capsys, tmp_path / "big", TINY, "--arch", "sequential", "--multipliers", "16", "--device",
                   "ice40-up5k")
    assert "no sequential engine fits ice40-up5k: 4x4 with weights from rom: needs 20 DSPs of 8" in err
    # person_detect's 48x48x16 maps in words of 8 x 8 bytes need 8 SPRAMs; the UP5K has 4
    err = _refused(capsys, tmp_path / "refused", PERSON / "person_detect_qdq.onnx", "--arch", "sequential",
                   "--multipliers", "64", "--device", "ice40-up5k")
    assert "no sequential engine fits ice40-up5k: 8x8 with weights from rom: needs" in err and "8 SPRAMs of 4" in err


def _rates(why: str) -> tuple[float, float]:
    """The chosen architecture's estimated inferences/s and the other's, from the why."""
    rates = [float(r.replace(",", "")) for r in re.findall(r"([\d,.]+) inferences/s", why)]
    assert len(rates) == 2, why
    return rates[0], rates[1]


def test_the_device_chooses_the_faster_architecture_that_fits(tmp_path, capsys):
    """--device without --arch: of the dataflow folding and the sequential engine that fit, the one
    with the higher estimated inferences/s; the log and the manifest say why."""
    # person_detect's weights fit no UP5K dataflow folding: the sequential engine, a 2x2 array (its
    # DSPs, 4 products and a requantizer of 2x2 chunks, are all 8), weights from flash
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "compile", PERSON / "person_detect_qdq.onnx", "-o", out, "--target", "fpga",
                           "--device", "ice40-up5k")
    assert code == 0, err
    assert "--device chose ice40-up5k: the sequential engine" in err and "the dataflow accelerator does not fit" in err
    manifest = json.loads((out / "fpga" / "manifest.json").read_text())
    assert manifest["arch"] == "sequential" and manifest["plan"]["lanes"] == 2 and manifest["plan"]["spram_banks"]
    assert manifest["plan"]["weights"] == "qspi" and "device_choice" in manifest
    estimate = json.loads((out / "fpga" / "resources.json").read_text())["estimate"]
    assert estimate["dsp"] == 8 and estimate["spram"] == 3 and 0 < estimate["cells"] <= 5280
    # TinyCNN fits the UP5K both ways: the sequential engine is estimated (and measured) faster; on
    # an ECP5-85k the dataflow accelerator unrolls it far past any sequential array
    for device, chosen_arch, other_arch in (("ice40-up5k", "the sequential engine", "the dataflow accelerator"),
                                            ("ecp5-85k", "the dataflow accelerator", "the sequential engine")):
        code, _, err = run_cli(capsys, "compile", TINY, "-o", tmp_path / device, "--target", "fpga", "--device",
                               device)
        assert code == 0 and f"--device chose {device}: {chosen_arch}" in err, err
        why = json.loads((tmp_path / device / "fpga" / "manifest.json").read_text())["device_choice"]
        chosen, other = _rates(why)
        assert chosen > other and f"{other_arch}:" in why


def test_flash_address_must_fit_24_bits(tmp_path, capsys):
    assert "--flash-address must be a 24-bit address" in _refused(capsys, tmp_path, TINY, "--arch", "sequential",
                                                                  "--weights", "qspi", "--flash-address", "0x1000000")
