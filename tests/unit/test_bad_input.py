"""The bad-input suite: every kind of bad model, option, path, input array and compile output gets
one line on stderr and exit code 2 (1 for a failing external tool), with no traceback, nothing
written and nothing deleted."""

from __future__ import annotations

import re
import shutil

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from hwgen.cli import main

from ..conftest import DIGITS, MODELS
from .qmodels import GraphBuilder, Q, qdq_conv, random_weights

TINY = DIGITS / "tinycnn_pruned_qdq_s8s8_pc.onnx"
INTIO = DIGITS / "tinycnn_pruned_qdq_s8s8_pc_intio.onnx"


# -- the harness --------------------------------------------------------------------------------


def snapshot(root) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def check_refused(argv, tmp_path, capsys, monkeypatch, message: str, code: int = 2) -> str:
    """Run `hwgen argv` in tmp_path; it must fail with one line matching `message` and leave
    every file under tmp_path as it was."""
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    capsys.readouterr()
    result = main([str(a) for a in argv])
    out = capsys.readouterr()
    assert result == code, (result, out.err)
    assert out.err.count("\n") == 1 and out.err.startswith("hwgen"), out.err
    assert re.search(r"^hwgen( \w+)?: error: ", out.err), out.err
    assert "Traceback" not in out.err + out.out and "Warning" not in out.err
    assert re.search(message, out.err), out.err
    assert snapshot(tmp_path) == before, "files were written or deleted"
    return out.err


def save(model: onnx.ModelProto, path, check: bool = False) -> str:
    if check:
        onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return str(path)


def tiny(mutate) -> callable:
    """A builder: TINY with `mutate(model)` applied, saved as m.onnx."""
    def build(tmp):
        model = onnx.load(TINY)
        mutate(model)
        return save(model, tmp / "m.onnx")
    return build


def _init(model, name) -> onnx.TensorProto:
    return next(i for i in model.graph.initializer if i.name == name)


def _set_init(model, name, value) -> None:
    init = _init(model, name)
    init.CopyFrom(numpy_helper.from_array(np.asarray(value, dtype=numpy_helper.to_array(init).dtype), name))


def _node(model, name) -> onnx.NodeProto:
    return next(n for n in model.graph.node if n.name == name)


def _set_attr(model, node, name, value) -> None:
    n = _node(model, node)
    kept = [a for a in n.attribute if a.name != name]
    del n.attribute[:]
    n.attribute.extend(kept + [helper.make_attribute(name, value)])


def _clear_value_info(model) -> None:
    del model.graph.value_info[:]


def _opset(version):
    def mutate(model):
        for o in model.opset_import:
            if o.domain in ("", "ai.onnx"):
                o.version = version
    return mutate


def _no_outputs(model):
    del model.graph.output[:]


def _kernel_contradiction(tmp) -> str:
    """A single convolution whose kernel_shape is not its weights' kernel, output shape undeclared."""
    model = qdq_conv(np.random.default_rng(1), cin=2, cout=3, hw=(8, 8), kernel=(3, 3), stride=(1, 1),
                     dilation=(1, 1), pads=(0, 0, 0, 0), groups=1)
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    _set_attr(model, conv.name, "kernel_shape", [5, 5])
    return save(model, tmp / "k.onnx")


def _batch(n):
    def mutate(model):
        model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = n
    return mutate


def _five_d(model):
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims.add().dim_value = 1


def _string_input(model):
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.STRING


def _external_data(model):
    init = _init(model, "conv2.weight_quantized")
    init.ClearField("raw_data")
    init.data_location = TensorProto.EXTERNAL
    entry = init.external_data.add()
    entry.key, entry.value = "location", "missing_weights.bin"


def _duplicate_output(model):
    model.graph.node[8].output[0] = model.graph.node[11].output[0]


def _cycle(model):
    model.graph.node[8].input[0] = "/Relu_1_output_0_DequantizeLinear_Output"


def _unknown_domain(model):
    model.graph.node[14].domain = "com.example.secret"


def _conv_missing_weights(model):
    del model.graph.node[8].input[1:]


def _attr_wrong_type(model):
    _set_attr(model, "/conv1/Conv", "strides", "fast")


def _ir_version(v):
    def mutate(model):
        model.ir_version = v
    return mutate


def _huge_declared_weight(model):
    init = _init(model, "conv2.weight_quantized")
    del init.dims[:]
    init.dims.extend([1 << 20, 1 << 20, 3, 3])


def _pool_too_big(model):
    _clear_value_info(model)
    _set_attr(model, "/MaxPool", "kernel_shape", [9, 9])


def _group_not_dividing(model):
    _clear_value_info(model)
    _set_attr(model, "/conv2/Conv", "group", 3)


def _int4_weights(model):
    init = _init(model, "conv1.weight_quantized")
    w = numpy_helper.to_array(init).astype(np.int8).clip(-8, 7)
    init.CopyFrom(helper.make_tensor(init.name, TensorProto.INT4, w.shape, w.reshape(-1).tolist()))
    _init(model, "conv1.weight_zero_point").CopyFrom(
        helper.make_tensor("conv1.weight_zero_point", TensorProto.INT4, [8], [0] * 8))


def _detector_op(op: str, inputs, q_in: Q = Q(0.05, 0), opset: int = 17, **attrs):
    """A QDQ model of one detector op (constant inputs as given) that hwgen refuses."""
    def make(tmp) -> str:
        b = GraphBuilder()
        extra = [b.const(v) if v is not None else "" for v in inputs]
        y = b.qdq(b.node(op, [b.qdq("x", q_in), *extra], **attrs), Q(0.05, 0))
        model = b.model([("x", [1, 2, 4, 4])], y)
        model.opset_import[0].version = opset
        return save(model, tmp / "d.onnx")
    return make


def _unsupported_op(tmp) -> str:
    b = GraphBuilder()
    q = Q(0.02, 0)
    x = b.qdq(b.node("Hardmax", [b.qdq("x", q)]), q)
    w = random_weights(np.random.default_rng(0), (2, 1, 1, 1))
    y = b.qdq(b.node("Conv", [x, b.weights(w, np.full(2, 0.01, np.float32))]), q)
    return save(b.model([("x", [1, 1, 4, 4])], y), tmp / "u.onnx")


def _relu_model(tmp, dims, name="d.onnx") -> str:
    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)])
    return save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), tmp / name)


def _identity_model(tmp) -> str:
    b = GraphBuilder()
    y = b.node("Identity", ["x"])
    model = b.model([("x", [1, 2, 3, 3])], y, elem=TensorProto.INT8)
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.INT8
    return save(model, tmp / "i.onnx")


def _qonnx(tmp, name: str, value) -> str:
    """Found by the mutation fuzzer: a QONNX Quant whose bit width (or zero point) is NaN."""
    model = onnx.load(MODELS / "brevitas" / "brevitas_w4a4_qonnx_ts_clean.onnx")
    _set_init(model, name, value)
    return save(model, tmp / "q.onnx")


def _not_utf8(tmp) -> str:
    """Found by the mutation fuzzer: one flipped byte in a tensor name (protobuf hands back bytes)."""
    data = bytearray(TINY.read_bytes())
    at = data.find(b"input_QuantizeLinear_Output")
    data[at] ^= 0x80
    return _write(tmp / "u8.onnx", bytes(data))


def _write(path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


#: name -> (builder of the model file in tmp, message regex). Each runs under compile and report.
BAD_MODELS = {
    "missing file": (lambda t: str(t / "nope.onnx"), r"nope\.onnx: no such file"),
    "not onnx text": (lambda t: _write(t / "x.onnx", b"\x07hello, world\xff\xfe" * 50), r"not an ONNX model"),
    "random bytes": (lambda t: _write(t / "r.onnx", np.random.default_rng(5).bytes(4000)), r"not an ONNX model"),
    "json file": (lambda t: _write(t / "j.onnx", b'{"graph": {"node": []}}'), r"not an ONNX model"),
    "empty": (lambda t: _write(t / "e.onnx", b""), r"empty file"),
    "truncated at 10%": (lambda t: _write(t / "t.onnx", TINY.read_bytes()[:len(TINY.read_bytes()) // 10]),
                         r"not an ONNX model|no graph"),
    "truncated at 50%": (lambda t: _write(t / "t.onnx", TINY.read_bytes()[:len(TINY.read_bytes()) // 2]),
                         r"not an ONNX model|no graph"),
    "truncated at 99%": (lambda t: _write(t / "t.onnx", TINY.read_bytes()[:-30]), r"not an ONNX model"),
    "float model": (lambda t: str(DIGITS / "tinycnn_fp32_fp32.onnx"), r"not quantized"),
    "dynamic quantization": (lambda t: str(DIGITS / "tinycnn_fp32_dyn_u8.onnx"), r"dynamic quantization"),
    "unsupported op": (_unsupported_op, r"node 'Hardmax_\d+' \(Hardmax\): unsupported op"),
    "dynamic shape": (lambda t: _relu_model(t, [1, 3, "height", 8]), r"dynamic dimension 'height' at axis 2"),
    "absurd shape": (lambda t: _relu_model(t, [1, 3, 100000, 100000]), r"absurd shape"),
    "no outputs": (tiny(_no_outputs), r"no outputs"),
    "opset 1000": (tiny(_opset(1000)), r"opset 1000"),
    "opset 1": (tiny(_opset(1)), r"opset|checker"),
    "zero input scale": (tiny(lambda m: _set_init(m, "input_scale", 0.0)), r"scale"),
    "negative input scale": (tiny(lambda m: _set_init(m, "input_scale", -0.5)), r"scale"),
    "nan input scale": (tiny(lambda m: _set_init(m, "input_scale", np.nan)), r"scale"),
    "nan weight scale": (tiny(lambda m: _set_init(m, "conv2.weight_scale", np.full(16, np.nan))), r"scale"),
    "inf activation scale": (tiny(lambda m: _set_init(m, "/Relu_output_0_scale", np.inf)), r"scale"),
    "zero weight scale": (tiny(lambda m: _set_init(m, "fc.weight_scale", np.zeros(10))), r"scale"),
    "a bias scale out of all proportion": (tiny(lambda m: _set_init(m, "fc.bias_quantized_scale", np.full(10, 1e30))),
                                           r"out of all proportion"),
    "kernel_shape contradicts the weights": (_kernel_contradiction, r"kernel_shape=\[5, 5\] contradicts the weights"),
    "zero strides": (tiny(lambda m: _set_attr(m, "/conv1/Conv", "strides", [0, 1])), r"strides"),
    "negative pads": (tiny(lambda m: _set_attr(m, "/conv1/Conv", "pads", [-1, 0, 0, 0])), r"pads"),
    "group does not divide": (tiny(_group_not_dividing), r"group|weights"),
    "batch 2": (tiny(_batch(2)), r"batch size 2|batch"),
    "5-D input": (tiny(_five_d), r"shape|inference|rank"),
    "string input": (tiny(_string_input), r"string|type|checker|inference"),
    "external data missing": (tiny(_external_data), r"missing_weights\.bin|external"),
    "two nodes, one output": (tiny(_duplicate_output), r"checker|output"),
    "cycle": (tiny(_cycle), r"checker|topolog"),
    "unknown domain": (tiny(_unknown_domain), r"checker|domain|com\.example\.secret"),
    "conv without weights": (tiny(_conv_missing_weights), r"checker|input|inference|weights"),
    "attribute of the wrong type": (tiny(_attr_wrong_type), r"checker|strides|attribute|inference"),
    "ir_version 0": (tiny(_ir_version(0)), r"checker|ir_version|IR version"),
    "huge declared weight": (tiny(_huge_declared_weight), r"checker|conv2\.weight_quantized|size|inference"),
    "pool larger than its input": (tiny(_pool_too_big), r"does not fit|window|inference"),
    "int4 weights": (tiny(_int4_weights), r"int4|INT4|type|inference|checker"),
    "identity only": (_identity_model, r"no integer operations"),
    "a name that is not UTF-8": (_not_utf8, r"not UTF-8"),
    "a text attribute that is not UTF-8": (tiny(lambda m: _set_attr(m, "/conv1/Conv", "auto_pad", b"\xd2SAME")),
                                          r"not UTF-8"),
    "an attribute of the wrong kind": (tiny(lambda m: _set_attr(m, "/Flatten", "axis", [1, 2])),
                                       r"axis|checker|inference"),
    "a QONNX bit width that is NaN": (lambda t: _qonnx(t, "Quant_0_param2", np.float32(np.nan)), r"bit width"),
    "a QONNX zero point that is NaN": (lambda t: _qonnx(t, "Quant_0_param1", np.float32(np.nan)), r"zero point"),
    "a float8 zero point": (tiny(lambda m: setattr(_init(m, "/Relu_output_0_zero_point"), "data_type",
                                                   TensorProto.FLOAT8E4M3FN)), r"float8|quantizes to|type"),
    "a zero point that is an activation": (tiny(lambda m: _node(m, "logits_DequantizeLinear").input.__setitem__(
        2, "input_QuantizeLinear_Output")), r"must be constant|checker|inference"),
    "Relu of another domain": (tiny(lambda m: setattr(_node(m, "/conv1/Conv"), "domain", "com.microsoft")),
                               r"unsupported op \(domain com\.microsoft\)"),
    "cubic resize": (_detector_op("Resize", [None, np.array([1, 1, 2, 2], np.float32)], mode="cubic"),
                     r"node 'Resize_\d+' \(Resize\): mode 'cubic'"),
    "linear resize by 1.5": (_detector_op("Resize", [None, np.array([1, 1, 1.5, 1.5], np.float32)], mode="linear"),
                             r"node 'Resize_\d+' \(Resize\): linear resize by 1\.5 x 1\.5"),
    "reflect padding": (_detector_op("Pad", [np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)], mode="reflect"),
                        r"node 'Pad_\d+' \(Pad\): mode 'reflect'"),
    "a lookup table of a 16-bit input": (_detector_op("Sigmoid", [], Q(0.001, 0, np.int16), opset=21),
                                         r"node 'Sigmoid_\d+' \(Sigmoid\): input is i16: a lookup table"),
}


@pytest.mark.parametrize("case", sorted(BAD_MODELS))
@pytest.mark.parametrize("command", ["compile", "report"])
def test_bad_model(case, command, tmp_path, capsys, monkeypatch):
    make, message = BAD_MODELS[case]
    model = make(tmp_path)
    argv = [command, model] + (["-o", tmp_path / "out"] if command == "compile" else [])
    check_refused(argv, tmp_path, capsys, monkeypatch, message)


# -- options ----------------------------------------------------------------------------------------

BAD_OPTIONS = {
    "unknown target": (["compile", TINY, "-o", "o", "--target", "gpu"], r"unknown target 'gpu'"),
    "multiplier bits 40": (["compile", TINY, "-o", "o", "--multiplier-bits", "40"], r"2\.\.32, not 40"),
    "multiplier bits 0": (["compile", TINY, "-o", "o", "--multiplier-bits", "0"], r"2\.\.32, not 0"),
    "multiplier bits abc": (["compile", TINY, "-o", "o", "--multiplier-bits", "abc"], r"invalid int value: 'abc'"),
    "vlen 100": (["run", TINY, "--input", "x.npy", "--vlen", "100"], r"invalid choice: 100"),
    "rounding": (["compile", TINY, "-o", "o", "--rounding", "up"], r"invalid choice: 'up'"),
    "fold syntax": (["compile", TINY, "-o", "o", "--target", "fpga", "--fold", "garbage"], r"LAYER=PE,SIMD|fold"),
    "fold unknown layer": (["compile", TINY, "-o", "o", "--target", "fpga", "--fold", "nope=1,1"], r"nope"),
    "fold PE not dividing": (["compile", TINY, "-o", "o", "--target", "fpga", "--fold", "/conv1/Conv=3,1"],
                             r"divide|PE"),
    "fold zero": (["compile", TINY, "-o", "o", "--target", "fpga", "--fold", "/conv1/Conv=0,1"], r"PE|positive|>= 1"),
    "multipliers 0": (["compile", TINY, "-o", "o", "--target", "fpga", "--multipliers", "0"], r"multipliers"),
    "multipliers negative": (["compile", TINY, "-o", "o", "--target", "fpga", "--multipliers", "-5"],
                             r"multipliers"),
    "unknown device": (["compile", TINY, "-o", "o", "--target", "fpga", "--device", "xc7"], r"invalid choice: 'xc7'"),
    "missing -o": (["compile", TINY], r"required: -o/--output"),
    "unknown option": (["compile", TINY, "-o", "o", "--frobnicate"], r"unrecognized arguments: --frobnicate"),
    "no command": ([], r"required: COMMAND|the following arguments are required"),
    "unknown command": (["frobnicate"], r"invalid choice: 'frobnicate'"),
    "run without input": (["run", TINY], r"required: --input"),
    "backend": (["run", TINY, "--input", "x.npy", "--backend", "gpu"], r"invalid choice: 'gpu'"),
    "synth clock": (["synth", "nothing_here", "--device", "ice40-up5k"], r"nothing_here: no such directory or file"),
    "synth without device": (["synth", "."], r"one of the arguments --device --board is required"),
}


@pytest.mark.parametrize("case", sorted(BAD_OPTIONS))
def test_bad_option(case, tmp_path, capsys, monkeypatch):
    argv, message = BAD_OPTIONS[case]
    err = check_refused(argv, tmp_path, capsys, monkeypatch, message)
    if "invalid choice" in message or "required" in message or "unrecognized" in message:
        assert "see hwgen" in err and "--help" in err  # the usage error says where help is, in one line


# -- output paths -------------------------------------------------------------------------------------


def _user_dir(t):
    (t / "notes.txt").write_text("mine")
    return "."


BAD_OUTPUTS = {
    "-o an existing file": (lambda t: (t / "f").write_text("x") and ["compile", TINY, "-o", "f"],
                            r"exists and is not a directory"),
    "-o under a file": (lambda t: (t / "f").write_text("x") and ["compile", TINY, "-o", "f/out"],
                        r"not a directory"),
    "-o . full of user files": (lambda t: ["compile", TINY, "-o", _user_dir(t)], r"not empty"),
    "--json into a directory": (lambda t: (t / "d").mkdir() or ["report", TINY, "--json", "d"], r"is a directory"),
    "--json under a missing directory": (lambda t: ["report", TINY, "--json", "no/such/r.json"],
                                         r"no/such.*not a directory|no such"),
    "run --output into a directory": (lambda t: _digit_input(t) and (t / "d").mkdir() or
                                      ["run", TINY, "--input", "x.npy", "--output", "d"], r"is a directory"),
    "run --output under a missing directory": (lambda t: _digit_input(t) and
                                               ["run", TINY, "--input", "x.npy", "--output", "no/y.npy"],
                                               r"not a directory|no such"),
    "run --output .npy for an .npz": (lambda t: _digit_input(t) and
                                      ["run", TINY, "--input", "x.npy", "--output", "y.npz.txt"],
                                      r"\.npy|\.npz"),
}


def _digit_input(t) -> bool:
    np.save(t / "x.npy", np.load(DIGITS / "digits_test.npz")["X"][:2])
    return True


@pytest.mark.parametrize("case", sorted(BAD_OUTPUTS))
def test_bad_output_path(case, tmp_path, capsys, monkeypatch):
    make, message = BAD_OUTPUTS[case]
    check_refused(make(tmp_path), tmp_path, capsys, monkeypatch, message)


# -- input arrays for hwgen run -------------------------------------------------------------------------


def _x(n=2):
    return np.load(DIGITS / "digits_test.npz")["X"][:n]


def _save_npy(name, array, **kw):
    def make(t):
        np.save(t / name, array, **kw)
        return name
    return make


def _save_npz(name, **arrays):
    def make(t):
        np.savez(t / name, **arrays)
        return name
    return make


def _pickled(t):
    np.save(t / "o.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    return "o.npy"


BAD_INPUTS = {
    "missing": (TINY, lambda t: "none.npy", r"none\.npy: no such file"),
    "junk": (TINY, lambda t: (t / "j.npy").write_text("junk") and "j.npy", r"not a \.npy or \.npz file"),
    "integers for a float model": (TINY, _save_npy("i.npy", np.zeros((1, 1, 8, 8), np.int8)),
                                   r"must be float \(float32\), got int8"),
    "wrong shape": (TINY, _save_npy("s.npy", np.zeros((1, 1, 9, 8), np.float32)),
                    r"expected shape \[1, 1, 8, 8\] or \[B, 1, 8, 8\], got \[1, 1, 9, 8\]"),
    "NaN": (TINY, _save_npy("n.npy", np.where(np.arange(128).reshape(2, 1, 8, 8) == 5, np.nan, _x())),
            r"NaN|not finite"),
    "infinity": (TINY, _save_npy("f.npy", np.full((1, 1, 8, 8), np.inf, np.float32)), r"inf|not finite"),
    "empty batch": (TINY, _save_npy("e.npy", np.zeros((0, 1, 8, 8), np.float32)), r"no samples|empty"),
    "pickled objects": (TINY, _pickled, r"object|pickle"),
    "npz without the input": (TINY, _save_npz("w.npz", other=_x()), r"no array named 'input'"),
    "npz with a pickled array": (TINY, lambda t: np.savez(t / "p.npz", input=np.array([None], dtype=object))
                                 or "p.npz", r"object|pickle"),
    "integers out of range": (INTIO, _save_npy("r.npy", np.full((1, 1, 8, 8), 300, np.int16)),
                              r"values outside int8|outside"),
    "float for an integer model": (INTIO, _save_npy("fl.npy", np.zeros((1, 1, 8, 8), np.float32)),
                                   r"must be integer"),
    "a scalar": (TINY, _save_npy("z.npy", np.float32(1.0)), r"expected shape"),
    "complex": (TINY, _save_npy("c.npy", np.zeros((1, 1, 8, 8), np.complex64)), r"must be float|complex"),
    "booleans": (INTIO, _save_npy("b.npy", np.zeros((1, 1, 8, 8), bool)), r"must be integer|bool"),
    "strings": (TINY, _save_npy("st.npy", np.array([["a"]])), r"must be float|<U1|str"),
    "structured": (TINY, _save_npy("sd.npy", np.zeros(3, dtype=[("a", "f4"), ("b", "i4")])), r"must be float|\[\("),
    "an .npy for two inputs": ("two-input", _save_npy("a.npy", np.zeros((1, 2, 3, 3), np.float32)),
                               r"the model has 2 inputs; pass an \.npz"),
    "too many samples for memory": (TINY, lambda t: _huge_batch(t), r"GB|memory"),
    "a directory": (TINY, lambda t: (t / "dir.npy").mkdir() or "dir.npy", r"not a file|is a directory|not a \.npy"),
}


def _huge_batch(t) -> str:
    """A header that claims 2**40 samples (the data is not there; hwgen must not try to allocate it)."""
    header = {"descr": "<f4", "fortran_order": False, "shape": (1 << 40, 1, 8, 8)}
    with open(t / "huge.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(b"\0" * 1024)
    return "huge.npy"


def _two_input_model(t) -> str:
    b = GraphBuilder()
    y = b.qdq(b.node("Add", [b.qdq("a", Q(0.02, 3)), b.qdq("b", Q(0.05, -4))]), Q(0.06, 1))
    return save(b.model([("a", [1, 2, 3, 3]), ("b", [1, 2, 3, 3])], y), t / "add.onnx")


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_run_input(case, tmp_path, capsys, monkeypatch):
    model, make, message = BAD_INPUTS[case]
    model = _two_input_model(tmp_path) if model == "two-input" else model
    name = make(tmp_path)
    check_refused(["run", model, "--input", name, "--output", "y.npy"], tmp_path, capsys, monkeypatch, message)


# -- compile outputs given to sim and report ---------------------------------------------------------------


@pytest.fixture(scope="module")
def compiled_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("compiled") / "out"
    assert main(["compile", str(TINY), "-o", str(out), "--target", "fpga,rvv", "--rvv-no-count"]) == 0
    return out


def _corrupt(rel, text):
    def make(t, out):
        target = t / "out"
        shutil.copytree(out, target)
        (target / rel).write_text(text)
        return "out"
    return make


def _copy(t, out):
    shutil.copytree(out, t / "out")
    return "out"


BAD_OUTPUT_DIRS = {
    "report: not a compile output": ("report", lambda t, out: (t / "d").mkdir() or "d", r"not a hwgen compile output"),
    "report: corrupt fpga/report.json": ("report", _corrupt("fpga/report.json", "{"), r"fpga/report\.json"),
    "report: fpga/report.json of another shape": ("report", _corrupt("fpga/report.json", '{"a": 1}'),
                                                  r"fpga/report\.json"),
    "report: corrupt rvv/report.json": ("report", _corrupt("rvv/report.json", "[1, 2"), r"rvv/report\.json"),
    "report: rvv/report.json of another shape": ("report", _corrupt("rvv/report.json", "[]"), r"rvv/report\.json"),
    "report: report.txt is binary": ("report", lambda t, out: _corrupt("report.txt", "")(t, out) and
                                     (t / "out" / "report.txt").write_bytes(b"\xff\xfe\x00") and "out",
                                     r"report\.txt"),
    "sim: corrupt manifest": ("sim", _corrupt("fpga/manifest.json", "not json"), r"manifest\.json"),
    "sim: manifest of another version": ("sim", _corrupt("fpga/manifest.json", '{"format": "hwgen-fpga/0"}'),
                                         r"manifest\.json"),
    "sim: corrupt ir.json": ("sim", _corrupt("ir.json", '{"format": "hwgen-ir/1", "name": 3}'), r"ir\.json"),
    "sim: ir.json not json": ("sim", _corrupt("ir.json", "\x00\x01"), r"ir\.json"),
    "sim: no fpga output": ("sim", lambda t, out: shutil.copytree(out, t / "out", ignore=shutil.ignore_patterns("fpga"))
                            and "out", r"no fpga/manifest\.json"),
    "sim: stall probability 1.5": ("sim-stall", _copy, r"--stall must be in \[0, 1\)"),
    "sim: bad input file": ("sim-junk", _copy, r"not a \.npy or \.npz file"),
}


@pytest.mark.parametrize("case", sorted(BAD_OUTPUT_DIRS))
def test_bad_compile_output(case, compiled_out, tmp_path, capsys, monkeypatch):
    command, make, message = BAD_OUTPUT_DIRS[case]
    target = make(tmp_path, compiled_out)
    np.save(tmp_path / "x.npy", _x(1))
    (tmp_path / "junk.npy").write_text("junk")
    argv = {"report": ["report", target],
            "sim": ["sim", target, "--input", "x.npy"],
            "sim-stall": ["sim", target, "--input", "x.npy", "--stall", "1.5"],
            "sim-junk": ["sim", target, "--input", "junk.npy"]}[command]
    check_refused(argv, tmp_path, capsys, monkeypatch, message)


def test_the_suite_has_at_least_a_hundred_cases():
    cases = 2 * len(BAD_MODELS) + len(BAD_OPTIONS) + len(BAD_OUTPUTS) + len(BAD_INPUTS) + len(BAD_OUTPUT_DIRS)
    assert cases >= 100, cases
    assert MODELS.is_dir()


# -- the console script itself (warnings, pipes and usage errors reach a real stderr) -----------------


def _console(*argv, close_stdout=False, cwd=None):
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "hwgen.cli", *map(str, argv)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=cwd)
    if close_stdout:
        proc.stdout.close()  # `| head -c 0`: the reader is gone before hwgen writes
        err = proc.stderr.read()
        return proc.wait(), b"", err.decode()
    out, err = proc.communicate()
    return proc.returncode, out, err.decode()


def test_a_nan_weight_scale_prints_one_line_and_no_numpy_warning(tmp_path):
    path = tiny(lambda m: _set_init(m, "conv2.weight_scale", np.full(16, np.nan)))(tmp_path)
    code, _, err = _console("report", path)
    assert code == 2 and err.count("\n") == 1 and "weight scale must be positive and finite, not nan" in err


def test_a_closed_pipe_ends_quietly(tmp_path):
    code, _, err = _console("report", TINY, close_stdout=True)
    assert code == 141 and err == ""


def test_a_usage_error_is_one_line_from_the_console_script(tmp_path):
    code, _, err = _console("run", TINY, "--input", tmp_path / "x.npy", "--vlen", "100")
    assert code == 2
    assert err == ("hwgen run: error: argument --vlen: invalid choice: 100 (choose from 128, 256, 512, 1024); "
                   "see hwgen run --help\n")
