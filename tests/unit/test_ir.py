"""The IR: its verifier, layouts and JSON form."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hwgen import irjson
from hwgen.compiler import compile_model
from hwgen.errors import VerificationError
from hwgen.fixed import IntType
from hwgen.golden import run_graph
from hwgen.ir import Layout, verify

from ..conftest import DIGITS, PERSON


@pytest.fixture(scope="module")
def mobilenet():
    return compile_model(DIGITS / "mobilenet" / "mobilenet_fp32_qdq_u8s8_pt.onnx").graph


def _swap_node(graph, index, **changes):
    nodes = list(graph.nodes)
    nodes[index] = replace(nodes[index], **changes)
    return replace(graph, nodes=tuple(nodes))


def test_verifier_names_the_first_bad_node(mobilenet):
    conv = mobilenet.nodes[1]
    bad = _swap_node(mobilenet, 1, weights=np.concatenate([conv.weights, conv.weights], axis=3))
    with pytest.raises(VerificationError, match=r"^node '/dw/dw.0/Conv' \(Conv2d\): weights \(16, 3, 3, 2\)"):
        verify(bad)
    narrow = _swap_node(mobilenet, 2, acc=IntType(12, True))
    with pytest.raises(VerificationError, match=r"^node '/pw/pw.0/Conv' \(Conv2d\): accumulator i12 cannot hold"):
        verify(narrow)
    unordered = replace(mobilenet, nodes=mobilenet.nodes[1:] + mobilenet.nodes[:1])
    with pytest.raises(VerificationError,
                       match=r"^node '/dw/dw.0/Conv' \(Conv2d\): input .* is not defined before use"):
        verify(unordered)
    rq = mobilenet.nodes[3].requant
    clamp = _swap_node(mobilenet, 3, requant=replace(rq, hi=300))
    with pytest.raises(VerificationError,
                       match=r"^node '/Add' \(Add\): clamp \[0, 300\] is outside the output type u8"):
        verify(clamp)


@given(st.integers(1, 5), st.integers(1, 5), st.integers(1, 5), st.integers(1, 4))
def test_layout_round_trips_nchw_samples(c, h, w, batch):
    layout = Layout((1, c, h, w), (h, w, c), True, (c, h, w))
    x = np.arange(batch * c * h * w).reshape(batch, c, h, w)
    ir = layout.to_ir(x)
    assert np.array_equal(ir, x.transpose(0, 2, 3, 1))
    assert np.array_equal(layout.to_onnx(ir), x)


def test_layout_of_a_flattened_map_keeps_channels_last():
    layout = Layout((1, 12), (12,), True, (3, 2, 2))
    x = np.arange(12).reshape(1, 12)  # ONNX order c, h, w
    assert layout.to_ir(x).tolist() == [[0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]]
    with pytest.raises(ValueError, match=r"expected shape \[1, 12\] or \[B, 12\], got \[12\]"):
        layout.to_ir(np.arange(12))


@pytest.mark.parametrize("path", [DIGITS / "mobilenet" / "mobilenet_fp32_qop_u8s8_pc.onnx",
                                  PERSON / "person_detect_qdq.onnx"], ids=lambda p: p.stem)
def test_json_round_trip(path, tmp_path):
    graph = compile_model(path).graph
    irjson.dump(graph, tmp_path / "a.json")
    loaded = verify(irjson.load(tmp_path / "a.json"))
    irjson.dump(loaded, tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert str(loaded) == str(graph)
    t = graph.tensor(graph.inputs[0])
    x = np.random.default_rng(0).integers(t.dtype.lo, t.dtype.hi + 1, size=(2, *t.shape))
    a, b = run_graph(graph, {t.name: x}), run_graph(loaded, {t.name: x})
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_text_form_shows_types_and_requantization(mobilenet):
    text = str(mobilenet)
    assert "Add '/Add' (" in text and "a=67862 b=262144" in text
    assert "GlobalAvgPool" in text and "host tail (float): DequantizeLinear" in text
