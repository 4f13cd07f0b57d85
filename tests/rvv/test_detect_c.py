"""detect.c (the generated C post-processing) gives the detections hwgen.detect gives, bit for bit:
on the host under ASan/UBSan and for RISC-V under QEMU, on random head outputs."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hwgen
from hwgen.cli import main
from hwgen.modelconfig import NmsKind, config_for
from hwgen.rvv.codegen import generate
from hwgen.rvv.postprocess import decode_detections, python_detections

from ..conftest import DETECT
from .rvv_support import needs_rvv

pytestmark = [pytest.mark.rvv, needs_rvv]

BLAZEFACE = DETECT / "blazeface_qdq_s8s8_pc.onnx"
QEMU = ["qemu-riscv64", "-cpu", "rv64,v=true,vlen=128,vext_spec=v1.0"]


def _configs():
    bundled = config_for(BLAZEFACE).detect
    hard = replace(bundled, nms=replace(bundled.nms, algorithm=NmsKind.DEFAULT, min_suppression_threshold=0.5,
                                        max_num_detections=5),
                   decode=replace(bundled.decode, min_score_thresh=0.3))
    # the 896x16 regressors read as 16 class logits too: several classes, y-x order, exponential sizes
    classes = replace(bundled, decode=replace(bundled.decode, scores="regressors", num_classes=16,
                                              reverse_output_order=False, apply_exponential_on_box_size=True,
                                              w_scale=40.0, h_scale=40.0, score_clipping_thresh=0.0,
                                              min_score_thresh=0.9))
    return {"weighted": bundled, "hard": hard, "classes": classes}


CONFIGS = _configs()


@pytest.fixture(scope="module")
def graph():
    return hwgen.compile(BLAZEFACE).graph


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def built(request, graph, tmp_path_factory):
    """The generated library with detect.c for one config, its test programs built by its Makefile."""
    config = CONFIGS[request.param]
    generated = generate(graph, "blazeface", "blazeface.onnx", test_samples=1, detect=config)
    where = tmp_path_factory.mktemp(f"detect_{request.param}")
    for name, text in generated.files.items():
        (where / name).write_text(text)
    subprocess.run(["make", "-s", "test_detect_sanitize", "test_detect_rvv"], cwd=where, check=True,
                   capture_output=True)
    return config, generated, where


def _random_heads(graph, seed: int, samples: int, hot: float) -> list[dict[str, np.ndarray]]:
    """Head outputs as the core writes them; a fraction `hot` of the boxes get high logits."""
    rng = np.random.default_rng(seed)
    heads = []
    for _ in range(samples):
        sample = {}
        for name in graph.outputs:
            t = graph.tensor(name)
            q = rng.integers(t.dtype.lo, t.dtype.hi, t.shape, endpoint=True)
            hot_rows = rng.random(t.shape[0]) < hot
            q[hot_rows] = rng.integers(t.dtype.hi - 12, t.dtype.hi, (hot_rows.sum(), t.shape[1]), endpoint=True)
            sample[name] = q.astype(np.int8)
        heads.append(sample)
    return heads


def _run(binary: list[str], generated, heads) -> bytes:
    stdin = b"".join(h[p.tensor].tobytes() for h in heads for p in generated.outputs)
    done = subprocess.run([*binary, str(len(heads))], input=stdin, capture_output=True, check=True)
    return done.stdout


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), hot=st.sampled_from([0.0, 0.02, 0.1, 0.5]))
def test_c_detections_equal_python(built, graph, seed, hot):
    config, generated, where = built
    heads = _random_heads(graph, seed, 12, hot)
    want = [python_detections(graph, h, config) for h in heads]
    for binary in ([str(where / "test_detect_sanitize")], [*QEMU, str(where / "test_detect_rvv")]):
        got = decode_detections(_run(binary, generated, heads), config, len(heads))
        for k, (g, w) in enumerate(zip(got, want)):
            assert g == w, f"{binary[-1]} sample {k}: {len(g)} detections, Python {len(w)}"
    if hot >= 0.1:   # the random heads exercise the NMS: many candidates, several kept
        assert sum(len(w) for w in want) > len(heads)


def test_generated_makefile_checks_detect_c(tmp_path, capsys):
    """`hwgen compile` of BlazeFace (its config beside it) writes detect.h/.c and expected detections;
    `make detect-check` and `make detect-sanitize` compare against them."""
    out = tmp_path / "out"
    assert main(["compile", str(BLAZEFACE), "-o", str(out), "--target", "rvv", "--rvv-no-count"]) == 0
    rvv = out / "rvv"
    assert {"detect.h", "detect.c", "detect_main.c", "test_detect_expected.bin"} <= {p.name for p in rvv.iterdir()}
    header = (rvv / "detect.h").read_text()
    assert "int hwgen_blazeface_qdq_s8s8_pc_detect(const int8_t *boxes, const int8_t *scores," in header
    assert "`boxes` is its\n * out_regressors (output 1), `scores` its out_classificators (output 0)" in header
    assert "detect.h implements the SSD post-processing of 'regressors' and 'classificators'" in \
        (rvv / "model.h").read_text()
    after = json.loads((rvv / "report.json").read_text())["after_run"]
    assert after == {"host_tail": ["DequantizeLinear", "DequantizeLinear"],
                     "in_library": ["the float tail (tail.c)",
                                    "SSD post-processing, dequantization included (detect.c)"]}
    again = tmp_path / "again"
    assert main(["compile", str(BLAZEFACE), "-o", str(again), "--target", "rvv", "--rvv-no-count"]) == 0
    for name in ("detect.h", "detect.c", "detect_main.c", "test_detect_expected.bin", "model.h"):
        assert (again / "rvv" / name).read_bytes() == (rvv / name).read_bytes(), name
    for target in ("detect-sanitize", "detect-check"):
        done = subprocess.run(["make", "-s", target], cwd=rvv, capture_output=True, text=True)
        assert done.returncode == 0 and "detections equal hwgen.detect's" in done.stdout, done.stderr[-2000:]


def test_detect_backends_agree(capsys):
    """`hwgen detect --backend rvv` prints what the golden backend prints."""
    image = DETECT / "astronaut.png"
    printed = []
    for backend in ("golden", "rvv"):
        assert main(["detect", str(BLAZEFACE), "--input", str(image), "--backend", backend]) == 0
        printed.append(capsys.readouterr().out)
    assert printed[0] == printed[1] and len(printed[0].splitlines()) == 1
    assert json.loads(printed[0])["score"] > 0.9
