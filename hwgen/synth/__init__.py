"""FPGA synthesis: yosys + nextpnr for iCE40 UP5K and ECP5, reports, and board bitstreams.

* :mod:`hwgen.devices`: the devices hwgen knows (capacities, nextpnr flags);
* :mod:`.flow`: ``synthesize(verilog, top, device, out_dir=...)`` -> report.json + bitstream;
* :mod:`.report`: the typed report and the parsers of yosys's and nextpnr's JSON;
* :mod:`.harness`: the 8-pin I/O harness an accelerator is placed in for synthesis;
* :mod:`.board`: a UART host bridge and board bitstreams (iCEBreaker, ULX3S) via amaranth-boards;
* :mod:`.accelerator`: the accelerator in a compile output, and the reports kept there.

``hwgen synth`` is `hwgen.commands.synth`.

The submodules that need Amaranth's board support load on first use.
"""

from ..devices import DEVICES, Device, DoesNotFitError, Family, device
from .flow import SEED, SynthResult, synthesize
from .harness import StreamPorts, stream_ports
from .report import ClockTiming, CriticalPath, MemoryMapping, Resources, SynthReport
from .tools import missing_tools

__all__ = [
    "DEVICES", "Device", "DoesNotFitError", "Family", "device",
    "SEED", "SynthResult", "synthesize",
    "StreamPorts", "stream_ports",
    "ClockTiming", "CriticalPath", "MemoryMapping", "Resources", "SynthReport",
    "missing_tools",
]
