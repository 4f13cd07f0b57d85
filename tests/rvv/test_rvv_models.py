"""The generated C on the real models equals the golden model bit for bit: RVV under QEMU at VLEN
128, 256 and 512, and the scalar kernels natively under AddressSanitizer and UBSan.

The default run checks a few models; `pytest -m slow` checks every digits model on all 450 test
images (integer- and float-input variants) and person_detect on both images plus random inputs.
"""

from __future__ import annotations

import numpy as np
import pytest

from hwgen import golden
from hwgen.backends import rvv as backend
from hwgen.compiler import CompileOptions, compile_model
from hwgen.fixed import Rounding
from hwgen.rvv import program

from ..conftest import DETECTORS, DIGITS, PERSON, detector_feeds, load_pb
from .rvv_support import check_against_golden, check_model_against_golden, needs_rvv

pytestmark = [pytest.mark.rvv, needs_rvv]

VLENS = (128, 256, 512)
INTIO = sorted(DIGITS.glob("*_intio.onnx")) + sorted((DIGITS / "mobilenet").glob("*_intio.onnx"))
FLOAT_IO = sorted(p for p in list(DIGITS.glob("*_q*.onnx")) + list((DIGITS / "mobilenet").glob("*_q*.onnx"))
                  if "intio" not in p.name)
PERSON_MODELS = [PERSON / "person_detect_qdq.onnx", PERSON / "person_detect_unstruct50_qdq.onnx"]
FAST = ["tinycnn_fp32_qdq_s8s8_pc_intio", "mobilenet_fp32_qop_u8s8_pc_intio"]


def integer_inputs(path):
    compiled = compile_model(path)
    port = compiled.graph.input_ports[0]
    x_q = np.load(str(path).replace(".onnx", "_golden.npz"))["x_q"]
    return compiled, {port.tensor: port.layout.to_ir(x_q)}


def person_inputs(compiled, random_samples: int):
    port = compiled.graph.input_ports[0]
    images = [load_pb(PERSON / "cases" / f"test_data_set_{i}" / "input_0.pb") for i in (0, 1)]
    x = port.layout.to_ir(np.concatenate(images))
    rng = np.random.default_rng(11)
    t = compiled.graph.tensor(port.tensor)
    noise = rng.integers(t.dtype.lo, t.dtype.hi, (random_samples, *t.shape), endpoint=True)
    return {port.tensor: np.concatenate([x, noise])}


@pytest.mark.parametrize("name", FAST)
def test_digits_models_on_all_test_images(name):
    path = next(p for p in INTIO if p.stem == name)
    compiled, inputs = integer_inputs(path)
    check_against_golden(compiled.graph, inputs, vlens=(128, 512), generated=backend.generate_for(compiled),
                         cache=True)


def test_person_detect_on_its_images_matches_golden_and_tflite_micro():
    compiled = compile_model(PERSON / "person_detect_qdq.onnx")
    inputs = person_inputs(compiled, random_samples=0)
    generated = check_against_golden(compiled.graph, inputs, vlens=(128,), sanitized=False,
                                     generated=backend.generate_for(compiled), cache=True)
    # The whole model (RVV core, then the float Softmax on the host) on person.bmp gives TFLite Micro's output.
    port = compiled.graph.input_ports[0]
    image = load_pb(PERSON / "cases" / "test_data_set_0" / "input_0.pb")
    out = golden.run_model(compiled.graph, {port.onnx_name: image},
                           core=lambda x: program.run(generated, x).outputs)
    tflm = load_pb(PERSON / "cases" / "test_data_set_0" / "output_0.pb")
    assert np.array_equal(next(iter(out.values())), tflm)


OPTIONS = [CompileOptions(Rounding.RNU, 31), CompileOptions(Rounding.RNE, 32), CompileOptions(Rounding.RNU, 8)]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: f"{o.rounding}-{o.multiplier_bits}bit")
@pytest.mark.parametrize("path", [DIGITS / "mobilenet" / "mobilenet_fp32_qdq_u8s8_pt_intio.onnx",
                                  pytest.param(PERSON / "person_detect_qdq.onnx", marks=pytest.mark.slow)],
                         ids=lambda p: p.stem)
def test_rounding_modes_and_multiplier_widths(path, options):
    """RNU (vxrm = RNU) and 32-bit multipliers (>= 2**31: vwmulsu takes them unsigned) are exact too."""
    compiled = compile_model(path, options)
    check_against_golden(compiled.graph, backend.test_inputs(compiled.graph, samples=3, seed=5), vlens=(128, 256),
                         generated=backend.generate_for(compiled))


@pytest.mark.slow
@pytest.mark.parametrize("path", INTIO, ids=lambda p: p.stem)
def test_every_integer_digits_model_at_every_vlen(path):
    compiled, inputs = integer_inputs(path)
    check_against_golden(compiled.graph, inputs, vlens=VLENS, generated=backend.generate_for(compiled), cache=True)


@pytest.mark.slow
@pytest.mark.parametrize("path", FLOAT_IO, ids=lambda p: p.stem)
def test_every_float_digits_model_end_to_end_at_every_vlen(path, digits_images):
    """The whole model as `hwgen run --backend rvv` runs it: host quantization, RVV core, float tail."""
    compiled = compile_model(path)
    check_model_against_golden(compiled.graph, {"input": digits_images}, vlens=VLENS,
                               generated=backend.generate_for(compiled), cache=True)


@pytest.mark.slow
@pytest.mark.parametrize("path", PERSON_MODELS, ids=lambda p: p.stem)
def test_person_detect_on_images_and_random_inputs_at_every_vlen(path):
    compiled = compile_model(path)
    check_against_golden(compiled.graph, person_inputs(compiled, random_samples=8), vlens=VLENS,
                         generated=backend.generate_for(compiled), cache=True)


BREVITAS = sorted((DIGITS.parent / "brevitas").glob("*.onnx"))


@pytest.mark.slow
@pytest.mark.parametrize("path", BREVITAS, ids=lambda p: p.stem)
def test_brevitas_models_end_to_end_at_every_vlen(path):
    """4-bit and ternary QONNX / QCDQ models, whose last layer outputs its raw accumulator."""
    data = np.load(str(path).replace("_qonnx_ts_clean.onnx", "_torch_logits.npz").replace("_qcdq_ts.onnx",
                                                                                         "_torch_logits.npz"))
    compiled = compile_model(path)
    check_model_against_golden(compiled.graph, {compiled.graph.input_ports[0].onnx_name: data["X"]}, vlens=VLENS,
                               generated=backend.generate_for(compiled), cache=True)


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_detectors_on_their_inputs(name):
    """PP-OCRv4 det and BlazeFace: host quantization, the generated core and the float tail."""
    compiled = compile_model(DETECTORS[name][0])
    check_model_against_golden(compiled.graph, detector_feeds(name), vlens=(128, 512),
                               generated=backend.generate_for(compiled), cache=True)
