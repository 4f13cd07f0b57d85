"""The golden model against onnxruntime on the real models, and ONNX's own node tests."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from hwgen.compiler import compile_model
from hwgen.frontend import import_onnx
from hwgen.golden import run_model
from hwgen.ir import verify
from hwgen.reference import agreement

from ..conftest import DETECTORS, DIGITS, NODE_TESTS, PERSON, detector_feeds, load_pb, ort_run

INTIO = sorted(DIGITS.glob("*_intio.onnx")) + sorted((DIGITS / "mobilenet").glob("*_intio.onnx"))
FLOAT_IO = sorted(p for p in list(DIGITS.glob("*_q*.onnx")) + list((DIGITS / "mobilenet").glob("*_q*.onnx"))
                  if "intio" not in p.name)

#: onnxruntime requantizes in float32; hwgen with 31-bit multipliers. They may differ by 1 LSB
#: where a value lies within float32 error of a rounding tie: "a few per 10,000" outputs.
MAX_MISMATCH = 1e-3


def _lsb_diff(ours: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    return ours.astype(np.int64) - theirs.astype(np.int64)


@pytest.mark.parametrize("path", INTIO, ids=lambda p: p.stem)
def test_digits_integer_models_match_onnxruntime(path):
    compiled = compile_model(path)
    golden = np.load(str(path).replace(".onnx", "_golden.npz"))
    port = compiled.graph.input_ports[0]
    out = next(iter(run_model(compiled.graph, {port.onnx_name: golden["x_q"]}).values()))
    diff = _lsb_diff(out, golden["y_q"])
    assert np.abs(diff).max() <= 1
    assert np.mean(diff != 0) <= MAX_MISMATCH
    agree = np.mean(out.argmax(axis=1) == golden["y_q"].argmax(axis=1))
    assert agree >= 0.995


@pytest.mark.parametrize("path", FLOAT_IO, ids=lambda p: p.stem)
def test_digits_float_models_match_onnxruntime(path, digits_images):
    compiled = compile_model(path)
    ours = run_model(compiled.graph, {"input": digits_images})["logits"]
    theirs = ort_run(path, {"input": digits_images})[0]
    step = compiled.graph.tensor(compiled.graph.outputs[0]).scale[0]
    diff = np.rint((ours - theirs) / step)
    assert np.abs(diff).max() <= 1
    assert np.mean(diff != 0) <= MAX_MISMATCH
    assert np.mean(ours.argmax(axis=1) == theirs.argmax(axis=1)) >= 0.995


@pytest.mark.parametrize("case", [0, 1])
def test_person_detect_classifies_as_tflite_micro(case):
    path = PERSON / "person_detect_qdq.onnx"
    compiled = compile_model(path)
    x = load_pb(PERSON / "cases" / f"test_data_set_{case}" / "input_0.pb")
    tflm = load_pb(PERSON / "cases" / f"test_data_set_{case}" / "output_0.pb")  # [-113, 113] / [57, -57]
    name = compiled.graph.input_ports[0].onnx_name
    ours = next(iter(run_model(compiled.graph, {name: x}).values()))
    theirs = ort_run(path, {name: x})[0]
    assert np.abs(_lsb_diff(ours, theirs)).max() <= 1
    assert ours.argmax() == tflm.argmax()
    if case == 0:  # person.bmp: bit-identical to TFLite Micro
        assert np.array_equal(ours, tflm)


def test_person_detect_random_inputs_match_onnxruntime():
    path = PERSON / "person_detect_qdq.onnx"
    compiled = compile_model(path)
    rng = np.random.default_rng(7)
    x = rng.integers(-128, 128, size=(4, 1, 96, 96), dtype=np.int8)
    name = compiled.graph.input_ports[0].onnx_name
    ours = next(iter(run_model(compiled.graph, {name: x}).values()))
    theirs = ort_run(path, {name: x})[0]
    assert np.abs(_lsb_diff(ours, theirs)).max() <= 1


# -- ONNX backend node tests ---------------------------------------------------------------------

NODE_OPS = ("QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "QuantizeLinear", "DequantizeLinear")
UNSUPPORTED_TYPES = ("e4m3", "e5m2", "float4", "int2", "int4", "uint2", "uint4")


def _node_tests():
    rows = [line.split("\t") for line in (NODE_TESTS / "INDEX.tsv").read_text().splitlines()[1:]]
    return [(r[0], r[1]) for r in rows if r[1] in NODE_OPS]


def _bind_all_but_first(model: onnx.ModelProto, inputs: list[np.ndarray]) -> onnx.ModelProto:
    """Node tests pass weights and quantization parameters as inputs: make them constants."""
    g = model.graph
    names = [i.name for i in g.input]
    for name, value in list(zip(names, inputs))[1:]:
        g.initializer.append(numpy_helper.from_array(value, name))
    first = [i for i in g.input if i.name == names[0]]
    del g.input[:]
    g.input.extend(first)
    return model


@pytest.mark.parametrize("test,op", _node_tests(), ids=[t for t, _ in _node_tests()])
def test_onnx_node_test(test, op):
    folder = NODE_TESTS / test
    inputs = [load_pb(p) for p in sorted((folder / "test_data_set_0").glob("input_*.pb"))]
    expected = load_pb(folder / "test_data_set_0" / "output_0.pb")
    model = _bind_all_but_first(onnx.load(folder / "model.onnx"), inputs)
    if any(t in test for t in UNSUPPORTED_TYPES):
        from hwgen.errors import UnsupportedModelError

        with pytest.raises(UnsupportedModelError, match="element type|quantizes to"):
            import_onnx(model)
        return
    graph = verify(import_onnx(model))
    out = next(iter(run_model(graph, {model.graph.input[0].name: inputs[0]}).values()))
    # exact: the integer ops are exact, and the requantizing ones are exact on these small cases
    assert out.dtype == expected.dtype
    assert np.array_equal(out, expected)


# -- Brevitas (quantization-aware trained, 4-bit and ternary) ---------------------------------------

BREVITAS = DIGITS.parent / "brevitas"


@pytest.mark.parametrize("name", ["w4a4", "ternary", "w4a4_unstruct50"])
@pytest.mark.parametrize("form", ["qonnx_ts_clean", "qcdq_ts"])
def test_brevitas_models_recover_brevitas_own_accumulators(name, form):
    """The last layer is unquantized: hwgen outputs its integer accumulator and the host scales it.
    Brevitas' float32 logits divided by that scale must round to exactly hwgen's accumulators."""
    data = np.load(BREVITAS / f"brevitas_{name}_torch_logits.npz")
    graph = compile_model(BREVITAS / f"brevitas_{name}_{form}.onnx").graph
    port = graph.input_ports[0]
    from hwgen.golden import quantize_host, run_graph

    x = port.layout.to_ir(quantize_host(data["X"], port.quantize, graph.tensor(port.tensor).dtype))
    acc = run_graph(graph, {port.tensor: x})[graph.outputs[0]]
    scale = onnx.numpy_helper.to_array(next(i for i in onnx.load_model_from_string(graph.tail.model).graph.initializer
                                            if i.name.endswith("_scale")))
    assert np.array_equal(acc, np.rint(data["logits"] / scale).astype(np.int64))
    logits = next(iter(run_model(graph, {port.onnx_name: data["X"]}).values()))
    assert np.mean(logits.argmax(axis=1) == data["y"]) == np.mean(data["logits"].argmax(axis=1) == data["y"])
    activations = [graph.tensor(n.output).dtype for n in graph.nodes[:-1]]
    assert all(str(t) == "u4" for t in activations)  # 4-bit activations stay 4-bit in the IR


def test_brevitas_qcdq_matches_onnxruntime():
    path = BREVITAS / "brevitas_w4a4_qcdq_ts.onnx"
    data = np.load(BREVITAS / "brevitas_w4a4_torch_logits.npz")
    graph = compile_model(path).graph
    name = graph.input_ports[0].onnx_name
    ours = next(iter(run_model(graph, {name: data["X"]}).values()))
    theirs = ort_run(path, {name: data["X"]})[0]
    assert np.array_equal(ours.argmax(axis=1), theirs.argmax(axis=1))
    assert np.abs(ours - theirs).max() < 1e-4  # float32 sums of the same products, in another order


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_detectors_match_onnxruntime(name):
    """Every layer fed onnxruntime's inputs is within 1 step of onnxruntime, and rarely off (measured:
    PP-OCRv4 0.41 % of its values, the affine ops' near-ties; BlazeFace 9 of 1.8 million). End to
    end, BlazeFace's one-step differences grow through its 16 residual blocks (README)."""
    path, _ = DETECTORS[name]
    feeds = detector_feeds(name)
    found = agreement(compile_model(path), onnx.load(path), feeds)
    assert found.layer_worst <= 1, found
    assert found.layer_differ <= 0.005 * found.layer_outputs, found
    movement = {"Pad", "Resize", "DepthToSpace", "Concat", "Slice", "Lookup"}
    assert all(differ == 0 for op, differ, _ in found.by_op if op in movement), found


def test_blazeface_finds_the_face_onnxruntime_finds():
    """The best anchor's score and box, decoded from hwgen's outputs and from onnxruntime's."""
    path, _ = DETECTORS["blazeface"]
    feeds = detector_feeds("blazeface")
    ours = run_model(compile_model(path).graph, feeds)
    theirs = dict(zip(["regressors", "classificators"], ort_run(path, feeds)))
    best = int(np.argmax(theirs["classificators"].reshape(-1)))
    assert best == int(np.argmax(ours["classificators"].reshape(-1)))
    score = lambda out: 1 / (1 + np.exp(-out["classificators"].reshape(-1)[best]))  # noqa: E731
    assert score(theirs) > 0.9 and abs(score(ours) - score(theirs)) < 0.01
    assert np.abs(ours["regressors"][0, best, :4] - theirs["regressors"][0, best, :4]).max() < 1.5  # pixels
