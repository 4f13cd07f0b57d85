"""Whole models through the Verilated accelerator (C++ harness): equal to the golden model, bit for bit.

CI runs one TinyCNN on all 450 test images and a small detector with every FPGA detector unit;
`-m slow` runs every quantized digits model (TinyCNN variants and the MobileNet-style net, all 450
images each, at several multiplier budgets), person_detect on person.bmp, no_person.bmp and 8
random inputs, and PP-OCRv4 det on its text image.
"""

import glob
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from fuzz.float_graphs import DETECTOR_OPSET, FloatNet, _Builder, quantize
from onnx import numpy_helper

from hwgen import golden
from hwgen.backends.fpga import build_accelerator, to_verilog
from hwgen.compiler import CompileOptions, compile_model
from hwgen.fixed import Rounding
from hwgen.fpga.outputs import assemble, hardware_graph
from hwgen.fpga.plan import BRANCH_WORDS, make_plan

pytestmark = [pytest.mark.cosim, pytest.mark.skipif(shutil.which("verilator") is None,
                                                    reason="verilator not found on PATH (apt-get install verilator)")]

MODELS = Path(__file__).resolve().parents[3] / "examples" / "models"
DIGITS = sorted(glob.glob(str(MODELS / "digits" / "**" / "*_intio.onnx"), recursive=True))
BUDGETS = (8, 32, 128)


def rtl_core(compiled, budget):
    graph, concats = hardware_graph(compiled.graph)
    plan = make_plan(graph, budget=budget)
    accelerator = build_accelerator(graph, plan, to_verilog(graph, plan))
    runs = []

    def core(inputs):
        run = accelerator.run(inputs[graph.inputs[0]])
        runs.append(run)
        return assemble(run.outputs, concats, compiled.graph)

    return plan, core, runs


def check_model(path, feeds, budget, options=CompileOptions()):
    compiled = compile_model(path, options)
    plan, core, runs = rtl_core(compiled, budget)
    rtl = golden.run_model(compiled.graph, feeds, core=core)
    expected = golden.run_model(compiled.graph, feeds)
    for name in expected:
        assert np.array_equal(rtl[name], expected[name]), name
    (run,) = runs
    # the engines ran exactly the scheduled steps, and the interval is close to the model's
    batch = len(next(iter(feeds.values())))
    for spec in plan.layers:
        if spec.engine is not None:
            assert run.counters[f"layer:{spec.node}"] == batch * spec.busy, spec.node
    assert run.interval < 1.15 * plan.interval
    return run, plan


def check_random_inputs(graph, budget, samples):
    """The accelerator at `budget` equals the golden model on random inputs, with and without stalls."""
    plan = make_plan(graph, budget=budget)
    accelerator = build_accelerator(graph, plan, to_verilog(graph, plan))
    t = graph.tensor(graph.inputs[0])
    x = np.random.default_rng(budget).integers(t.dtype.lo, t.dtype.hi + 1, (samples, *t.shape))
    want = golden.run_graph(graph, {graph.inputs[0]: x})[graph.outputs[0]]
    assert np.array_equal(accelerator.run(x).output, want)
    assert np.array_equal(accelerator.run(x, stall_prob=0.3, seed=budget).output, want)


def digits_feeds(path):
    data = np.load(path.replace(".onnx", "_golden.npz"))
    name = onnx.load(path).graph.input[0].name
    return {name: data["x_q"]}


def test_tinycnn_all_test_images():
    path = str(MODELS / "digits" / "tinycnn_fp32_qdq_s8s8_pc_intio.onnx")
    run, plan = check_model(path, digits_feeds(path), 32)
    assert run.output.shape[0] == 450


def test_ties_up_rounding_and_short_multipliers():
    """--rounding rnu --multiplier-bits 12 change the IR; the hardware follows, bit for bit."""
    path = str(MODELS / "digits" / "mobilenet" / "mobilenet_fp32_qdq_u8s8_pt_intio.onnx")
    check_model(path, digits_feeds(path), 16, CompileOptions(Rounding.RNU, 12))


@pytest.mark.slow
@pytest.mark.parametrize("path", DIGITS, ids=[Path(p).stem for p in DIGITS])
def test_every_digits_model_all_test_images(path):
    budget = BUDGETS[DIGITS.index(path) % len(BUDGETS)]
    check_model(path, digits_feeds(path), budget)


def person_feeds():
    model = onnx.load(str(MODELS / "person_detect" / "person_detect_qdq.onnx"))
    name = model.graph.input[0].name
    images = [numpy_helper.to_array(onnx.load_tensor(str(MODELS / "person_detect" / "cases" / f"test_data_set_{k}" /
                                                         "input_0.pb"))) for k in (0, 1)]
    rng = np.random.default_rng(0)
    random = [rng.integers(-128, 128, images[0].shape).astype(images[0].dtype) for _ in range(8)]
    return {name: np.concatenate(images + random)}


@pytest.mark.slow
@pytest.mark.parametrize("budget", [32])
def test_person_detect(budget):
    feeds = person_feeds()
    run, plan = check_model(str(MODELS / "person_detect" / "person_detect_qdq.onnx"), feeds, budget)
    assert run.output.shape[0] == 10


def _small_detector() -> FloatNet:
    """Every unit the FPGA builds for detectors: tables (one, and per channel), a squeeze-excite
    product, a product of two maps, affine ops, channel and spatial padding, a crop, nearest up- and
    downsampling, and a transposed convolution (phases, then depth-to-space)."""
    from onnx import TensorProto, helper

    b = _Builder(np.random.default_rng(3))
    rng = b.rng

    def conv(x, cin, cout, k=1):
        w = rng.normal(0, 1 / np.sqrt(k * k * cin), (cout, cin, k, k))
        return b.node("Conv", [x, b.const(w, "w"), b.const(rng.normal(0, 0.1, cout), "b")], pads=[k // 2] * 4)

    x = b.node("HardSwish", [conv("input", 3, 4, 3)])
    s = b.node("HardSigmoid", [conv(b.node("Relu", [conv(b.node("GlobalAveragePool", [x]), 4, 2)]), 2, 4)])
    x = b.node("Mul", [x, s])
    x = b.node("Mul", [x, b.node("Sigmoid", [x])])
    x = b.node("PRelu", [conv(x, 4, 4), b.const(rng.uniform(0, 0.5, (4, 1, 1)), "slope")])
    x = b.node("Pad", [x, b.int_const([0, 2, 1, 0, 0, 2, 0, 1], "pads")], mode="constant")           # 8 x 7 x 7
    x = b.node("Div", [b.node("Add", [conv(x, 8, 4), b.const(np.float32(3), "k")]), b.const(np.float32(6), "k")])
    x = b.node("Resize", [x, "", b.const(np.array([1, 1, 2, 2], np.float32), "s")], mode="nearest",  # Div: no Q
               coordinate_transformation_mode="asymmetric", nearest_mode="floor")                      # 14 x 14
    x = b.node("Slice", [x, b.int_const([1, 2], "st"), b.int_const([13, 12], "en"), b.int_const([2, 3], "ax")])
    x = b.node("Resize", [conv(x, 4, 4), "", b.const(np.array([1, 1, 0.5, 0.5], np.float32), "s")],
               mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")      # 6 x 5
    x = b.node("ConvTranspose", [x, b.const(rng.normal(0, 0.5, (4, 2, 2, 2)), "w")], strides=[2, 2])  # 12 x 10
    x = conv(b.node("Mul", [x, b.const(rng.uniform(-2, 2, (1, 2, 1, 1)), "k")]), 2, 3)
    graph = helper.make_graph(b.nodes, "small_detector",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, (1, 3, 7, 6))],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, None)], b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", DETECTOR_OPSET)], ir_version=8)
    return FloatNet(onnx.shape_inference.infer_shapes(model, strict_mode=True), (1, 3, 7, 6), "small detector")


@pytest.mark.parametrize("budget", [2, 32])
def test_small_detector_every_unit(tmp_path, budget):
    model = quantize(_small_detector(), activation="int8", per_channel=True)
    path = tmp_path / "small_detector.onnx"
    onnx.save(model, path)
    compiled = compile_model(path)
    ops = {n.op for n in compiled.graph.nodes}
    assert {"Lookup", "Mul", "Affine", "Pad", "Slice", "Resize", "DepthToSpace"} <= ops, ops
    check_random_inputs(compiled.graph, budget, 4)


def _small_ssd() -> FloatNet:
    """An SSD-style detector: a map, score and box heads of two scales (Transpose, Reshape, Concat
    along the anchors), and the map itself as a third output."""
    from onnx import TensorProto, helper

    b = _Builder(np.random.default_rng(5))

    def conv(x, cin, cout, k=1, stride=1):
        w = b.rng.normal(0, 1 / np.sqrt(k * k * cin), (cout, cin, k, k))
        return b.node("Conv", [x, b.const(w, "w"), b.const(b.rng.normal(0, 0.1, cout), "b")], pads=[k // 2] * 4,
                      strides=[stride] * 2)

    x = b.node("Relu", [conv("input", 3, 6, 3)])                  # 6 x 8 x 8
    small = b.node("Relu", [conv(x, 6, 8, 3, stride=2)])           # 8 x 4 x 4
    outputs = []
    for k in (1, 4):   # scores, boxes: 2 anchors per cell
        heads = [b.node("Reshape", [b.node("Transpose", [conv(m, c, 2 * k)], perm=[0, 2, 3, 1]),
                                    b.int_const([1, -1, k], "shape")]) for m, c in ((x, 6), (small, 8))]
        outputs.append(b.node("Concat", heads, axis=1))
    outputs.append(small)
    graph = helper.make_graph(b.nodes, "small_ssd", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                                    (1, 3, 8, 8))],
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs], b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", DETECTOR_OPSET)], ir_version=8)
    return FloatNet(onnx.shape_inference.infer_shapes(model, strict_mode=True), (1, 3, 8, 8), "small SSD")


def _blazeface_blocks(size: int = 8) -> FloatNet:
    """BlazeFace's residual blocks: the skip path pads channels (and max-pools where the block
    strides) before the add, so its fork branch must buffer while the convolutions run; then a
    block whose skip goes straight to the add. At 8x8 the skip FIFOs hold whole tensors; at 48x48
    they hold the rows the other path can hold (`plan._rows_behind`), fewer than the map has."""
    from onnx import TensorProto, helper

    b = _Builder(np.random.default_rng(7))

    def conv(x, cin, cout, k=1, stride=1, groups=1):
        w = b.rng.normal(0, 1 / np.sqrt(k * k * cin / groups), (cout, cin // groups, k, k))
        pads = [k // 2] * 4 if stride == 1 else [0, 0, k - 2, k - 2]
        return b.node("Conv", [x, b.const(w, "w"), b.const(b.rng.normal(0, 0.1, cout), "b")], pads=pads,
                      strides=[stride] * 2, group=groups)

    x = b.node("Relu", [conv("input", 3, 4, 3)])                                  # 4 x size x size
    for cin, cout, stride in ((4, 6, 1), (6, 8, 2), (8, 8, 1)):
        main = conv(conv(x, cin, cin, 3, stride, groups=cin), cin, cout)
        skip = x if stride == 1 else b.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
        if cout > cin:
            skip = b.node("Pad", [skip, b.int_const([0, 0, 0, 0, 0, cout - cin, 0, 0], "pads")], mode="constant")
        x = b.node("Relu", [b.node("Add", [main, skip])])
    shape = (1, 3, size, size)
    graph = helper.make_graph(b.nodes, "blazeface_blocks", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                                           shape)],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, None)], b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", DETECTOR_OPSET)], ir_version=8)
    return FloatNet(onnx.shape_inference.infer_shapes(model, strict_mode=True), shape, "BlazeFace blocks")


@pytest.mark.parametrize("size, budget", [(8, 2), (8, 32), (48, 2), (48, 32)])
def test_residual_paths_through_pads_and_pools(tmp_path, size, budget):
    path = tmp_path / "blocks.onnx"
    onnx.save(quantize(_blazeface_blocks(size), activation="int8", per_channel=True), path)
    compiled = compile_model(path)
    assert {"Pad", "MaxPool", "Add"} <= {n.op for n in compiled.graph.nodes}
    plan = make_plan(compiled.graph, budget=budget)
    graph = compiled.graph
    skips = [b for b in plan.branches if b.words > BRANCH_WORDS]
    whole = [graph.tensor(b.tensor).size // plan.layer(graph.producer(b.tensor).name).out_lanes + BRANCH_WORDS
             for b in skips]
    # the padded skip and the straight one (the pooled skip buffers in the pool's line buffer)
    assert len(skips) == 2 and all((b.words == w) == (size == 8) for b, w in zip(skips, whole))
    check_random_inputs(compiled.graph, budget, 3)


@pytest.mark.parametrize("budget", [2, 32])
def test_several_outputs_and_host_concatenation(tmp_path, budget):
    """Three outputs on the tagged output stream (two SSD heads whose anchor concatenation the host
    does, and a map the heads also read), with and without stalls, equal the golden model."""
    path = tmp_path / "small_ssd.onnx"
    onnx.save(quantize(_small_ssd(), activation="int8", per_channel=True), path)
    compiled = compile_model(path)
    graph, concats = hardware_graph(compiled.graph)
    assert len(compiled.graph.outputs) == 3 and len(concats) == 2 and len(graph.outputs) == 5
    plan = make_plan(graph, budget=budget)
    accelerator = build_accelerator(graph, plan, to_verilog(graph, plan))
    assert accelerator.mux.tag_bits == 3
    t = graph.tensor(graph.inputs[0])
    x = np.random.default_rng(budget).integers(t.dtype.lo, t.dtype.hi + 1, (4, *t.shape))
    want = golden.run_graph(compiled.graph, {graph.inputs[0]: x})
    runs = [accelerator.run(x), accelerator.run(x, stall_prob=0.4, seed=budget)]
    for run in runs:
        got = assemble(run.outputs, concats, compiled.graph)
        for name in compiled.graph.outputs:
            assert np.array_equal(got[name], want[name]), name
    assert runs[0].interval < 1.15 * plan.interval


@pytest.mark.slow
def test_blazeface():
    """Two outputs from four streams (the host concatenates each head's two scales), on the
    astronaut photograph and a noisy copy (about 4 minutes: the C++ build is most of it)."""
    path = MODELS / "detect" / "blazeface_qdq_s8s8_pc.onnx"
    x = np.load(MODELS / "detect" / "astronaut_128.npy").astype(np.float32)
    noisy = np.clip(x + np.random.default_rng(0).normal(0, 0.2, x.shape), -1, 1).astype(np.float32)
    run, plan = check_model(str(path), {"input": np.concatenate([x, noisy])}, 8)
    assert len(run.outputs) == 4   # each head of each scale on the tagged stream


@pytest.mark.slow
def test_ppocrv4_det():
    path = MODELS / "detect" / "ppocrv4_det_qdq_s8s8_pc.onnx"
    x = np.load(MODELS / "detect" / "text_160.npy").astype(np.float32)
    run, plan = check_model(str(path), {onnx.load(path).graph.input[0].name: x.reshape(1, 3, 160, 160)}, 32)
    assert run.output.shape[0] == 1
