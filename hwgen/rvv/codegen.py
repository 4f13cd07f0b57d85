"""Render the C library of a model: model.h, model.c, kernels.h, main.c and a Makefile.

The layers (plan.py) and the memory plan (memory.py) hold every value; this module
names things (C identifiers from hwgen.names, never raw ONNX names) and hands the
templates/rvv/*.j2 files their contexts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..ir import Graph
from ..modelconfig import DetectConfig
from ..names import comment, identifier, unique_identifiers
from ..render import render
from ..version import __version__
from .kernels import Kind, Store, Variant, helpers_for
from .memory import ALIGN, Location, MemoryPlan, plan_memory, storage_roots
from .plan import ConvArgs, Layer, copy_layer, plan_layers
from .postprocess import dequantized_outputs, detect_context
from .tail import tail_chains, tail_context
from .types import CType, c_float, ctype_of

__all__ = ["Port", "Generated", "generate", "schedule"]
PROGRAM = "test_rvv"
DETECT_PROGRAM = "test_detect"


@dataclass(frozen=True)
class Port:
    """A model input or output as model.h describes it."""

    what: str          # input | output
    index: int
    name: str          # the C parameter: in_<onnx name>, out_<onnx name>
    macro: str         # HWGEN_<MODEL>_INPUT0
    tensor: str        # the IR tensor
    ctype: CType
    shape: tuple[int, ...]
    zero_point: int
    scales: tuple[str, ...]
    description: str

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Generated:
    """The generated sources and what the runner and report need to know about them."""

    model: str                 # the sanitized model name
    run: str                   # hwgen_<model>_run
    files: dict[str, str]      # file name -> text
    layers: tuple[Layer, ...]
    memory: MemoryPlan
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]

    @property
    def sources(self) -> tuple[str, ...]:
        return ("model.c", "main.c")


def _ports(graph: Graph, prefix: str) -> tuple[tuple[Port, ...], tuple[Port, ...]]:
    """The C parameters: in_<name> and out_<name> after the ONNX tensors (the model output a
    core output is dequantized to, if that is all the host does with it)."""
    onnx = {p.tensor: p.onnx_name for p in (*graph.input_ports, *graph.output_ports)}
    dequantized = dequantized_outputs(graph)
    result = []
    for what, short, names in (("input", "in", graph.inputs), ("output", "out", graph.outputs)):
        titles = [dequantized.get(onnx.get(name, name), onnx.get(name, name)) for name in names]
        params = unique_identifiers([f"{short}_{title}" for title in titles], prefix=short)
        ports = []
        for i, name in enumerate(names):
            t = graph.tensor(name)
            ct = ctype_of(t.dtype, f"graph {what} {name!r}")
            shape = "x".join(map(str, t.shape))
            source = f"ONNX {onnx[name]!r}" if name in onnx else f"tensor {name!r}"
            if onnx.get(name) in dequantized:
                source += f" (the host dequantizes it to the model output {dequantized[onnx[name]]!r})"
            ports.append(Port(what, i, params[i], f"{prefix}_{what.upper()}{i}", name, ct, t.shape,
                              t.zero_point, tuple(map(c_float, t.scale)),
                              comment(f"{source}, {t.dtype} {shape}")))
        result.append(tuple(ports))
    return result[0], result[1]


def _nbytes(graph: Graph):
    def nbytes(name: str) -> int:
        t = graph.tensor(name)
        return t.size * ctype_of(t.dtype, f"tensor {name!r}").bytes
    return nbytes


def _pointer(loc: Location, ct: CType, params: dict[tuple[str, int], str]) -> str:
    if loc.kind == "scratch":
        return f"({ct.name} *)(arena + {loc.index})"
    return params[loc.kind, loc.index]


def _param_names(layer: Layer) -> list[str]:
    """The layer function's input parameters: a and b for add, x0, x1, ... to concatenate, else x."""
    if layer.kind in (Kind.ADD, Kind.MUL):
        return ["a", "b"]
    if layer.kind is Kind.CONCAT:
        return [f"x{i}" for i in range(len(layer.inputs))]
    return ["x"]


def _describe(layer: Layer, graph: Graph) -> str:
    ins = ", ".join("x".join(map(str, graph.tensor(t).shape)) for t in layer.inputs)
    if layer.output is None:
        return comment(f"layer {layer.index}: copy {layer.node!r} to output {layer.args.port}")
    out = "x".join(map(str, graph.tensor(layer.output).shape))
    v = layer.variant
    how = f"{v.kind} kernel, LMUL {v.lmul}" + (f", {v.tile}-pixel tiles" if v.tile > 1 else "")
    return comment(f"layer {layer.index}: {layer.op} {layer.node!r}: {ins} -> {out} ({how})")


def _layer_context(layer: Layer, graph: Graph, memory: MemoryPlan, params_of: dict[tuple[str, int], str]) -> dict:
    in_types = [ctype_of(graph.tensor(t).dtype, f"tensor {t!r}") for t in layer.inputs]
    output = layer.output if layer.output is not None else graph.outputs[layer.args.port]
    out_type = ctype_of(graph.tensor(output).dtype, f"tensor {output!r}")
    out_location = memory.location(output) if layer.output is not None else Location("output", layer.args.port)
    names = _param_names(layer)
    params = [f"const {ct.name} *restrict {n}" for ct, n in zip(in_types, names)]
    params.append(f"{out_type.name} *restrict y")
    line = layer.index in memory.workspaces
    if line:
        params.append(f"{in_types[0].name} *restrict line")
    call_args = [_pointer(memory.location(t), ct, params_of) for t, ct in zip(layer.inputs, in_types)]
    call_args.append(_pointer(out_location, out_type, params_of))
    if line:
        call_args.append(_pointer(Location("scratch", memory.workspaces[layer.index]), in_types[0], params_of))
    return dict(kind=layer.kind, function=layer.function, params=params, arrays=layer.arrays, line=line,
                variant=layer.variant, args=layer.args, comment=_describe(layer, graph),
                call=f"{layer.function}({', '.join(call_args)})")


def _host_tail(graph: Graph, detect: DetectConfig | None, in_library: bool) -> list[str]:
    """model.h's account of what runs after the integer core, one comment line each."""
    if graph.tail is None:
        return ["Nothing runs after it on the host: its outputs are the model's outputs."]
    made = ", ".join(map(repr, graph.tail.outputs))
    if set(graph.tail.ops) == {"DequantizeLinear"}:
        lines = [f"After it, the host only dequantizes outputs to the model's float outputs {made}:",
                 "real = scale * (q - zero point), with the constants below."]
    else:
        lines = [f"After it, the host runs the model's float tail {' -> '.join(graph.tail.ops)}, making {made}."]
    lines.append("tail.h implements that in float32 (hwgen_<model>_tail); hwgen run uses onnxruntime." if in_library
                 else "This library does not implement it (hwgen run uses onnxruntime).")
    if detect is not None:
        lines.append(f"detect.h implements the SSD post-processing of {detect.decode.boxes!r} and "
                     f"{detect.decode.scores!r}, dequantization included.")
    return [comment(line) for line in lines]


def schedule(graph: Graph) -> tuple[list[Layer], MemoryPlan]:
    """The layers in order (plus copies for outputs that alias other storage) and where tensors live."""
    layers = plan_layers(graph)
    roots, copies = storage_roots(graph)
    nbytes = _nbytes(graph)
    for source, port in copies:
        layers.append(copy_layer(len(layers), source, port, nbytes(source)))
    workspaces = [layer.line for layer in layers]  # 8-bit inputs: one byte per element
    memory = plan_memory(graph, roots, [(layer.inputs, layer.output) for layer in layers], nbytes, workspaces)
    return layers, memory


def generate(graph: Graph, model: str, source: str, *, test_samples: int = 0,
             detect: DetectConfig | None = None) -> Generated:
    """All generated files of a model (with detect.h/.c when `detect` is given). `model` becomes
    part of C identifiers (sanitized here)."""
    model = identifier(model, prefix="model")
    prefix = f"HWGEN_{model.upper()}"
    run = f"hwgen_{model}_run"
    layers, memory = schedule(graph)
    inputs, outputs = _ports(graph, prefix)
    params_of = {(p.what, p.index): p.name for p in (*inputs, *outputs)}
    contexts = [_layer_context(layer, graph, memory, params_of) for layer in layers]
    variants: list[Variant] = sorted({layer.variant for layer in layers})
    loads, stores = helpers_for(variants)
    channels = [layer.args.window.out_c for layer in layers if isinstance(layer.args, ConvArgs)]
    read = {t for layer in layers for t in layer.inputs}
    used = {inputs[i].name for i in range(len(graph.inputs))
            if any(memory.location(t) == Location("input", i) for t in read)}
    banner = comment(f"generated by hwgen {__version__} from {source}; do not edit.")
    context = dict(
        banner=banner, source=comment(source), run=run, prefix=prefix, guard=f"{prefix}_MODEL_H",
        inputs=list(inputs), outputs=list(outputs), scratch_bytes=memory.scratch_bytes, scratch_align=ALIGN,
        run_params=[f"const {p.ctype.name} *{p.name}" for p in inputs] + [f"{p.ctype.name} *{p.name}"
                                                                         for p in outputs] + ["void *scratch"],
        unused_params=[p.name for p in inputs if p.name not in used],
        layers=contexts, calls=[c["call"] for c in contexts],
        window_inputs=sorted({layer.variant.x for layer in layers if isinstance(layer.args, ConvArgs)}),
        variants=variants, loads=loads, stores=stores,
        roundings=sorted({v.rounding for v in variants} - {Store.RAW}),
        max_channels=max(channels, default=1), program=PROGRAM, test_samples=test_samples,
    )
    names = ["model.h", "model.c", "kernels.h", "main.c", "Makefile"]
    if detect is not None:
        context.update(detect_context(graph, outputs, detect, prefix, model))
        context.update(detection_type=f"hwgen_{model}_detection", work_type=f"hwgen_{model}_detect_work",
                       detect_program=DETECT_PROGRAM, sigmoid=detect.decode.sigmoid_score,
                       clipped=detect.decode.score_clipping_thresh > 0)
        names += ["detect.h", "detect.c", "detect_main.c"]
    chains = tail_chains(graph)
    if chains:
        context.update(tail_context(graph, chains, outputs, prefix, model))
        names += ["tail.h", "tail.c"]
    context.update(has_detect=detect is not None, host_tail=_host_tail(graph, detect, bool(chains)))
    files = {name: render("rvv", f"{name}.j2", context) for name in names}
    return Generated(model, run, files, tuple(layers), memory, inputs, outputs)
