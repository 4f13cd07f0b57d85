"""ONNX's backend node tests (QLinearConv, QLinearMatMul, ConvInteger, MatMulInteger, QuantizeLinear,
DequantizeLinear) through the RVV backend: exact, or refused with one clear line."""

from __future__ import annotations

import onnx
import pytest

from hwgen.errors import UnsupportedModelError
from hwgen.frontend import import_onnx
from hwgen.passes import run_passes
from hwgen.rvv.codegen import generate

from ..conftest import NODE_TESTS, load_pb
from ..unit.test_models import UNSUPPORTED_TYPES, _bind_all_but_first, _node_tests
from .rvv_support import check_model_against_golden, needs_rvv

pytestmark = [pytest.mark.rvv, needs_rvv]

CASES = [t for t, _ in _node_tests() if not any(u in t for u in UNSUPPORTED_TYPES)]
#: One of each kind in the default run (the rest with -m slow): raw int32 accumulators with padding,
#: 9-bit weights (uint8 weight zero point), uint8 and int8 matrices, an int16 graph that is only a copy.
FAST = {"test_convinteger_with_padding", "test_matmulinteger", "test_qlinearconv",
        "test_qlinearmatmul_2D_int8_float32", "test_qlinearmatmul_2D_uint8_float32",
        "test_quantizelinear_int16_opset21", "test_qlinearmatmul_3D_int8_float32"}
#: Stacked matrices (3-D QLinearMatMul weights) exist only in these tests; the RVV backend refuses them.
REFUSED = {"test_qlinearmatmul_3D_int8_float16", "test_qlinearmatmul_3D_int8_float32",
           "test_qlinearmatmul_3D_uint8_float16", "test_qlinearmatmul_3D_uint8_float32"}


@pytest.mark.parametrize("test", [t if t in FAST else pytest.param(t, marks=pytest.mark.slow) for t in CASES])
def test_node_test_through_rvv(test):
    folder = NODE_TESTS / test
    inputs = [load_pb(p) for p in sorted((folder / "test_data_set_0").glob("input_*.pb"))]
    graph = run_passes(import_onnx(_bind_all_but_first(onnx.load(folder / "model.onnx"), inputs)))
    if test in REFUSED:
        with pytest.raises(UnsupportedModelError, match=r"\(Dense\): batched MatMul \(weights \(2, 3, 4\)\) is not "
                                                        r"supported by the RVV backend"):
            generate(graph, test, test)
        return
    check_model_against_golden(graph, {graph.input_ports[0].onnx_name: inputs[0]}, vlens=(128, 256))
