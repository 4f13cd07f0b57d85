"""``hwgen synth`` without the tools: finding the accelerator in a compile output, the command
line, and the refusals that come before any tool runs."""

import json

import pytest

from hwgen.errors import InvalidOptionError
from hwgen.synth import synthesize
from hwgen.synth.accelerator import find_accelerator
from hwgen.synth.harness import to_verilog
from hwgen.synth.probes import MacArray

from .conftest import compile_output, hwgen_synth


def test_bad_options_are_refused_before_any_tool_runs(tmp_path):
    with pytest.raises(InvalidOptionError, match=r"no such Verilog file$"):
        synthesize(tmp_path / "none.v", "none", "ice40-up5k", out_dir=tmp_path)
    (tmp_path / "m.v").write_text(to_verilog(MacArray(1), "m"))
    with pytest.raises(InvalidOptionError, match=r"^--clock must be between 0 and 1000 MHz, not -5$"):
        synthesize(tmp_path / "m.v", "m", "ice40-up5k", out_dir=tmp_path, clock_mhz=-5)
    with pytest.raises(InvalidOptionError, match=r"m\.v: no module 'n' in the Verilog$"):
        synthesize(tmp_path / "m.v", "n", "ice40-up5k", out_dir=tmp_path / "run")
    with pytest.raises(InvalidOptionError, match=r"m\.v is not the Verilog verified in co-simulation \(sha256 "):
        synthesize(tmp_path / "m.v", "m", "ice40-up5k", out_dir=tmp_path / "run", verified_sha256="0" * 64)


def test_find_accelerator_from_the_manifest_or_the_single_verilog(tmp_path):
    out = compile_output(tmp_path, MacArray(1), "mac1")
    acc = find_accelerator(out)
    assert (acc.top, acc.ports.in_width, acc.ports.out_width) == ("mac1", 16, 32)
    assert acc.verilog == out / "fpga" / "mac1.v" and len(acc.verified_sha256) == 64
    (out / "fpga" / "manifest.json").unlink()
    acc = find_accelerator(out)
    assert (acc.top, acc.ports.in_width, acc.verified_sha256) == ("mac1", 16, None)


def test_find_accelerator_errors(tmp_path):
    with pytest.raises(InvalidOptionError, match=r"no fpga/ directory; run `hwgen compile MODEL -o .* --target fpga`"):
        find_accelerator(tmp_path)
    (tmp_path / "fpga").mkdir()
    with pytest.raises(InvalidOptionError, match=r"expected manifest\.json or exactly one \.v file, found \[\]$"):
        find_accelerator(tmp_path)
    (tmp_path / "fpga" / "manifest.json").write_text('{"top": "x"}')
    with pytest.raises(InvalidOptionError, match=r"manifest\.json: no 'in_width'$"):
        find_accelerator(tmp_path)


def test_cli_refuses_a_changed_verilog(tmp_path):
    out = compile_output(tmp_path, MacArray(1), "mac1")
    (out / "fpga" / "mac1.v").write_text(to_verilog(MacArray(1, weights=(5,)), "mac1"))
    with pytest.raises(InvalidOptionError, match=r"mac1\.v is not the Verilog verified in co-simulation"):
        hwgen_synth([str(out), "--device", "ecp5-85k"])


def test_cli_help_shows_the_choices(capsys):
    with pytest.raises(SystemExit):
        hwgen_synth(["--help"])
    text = capsys.readouterr().out
    assert "ice40-up5k" in text and "icebreaker" in text and "--clock MHZ" in text
    with pytest.raises(SystemExit):
        hwgen_synth(["out", "--device", "ice40-up5k", "--board", "icebreaker"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_find_accelerator_reads_the_fpga_backends_manifest(tmp_path):
    fpga = tmp_path / "fpga"
    fpga.mkdir()
    (fpga / "manifest.json").write_text(json.dumps({
        "format": "hwgen-fpga/1", "top": "hwgen_tiny", "verilog": "hwgen_tiny.v",
        "ports": {"i": {"signals": {"i__payload": 8, "i__valid": 1, "i__ready": 1}},
                  "o": {"signals": {"o__payload": 80, "o__valid": 1, "o__ready": 1}},
                  "perf": {"direction": "output", "bits": 64}}}))
    acc = find_accelerator(tmp_path)
    assert (acc.verilog, acc.top, acc.ports.in_width, acc.ports.out_width) == \
        (fpga / "hwgen_tiny.v", "hwgen_tiny", 8, 80)
