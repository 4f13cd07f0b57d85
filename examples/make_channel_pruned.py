"""Make a TinyCNN whose structured pruning zeroed channels without removing them.

Pruning tools (torch.nn.utils.prune.ln_structured, ...) zero whole filters but keep
the tensors' shapes; quantize_static then writes the zeros into the int8 weights.
This script does the same to the float TinyCNN: it zeroes the weights and bias of
the half of conv1's and conv2's filters with the smallest L1 norm, and quantizes
the result with onnxruntime (QDQ, int8, per-channel weights). hwgen's passes should
remove those channels from the IR.

    python examples/make_channel_pruned.py   # writes examples/models/digits/tinycnn_chanzero_qdq_s8s8_pc.onnx
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

HERE = Path(__file__).parent / "models" / "digits"


def zero_weakest_filters(model: onnx.ModelProto, layer: str, fraction: float) -> None:
    inits = {i.name: i for i in model.graph.initializer}
    w = numpy_helper.to_array(inits[f"{layer}.weight"]).copy()
    b = numpy_helper.to_array(inits[f"{layer}.bias"]).copy()
    norms = np.abs(w).reshape(w.shape[0], -1).sum(axis=1)
    weakest = np.argsort(norms, kind="stable")[: int(len(norms) * fraction)]
    w[weakest] = 0
    b[weakest] = 0
    inits[f"{layer}.weight"].CopyFrom(numpy_helper.from_array(w, f"{layer}.weight"))
    inits[f"{layer}.bias"].CopyFrom(numpy_helper.from_array(b, f"{layer}.bias"))


class Images(CalibrationDataReader):
    def __init__(self, images: np.ndarray):
        self.batches = iter([{"input": images[i:i + 1]} for i in range(len(images))])

    def get_next(self):
        return next(self.batches, None)


def main() -> None:
    model = onnx.load(HERE / "tinycnn_fp32_fp32.onnx")
    zero_weakest_filters(model, "conv1", 0.5)
    zero_weakest_filters(model, "conv2", 0.5)
    pruned = HERE / "tinycnn_chanzero_fp32.onnx"
    onnx.save(model, pruned)
    images = np.load(HERE / "digits_test.npz")["X"][:256]
    quantize_static(str(pruned), str(HERE / "tinycnn_chanzero_qdq_s8s8_pc.onnx"), Images(images),
                    quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    per_channel=True)
    pruned.unlink()


if __name__ == "__main__":
    main()
