"""Reading an ONNX file: the checker, shape inference and static-shape checks, with clear errors."""

from __future__ import annotations

import contextlib
import logging
import math
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from ..errors import ModelLoadError, UnsupportedModelError
from .qonnx import QONNX_DOMAINS

log = logging.getLogger(__name__)

#: Larger dimensions or tensors than these are refused as absurd for the devices hwgen targets.
MAX_DIM = 1 << 16
MAX_ELEMENTS = 1 << 26


def load_model(path: str | Path) -> onnx.ModelProto:
    """Read, check and shape-infer an ONNX model file."""
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"{path}: no such file")
    if not path.is_file():
        raise ModelLoadError(f"{path}: not a file")
    data = path.read_bytes()
    if not data:
        raise ModelLoadError(f"{path}: empty file, not an ONNX model")
    try:
        model = onnx.load_model_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"{path}: not an ONNX model (protobuf parse failed: {exc})") from None
    if not model.HasField("graph") or not model.graph.node and not model.graph.output:
        raise ModelLoadError(f"{path}: not an ONNX model (no graph)")
    _check_strings(model, str(path))
    return check_model(model, str(path))


def _check_strings(message, where: str) -> None:
    """Every string field is UTF-8. (Protobuf checks only when a string is read, and then raises or
    hands back bytes, deep inside a compile or the ONNX checker.)"""
    try:
        for field, value in message.ListFields():
            items = value if field.is_repeated else (value,)
            if field.type == field.TYPE_MESSAGE:
                for item in items:
                    _check_strings(item, where)
            elif field.type == field.TYPE_STRING and any(not isinstance(item, str) for item in items):
                raise UnicodeDecodeError("utf-8", b"", 0, 1, f"in field {field.name!r}")
    except UnicodeDecodeError as exc:
        raise ModelLoadError(f"{where}: not an ONNX model (a name or string is not UTF-8: {exc.reason})") from None


def _check_graph_interface(model: onnx.ModelProto, where: str) -> None:
    """What the ONNX checker lets through but no compile can use."""
    if not model.graph.output:
        raise ModelLoadError(f"{where}: the graph has no outputs: nothing to compute")
    newest = onnx.defs.onnx_opset_version()
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx") and opset.version > newest:
            raise ModelLoadError(f"{where}: opset {opset.version} is newer than any this hwgen knows (ONNX "
                                 f"{onnx.__version__} defines up to {newest})")


def _import_qonnx_domains(model: onnx.ModelProto) -> onnx.ModelProto:
    """QONNX's custom ops with an opset import for their domain, as the QONNX model zoo's files lack
    (qonnx itself accepts them so)."""
    used = {node.domain for node in model.graph.node if node.domain in QONNX_DOMAINS}
    missing = sorted(used - {o.domain for o in model.opset_import})
    if not missing:
        return model
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    fixed.opset_import.extend(onnx.helper.make_opsetid(domain, 1) for domain in missing)
    log.info("added the opset import of %s", ", ".join(missing))
    return fixed


def check_model(model: onnx.ModelProto, where: str = "model") -> onnx.ModelProto:
    """onnx.checker, then static shapes, then onnx shape inference."""
    _check_graph_interface(model, where)
    model = _import_qonnx_domains(model)
    # graph outputs declared without a shape get one first (the checker demands it); on failure the
    # checker and the strict inference below report the problem
    with contextlib.suppress(onnx.shape_inference.InferenceError, RuntimeError):
        model = onnx.shape_inference.infer_shapes(model)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid"
        raise ModelLoadError(f"{where}: the ONNX checker rejects the model: {first}") from None
    model = fix_batch_dimension(model)
    check_static_shapes(model)
    try:
        return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except (onnx.shape_inference.InferenceError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise ModelLoadError(f"{where}: ONNX shape inference fails: {first}") from None


def fix_batch_dimension(model: onnx.ModelProto) -> onnx.ModelProto:
    """A symbolic leading (batch) dimension of a graph input becomes 1: hwgen compiles one sample."""
    initializers = {i.name for i in model.graph.initializer}
    changed = False
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for value in list(out.graph.input) + list(out.graph.output):
        if value.name in initializers or not value.type.HasField("tensor_type"):
            continue
        dims = value.type.tensor_type.shape.dim
        if len(dims) >= 2 and not dims[0].HasField("dim_value"):
            log.info("%s: batch dimension %r fixed to 1", value.name, dims[0].dim_param)
            dims[0].Clear()
            dims[0].dim_value = 1
            changed = True
    return out if changed else model


def check_static_shapes(model: onnx.ModelProto) -> None:
    initializers = {i.name for i in model.graph.initializer}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        if not value.type.HasField("tensor_type"):
            raise UnsupportedModelError(f"graph input {value.name!r} is not a tensor")
        if not value.type.tensor_type.HasField("shape"):
            raise UnsupportedModelError(f"graph input {value.name!r} has no shape; hwgen compiles fixed shapes")
        dims = []
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if not dim.HasField("dim_value"):
                name = dim.dim_param or "?"
                raise UnsupportedModelError(
                    f"graph input {value.name!r} has a dynamic dimension {name!r} at axis {axis}; "
                    f"hwgen compiles fixed shapes (export the model with a fixed input size)")
            dims.append(dim.dim_value)
        if any(d <= 0 for d in dims) or any(d > MAX_DIM for d in dims) or math.prod(dims) > MAX_ELEMENTS:
            raise UnsupportedModelError(f"graph input {value.name!r} has an absurd shape {dims}")
