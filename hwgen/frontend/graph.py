"""A small mutable view of an ONNX graph that the pre-import passes rewrite."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import UnsupportedModelError
from ..fixed import IntType
from ..ir import HostHead, HostTail


@dataclass(frozen=True)
class InputQuant:
    """A float graph input that the host quantizes (QuantizeLinear) before the integer core."""

    onnx_name: str
    onnx_dtype: str
    scale: np.ndarray        # scalar, per `axis`, or blocked along `axis`
    zero_point: np.ndarray
    axis: int
    block_size: int = 0
    itype: IntType | None = None  # narrower than the container type (QONNX bit widths)


@dataclass
class OnnxGraph:
    """Nodes in topological order, constants as numpy arrays, and what the passes learn."""

    name: str
    opset: int
    nodes: list[onnx.NodeProto]
    initializers: dict[str, np.ndarray]
    inputs: list[str]                       # non-constant graph inputs
    outputs: list[str]
    shapes: dict[str, tuple[int, ...]]      # from ONNX shape inference, where known
    dtypes: dict[str, np.dtype]
    model_outputs: list[str] = field(default_factory=list)   # the original graph's outputs
    input_quant: dict[str, InputQuant] = field(default_factory=dict)  # keyed by the new integer input
    heads: dict[str, tuple[str, HostHead]] = field(default_factory=dict)  # float input -> (model input, its head)
    tail: HostTail | None = None
    opset_imports: list = field(default_factory=list)
    ir_version: int = onnx.IR_VERSION

    @classmethod
    def from_model(cls, model: onnx.ModelProto) -> OnnxGraph:
        g = model.graph
        initializers = {}
        for init in g.initializer:
            try:
                initializers[init.name] = numpy_helper.to_array(init)
            except Exception as exc:  # external data, exotic types
                raise UnsupportedModelError(f"initializer {init.name!r} cannot be read: {exc}") from None
        shapes, dtypes = {}, {}
        for value in list(g.input) + list(g.output) + list(g.value_info):
            tt = value.type.tensor_type
            if not value.type.HasField("tensor_type"):
                continue
            if tt.elem_type:
                with contextlib.suppress(KeyError, TypeError):  # a type numpy has no dtype for
                    dtypes[value.name] = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type))
            if tt.HasField("shape") and all(d.HasField("dim_value") for d in tt.shape.dim):
                shapes[value.name] = tuple(d.dim_value for d in tt.shape.dim)
        for name, arr in initializers.items():
            shapes[name], dtypes[name] = arr.shape, arr.dtype
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
        nodes = list(g.node)
        for i, node in enumerate(nodes):  # unique, non-empty node names for messages and the IR
            if not node.name:
                node = onnx.NodeProto()
                node.CopyFrom(g.node[i])
                node.name = f"{node.op_type}_{i}"
                nodes[i] = node
        return cls(
            name=g.name or "model",
            opset=opset,
            nodes=nodes,
            initializers=initializers,
            inputs=[v.name for v in g.input if v.name not in initializers],
            outputs=[v.name for v in g.output],
            shapes=shapes,
            dtypes=dtypes,
            model_outputs=[v.name for v in g.output],
            opset_imports=list(model.opset_import),
            ir_version=model.ir_version,
        )

    # -- queries -------------------------------------------------------------------------

    def producer(self, tensor: str) -> onnx.NodeProto | None:
        for node in self.nodes:
            if tensor in node.output:
                return node
        return None

    def consumers(self, tensor: str) -> list[onnx.NodeProto]:
        return [node for node in self.nodes if tensor in node.input]

    def is_const(self, tensor: str) -> bool:
        return tensor in self.initializers

    def uses(self, tensor: str) -> int:
        """How many node inputs and graph outputs read `tensor`."""
        return sum(list(n.input).count(tensor) for n in self.nodes) + self.outputs.count(tensor)

    def rename_uses(self, old: str, new: str) -> None:
        for node in self.nodes:
            for i, name in enumerate(node.input):
                if name == old:
                    node.input[i] = new
        self.outputs = [new if o == old else o for o in self.outputs]

    def downstream(self, start: onnx.NodeProto) -> list[onnx.NodeProto]:
        """`start` and every node that depends on it, in topological order."""
        reached = {id(start)}
        live = set(start.output)
        out = [start]
        for node in self.nodes[self.nodes.index(start) + 1:]:
            if live.intersection(node.input):
                reached.add(id(node))
                live.update(node.output)
                out.append(node)
        return out


#: What an attribute must be, by the type of its default: (accepted Python types, in words).
_KINDS = {int: ((int,), "an integer"), float: ((int, float), "a number"), str: ((str,), "text"),
          list: ((list,), "a list")}


def attribute(node: onnx.NodeProto, name: str, default=None):
    """The attribute's value (text as str), or `default` when the node has none. With a default,
    the value must be of its kind (an integer, a number, text, a list), else one clear error."""
    for attr in node.attribute:
        if attr.name != name:
            continue
        value = onnx.helper.get_attribute_value(attr)
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                raise UnsupportedModelError(f"attribute {name} is not UTF-8 text", node=node.name,
                                            op=node.op_type) from None
        if default is not None:
            types, words = _KINDS[type(default)]
            if not isinstance(value, types) or isinstance(value, bool):
                raise UnsupportedModelError(f"attribute {name} must be {words}, not {value!r}", node=node.name,
                                            op=node.op_type)
        return value
    return default
