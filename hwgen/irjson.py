"""The IR as JSON: complete (weights included) and deterministic, and back.

Generated test benches and `hwgen sim` load a compiled model's IR from here, so
they can run the golden model without the ONNX file.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path

import numpy as np

from .fixed import IntType, Rounding
from .ir import OP_TYPES, Graph, HostHead, HostQuantize, HostTail, InputPort, Layout, Node, OutputPort, Requant, Tensor

__all__ = ["to_json", "from_json", "dumps", "dump", "load"]

FORMAT = "hwgen-ir/1"
NODE_TYPES = {cls.op: cls for cls in OP_TYPES}


def _value(v):
    if isinstance(v, np.ndarray):
        return {"shape": list(v.shape), "data": v.reshape(-1).tolist()}
    if isinstance(v, IntType):
        return repr(v)
    if isinstance(v, Rounding):
        return v.value
    if isinstance(v, Requant):
        return {f.name: _value(getattr(v, f.name)) for f in dataclasses.fields(v)}
    if isinstance(v, dict):
        return {str(k): _value(x) for k, x in sorted(v.items())}
    if isinstance(v, tuple):
        return [_value(x) for x in v]
    if isinstance(v, (bytes, bytearray)):
        return base64.b64encode(v).decode()
    if dataclasses.is_dataclass(v):
        return {f.name: _value(getattr(v, f.name)) for f in dataclasses.fields(v)}
    return v


def to_json(graph: Graph) -> dict:
    nodes = []
    for n in graph.nodes:
        entry = {"op": n.op}
        entry.update({f.name: _value(getattr(n, f.name)) for f in dataclasses.fields(n)})
        nodes.append(entry)
    return {
        "format": FORMAT,
        "name": graph.name,
        "inputs": list(graph.inputs),
        "outputs": list(graph.outputs),
        "tensors": [_value(t) for t in graph.tensors.values()],
        "nodes": nodes,
        "input_ports": [_value(p) for p in graph.input_ports],
        "output_ports": [_value(p) for p in graph.output_ports],
        "tail": _value(graph.tail) if graph.tail else None,
        "model_outputs": list(graph.model_outputs),
    }


def dumps(graph: Graph) -> str:
    return json.dumps(to_json(graph), indent=1) + "\n"


def dump(graph: Graph, path: Path) -> None:
    Path(path).write_text(dumps(graph))


def _tuple(x):
    return tuple(_tuple(v) for v in x) if isinstance(x, list) else x


def _requant(d: dict) -> Requant:
    return Requant(tuple(d["multiplier"]), tuple(d["shift"]), d["zero_point"], d["lo"], d["hi"],
                   Rounding(d["rounding"]))


def _array(d: dict) -> np.ndarray:
    return np.array(d["data"], dtype=np.int64).reshape(d["shape"])


def _node(d: dict) -> Node:
    cls = NODE_TYPES[d["op"]]
    kwargs = {}
    for f in dataclasses.fields(cls):
        v = d[f.name]
        if isinstance(v, dict) and set(v) == {"shape", "data"}:  # weights, bias, lookup tables
            v = _array(v)
        elif f.name == "acc":
            v = IntType.parse(v) if v is not None else None
        elif f.name == "requant":
            v = _requant(v) if v is not None else None
        elif f.name == "requants":
            v = {int(k): _requant(r) for k, r in v.items()}
        else:
            v = _tuple(v)
        kwargs[f.name] = v
    return cls(**kwargs)


def _layout(d: dict) -> Layout:
    return Layout(_tuple(d["onnx_shape"]), _tuple(d["ir_shape"]), d["batched"],
                  _tuple(d["chw"]) if d["chw"] is not None else None)


def from_json(d: dict) -> Graph:
    if d.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} file")
    tensors = {t["name"]: Tensor(t["name"], _tuple(t["shape"]), IntType.parse(t["dtype"]), t["zero_point"],
                                 _tuple(t["scale"])) for t in d["tensors"]}
    inputs = []
    for p in d["input_ports"]:
        q = p["quantize"]
        quant = HostQuantize(_tuple(q["scale"]), _tuple(q["zero_point"]), _tuple(q["shape"]), q["axis"],
                             q["block_size"]) if q else None
        head = p.get("head")
        head = HostHead(_tuple(head["shape"]), _tuple(head["index"]), _tuple(head["ops"])) if head else None
        inputs.append(InputPort(p["onnx_name"], p["onnx_dtype"], _layout(p["layout"]), p["tensor"], quant, head))
    outputs = [OutputPort(p["onnx_name"], p["onnx_dtype"], _layout(p["layout"]), p["tensor"])
               for p in d["output_ports"]]
    tail = d["tail"]
    return Graph(
        name=d["name"], tensors=tensors, nodes=tuple(_node(n) for n in d["nodes"]), inputs=tuple(d["inputs"]),
        outputs=tuple(d["outputs"]), input_ports=tuple(inputs), output_ports=tuple(outputs),
        tail=HostTail(base64.b64decode(tail["model"]), tuple(tail["ops"]), tuple(tail["outputs"])) if tail else None,
        model_outputs=tuple(d["model_outputs"]))


def load(path: Path) -> Graph:
    """A compile output's IR, verified (a damaged file is one line naming it)."""
    from .ir import verify
    from .outdir import read_json, reading

    data = read_json(path)
    with reading(path):
        graph = from_json(data)
    return verify(graph)
