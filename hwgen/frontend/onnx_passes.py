"""Rewrites of the ONNX graph that run before import, in one ordered pipeline.

Each pass is a function OnnxGraph -> OnnxGraph. After them the graph has integer
inputs and outputs (the host quantizes inputs and runs the float tail), no
constant subgraphs, and biases and batch norms folded into the ops they follow.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import UnsupportedModelError
from ..ir import HostHead, HostTail
from .graph import InputQuant, OnnxGraph, attribute
from .lower import check_scales
from .qonnx import QONNX_DOMAINS, quant_spec

log = logging.getLogger(__name__)

#: Ops whose outputs must stay symbolic (quantized weights keep their integers; a QuantizeLinear of
#: a constant folds into them).
_KEEP = {"DequantizeLinear"}

#: Ops that compute on activations; none may run in the float host tail.
COMPUTE_OPS = {
    "Conv", "Gemm", "MatMul", "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger",
    "QGemm", "QLinearAdd", "QLinearGlobalAveragePool", "QLinearAveragePool", "QLinearConcat",
    "AveragePool", "GlobalAveragePool", "MaxPool",
}


def _evaluate(graph: OnnxGraph, node: onnx.NodeProto, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Run one node on constants with onnx's reference implementation."""
    from onnx.reference import ReferenceEvaluator

    names = [f"in{i}" for i in range(len(node.input))]
    single = helper.make_node(node.op_type, [n if node.input[i] else "" for i, n in enumerate(names)],
                              [f"out{i}" for i in range(len(node.output))], domain=node.domain)
    single.attribute.extend(node.attribute)
    evaluator = ReferenceEvaluator(helper.make_model(
        helper.make_graph([single], "fold",
                          [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
                           for n, a, src in zip(names, inputs, node.input) if src],
                          [helper.make_tensor_value_info(f"out{i}", 0, None) for i in range(len(node.output))]),
        opset_imports=graph.opset_imports, ir_version=graph.ir_version))
    return evaluator.run(None, {n: a for n, a, src in zip(names, inputs, node.input) if src})


def fold_constants(graph: OnnxGraph) -> OnnxGraph:
    """Evaluate nodes whose inputs are all constant (Constant, Shape of a static tensor, ...)."""
    kept = []
    for node in graph.nodes:
        outputs_needed = any(o in graph.outputs for o in node.output)
        if node.op_type == "Constant" and not outputs_needed:
            value = onnx.helper.get_attribute_value(node.attribute[0])
            if isinstance(value, onnx.TensorProto):
                graph.initializers[node.output[0]] = numpy_helper.to_array(value)
            else:
                graph.initializers[node.output[0]] = np.array(value)
            continue
        if node.op_type == "Shape" and node.input[0] in graph.shapes and not outputs_needed:
            shape = np.array(graph.shapes[node.input[0]], dtype=np.int64)
            start, end = attribute(node, "start", 0), attribute(node, "end", None)
            graph.initializers[node.output[0]] = shape[start:end]
            continue
        foldable = (node.op_type not in _KEEP and node.domain in ("", "ai.onnx") and not outputs_needed
                    and all(not i or graph.is_const(i) for i in node.input) and any(node.input))
        if foldable:
            try:
                results = _evaluate(graph, node, [graph.initializers.get(i) for i in node.input])
            except Exception as exc:
                raise UnsupportedModelError(f"constant folding failed: {exc}", node=node.name,
                                            op=node.op_type) from None
            for name, value in zip(node.output, results):
                graph.initializers[name] = np.asarray(value)
                graph.shapes[name] = np.asarray(value).shape
            continue
        kept.append(node)
    graph.nodes = kept
    return graph


def _const_value(graph: OnnxGraph, name: str) -> np.ndarray | None:
    """The float value of an initializer or of DequantizeLinear(initializer)."""
    if name in graph.initializers:
        return graph.initializers[name].astype(np.float64)
    node = graph.producer(name)
    if node is not None and node.op_type == "DequantizeLinear" and graph.is_const(node.input[0]):
        x = graph.initializers[node.input[0]].astype(np.float64)
        scale = graph.initializers[node.input[1]].astype(np.float64)
        zp = graph.initializers[node.input[2]].astype(np.float64) if len(node.input) > 2 and node.input[2] else 0.0
        axis = attribute(node, "axis", 1)
        if np.ndim(scale) == 1 and scale.size > 1:
            shape = [1] * x.ndim
            shape[axis] = -1
            scale, zp = scale.reshape(shape), np.reshape(zp, shape) if np.ndim(zp) else zp
        return (x - zp) * scale
    return None


def fold_batch_norm(graph: OnnxGraph) -> OnnxGraph:
    """Conv -> BatchNormalization becomes one Conv with rescaled weights and bias (a BatchNormalization
    anywhere else stays, for the importer's affine op)."""
    for bn in [n for n in graph.nodes if n.op_type == "BatchNormalization"]:
        conv = graph.producer(bn.input[0])
        if conv is None or conv.op_type != "Conv" or graph.uses(conv.output[0]) != 1:
            continue  # a standalone one: an affine requantization (frontend.elementwise)
        params = [_const_value(graph, n) for n in bn.input[1:5]]
        if any(p is None for p in params):
            raise UnsupportedModelError("BatchNormalization parameters must be constant", node=bn.name,
                                        op=bn.op_type)
        gamma, beta, mean, var = params
        a = gamma / np.sqrt(var + attribute(bn, "epsilon", 1e-5))
        b = beta - mean * a
        w_name = conv.input[1]
        w_dq = graph.producer(w_name)
        if w_name in graph.initializers:
            w = graph.initializers[w_name].astype(np.float64)
            graph.initializers[w_name] = (w * a.reshape(-1, 1, 1, 1)).astype(np.float32)
        elif w_dq is not None and w_dq.op_type == "DequantizeLinear" and graph.is_const(w_dq.input[0]):
            # Quantized weights keep their integers: the per-channel scale absorbs |a|, the sign flips w.
            q = graph.initializers[w_dq.input[0]].astype(np.int64)
            scale = np.broadcast_to(graph.initializers[w_dq.input[1]].astype(np.float64), a.shape)
            zp_name = w_dq.input[2] if len(w_dq.input) > 2 else ""
            zp = np.broadcast_to(graph.initializers[zp_name].astype(np.int64), a.shape) if zp_name else 0 * a
            sign = np.where(a < 0, -1, 1)
            graph.initializers[w_dq.input[0]] = q * sign.reshape(-1, 1, 1, 1)
            graph.initializers[w_dq.input[1]] = (scale * np.abs(a)).astype(np.float32)
            new_zp = f"{w_dq.input[0]}_bnfold_zero_point"
            graph.initializers[new_zp] = (zp * sign).astype(np.int64)
            w_dq.input[2:] = [new_zp]
            del w_dq.attribute[:]
            w_dq.attribute.append(helper.make_attribute("axis", 0))
        else:
            raise UnsupportedModelError("the Conv before BatchNormalization needs constant weights",
                                        node=bn.name, op=bn.op_type)
        old_bias = _const_value(graph, conv.input[2]) if len(conv.input) > 2 and conv.input[2] else 0.0
        bias_name = f"{conv.name}_bnfold_bias"
        graph.initializers[bias_name] = (a * old_bias + b).astype(np.float32)
        conv.input[2:] = [bias_name]
        graph.rename_uses(bn.output[0], conv.output[0])
        graph.nodes.remove(bn)
        log.info("folded %s into %s", bn.name, conv.name)
    return graph


def _per_channel_bias(value: np.ndarray, channels: int, conv: bool) -> np.ndarray | None:
    shapes = [(channels,), (1, channels)] + ([(channels, 1, 1), (1, channels, 1, 1)] if conv else [])
    return value.reshape(channels) if value.shape in shapes else None


def fold_bias_add(graph: OnnxGraph) -> OnnxGraph:
    """Conv/Gemm/MatMul -> Add(constant per channel) becomes the op's bias (MatMul becomes Gemm)."""
    for add in [n for n in graph.nodes if n.op_type == "Add"]:
        for mine, other in ((0, 1), (1, 0)):
            op = graph.producer(add.input[mine])
            value = _const_value(graph, add.input[other])
            if op is None or value is None or op.op_type not in ("Conv", "Gemm", "MatMul"):
                continue
            if graph.uses(op.output[0]) != 1:
                continue
            weights = _const_value(graph, op.input[1])
            if weights is None:
                continue
            if op.op_type == "Conv":
                channels = weights.shape[0]
            elif op.op_type == "Gemm":
                channels = weights.shape[0] if attribute(op, "transB", 0) else weights.shape[1]
            else:
                if weights.ndim != 2 or len(graph.shapes.get(op.input[0], ())) != 2:
                    continue
                channels = weights.shape[1]
            bias = _per_channel_bias(value, channels, op.op_type == "Conv")
            if bias is None:
                continue
            if op.op_type == "Gemm" and attribute(op, "beta", 1.0) != 1.0 and len(op.input) > 2:
                continue
            if len(op.input) > 2 and op.input[2]:
                old = _const_value(graph, op.input[2])
                if old is None:
                    continue
                bias = bias + old.reshape(channels)
                name = f"{op.name}_folded_bias"
                graph.initializers[name] = bias.astype(np.float32)
                op.input[2] = name
            elif value.shape == (channels,):
                op.input.append(add.input[other])  # keep DequantizeLinear(int32) biases exact
            else:
                name = f"{op.name}_folded_bias"
                graph.initializers[name] = bias.astype(np.float32)
                op.input.append(name)
            if op.op_type == "MatMul":
                op.op_type = "Gemm"
            graph.rename_uses(add.output[0], op.output[0])
            graph.nodes.remove(op)  # the op takes the Add's place: the bias may be computed after the op
            graph.nodes[graph.nodes.index(add)] = op
            log.info("folded %s into %s as its bias", add.name, op.name)
            break
    return graph


#: Float ops that only move values: a chain of them from a model input to its QuantizeLinear runs on
#: the host (a TFLite conversion's Transpose of its NHWC input, a Reshape).
HEAD_OPS = ("Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity")


def _quantizers(graph: OnnxGraph, tensor: str) -> bool:
    consumers = graph.consumers(tensor)
    return bool(consumers) and all(c.op_type == "QuantizeLinear" or (c.op_type == "Quant" and c.domain in QONNX_DOMAINS)
                                   for c in consumers)


def _strip_head(graph: OnnxGraph, name: str) -> str:
    """A float input that reaches its quantizers through a chain of HEAD_OPS: the chain leaves the graph
    for the host (an index map: the chain run on the input's element indices) and its end becomes the
    input. Returns the input the quantizers read."""
    chain, tensor = [], name
    while not _quantizers(graph, tensor):
        consumers = graph.consumers(tensor)
        if len(consumers) != 1 or consumers[0].op_type not in HEAD_OPS or tensor in graph.outputs:
            return name
        node = consumers[0]
        if node.domain not in ("", "ai.onnx") or any(i and i != tensor and not graph.is_const(i) for i in node.input):
            return name
        chain.append(node)
        tensor = node.output[0]
    if not chain:
        return name
    shape = graph.shapes.get(name)
    if shape is None:
        raise UnsupportedModelError(f"graph input {name!r} has no static shape")
    index = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)
    for node in chain:
        index = np.asarray(_evaluate(graph, node, [index if i == node.input[0] else graph.initializers.get(i)
                                                   for i in node.input])[0])
    graph.nodes = [n for n in graph.nodes if n not in chain]
    graph.inputs[graph.inputs.index(name)] = tensor
    graph.shapes[tensor], graph.dtypes[tensor] = index.shape, graph.dtypes[name]
    # one sample (batch 1) is all the indices: the host applies the map to each sample of a batch
    graph.heads[tensor] = (name, HostHead(tuple(shape), tuple(int(i) for i in index.reshape(-1)),
                                          tuple(n.op_type for n in chain)))
    log.info("host head: %s", " -> ".join(n.op_type for n in chain))
    return tensor


def strip_input_quantize(graph: OnnxGraph) -> OnnxGraph:
    """A float input consumed only by QuantizeLinear (or QONNX Quant), maybe after a chain of data
    movement (`_strip_head`), becomes an integer input; the host quantizes it."""

    for name in list(graph.inputs):
        dtype = graph.dtypes.get(name)
        if dtype is None or dtype.kind != "f":
            continue
        name = _strip_head(graph, name)
        consumers = graph.consumers(name)
        if not consumers:
            continue
        if all(c.op_type == "QuantizeLinear" for c in consumers):
            _strip_quantize_linear(graph, name, consumers)
        elif all(c.op_type == "Quant" and c.domain in QONNX_DOMAINS for c in consumers):
            _strip_qonnx_quant(graph, name, consumers)
        # otherwise the importer reports the float use with the node's name
    return graph


def _merge_same_quantizers(graph: OnnxGraph, name: str, consumers: list[onnx.NodeProto]) -> onnx.NodeProto:
    """One quantizer for the input: the others must have the same parameters and are replaced by it."""
    first = consumers[0]
    if not all(graph.is_const(i) for i in first.input[1:] if i):
        raise UnsupportedModelError("input quantization parameters must be constant", node=first.name,
                                    op=first.op_type)
    for c in consumers[1:]:
        same = all(np.array_equal(graph.initializers.get(a), graph.initializers.get(b))
                   for a, b in zip(first.input[1:], c.input[1:])) and list(c.attribute) == list(first.attribute)
        if not same:
            raise UnsupportedModelError(f"input {name!r} is quantized twice with different parameters",
                                        node=c.name, op=c.op_type)
        graph.rename_uses(c.output[0], first.output[0])
        graph.nodes.remove(c)
    return first


def _strip_quantize_linear(graph: OnnxGraph, name: str, consumers: list[onnx.NodeProto]) -> None:
    first = _merge_same_quantizers(graph, name, consumers)
    scale = graph.initializers[first.input[1]]
    check_scales(scale, first.name, first.op_type, f"the scale of input {name!r}")
    zp = graph.initializers[first.input[2]] if len(first.input) > 2 and first.input[2] else None
    if zp is None:  # QuantizeLinear's output type then is output_dtype, or uint8
        out_type = attribute(first, "output_dtype", onnx.TensorProto.UINT8) or onnx.TensorProto.UINT8
        zp = np.zeros((), dtype=helper.tensor_dtype_to_np_dtype(out_type))
    if np.asarray(zp).dtype.name not in ("int8", "uint8", "int16", "uint16", "int32", "uint32"):
        raise UnsupportedModelError(f"quantizes to {np.asarray(zp).dtype}; hwgen quantizes to 8, 16 or 32-bit "
                                    "integers", node=first.name, op=first.op_type)
    q_out = first.output[0]
    graph.nodes.remove(first)
    graph.inputs[graph.inputs.index(name)] = q_out
    graph.shapes[q_out] = graph.shapes[name]
    graph.dtypes[q_out] = np.asarray(zp).dtype
    if np.asarray(zp).shape != np.shape(scale):
        zp = np.broadcast_to(zp, np.shape(scale))
    graph.input_quant[q_out] = InputQuant(name, str(graph.dtypes[name]), scale, np.asarray(zp),
                                          attribute(first, "axis", 1), attribute(first, "block_size", 0))


def _strip_qonnx_quant(graph: OnnxGraph, name: str, consumers: list[onnx.NodeProto]) -> None:
    """Quant(x) = DQ(Q(x)): the host does Q; a DequantizeLinear of the new integer input stays."""

    first = _merge_same_quantizers(graph, name, consumers)
    spec = quant_spec(first, lambda i: graph.initializers.get(first.input[i]) if i < len(first.input) else None)
    if spec.narrow or spec.scale.size != 1 or spec.zero_point.size != 1:
        raise UnsupportedModelError("hwgen quantizes inputs per tensor without narrow range", node=first.name,
                                    op=first.op_type)
    container = spec.itype.numpy_dtype()
    q_in = f"{first.output[0]}_quantized"
    scale_name, zp_name = f"{q_in}_scale", f"{q_in}_zero_point"
    graph.initializers[scale_name] = spec.scale.astype(np.float32).reshape(())
    graph.initializers[zp_name] = spec.zero_point.astype(container).reshape(())
    dq = helper.make_node("DequantizeLinear", [q_in, scale_name, zp_name], [first.output[0]], name=first.name)
    graph.nodes[graph.nodes.index(first)] = dq
    graph.inputs[graph.inputs.index(name)] = q_in
    graph.shapes[q_in] = graph.shapes[name]
    graph.dtypes[q_in] = container
    graph.input_quant[q_in] = InputQuant(name, str(graph.dtypes[name]), graph.initializers[scale_name],
                                         graph.initializers[zp_name], 1, 0, spec.itype)


def split_host_tail(graph: OnnxGraph) -> OnnxGraph:
    """Float ops after the last DequantizeLinear of each path move to a host-side ONNX model."""
    def activation_dq(node):
        return node.op_type == "DequantizeLinear" and not graph.is_const(node.input[0])

    # A tail starts at a DequantizeLinear of an activation with no later one and no compute op after
    # it (a compute op there is the last layer, whose missing QuantizeLinear the importer reports).
    tail_ids: set[int] = set()
    for node in graph.nodes:
        if activation_dq(node):
            after = graph.downstream(node)
            if not any(activation_dq(n) or n.op_type in COMPUTE_OPS for n in after[1:]):
                tail_ids.update(id(n) for n in after)
    if not tail_ids:
        return graph
    tail = [n for n in graph.nodes if id(n) in tail_ids]
    produced = {o for n in tail for o in n.output}
    tail_inputs = []
    for node in tail:
        for name in node.input:
            if name and name not in produced and not graph.is_const(name) and name not in tail_inputs:
                tail_inputs.append(name)
    graph.nodes = [n for n in graph.nodes if id(n) not in tail_ids]
    tail_outputs = [o for o in graph.outputs if o in produced]
    core_outputs = [o for o in graph.outputs if o not in produced]
    graph.outputs = core_outputs + [t for t in tail_inputs if t not in core_outputs]

    used = {i for n in tail for i in n.input if graph.is_const(i)}
    def value_info(name, fallback_dtype=None):
        dtype = graph.dtypes.get(name, fallback_dtype)
        elem = helper.np_dtype_to_tensor_dtype(dtype) if dtype is not None else onnx.TensorProto.FLOAT
        return helper.make_tensor_value_info(name, elem, graph.shapes.get(name))
    inputs = []
    for name in tail_inputs:
        dq = next(n for n in tail if name in n.input)
        if any(p and not graph.is_const(p) for p in dq.input[1:]):
            raise UnsupportedModelError("quantization parameters (scale, zero point) must be constants",
                                        node=dq.name, op=dq.op_type)
        zp_dtype = graph.initializers[dq.input[2]].dtype if len(dq.input) > 2 and dq.input[2] else np.uint8
        graph.dtypes.setdefault(name, np.dtype(zp_dtype))
        inputs.append(value_info(name))
    model = helper.make_model(
        helper.make_graph(tail, "host_tail", inputs, [value_info(o) for o in tail_outputs],
                          [numpy_helper.from_array(graph.initializers[i], i) for i in sorted(used)]),
        opset_imports=graph.opset_imports, ir_version=graph.ir_version)
    graph.tail = HostTail(model.SerializeToString(), tuple(n.op_type for n in tail), tuple(tail_outputs))
    log.info("host tail: %s", " -> ".join(n.op_type for n in tail))
    return graph


def add_output_dequantize(graph: OnnxGraph, acc: str, output: str, scale: np.ndarray, rank: int,
                          dtype: np.dtype, zero_point: int = 0, int_dtype: np.dtype = np.dtype(np.int32)) -> HostTail:
    """The host tail, extended by DequantizeLinear(acc) -> output, per channel (axis 1, or 0 for a vector)
    or per tensor (one scale); acc is of `int_dtype`."""
    if graph.tail is not None:
        model = onnx.load_model_from_string(graph.tail.model)
    else:
        model = helper.make_model(helper.make_graph([], "host_tail", [], []), opset_imports=graph.opset_imports,
                                  ir_version=graph.ir_version)
    g = model.graph
    scale_name, zp_name = f"{acc}_scale", f"{acc}_zero_point"
    per_tensor = len(scale) == 1
    g.initializer.extend([numpy_helper.from_array(np.asarray(scale, dtype=np.float32).reshape(() if per_tensor else -1),
                                                  scale_name),
                          numpy_helper.from_array(np.full(() if per_tensor else len(scale), zero_point,
                                                          dtype=int_dtype), zp_name)])
    g.node.append(helper.make_node("DequantizeLinear", [acc, scale_name, zp_name], [output],
                                   **({} if per_tensor else {"axis": 1 if rank >= 2 else 0})))
    g.input.append(helper.make_tensor_value_info(acc, helper.np_dtype_to_tensor_dtype(np.dtype(int_dtype)), None))
    g.output.append(helper.make_tensor_value_info(output, helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), None))
    ops = (graph.tail.ops if graph.tail else ()) + ("DequantizeLinear",)
    outputs = (graph.tail.outputs if graph.tail else ()) + (output,)
    return HostTail(model.SerializeToString(), ops, outputs)


#: The pre-import pipeline, in order.
ONNX_PASSES = (
    fold_constants,        # Constant / Shape / arithmetic on constants -> initializers
    fold_batch_norm,       # Conv -> BatchNormalization -> one Conv (others stay: affine ops)
    fold_bias_add,         # Conv/Gemm/MatMul -> Add(const) -> bias
    strip_input_quantize,  # float input -> QuantizeLinear: quantize on the host
    split_host_tail,       # float ops after the last DequantizeLinear: run on the host
)


def run_onnx_passes(graph: OnnxGraph) -> OnnxGraph:
    for step in ONNX_PASSES:
        graph = step(graph)
    return graph
