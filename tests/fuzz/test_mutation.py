"""The robustness fuzzer: hypothesis mutates the bundled models (byte flips, truncation, random
attribute values, shapes, op types and initializers, names from a hostile alphabet, nodes removed
or rewired) and runs them through `hwgen compile`, `report` and `run`.

Whatever the model, hwgen ends with exit code 0, or 2 and one error line: never a traceback, never
an 'internal error', never a hang, and a failed compile writes nothing. CI runs 500
mutations (derandomized); `-m fuzz` runs thousands with fresh seeds.
"""

from __future__ import annotations

import contextlib
import re
import signal
import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from onnx import helper, numpy_helper

from hwgen.cli import main

from ..conftest import MODELS
from ..hostile import PAYLOADS

BASES = {
    "tinycnn_qdq": MODELS / "digits" / "tinycnn_pruned_qdq_s8s8_pc.onnx",
    "tinycnn_qop_intio": MODELS / "digits" / "tinycnn_fp32_qop_u8s8_pc_intio.onnx",
    "mobilenet_qdq_pt": MODELS / "digits" / "mobilenet" / "mobilenet_unstruct50_qdq_u8s8_pt.onnx",
    "brevitas_qonnx": MODELS / "brevitas" / "brevitas_w4a4_qonnx_ts_clean.onnx",
}
SOURCES = {name: path.read_bytes() for name, path in BASES.items()}
#: A hang is a failure: no compile of these small models takes this long.
TIMEOUT_SECONDS = 60

HOSTILE = st.sampled_from(PAYLOADS) | st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
INTS = st.sampled_from([-(2**31), -3, -1, 0, 1, 2, 3, 7, 2**31 - 1, 1 << 40])
FLOATS = st.sampled_from([float("nan"), float("inf"), -float("inf"), -1.0, 0.0, 1e-30, 0.5, 1e30])
ATTRIBUTES = ["kernel_shape", "strides", "pads", "dilations", "group", "axis", "alpha", "beta", "transA", "transB",
              "auto_pad", "ceil_mode", "count_include_pad", "min", "max", "perm", "keepdims", "block_size",
              "output_dtype", "narrow", "rounding_mode"]
OPS = ["Conv", "Relu", "Add", "Gemm", "MaxPool", "AveragePool", "Identity", "Tanh", "QuantizeLinear",
       "DequantizeLinear", "Reshape", "Concat", "Flatten", "QLinearConv", "Quant", "Clip", "NoSuchOp"]


@st.composite
def attribute_values(draw):
    kind = draw(st.sampled_from(["int", "ints", "float", "string"]))
    if kind == "int":
        return draw(INTS)
    if kind == "ints":
        return draw(st.lists(INTS, max_size=5))
    if kind == "float":
        return draw(FLOATS)
    return draw(st.sampled_from(["SAME_UPPER", "VALID", "NOTSET", "ROUND", "", "\x00"]))


@st.composite
def mutations(draw, model: onnx.ModelProto):
    """One structural change to `model` (in place), described in words."""
    g = model.graph
    kind = draw(st.sampled_from(["attribute", "shape", "names", "op_type", "delete node", "rewire", "initializer",
                                 "initializer dims", "dtype"]))
    node = g.node[draw(st.integers(0, len(g.node) - 1))]
    if kind == "attribute":
        name = draw(st.sampled_from([a.name for a in node.attribute] + ATTRIBUTES))
        value = draw(attribute_values())
        kept = [a for a in node.attribute if a.name != name]
        del node.attribute[:]
        typed = {"attr_type": onnx.AttributeProto.INTS} if value == [] else {}
        node.attribute.extend(kept + [helper.make_attribute(name, value, **typed)])
        return f"{node.name}.{name} = {value!r}"
    if kind == "shape":
        value = draw(st.sampled_from([*g.input, *g.output, *g.value_info]))
        dims = value.type.tensor_type.shape.dim
        if dims:
            dim = dims[draw(st.integers(0, len(dims) - 1))]
            dim.dim_value = draw(st.sampled_from([0, 1, 2, 3, 5, 1 << 20]))
        return f"a dimension of {value.name}"
    if kind == "names":
        for _ in range(draw(st.integers(1, 4))):
            target = draw(st.sampled_from(["node", "input", "output", "graph"]))
            if target == "node":
                node.name = draw(HOSTILE)
            elif target == "input" and node.input:
                node.input[draw(st.integers(0, len(node.input) - 1))] = draw(HOSTILE)
            elif target == "output":
                node.output[0] = draw(HOSTILE)
            else:
                g.name = draw(HOSTILE)
        return "names"
    if kind == "op_type":
        node.op_type = draw(st.sampled_from(OPS))
        return f"{node.name} becomes {node.op_type}"
    if kind == "delete node":
        g.node.remove(node)
        return f"{node.name} deleted"
    if kind == "rewire":
        produced = [o for n in g.node for o in n.output] + [i.name for i in g.input]
        if node.input:
            node.input[draw(st.integers(0, len(node.input) - 1))] = draw(st.sampled_from(produced))
        return f"an input of {node.name} rewired"
    if kind in ("initializer", "initializer dims", "dtype") and g.initializer:
        init = g.initializer[draw(st.integers(0, len(g.initializer) - 1))]
        try:
            array = numpy_helper.to_array(init)
        except Exception:  # noqa: BLE001 - an earlier mutation broke it already
            return "nothing"
        if kind == "initializer":
            if array.dtype.kind == "f":
                flat = array.reshape(-1).copy()
                if flat.size:
                    flat[draw(st.integers(0, flat.size - 1))] = draw(FLOATS)
                init.CopyFrom(numpy_helper.from_array(flat.reshape(array.shape), init.name))
            elif array.dtype.kind in "iu" and array.size:
                info = np.iinfo(array.dtype)
                flat = array.reshape(-1).copy()
                flat[draw(st.integers(0, flat.size - 1))] = draw(st.sampled_from([info.min, info.max, 0]))
                init.CopyFrom(numpy_helper.from_array(flat.reshape(array.shape), init.name))
        elif kind == "initializer dims":
            del init.dims[:]
            init.dims.extend(draw(st.lists(st.sampled_from([0, 1, 2, 3, 16, 1 << 30]), max_size=4)))
        else:
            init.data_type = draw(st.sampled_from([onnx.TensorProto.FLOAT, onnx.TensorProto.INT8,
                                                   onnx.TensorProto.INT32, onnx.TensorProto.STRING,
                                                   onnx.TensorProto.FLOAT8E4M3FN, onnx.TensorProto.INT4]))
        return f"initializer {init.name} ({kind})"
    return "nothing"


class Mutated:
    """A mutated model: its base, its bytes and what changed (shown without the bytes)."""

    def __init__(self, parts: tuple[str, bytes, str]):
        self.base, self.data, self.what = parts

    def __repr__(self) -> str:
        return f"Mutated({self.base!r}, {len(self.data)} bytes, {self.what!r})"

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(repr(self))


@st.composite
def _mutated(draw) -> tuple[str, bytes, str]:
    base = draw(st.sampled_from(sorted(BASES)))
    data = SOURCES[base]
    how = draw(st.sampled_from(["bytes", "truncate", "structure", "structure", "structure"]))
    if how == "bytes":
        flips = draw(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(1, 255)), min_size=1, max_size=8))
        buf = bytearray(data)
        for at, xor in flips:
            buf[at] ^= xor
        return base, bytes(buf), f"{len(flips)} bytes flipped"
    if how == "truncate":
        cut = draw(st.integers(0, len(data) - 1))
        return base, data[:cut], f"truncated to {cut} bytes"
    model = onnx.load_model_from_string(data)
    changes = [draw(mutations(model)) for _ in range(draw(st.integers(1, 3)))]
    return base, model.SerializeToString(), "; ".join(changes)


def mutated_models():
    return _mutated().map(Mutated)


@contextlib.contextmanager
def deadline(seconds: int):
    def hang(signum, frame):
        raise TimeoutError(f"hwgen did not finish within {seconds} s")

    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _input_for(base: str, tmp: Path) -> Path:
    model = onnx.load_model_from_string(SOURCES[base])
    value = model.graph.input[0]
    shape = [d.dim_value or 1 for d in value.type.tensor_type.shape.dim]
    dtype = helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, size=shape).astype(dtype) if np.dtype(dtype).kind == "f" else \
        rng.integers(0, 100, size=shape).astype(dtype)
    np.save(tmp / "x.npy", x)
    return tmp / "x.npy"


def check_one(capsys, base: str, data: bytes, command: str, what: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = tmp / "m.onnx"
        model.write_bytes(data)
        out = tmp / "out"
        argv = {"compile": ["compile", str(model), "-o", str(out)],
                "compile rvv": ["compile", str(model), "-o", str(out), "--target", "rvv", "--rvv-no-count"],
                "compile fpga": ["compile", str(model), "-o", str(out), "--target", "fpga"],
                "report": ["report", str(model)],
                "run": ["run", str(model), "--input", str(_input_for(base, tmp))]}[command]
        capsys.readouterr()
        with deadline(TIMEOUT_SECONDS):
            code = main(argv)
        err = capsys.readouterr().err
        where = f"{command} on {base} ({what})"
        event(f"{command}: exit {code}")
        assert code in (0, 2), f"{where}: exit code {code}: {err}"
        assert "Traceback" not in err and "internal error" not in err, f"{where}: {err}"
        if code == 2:
            assert err.count("\n") == 1 and re.match(r"hwgen( \w+)?: error: ", err), f"{where}: {err!r}"
            assert not out.exists(), f"{where}: a failed compile wrote {out}"


COMMANDS = st.sampled_from(["compile", "compile", "compile rvv", "report", "report", "run", "compile fpga"])
QUIET = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large]


@settings(max_examples=500, deadline=None, derandomize=True, database=None, suppress_health_check=QUIET)
@given(mutated_models(), COMMANDS)
def test_mutated_models_end_in_one_line_or_success(capsys, mutated, command):
    check_one(capsys, mutated.base, mutated.data, command, mutated.what)


@pytest.mark.fuzz
@settings(max_examples=5000, deadline=None, suppress_health_check=QUIET)
@given(mutated_models(), COMMANDS)
def test_fuzz_mutated_models(capsys, mutated, command):
    check_one(capsys, mutated.base, mutated.data, command, mutated.what)
