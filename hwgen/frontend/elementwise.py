"""Elementwise ops between quantized tensors: functions as lookup tables, products, and multiply-adds
by constants (Mul, Div, Add, Sub with a constant, a standalone BatchNormalization) as one affine
requantization.

A function of one activation of at most `MAX_LOOKUP_BITS` bits becomes the table of its results,
computed by running the ONNX op itself in onnxruntime on every dequantized input value, so it is
exactly the float path of the QDQ graph.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .. import fixed
from ..ir import MAX_LOOKUP_BITS
from .graph import attribute
from .lower import Act, OutQuant
from .values import Const, Deq, Island, Pending, QConst

if TYPE_CHECKING:  # the importer calls these handlers
    from .importer import Importer

#: ONNX ops that are an elementwise function of one activation (their other inputs constant):
#: each becomes a lookup table.
FUNCTIONS = (
    "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "LeakyRelu", "PRelu", "Exp", "Log", "Softplus", "Softsign",
    "Elu", "Selu", "Celu", "ThresholdedRelu", "Gelu", "Erf", "Mish", "Sqrt", "Reciprocal", "Abs", "Neg", "Sign",
    "Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "Floor", "Ceil",
    "Round", "Shrink", "Pow",
)


def _describe(node: onnx.NodeProto) -> str:
    """The function as a report shows it: its op and attributes."""
    attrs = []
    for a in node.attribute:
        value = helper.get_attribute_value(a)
        attrs.append(f"{a.name}={value.decode('utf-8', 'replace') if isinstance(value, bytes) else value!r}")
    return f"{node.op_type}({', '.join(attrs)})" if attrs else node.op_type


def _run_op(ctx: Importer, node: onnx.NodeProto, feeds: dict[int, np.ndarray]) -> np.ndarray:
    """The op's float result on `feeds` (input index -> array; its other inputs: their constants), as
    onnxruntime computes it (onnx's reference implementation where onnxruntime does not run the op at
    the model's opset)."""
    names = [f"in{i}" if i in feeds else f"const{i}" for i in range(len(node.input))]
    single = helper.make_node(node.op_type, [n if node.input[i] else "" for i, n in enumerate(names)], ["y"],
                              domain=node.domain)
    single.attribute.extend(node.attribute)
    consts = [numpy_helper.from_array(np.asarray(ctx.const_value(node, i)), names[i])
              for i in range(len(node.input)) if i not in feeds and node.input[i]]
    inputs = [helper.make_tensor_value_info(names[i], onnx.TensorProto.FLOAT, list(np.shape(a)))
              for i, a in feeds.items()]
    output = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)
    model = helper.make_model(helper.make_graph([single], "lookup", inputs, [output], consts),
                              opset_imports=ctx.g.opset_imports, ir_version=ctx.g.ir_version)
    arrays = {names[i]: np.asarray(a, dtype=np.float32) for i, a in feeds.items()}
    try:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 4
        session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        return session.run(None, arrays)[0]
    except Exception:  # onnxruntime lacks the op at this opset
        from onnx.reference import ReferenceEvaluator

        try:
            return np.asarray(ReferenceEvaluator(model).run(None, arrays)[0], dtype=np.float32)
        except Exception as exc:
            ctx.fail(node, f"cannot evaluate the op to tabulate it: {exc}")


def _island(v) -> Island | None:
    """v as an elementwise function of one activation: a dequantized activation is its identity."""
    if isinstance(v, Deq):
        return Island(v, lambda values: values)
    if isinstance(v, Pending):
        return v.island
    return None


def _probe_shape(ctx: Importer, node: onnx.NodeProto, x: Act, x_index: int) -> tuple[int, ...] | None:
    """The shape, but for its leading axis of the table's inputs, that covers each channel once: () when
    every constant is one value, (C, 1, 1) or (.., C) when some are one per channel; None when a constant
    varies along another axis."""
    per_channel = False
    for i in range(len(node.input)):
        if i == x_index or not node.input[i]:
            continue
        c = np.asarray(ctx.const_value(node, i))
        if c.size == 1:
            continue
        if not _varies_by_channel(x, c.shape):
            return None
        per_channel = True
    if not per_channel:
        return ()
    channels = x.tensor.shape[-1]
    return (channels, 1, 1) if x.is_map else (1,) * (len(x.onnx_shape) - 2) + (channels,)


def _varies_by_channel(x: Act, shape) -> bool:
    """Whether a constant of `shape` broadcast against x varies along x's channel axis only."""
    padded = (1,) * (len(x.onnx_shape) - len(shape)) + tuple(shape)
    channel = 1 if x.is_map else len(x.onnx_shape) - 1
    return len(padded) == len(x.onnx_shape) and all(d == 1 or (i == channel and d == x.onnx_shape[i])
                                                    for i, d in enumerate(padded))


def function(ctx: Importer, node: onnx.NodeProto, x_index: int = 0) -> None:
    """An elementwise function of input `x_index` (the others constant) as a lookup table; of a float
    function of one activation with no QuantizeLinear between (an island), the table of both."""
    for i in range(len(node.input)):
        if i != x_index and node.input[i] and not isinstance(ctx.value(node, i), (Const, QConst)):
            ctx.fail(node, f"input {node.input[i]!r} must be constant: hwgen tabulates functions of one activation")
    v = ctx.value(node, x_index)
    if isinstance(v, Pending) and v.island is not None:  # f(g(x)): one table
        inner = v.island

        def composed(values: np.ndarray) -> np.ndarray:
            return _run_op(ctx, node, {x_index: inner.evaluate(values)}).reshape(-1)

        if _probe_shape(ctx, node, inner.source.act, x_index) != ():
            ctx.fail(node, "a per-channel constant in a chain of float functions with no QuantizeLinear between")
        ctx.set(node, _table(ctx, node, Island(inner.source, composed)))
        return
    x = ctx.deq(node, x_index)
    probe = _probe_shape(ctx, node, x.act, x_index)
    if probe is None:
        ctx.fail(node, "a constant input varies along an axis other than the channels: hwgen tabulates one "
                       "function per channel")

    def evaluate(values: np.ndarray) -> np.ndarray:
        x_in = np.ascontiguousarray(np.broadcast_to(values.reshape(-1, *([1] * len(probe))), (len(values), *probe)))
        y = _run_op(ctx, node, {x_index: x_in})
        return y.reshape(len(values), -1).T  # (channels, inputs)

    ctx.set(node, _table(ctx, node, Island(x, evaluate), composable=probe == ()))


def _table(ctx: Importer, node: onnx.NodeProto, island: Island, composable: bool = True) -> Pending:
    """The Pending lookup table of the island's function (an island itself unless per channel)."""
    x, t = island.source, island.source.act.tensor
    if t.dtype.bits > MAX_LOOKUP_BITS:
        ctx.fail(node, f"input is {t.dtype}: a lookup table needs an input of at most {MAX_LOOKUP_BITS} bits "
                       f"(its {1 << t.dtype.bits} entries are computed at compile time)")

    def emit(out: OutQuant, name: str) -> Act:
        try:
            tables = fixed.lookup_table(island.evaluate, t.dtype, x.scale, t.zero_point, out.dtype, out.scale,
                                        out.zero_point, out.lo, out.hi)
        except ValueError as exc:
            ctx.fail(node, str(exc))
        distinct, channel_tables = np.unique(tables.reshape(-1, tables.shape[-1]), axis=0, return_inverse=True)
        if len(distinct) == 1:
            channel_tables = ()
        else:  # in the order of first use, so the tables read in channel order
            order = list(dict.fromkeys(channel_tables.reshape(-1).tolist()))
            distinct = distinct[order]
            channel_tables = [order.index(k) for k in channel_tables.reshape(-1).tolist()]
        return ctx.builder.lookup(node.name, x.act, distinct, channel_tables, _describe(node), out=out, out_name=name)

    flat = Island(x, lambda values: island.evaluate(values).reshape(-1)) if composable else None
    return Pending(node, emit, island=flat)


def _binary_island(ctx: Importer, node: onnx.NodeProto, values) -> bool:
    """An elementwise op of float functions of one activation (at least one unquantized: x * Sigmoid(x)
    with no QuantizeLinear after the Sigmoid), or of one such function and a constant: one table."""
    if not any(isinstance(v, Pending) and v.island is not None for v in values):
        return False
    islands = {i: _island(v) for i, v in enumerate(values) if not isinstance(v, (Const, QConst))}
    if any(island is None for island in islands.values()):
        return False
    sources = {island.source.act.name for island in islands.values()}
    if len(sources) != 1:
        ctx.fail(node, "combines float results of different activations with no QuantizeLinear between")
    source = next(iter(islands.values())).source
    for i, v in enumerate(values):
        if isinstance(v, (Const, QConst)) and np.asarray(ctx.const_value(node, i)).size != 1:
            ctx.fail(node, "a per-channel constant in a chain of float functions with no QuantizeLinear between")

    def evaluate(x: np.ndarray) -> np.ndarray:
        return _run_op(ctx, node, {i: island.evaluate(x) for i, island in islands.items()}).reshape(-1)

    ctx.set(node, _table(ctx, node, Island(source, evaluate)))
    return True


# -- products and sums with constants ------------------------------------------------------


def _constant_index(values) -> int | None:
    kinds = [isinstance(v, (Const, QConst)) for v in values]
    return kinds.index(True) if kinds.count(True) == 1 else None


def _per_channel(ctx: Importer, node: onnx.NodeProto, x: Act, c: np.ndarray) -> np.ndarray:
    """A constant broadcast against x as one value per IR channel (or one value)."""
    if c.size == 1:
        return c.reshape(1)
    if c.ndim > len(x.onnx_shape) or not _varies_by_channel(x, c.shape):
        ctx.fail(node, f"constant of shape {list(c.shape)} against {list(x.onnx_shape)}: hwgen multiplies and adds "
                       "one value, or one value per channel")
    return c.reshape(-1)


def arithmetic(ctx: Importer, node: onnx.NodeProto) -> None:
    """Add, Sub, Mul, Div: of two activations (Add, Sub, Mul), or of an activation and a constant
    (an affine requantization; a constant divided by an activation is a lookup table)."""
    values = [ctx.value(node, 0), ctx.value(node, 1)]
    if _binary_island(ctx, node, values):
        return
    k = _constant_index(values)
    op = node.op_type
    if k is not None and isinstance(values[1 - k], Pending) and op in ("Mul", "Div") and (op == "Mul" or k == 1):
        _scale_pending(ctx, node, values[1 - k], ctx.real_value(node, k), op)
        return
    if k is None:
        a, b = ctx.deq(node, 0), ctx.deq(node, 1)
        if op == "Div":
            ctx.fail(node, "divides an activation by an activation; hwgen divides by constants only")

        def emit(out: OutQuant, name: str) -> Act:
            if op == "Mul":
                return ctx.builder.mul(node.name, a.act, a.scale, b.act, b.scale, out=out, out_name=name, op=op)
            return ctx.builder.add(node.name, a.act, a.scale, b.act, b.scale, out=out, out_name=name, op=op,
                                   subtract=op == "Sub")

        ctx.set(node, Pending(node, emit))
        return
    if op == "Div" and k == 0:
        function(ctx, node, x_index=1)
        return
    x = ctx.deq(node, 1 - k)
    c = _per_channel(ctx, node, x.act, ctx.real_value(node, k))
    one, zero = np.ones(1), np.zeros(1)
    if op == "Div" and np.any(c == 0):
        ctx.fail(node, "divides by a constant zero")
    scale, offset = {
        "Add": lambda: (one, c),
        "Sub": lambda: (one, -c) if k == 1 else (-one, c),
        "Mul": lambda: (c, zero),
        "Div": lambda: (1 / c, zero),
    }[op]()

    def emit(out: OutQuant, name: str) -> Act:
        return ctx.builder.affine(node.name, x.act, x.scale, scale, offset, out=out, out_name=name, op=op)

    ctx.set(node, Pending(node, emit))


def _scale_pending(ctx: Importer, node: onnx.NodeProto, v: Pending, c: np.ndarray, op: str) -> None:
    """A float op's result times (or divided by) a positive constant, before its QuantizeLinear:
    quantizing c*y with scale s is quantizing y with scale s/c (a pool's sum, as Brevitas writes
    a truncating average pool)."""
    if c.size != 1 or not np.isfinite(c).all() or float(c.reshape(())) <= 0:
        ctx.fail(node, f"input {v.node.name!r} ({v.node.op_type}) has no QuantizeLinear before this {op}; hwgen "
                       "folds only a positive scalar here")
    factor = float(c.reshape(())) if op == "Mul" else 1 / float(c.reshape(()))

    def emit(out: OutQuant, name: str) -> Act:
        act = v.emit(dataclasses.replace(out, scale=out.scale / factor), name)
        t = dataclasses.replace(act.tensor, scale=(out.scale,))  # the tensor's (informational) scale is the Q's
        ctx.builder.replace_tensor(t)
        return dataclasses.replace(act, tensor=t)

    ctx.set(node, dataclasses.replace(v, node=node, emit=emit, lo=v.lo * factor, hi=v.hi * factor, acc_scale=None))


def batch_normalization(ctx: Importer, node: onnx.NodeProto) -> None:
    """A BatchNormalization that no Conv absorbed: y = a*x + b per channel."""
    if len([o for o in node.output if o]) > 1:
        ctx.fail(node, "training outputs (running mean and variance) are not supported")
    if attribute(node, "training_mode", 0):
        ctx.fail(node, "training_mode=1 is not supported")
    x = ctx.deq(node, 0)
    channel_axis = 1
    if x.act.ir_axis(channel_axis) != len(x.act.tensor.shape) - 1:
        ctx.fail(node, f"normalizes axis 1 of {list(x.act.onnx_shape)}, which hwgen does not hold as channels")
    gamma, beta, mean, var = (ctx.real_value(node, i).reshape(-1) for i in range(1, 5))
    channels = x.act.tensor.shape[-1]
    if any(p.size not in (1, channels) for p in (gamma, beta, mean, var)):
        ctx.fail(node, f"parameters must have one value per channel ({channels})")
    eps = attribute(node, "epsilon", 1e-5)
    a = gamma / np.sqrt(var + eps)
    b = beta - mean * a
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        ctx.fail(node, "parameters give an infinite or undefined scale (variance + epsilon <= 0)")

    def emit(out: OutQuant, name: str) -> Act:
        return ctx.builder.affine(node.name, x.act, x.scale, a, b, out=out, out_name=name, op=node.op_type)

    ctx.set(node, Pending(node, emit))


HANDLERS = {
    **dict.fromkeys(FUNCTIONS, function),
    "Add": arithmetic,
    "Sub": arithmetic,
    "Mul": arithmetic,
    "Div": arithmetic,
    "BatchNormalization": batch_normalization,
}
