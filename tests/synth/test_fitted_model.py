"""A real model, fitted to a device and synthesized, end to end through the CLI: the pruned TinyCNN
compiled with --device ice40-up5k, then `hwgen synth`. The one model synthesis of the default
run (~1 minute); the big ones live in bench/synth.py --models.

The estimate the folding was chosen by must hold: DSPs and block RAMs exactly (they are counted,
not modelled), LUT4s and flip-flops within 25 % of yosys.
"""

import hashlib
import json

import pytest

from hwgen.cli import main
from hwgen.synth import SynthReport

from ..conftest import DIGITS
from .conftest import needs_tools

pytestmark = pytest.mark.synth


@needs_tools
def test_pruned_tinycnn_fitted_to_up5k_places_routes_and_matches_its_estimate(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["compile", str(DIGITS / "tinycnn_pruned_qdq_s8s8_pc.onnx"), "-o", str(out), "--target", "fpga",
                 "--device", "ice40-up5k"]) == 0
    assert main(["synth", str(out), "--device", "ice40-up5k"]) == 0
    manifest = json.loads((out / "fpga" / "manifest.json").read_text())
    run_dir = out / "synth" / "ice40-up5k"
    report = SynthReport.read(run_dir / "report.json")
    verilog = (out / "fpga" / manifest["verilog"]).read_bytes()
    assert report.verilog_sha256 == manifest["verilog_sha256"] == hashlib.sha256(verilog).hexdigest()
    assert report.cosim_verified is True
    acc, est = report.accelerator, report.estimate
    assert (est["dsp"], est["bram"]) == (acc.dsp, acc.bram)
    assert acc.dsp <= 8 and acc.bram <= 30 and report.placed.logic <= 5280
    errors = report.estimate_errors()
    assert abs(errors["logic"]) <= 0.25 and abs(errors["ff"]) <= 0.25, errors
    assert report.interval == manifest["expected"]["interval"]
    assert report.inferences_per_second == pytest.approx(report.fmax_mhz * 1e6 / report.interval)
    assert (run_dir / "top.bin").stat().st_size > 100_000
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    text = capsys.readouterr().out
    assert "fitted to ice40-up5k" in text and "estimate vs yosys" in text and "inferences/s at Fmax" in text


@needs_tools
@pytest.mark.slow
def test_an_experiment_with_synthesis():
    """`hwgen bench --synth`: resources and clock from nextpnr (the fixed seed), inferences/s at its Fmax."""
    from hwgen.experiments import Experiment, run_experiment

    row = run_experiment(Experiment(DIGITS / "tinycnn_pruned_qdq_s8s8_pc.onnx", targets=("fpga",),
                                    device="ice40-up5k", synth=True))
    assert row["resources_from"] == "nextpnr" and row["clock_from"] == "nextpnr fmax"
    assert 0 < row["dsp"] <= 8 and 0 < row["logic"] <= 5280
    assert row["inferences_per_s"] == round(row["clock_mhz"] * 1e6 / row["interval_cycles"], 1)
