"""tail.c (the float host tail in C) equals hwgen.rvv.tail.reference bit for bit, natively under
ASan/UBSan and for RISC-V under QEMU, and agrees with onnxruntime's float32 tail: person_detect's
dequantize -> Softmax -> quantize on every pair of int8 logits."""

from __future__ import annotations

import subprocess

import numpy as np
import onnxruntime
import pytest

import hwgen
from hwgen.rvv.codegen import generate
from hwgen.rvv.tail import reference, tail_chains

from ..conftest import DIGITS, PERSON
from .rvv_support import needs_rvv

pytestmark = [pytest.mark.rvv, needs_rvv]

MODEL = PERSON / "person_detect_qdq.onnx"

DRIVER = """
#include <stdio.h>
#include "tail.h"
int main(void)
{
    static int8_t logits[2];
    static int8_t y[2];
    while (fread(logits, 1, sizeof(logits), stdin) == sizeof(logits)) {
        hwgen_person_detect_qdq_tail(logits, y);
        fwrite(y, 1, sizeof(y), stdout);
    }
    return 0;
}
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    graph = hwgen.compile(MODEL).graph
    generated = generate(graph, "person_detect_qdq", "person_detect_qdq.onnx")
    where = tmp_path_factory.mktemp("tail")
    for name, text in generated.files.items():
        (where / name).write_text(text)
    (where / "driver.c").write_text(DRIVER)
    flags = ["-Wall", "-Wextra", "-Werror", "-ffp-contract=off", "tail.c", "driver.c", "-lm"]
    subprocess.run(["cc", "-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all", *flags,
                    "-o", "host"], cwd=where, check=True)
    subprocess.run(["clang-19", "--target=riscv64-linux-gnu", "-march=rv64gcv", "-O2", "-static", "-fuse-ld=lld",
                    *flags, "-o", "rv"], cwd=where, check=True)
    return graph, where


def test_model_h_says_the_library_has_the_tail(built):
    graph, where = built
    header = (where / "model.h").read_text()
    assert "float tail DequantizeLinear -> Softmax -> QuantizeLinear" in header
    assert "tail.h implements that in float32 (hwgen_<model>_tail)" in header
    (chain,) = tail_chains(graph)
    assert chain.softmax and chain.row == 2 and chain.out_ctype == "int8_t"


def test_every_pair_of_logits(built):
    graph, where = built
    (chain,) = tail_chains(graph)
    pairs = np.stack(np.meshgrid(np.arange(-128, 128), np.arange(-128, 128)), -1).reshape(-1, 2).astype(np.int8)
    want = np.concatenate([reference(chain, p) for p in pairs]).astype(np.int8)
    for command in (["./host"], ["qemu-riscv64", "-cpu", "rv64,v=true", "./rv"]):
        done = subprocess.run(command, cwd=where, input=pairs.tobytes(), capture_output=True, check=True)
        assert np.array_equal(np.frombuffer(done.stdout, np.int8), want), command
    # onnxruntime's tail on the same integers: its float32 exp may differ from the table in the last
    # bit, which quantizing to steps of 1/256 hides but at a tie (measured on all 65,536 pairs: no
    # difference; the test checks every 64th)
    session = onnxruntime.InferenceSession(graph.tail.model, providers=["CPUExecutionProvider"])
    (name,) = [i.name for i in session.get_inputs()]
    theirs = np.concatenate([session.run(None, {name: p.reshape(1, 2)})[0].reshape(-1) for p in pairs[::64]])
    assert np.array_equal(theirs, want.reshape(-1, 2)[::64].reshape(-1))


def test_a_dequantizing_tail(tmp_path):
    """TinyCNN's tail only dequantizes its logits: float32(q - zero point) * scale, as onnxruntime."""
    compiled = hwgen.compile(DIGITS / "tinycnn_fp32_qdq_u8s8_pt.onnx")
    graph = compiled.graph
    (chain,) = tail_chains(graph)
    assert not chain.softmax and chain.out_scale is None
    generated = generate(graph, "tiny", "tiny.onnx")
    for name, text in generated.files.items():
        (tmp_path / name).write_text(text)
    (param,) = [p.name for p in generated.outputs]
    (tmp_path / "driver.c").write_text("""
#include <stdio.h>
#include "tail.h"
int main(void)
{
    static uint8_t q[10];
    static float y[10];
    while (fread(q, 1, sizeof(q), stdin) == sizeof(q)) {
        hwgen_tiny_tail(q, y);
        fwrite(y, sizeof(float), 10, stdout);
    }
    return 0;
}
""")
    subprocess.run(["cc", "-O1", "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-Wall", "-Werror",
                    "tail.c", "driver.c", "-o", "host"], cwd=tmp_path, check=True)
    q = np.random.default_rng(0).integers(0, 256, (50, 10)).astype(np.uint8)
    got = np.frombuffer(subprocess.run(["./host"], cwd=tmp_path, input=q.tobytes(), capture_output=True,
                                       check=True).stdout, np.float32).reshape(50, 10)
    session = onnxruntime.InferenceSession(graph.tail.model, providers=["CPUExecutionProvider"])
    (name,) = [i.name for i in session.get_inputs()]
    theirs = np.concatenate([session.run(None, {name: row.reshape(1, 10)})[0] for row in q])
    assert np.array_equal(got, theirs) and np.array_equal(got, np.stack([reference(chain, row) for row in q]))
    assert param in (tmp_path / "tail.h").read_text()
