"""Amaranth components of hwgen's streaming accelerators.

Every unit is a `wiring.Component` with `amaranth.lib.stream` ports (valid/ready, back-pressure
honoured) carrying tensors in raster order, channels last, `lanes` elements per word:

* `WindowGenerator`: line buffer -> convolution / pooling windows (kernel, stride, dilation,
  asymmetric padding with a pad value);
* `MacEngine`: PE x SIMD multipliers running one or more Conv2d / Dense layers from ROM
  schedules that skip zero weights, with bias, accumulators of the IR's widths and requantization;
* `MaxPoolUnit`, `AvgPoolUnit`, `GlobalAvgPoolUnit`, `AddUnit`, `RequantizeUnit`, `ConcatUnit`;
* plumbing: `StreamFifo`, `LaneConverter`, `Fork`, `OutputQueue`;
* `Accelerator`: a whole IR graph, wired from a `hwgen.fpga.plan.Plan`; `Standalone` makes it a
  top-level module with its own clock and (asynchronous) reset, as in the emitted Verilog;
* `sequential.SequentialAccelerator`: the layer-sequential engine (`--arch sequential`), its weights
  from a ROM or from an SPI flash (`flash.SpiFlashReader`).
"""

from .accelerator import Accelerator, Standalone
from .elementwise import AddUnit, ConcatUnit, RequantizeUnit
from .engine import MacEngine
from .pool import AvgPoolUnit, GlobalAvgPoolUnit, MaxPoolUnit
from .requant import requantize
from .streams import Fork, LaneConverter, OutputQueue, StreamFifo, element_shape, word_layout, word_stream
from .window import WindowGenerator

__all__ = [
    "Accelerator", "Standalone", "AddUnit", "ConcatUnit", "RequantizeUnit", "MacEngine",
    "AvgPoolUnit", "GlobalAvgPoolUnit", "MaxPoolUnit", "requantize", "Fork", "LaneConverter", "OutputQueue",
    "StreamFifo", "element_shape", "word_layout", "word_stream", "WindowGenerator",
]
