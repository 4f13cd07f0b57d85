"""Regenerates the fixtures of tests/synth/test_report.py from real tool runs (about 30 s).

    python tests/synth/data/make_fixtures.py

* ``<family>_mac2.stat.json`` / ``.nextpnr.json``: yosys ``stat -json`` and nextpnr ``--report`` of
  MacArray(2) in the synthesis harness (ice40-up5k; ecp5-85k), as ``synthesize`` leaves them;
* ``<family>_memories.log``: the yosys log lines about memories of a design with a ROM in block
  RAM, a line buffer in block RAM and a small ROM in logic;
* ``ice40_too_many_pins.log``: nextpnr-ice40's output when a design needs more pins than SG48 has.

``yosys_crash.log`` is not made here: it is the end of a real yosys 0.70 (YoWASP) log that
crashed in memory_libmap on an early TinyCNN accelerator for ECP5, kept as an example of a trap.
"""

import shutil
import subprocess
import tempfile
from pathlib import Path

from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hwgen.synth import synthesize
from hwgen.synth.harness import to_verilog
from hwgen.synth.probes import LineBuffer, MacArray, Rom
from hwgen.synth.tools import tool_command

HERE = Path(__file__).resolve().parent


class Memories(wiring.Component):
    """Three memories side by side, their outputs XORed (the ports of the last one)."""

    def __init__(self):
        self.parts = [Rom(1024, 8), LineBuffer(512, 8), Rom(16, 8)]
        super().__init__({"i": In(stream.Signature(10)), "o": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.weights, m.submodules.line, m.submodules.small = self.parts
        for part in self.parts:
            m.d.comb += [part.i.payload.eq(self.i.payload), part.i.valid.eq(self.i.valid),
                         part.o.ready.eq(self.o.ready)]
        m.d.comb += [self.i.ready.eq(self.parts[0].i.ready), self.o.valid.eq(self.parts[0].o.valid),
                     self.o.payload.eq(self.parts[0].o.payload ^ self.parts[1].o.payload ^ self.parts[2].o.payload)]
        return m


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "mac2.v").write_text(to_verilog(MacArray(2), "mac2"))
        (tmp / "memories.v").write_text(to_verilog(Memories(), "memories"))
        for family, device in (("ice40", "ice40-up5k"), ("ecp5", "ecp5-85k")):
            run = synthesize(tmp / "mac2.v", "mac2", device, out_dir=tmp / family)
            shutil.copy(run.out_dir / "stat.json", HERE / f"{family}_mac2.stat.json")
            shutil.copy(run.out_dir / "nextpnr.json", HERE / f"{family}_mac2.nextpnr.json")
            run = synthesize(tmp / "memories.v", "memories", device, out_dir=tmp / f"{family}_mem")
            lines = [line for line in (run.out_dir / "yosys.log").read_text().splitlines()
                     if "apping memory" in line]
            (HERE / f"{family}_memories.log").write_text("\n".join(lines) + "\n")
        # The bare accelerator, its 51 pins placed directly: too many for SG48.
        yosys, nextpnr = tool_command("yosys"), tool_command("nextpnr-ice40")
        subprocess.run([yosys, "-q", "-p", "synth_ice40 -dsp -top mac2; write_json bare.json", "mac2.v"],
                       cwd=tmp, check=True)
        failed = subprocess.run([nextpnr, "--up5k", "--package", "sg48", "--json", "bare.json",
                                 "--pcf-allow-unconstrained", "--seed", "1"],
                                cwd=tmp, capture_output=True, text=True)
        assert failed.returncode != 0
        (HERE / "ice40_too_many_pins.log").write_text(failed.stdout + failed.stderr)


if __name__ == "__main__":
    main()
