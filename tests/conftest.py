"""Shared test helpers: where the bundled models are, onnxruntime as the reference, and the hwgen
command run in-process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from hwgen.cli import main

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "examples" / "models"
DIGITS = MODELS / "digits"
PERSON = MODELS / "person_detect"
DETECT = MODELS / "detect"
#: The bundled detectors and their bundled inputs.
DETECTORS = {"ppocrv4_det": (DETECT / "ppocrv4_det_qdq_s8s8_pc.onnx", DETECT / "text_160.npy"),
             "blazeface": (DETECT / "blazeface_qdq_s8s8_pc.onnx", DETECT / "astronaut_128.npy")}


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """`hwgen ARGV...` in this process: (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def detector_feeds(name: str) -> dict[str, np.ndarray]:
    model, data = DETECTORS[name]
    x = np.load(data).astype(np.float32)
    return {onnx.load(model).graph.input[0].name: x if x.ndim == 4 else x[None]}
NODE_TESTS = Path(__file__).resolve().parent / "data" / "onnx_node_tests"


def load_pb(path: Path) -> np.ndarray:
    tensor = onnx.TensorProto()
    tensor.ParseFromString(Path(path).read_bytes())
    return numpy_helper.to_array(tensor)


def ort_run(model, feeds: dict[str, np.ndarray], batched: bool = True) -> list[np.ndarray]:
    """onnxruntime on a model exported for batch 1: one sample at a time, results stacked."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    session = onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    if not batched:
        return session.run(None, feeds)
    n = len(next(iter(feeds.values())))
    runs = [session.run(None, {k: v[i:i + 1] for k, v in feeds.items()}) for i in range(n)]
    return [np.concatenate([r[k] for r in runs]) for k in range(len(runs[0]))]


@pytest.fixture(scope="session")
def digits_images() -> np.ndarray:
    return np.load(DIGITS / "digits_test.npz")["X"]
