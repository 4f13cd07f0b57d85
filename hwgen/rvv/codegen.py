"""Render the C library of a model: model.h, model.c, kernels.h, main.c and a Makefile.

The layers (plan.py) and the memory plan (memory.py) hold every value; this module
names things (C identifiers from hwgen.names, never raw ONNX names) and hands the
templates/rvv/*.j2 files their contexts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..ir import Graph
from ..names import comment, identifier
from ..render import render
from ..version import __version__
from .kernels import Kind, Store, Variant, helpers_for
from .memory import ALIGN, Location, MemoryPlan, plan_memory, storage_roots
from .plan import ConvArgs, Layer, copy_layer, plan_layers
from .types import CType, ctype_of

__all__ = ["Port", "Generated", "generate", "schedule"]
PROGRAM = "test_rvv"


@dataclass(frozen=True)
class Port:
    """A model input or output as model.h describes it."""

    what: str          # input | output
    index: int
    name: str          # the C parameter: input0, output0, ...
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


def _scale_literal(s: float) -> str:
    return f"{float(s):.9g}f"


def _ports(graph: Graph, prefix: str) -> tuple[tuple[Port, ...], tuple[Port, ...]]:
    onnx = {p.tensor: p.onnx_name for p in (*graph.input_ports, *graph.output_ports)}
    result = []
    for what, names in (("input", graph.inputs), ("output", graph.outputs)):
        ports = []
        for i, name in enumerate(names):
            t = graph.tensor(name)
            ct = ctype_of(t.dtype, f"graph {what} {name!r}")
            shape = "x".join(map(str, t.shape))
            source = f"ONNX {onnx[name]!r}" if name in onnx else f"tensor {name!r}"
            ports.append(Port(what, i, f"{what}{i}", f"{prefix}_{what.upper()}{i}", name, ct, t.shape,
                              t.zero_point, tuple(map(_scale_literal, t.scale)),
                              comment(f"{source}, {t.dtype} {shape}")))
        result.append(tuple(ports))
    return result[0], result[1]


def _nbytes(graph: Graph):
    def nbytes(name: str) -> int:
        t = graph.tensor(name)
        return t.size * ctype_of(t.dtype, f"tensor {name!r}").bytes
    return nbytes


def _pointer(loc: Location, ct: CType) -> str:
    if loc.kind == "scratch":
        return f"({ct.name} *)(arena + {loc.index})"
    return f"{loc.kind}{loc.index}"


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


def _layer_context(layer: Layer, graph: Graph, memory: MemoryPlan) -> dict:
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
    call_args = [_pointer(memory.location(t), ct) for t, ct in zip(layer.inputs, in_types)]
    call_args.append(_pointer(out_location, out_type))
    if line:
        call_args.append(_pointer(Location("scratch", memory.workspaces[layer.index]), in_types[0]))
    return dict(kind=layer.kind, function=layer.function, params=params, arrays=layer.arrays, line=line,
                variant=layer.variant, args=layer.args, comment=_describe(layer, graph),
                call=f"{layer.function}({', '.join(call_args)})")


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


def generate(graph: Graph, model: str, source: str, *, test_samples: int = 0) -> Generated:
    """All generated files of a model. `model` becomes part of C identifiers (sanitized here)."""
    model = identifier(model, prefix="model")
    prefix = f"HWGEN_{model.upper()}"
    run = f"hwgen_{model}_run"
    layers, memory = schedule(graph)
    inputs, outputs = _ports(graph, prefix)
    contexts = [_layer_context(layer, graph, memory) for layer in layers]
    variants: list[Variant] = sorted({layer.variant for layer in layers})
    loads, stores = helpers_for(variants)
    channels = [layer.args.window.out_c for layer in layers if isinstance(layer.args, ConvArgs)]
    read = {t for layer in layers for t in layer.inputs}
    used = {f"input{i}" for i, name in enumerate(graph.inputs)
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
    files = {name: render("rvv", f"{name}.j2", context)
             for name in ("model.h", "model.c", "kernels.h", "main.c", "Makefile")}
    return Generated(model, run, files, tuple(layers), memory, inputs, outputs)
