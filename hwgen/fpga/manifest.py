"""The manifest of a compiled accelerator: ports, data layout, the plan, expected cycles.

Everything a user (or `hwgen sim`, or the generated test bench) needs to drive the Verilog
without the compiler: `OUT/fpga/manifest.json`, next to `OUT/ir.json`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from ..ir import Graph
from .outputs import HostConcat, output_mux
from .plan import Plan, plan_from_json, plan_to_json
from .sequential import SeqPlan

__all__ = ["MANIFEST_FORMAT", "StreamPort", "manifest", "stream_port", "load_plan"]

MANIFEST_FORMAT = "hwgen-fpga/1"


@dataclass(frozen=True)
class StreamPort:
    tensor: str
    shape: tuple[int, ...]
    dtype: str
    zero_point: int
    lanes: int

    @property
    def words_per_sample(self) -> int:
        return math.prod(self.shape) // self.lanes


def stream_port(graph: Graph, tensor: str, lanes: int) -> StreamPort:
    t = graph.tensor(tensor)
    return StreamPort(t.name, t.shape, repr(t.dtype), t.zero_point, lanes)


def _port_json(port: StreamPort, direction: str, signals: bool = True) -> dict:
    bits = int(port.dtype[1:])
    head = {"direction": direction}
    if signals:
        head["signals"] = {f"{direction[0]}__payload": port.lanes * bits, f"{direction[0]}__valid": 1,
                           f"{direction[0]}__ready": 1}
    return {
        **head,
        "tensor": port.tensor,
        "shape": list(port.shape),
        "dtype": port.dtype,
        "zero_point": port.zero_point,
        "lanes": port.lanes,
        "element_bits": bits,
        "words_per_sample": port.words_per_sample,
        "layout": (f"raster order over {list(port.shape)}, last axis fastest; word k holds elements "
                   f"k*{port.lanes} .. k*{port.lanes}+{port.lanes - 1}; element j of a word at payload bits "
                   f"[j*{bits}, (j+1)*{bits}), two's complement" if port.dtype.startswith("i") else
                   f"raster order over {list(port.shape)}, last axis fastest; word k holds elements "
                   f"k*{port.lanes} .. k*{port.lanes}+{port.lanes - 1}; element j of a word at payload bits "
                   f"[j*{bits}, (j+1)*{bits}), unsigned"),
    }


def _outputs_json(graph: Graph, plan: Plan, concats: tuple[HostConcat, ...]) -> dict:
    """Port `o` of an accelerator with several outputs: the tagged words and each output's layout."""
    mux = output_mux(graph, plan.output_lanes)
    return {
        "direction": "output",
        "signals": {"o__payload": mux.width, "o__valid": 1, "o__ready": 1},
        "layout": (f"several outputs on one stream: payload bits [0, {mux.data_bits}) hold a word of the output "
                   f"whose index is in bits [{mux.data_bits}, {mux.width}) (the word in its own layout, zero above "
                   "it); each output's words arrive in order, interleaved with the others'"),
        "data_bits": mux.data_bits,
        "tag_bits": mux.tag_bits,
        "outputs": [{"index": k, **_port_json(stream_port(graph, s.tensor, s.lanes), "output", signals=False)}
                    for k, s in enumerate(mux.streams)],
        "host_concatenates": [c.to_json() for c in concats],
    }


def manifest(graph: Graph, plan: Plan | SeqPlan, counters: list, verilog_file: str, amaranth_version: str,
             concats: tuple[HostConcat, ...] = ()) -> dict:
    """`graph`: the hardware graph (`outputs.hardware_graph`); `concats`: the graph outputs the
    host concatenates from its outputs."""
    i = stream_port(graph, graph.inputs[0], plan.input_lanes)
    if len(graph.outputs) == 1:
        o = _port_json(stream_port(graph, graph.outputs[0], plan.output_lanes[0]), "output")
    else:
        o = _outputs_json(graph, plan, concats)
    return {
        "format": MANIFEST_FORMAT,
        "model": graph.name,
        "top": plan.top,
        "verilog": verilog_file,
        "generator": {"amaranth": amaranth_version},
        "clock": "clk, rising edge; rst asynchronous, active high (hold it for a cycle, release it with clk)",
        "ports": {
            "i": _port_json(i, "input"),
            "o": o,
            "perf": {"direction": "output", "bits": 32 * max(1, len(counters)),
                     "counters": [{"index": k, "kind": c.kind, "name": c.name} for k, c in enumerate(counters)],
                     "layout": "counter k at bits [32k, 32k+32): busy cycles since reset"},
        },
        "expected": {"interval": plan.interval},
        "arch": plan.arch if isinstance(plan, SeqPlan) else "dataflow",
        **({"flash": _flash_json(plan)} if isinstance(plan, SeqPlan) and plan.weights != "rom" else {}),
        "plan": plan.to_json() if isinstance(plan, SeqPlan) else plan_to_json(plan),
    }


def _flash_json(plan: SeqPlan) -> dict:
    quad = plan.weights == "qspi"
    return {
        "image": "weights.bin", "address": plan.flash_address, "lines": 4 if quad else 1,
        "signals": {"flash__sck": 1, "flash__cs_n": 1, "flash__io0": 1, "flash__io0_oe": 1, "flash__dq": 4},
        "command": "0x6B Fast Read Quad Output (the flash's quad enable bit must be set)" if quad else "0x03 Read Data",
        "layout": ("weights.bin goes into the flash at `address`: a 32-byte header (magic HWGENSEQ, version, word "
                   "bytes, word count, SHA-256 prefix of the words) then the weight stream; the accelerator reads "
                   "the words from address + 32, over and over, in SPI mode 0 with sck = clk / 2; io0 is driven "
                   "only while flash__io0_oe is high (in quad mode the flash drives it with data after the address), "
                   "dq[3:0] are the data lines (io1 alone in single-line mode)"),
    }


def load_plan(manifest_json: Mapping) -> Plan | SeqPlan:
    """The plan of either architecture."""
    if manifest_json.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"not a {MANIFEST_FORMAT} manifest")
    if manifest_json.get("arch", "dataflow") == "sequential":
        return SeqPlan.from_json(manifest_json["plan"])
    return plan_from_json(manifest_json["plan"])
