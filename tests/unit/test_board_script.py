"""board.sh, written beside a board's bitstream: run with stand-ins for iceprog and hwgen on PATH,
it must call them with the right files, from anywhere, whatever the paths hold."""

import os
import subprocess
from pathlib import Path

import pytest

from hwgen.synth.host import board_script


def _stub(bin_dir: Path, name: str, log: Path) -> None:
    """A command that appends its arguments, one per line, and a blank line to `log`."""
    path = bin_dir / name
    path.write_text(f'#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a" >> "{log}"; done\necho >> "{log}"\n')
    path.chmod(0o755)


def _calls(log: Path) -> list[list[str]]:
    return [c.split("\n") for c in log.read_text().strip("\n").split("\n\n")] if log.exists() else []


@pytest.mark.parametrize("odd", ["plain", "with space", "it's $HOME `x`"])
def test_board_script_programs_and_runs(tmp_path, odd):
    out = tmp_path / odd / "out"
    board_dir = out / "synth" / "icebreaker"
    board_dir.mkdir(parents=True)
    bitstream, weights = board_dir / "build" / "top.bin", out / "fpga" / "weights.bin"
    script = board_dir / "board.sh"
    script.write_text(board_script("icebreaker", out, board_dir,
                                   [["iceprog", bitstream], ["iceprog", "-o", "0x100000", weights]], 115200))
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    for name in ("iceprog", "hwgen"):
        _stub(bin_dir, name, log)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def sh(*args, **extra):
        return subprocess.run(["sh", str(script), *args], cwd=elsewhere, env={**env, **extra}, capture_output=True,
                              text=True)

    assert sh("program").returncode == 0
    calls = _calls(log)
    assert [Path(elsewhere, c[-1]).resolve() for c in calls] == [bitstream.resolve(), weights.resolve()]
    assert calls[1][:2] == ["-o", "0x100000"]
    log.unlink()
    assert sh("run", "x y.npy", "--check").returncode == 0
    (call,) = _calls(log)
    assert call[0] == "run" and Path(elsewhere, call[1]).resolve() == out.resolve()
    assert call[2:] == ["--backend", "board", "--port", "/dev/ttyUSB1", "--baud", "115200", "--input", "x y.npy",
                        "--check"]
    log.unlink()
    assert sh("run", "x.npy", PORT="/dev/ttyACM0").returncode == 0
    assert _calls(log)[0][5] == "/dev/ttyACM0"
    bad = sh()
    assert bad.returncode == 2 and "usage: sh" in bad.stderr
    bad = sh("run")
    assert bad.returncode != 0 and "usage: sh board.sh run INPUT" in bad.stderr
