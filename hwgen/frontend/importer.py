"""Walks the pre-processed ONNX graph and builds the IR, one handler per ONNX op."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import onnx

from .. import fixed
from ..errors import UnsupportedModelError
from ..fixed import IntType
from ..ir import Graph, HostQuantize, InputPort, Layout, OutputPort
from .graph import OnnxGraph
from .handlers import HANDLERS, REFUSALS, domain, supported
from .lower import Act, Builder, LoweringConfig, ir_shape_of
from .onnx_passes import add_output_dequantize
from .values import Const, Deq, Pending, QConst, Value

#: Element types of graph inputs hwgen accepts.
SUPPORTED_DTYPES = {"int8", "uint8", "int16", "uint16", "int32", "uint32", "float16", "float32", "float64"}


def _param_equal(a: float, b: float) -> bool:
    return np.float32(a) == np.float32(b)


class _Unavailable(Exception):
    """An input of the node comes from a node the importer could not import (survey mode)."""


@dataclass(frozen=True)
class _Missing:
    """What an unimported node's outputs hold in survey mode."""

    node: str


class Importer:
    """Symbolic execution of the ONNX graph: each tensor name maps to a `Value`.

    With `survey`, a node that cannot be imported is recorded (`unsupported`) instead of ending
    the import; nodes that depend on it are left out, and the graph is the supported part, whose
    outputs are the model outputs it computes and the tensors the left-out nodes read.
    """

    def __init__(self, graph: OnnxGraph, config: LoweringConfig, survey: bool = False):
        self.g = graph
        self.builder = Builder(config)
        self.values: dict[str, Value] = {}
        self.unbound: set[str] = set()  # integer inputs whose scale / zero point no node gave yet
        self.survey = survey
        self.unsupported: list[UnsupportedModelError] = []
        self.frontier: list[str] = []   # tensors the left-out nodes read

    # -- value access with precise errors ----------------------------------------------

    def fail(self, node: onnx.NodeProto, reason: str):
        raise UnsupportedModelError(reason, node=node.name, op=node.op_type)

    def value(self, node: onnx.NodeProto, index: int) -> Value | None:
        if index >= len(node.input) or not node.input[index]:
            return None
        name = node.input[index]
        if name not in self.values:
            self.fail(node, f"input {name!r} is not available")
        v = self.values[name]
        if isinstance(v, _Missing):
            raise _Unavailable(v.node)
        if isinstance(v, Act):
            return dataclasses.replace(v, tensor=self.builder.tensors[v.name])  # a bind may have updated it
        return v

    def _as_map(self, node: onnx.NodeProto, index: int, act: Act) -> Act:
        """A 4-D activation held in ONNX order (`flat`) moved into the channels-last order of a map, once."""
        if not (act.flat and len(act.onnx_shape) == 4):
            return act
        mapped = self.builder.transpose(f"{node.input[index]}/channels_last", act, (1, 2, 0), onnx_shape=act.onnx_shape,
                                        flat=False, out_name=f"{node.input[index]}/channels_last")
        v = self.values[node.input[index]]
        self.values[node.input[index]] = Deq(mapped, v.scale) if isinstance(v, Deq) else mapped
        return mapped

    def deq(self, node: onnx.NodeProto, index: int = 0) -> Deq:
        """Input `index` as a dequantized activation (a 4-D one as a channels-last map)."""
        v = self.value(node, index)
        if isinstance(v, Deq):
            return Deq(self._as_map(node, index, v.act), v.scale)
        if isinstance(v, Act):
            self.fail(node, f"input {node.input[index]!r} is an integer tensor used as float without "
                            "DequantizeLinear")
        if isinstance(v, Pending):
            self.fail(node, f"input {node.input[index]!r} comes from node {v.node.name!r} ({v.node.op_type}) "
                            "without a QuantizeLinear in between; hwgen needs every activation quantized")
        if isinstance(v, (Const, QConst)):
            self.fail(node, f"input {node.input[index]!r} is a constant; hwgen needs a quantized activation")
        if node.input[index] in self.g.input_quant or node.input[index] in self.g.inputs:
            self.fail(node, f"input {node.input[index]!r} is used in float: the model is not quantized "
                            "(quantize it with onnxruntime.quantization.quantize_static)")
        self.fail(node, f"input {node.input[index]!r} is not a dequantized activation")

    def act(self, node: onnx.NodeProto, index: int = 0, *, as_map: bool = True) -> Act:
        """Input `index` as an integer activation (a 4-D one as a channels-last map, if `as_map`)."""
        v = self.value(node, index)
        if not isinstance(v, Act):
            self.fail(node, f"input {node.input[index]!r} must be an integer activation, "
                            f"not {type(v).__name__ if v is not None else 'missing'}")
        return self._as_map(node, index, v) if as_map else v

    def const(self, node: onnx.NodeProto, index: int, default=None) -> np.ndarray | None:
        v = self.value(node, index)
        if v is None:
            return default
        if not isinstance(v, Const):
            self.fail(node, f"input {node.input[index]!r} must be a constant")
        return v.values

    def const_value(self, node: onnx.NodeProto, index: int) -> np.ndarray:
        """A constant input as a float op sees it: an initializer as it is, quantized integers dequantized
        (float32, as DequantizeLinear computes them)."""
        v = self.value(node, index)
        if isinstance(v, Const):
            return v.values
        if isinstance(v, QConst):
            shape = [1] * v.values.ndim
            if v.scale.size > 1:
                shape[v.axis] = -1
            return fixed.dequantize(v.values, v.scale.reshape(shape if v.scale.size > 1 else ()),
                                    v.zero_point.reshape(shape if v.zero_point.size > 1 else ()))
        self.fail(node, f"input {node.input[index]!r} must be a constant")

    def real_value(self, node: onnx.NodeProto, index: int) -> np.ndarray:
        """A constant input's real value, float64."""
        return np.asarray(self.const_value(node, index), dtype=np.float64)

    def scalar(self, node: onnx.NodeProto, index: int, default=None):
        a = self.const(node, index, None)
        if a is None:
            return default
        if a.size != 1:
            self.fail(node, f"input {node.input[index]!r} must be a single value (per-tensor), got shape "
                            f"{list(a.shape)}")
        return a.reshape(()).item()

    def weights(self, node: onnx.NodeProto, index: int) -> QConst:
        v = self.value(node, index)
        if isinstance(v, QConst):
            return v
        if isinstance(v, Const) and v.values.dtype.kind == "f":
            self.fail(node, "weights are float (no DequantizeLinear of integers): the model is not quantized "
                            "(quantize it with onnxruntime.quantization.quantize_static)")
        self.fail(node, f"input {node.input[index]!r} must be constant quantized weights")

    def bind(self, node: onnx.NodeProto, act: Act, scale: float, zero_point: int) -> Act:
        """Give an integer input its scale and zero point, or check they agree with what it has."""
        t = act.tensor
        if t.name in self.unbound:
            self.unbound.discard(t.name)
            t = self.builder.tensors[t.name] = type(t)(t.name, t.shape, t.dtype, int(zero_point), (float(scale),))
            return dataclasses.replace(act, tensor=t)
        if t.zero_point != int(zero_point) or not _param_equal(t.scale[0], scale):
            self.fail(node, f"dequantizes {t.name!r} with scale {scale:.6g} and zero point {zero_point}, but it "
                            f"was quantized with scale {t.scale[0]:.6g} and zero point {t.zero_point}")
        return act

    def set(self, node: onnx.NodeProto, value: Value, index: int = 0) -> None:
        self.values[node.output[index]] = value

    def onnx_shape(self, name: str) -> tuple[int, ...] | None:
        return self.g.shapes.get(name)

    # -- the walk -----------------------------------------------------------------------

    def run(self) -> Graph:
        if not self.survey:
            for node in self.g.nodes:  # ops refused outright explain the model's problem best
                if (domain(node), node.op_type) in REFUSALS:
                    REFUSALS[domain(node), node.op_type](self, node)
        for name, array in self.g.initializers.items():
            self.values[name] = Const(array)
        input_ports = [self._input(name) for name in self.g.inputs]
        for node in self.g.nodes:
            if self.survey:
                self._survey(node)
            else:
                self._import(node)
        outputs = [n for n in self.g.outputs if not isinstance(self.values.get(n), _Missing)]
        if self.survey:
            outputs += [n for n in dict.fromkeys(self.frontier)
                        if n not in outputs and isinstance(self.values.get(n), Act)]
        output_ports = [self._output(name) for name in outputs]
        b = self.builder
        return Graph(
            name=self.g.name,
            tensors=dict(b.tensors),
            nodes=tuple(b.nodes),
            inputs=tuple(p.tensor for p in input_ports),
            outputs=tuple(p.tensor for p in output_ports),
            input_ports=tuple(input_ports),
            output_ports=tuple(output_ports),
            tail=self.g.tail,
            model_outputs=tuple(self.g.model_outputs),
        )

    def _import(self, node: onnx.NodeProto) -> None:
        key = (domain(node), node.op_type)
        handler = HANDLERS.get(key) or REFUSALS.get(key)
        if handler is None:
            op = f"unsupported op{'' if not node.domain else f' (domain {node.domain})'}"
            self.fail(node, op if self.survey else f"{op}; hwgen supports {supported()}")
        handler(self, node)

    def _survey(self, node: onnx.NodeProto) -> None:
        """Import the node, or record why not and leave its outputs missing."""
        try:
            self._import(node)
            return
        except _Unavailable:
            pass
        except UnsupportedModelError as exc:
            self.unsupported.append(exc)
        for name in node.input:  # what the left-out node reads: an output of the supported part
            if isinstance(self.values.get(name), Deq):
                self.frontier.append(self.values[name].act.name)
            elif isinstance(self.values.get(name), Act):
                self.frontier.append(name)
        for name in node.output:
            self.values[name] = _Missing(node.name)

    def _input(self, name: str) -> InputPort:
        dtype = self.g.dtypes.get(name)
        shape = self.g.shapes.get(name)
        quant = self.g.input_quant.get(name)
        if dtype is None or shape is None:
            raise UnsupportedModelError(f"graph input {name!r} has no static type and shape")
        if dtype.name not in SUPPORTED_DTYPES:
            raise UnsupportedModelError(f"graph input {name!r} has element type {dtype}; hwgen supports "
                                        "8, 16 and 32-bit integers and float inputs")
        if dtype.kind not in "iu":
            consumers = self.g.consumers(name)
            where = f" by node {consumers[0].name!r} ({consumers[0].op_type})" if consumers else ""
            raise UnsupportedModelError(f"graph input {name!r} is {dtype} and used in float{where}: the model "
                                        "is not quantized (quantize it with onnxruntime.quantization."
                                        "quantize_static)")
        ir_shape, chw = ir_shape_of(shape, f"graph input {name!r}")
        itype = quant.itype if quant is not None and quant.itype is not None else IntType.from_numpy(dtype)
        if quant is not None:
            zp = np.asarray(quant.zero_point, dtype=np.int64).reshape(-1)
            t = self.builder.tensor(name, ir_shape, itype, int(zp[0]), np.reshape(quant.scale, -1))
        else:
            t = self.builder.tensor(name, ir_shape, itype, 0, 1.0)
            self.unbound.add(t.name)
        self.values[name] = Act(t, tuple(shape), chw)
        layout = Layout(tuple(shape), ir_shape, len(shape) >= 2 and shape[0] == 1, chw)
        if quant is None:
            return InputPort(name, str(dtype), layout, t.name)
        scale, zp = np.asarray(quant.scale), np.asarray(quant.zero_point)
        host = HostQuantize(tuple(float(s) for s in scale.reshape(-1)), tuple(int(z) for z in zp.reshape(-1)),
                            scale.shape, quant.axis, quant.block_size)
        if quant.onnx_name in self.g.heads:  # the model input reaches the quantizer through a host head
            model_input, head = self.g.heads[quant.onnx_name]
            return InputPort(model_input, quant.onnx_dtype, layout, t.name, host, head)
        return InputPort(quant.onnx_name, quant.onnx_dtype, layout, t.name, host)

    def _output(self, name: str) -> OutputPort:
        v = self.values.get(name)
        if isinstance(v, Pending) and v.acc_scale is not None and np.isinf(v.lo) and np.isinf(v.hi):
            return self._dequantized_accumulator(name, v)
        if isinstance(v, Pending):
            raise UnsupportedModelError(f"graph output {name!r} is the float result of node {v.node.name!r} "
                                        f"({v.node.op_type}) with no QuantizeLinear after it")
        if isinstance(v, Deq):  # a QONNX Quant's float output: the core outputs its integers
            return self._dequantized_activation(name, v)
        if not isinstance(v, Act):
            raise UnsupportedModelError(f"graph output {name!r} is not an integer activation "
                                        f"({type(v).__name__})")
        v = dataclasses.replace(v, tensor=self.builder.tensors[v.name])
        shape = v.onnx_shape
        layout = Layout(tuple(shape), v.tensor.shape, len(shape) >= 2 and shape[0] == 1, v.chw)
        dtype = self.g.dtypes.get(name) or v.tensor.dtype.numpy_dtype()
        return OutputPort(name, str(np.dtype(dtype)), layout, v.name)


    def _dequantized_activation(self, name: str, v: Deq) -> OutputPort:
        """A float output that is an integer tensor dequantized: the host dequantizes the core's output."""
        act = dataclasses.replace(v.act, tensor=self.builder.tensors[v.act.name])
        t, shape = act.tensor, act.onnx_shape
        if t.dtype.bits > 32:
            raise UnsupportedModelError(f"graph output {name!r} is {t.dtype}, wider than any ONNX integer type")
        dtype = t.dtype.numpy_dtype() if t.dtype.signed or t.dtype.bits < 32 else np.dtype(np.int32)
        port = act.name if act.name != name else f"{name}_integers"  # the tail's input, named apart from its output
        self.g.tail = add_output_dequantize(self.g, port, name, np.full(1, v.scale), len(shape),
                                            self.g.dtypes.get(name, np.dtype(np.float32)), t.zero_point, dtype)
        layout = Layout(tuple(shape), t.shape, len(shape) >= 2 and shape[0] == 1, act.chw)
        return OutputPort(port, str(dtype), layout, act.name)

    def _dequantized_accumulator(self, name: str, v: Pending) -> OutputPort:
        """The last layer's float output: the core outputs its accumulator, the host dequantizes."""
        acc = v.emit(None, f"{name}_accumulator")
        shape = acc.onnx_shape
        self.g.tail = add_output_dequantize(self.g, acc.name, name, np.broadcast_to(v.acc_scale, acc.tensor.shape[-1:]),
                                            len(shape), self.g.dtypes.get(name, np.dtype(np.float32)))
        layout = Layout(tuple(shape), acc.tensor.shape, len(shape) >= 2 and shape[0] == 1, acc.chw)
        return OutputPort(acc.name, "int32", layout, acc.name)


def import_graph(graph: OnnxGraph, config: LoweringConfig) -> Graph:
    return Importer(graph, config).run()


def survey_graph(graph: OnnxGraph, config: LoweringConfig) -> tuple[Graph, list[UnsupportedModelError]]:
    """The supported part of the graph and why each other node is not (dependents of those aside)."""
    importer = Importer(graph, config, survey=True)
    return importer.run(), importer.unsupported
