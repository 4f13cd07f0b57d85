"""The sequential engine's compiler side: programs run in numpy equal the golden model, the weight
stream holds exactly the program, and what the engine cannot run is refused by name."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwgen import api, golden
from hwgen.errors import UnsupportedModelError
from hwgen.fixed import IntType, Rounding
from hwgen.fpga import sequential as sq
from hwgen.fpga.outputs import hardware_graph
from hwgen.ir import AvgPool, Graph, Requant, Tensor, verify
from hwgen.passes.accumulators import assign_accumulators
from tests.seq_chains import chains, random_batch

MODELS = "examples/models"


def _hardware(path: str) -> Graph:
    return hardware_graph(api.compile(path).graph)[0]


def _equal_to_golden(graph: Graph, program: sq.SeqProgram, x: np.ndarray) -> None:
    want = golden.run_graph(graph, {graph.inputs[0]: x})[graph.outputs[0]]
    got = np.stack([sq.run_program(program, sample) for sample in x])
    assert np.array_equal(got, want)


@settings(max_examples=150, deadline=None)
@given(chains(), st.sampled_from([(1, 1), (2, 1), (2, 2), (3, 1), (3, 3), (4, 1), (4, 2), (5, 5), (8, 4)]),
       st.integers(0, 1000))
def test_drawn_chains_equal_the_golden_model(graph, shape, seed):
    lanes, requantizers = shape
    program = sq.compile_program(graph, lanes, requantizers)
    _equal_to_golden(graph, program, random_batch(graph, 2, seed))
    # every layer reads the bank the one before wrote
    assert [x.in_bank for x in program.layers] == [k % 2 for k in range(len(program.layers))]


@pytest.mark.parametrize("model", [
    "digits/tinycnn_fp32_qdq_s8s8_pc.onnx", "digits/tinycnn_fp32_qdq_u8s8_pt.onnx",
    "digits/tinycnn_unstruct50_qop_u8s8_pc.onnx", "digits/tinycnn_struct50_qdq_s8s8_pc.onnx",
    "digits/tinycnn_prunedfcconv_qop_u8s8_pc.onnx",
])
def test_digits_models_equal_the_golden_model(model):
    graph = _hardware(f"{MODELS}/{model}")
    _equal_to_golden(graph, sq.compile_program(graph), random_batch(graph, 4, 0))


def test_person_detect_equals_the_golden_model_and_skips_zero_blocks():
    graph = _hardware(f"{MODELS}/person_detect/person_detect_qdq.onnx")
    program = sq.compile_program(graph)
    _equal_to_golden(graph, program, random_batch(graph, 1, 5))
    depthwise = next(x for x in program.layers if x.node == "Conv__19")   # 3x3 depthwise, 8 channels
    assert [len(t) for t in depthwise.taps] == [9, 9]    # one step per tap: the other words are zero blocks
    nonzero = sum(x.macs for x in program.layers)
    assert nonzero == 7_080_620
    assert sum(x.steps for x in program.layers) * 16 >= nonzero


def _decode(word: int, widths: list[tuple[int, bool]]) -> list[int]:
    values = []
    for bits, is_signed in widths:
        v = word & ((1 << bits) - 1)
        values.append(v - (1 << bits) if is_signed and v >> (bits - 1) else v)
        word >>= bits
    return values


def test_the_weight_stream_holds_the_program_in_order():
    graph = _hardware(f"{MODELS}/digits/tinycnn_unstruct50_qop_u8s8_pc.onnx")
    program = sq.compile_program(graph, 3, 1)
    fmt, lanes = program.fmt, program.lanes
    words = iter(sq.stream_words(program))
    header = [(fmt.steps_bits, False)] + [(fmt.acc_bits, True), (fmt.multiplier_bits, False),
                                           (fmt.shift_bits, False)] * lanes
    entry = [(fmt.tap_bits, False)] * 2 + [(fmt.offset_bits, False)] + [(fmt.weight_bits, True)] * lanes * lanes
    for layer in program.layers:
        for g, (taps, weights) in enumerate(zip(layer.taps, layer.weights)):
            chunks = [next(words) for _ in range(fmt.header_words)]
            assert all(c < 1 << fmt.word_bits for c in chunks)
            h = _decode(sum(c << (k * fmt.word_bits) for k, c in enumerate(chunks)), header)
            assert h[0] == len(taps)
            sl = slice(g * lanes, (g + 1) * lanes)
            assert h[1::3] == list(layer.bias[sl]) and h[2::3] == list(layer.multiplier[sl])
            assert h[3::3] == list(layer.shift[sl])
            for tap, w in zip(taps, weights):
                e = _decode(next(words), entry)
                assert e[:3] == list(tap) and e[3:] == list(w.reshape(-1))
    assert next(words, None) is None


def test_flash_image_header_and_checksum():
    import hashlib
    import struct
    graph = _hardware(f"{MODELS}/digits/tinycnn_fp32_qdq_s8s8_pc.onnx")
    program = sq.compile_program(graph)
    image = sq.flash_image(program)
    magic, (version, nbytes, count), digest = image[:8], struct.unpack("<HHI", image[8:16]), image[16:32]
    assert magic == sq.FLASH_MAGIC and version == 1 and nbytes == program.fmt.word_bytes
    assert count == program.stream_length and len(image) == 32 + count * nbytes
    assert digest == hashlib.sha256(image[32:]).digest()[:16]
    words = sq.stream_words(program)
    assert [int.from_bytes(image[32 + k * nbytes:32 + (k + 1) * nbytes], "little") for k in range(count)] == words


def test_cycle_model_counts_every_step_and_waits_for_a_slow_stream():
    graph = _hardware(f"{MODELS}/digits/tinycnn_fp32_qdq_s8s8_pc.onnx")
    program = sq.compile_program(graph)
    fast, slow = sq.cycle_model(program, 1.0), sq.cycle_model(program, 0.01)
    assert sum(s for _, s, _, _ in fast.layers) == sum(x.steps for x in program.layers)
    assert all(c >= s for _, s, c, _ in fast.layers)
    # a 100x slower stream: the Dense layer (one position per group) waits for every group's words
    assert slow.stalls > fast.stalls and slow.interval > fast.interval + 100 * program.layers[-1].steps


def test_branches_and_joins_are_refused_by_name():
    graph = _hardware(f"{MODELS}/digits/mobilenet/mobilenet_fp32_qdq_s8s8_pc.onnx")
    with pytest.raises(UnsupportedModelError, match=r"node '/Add' \(Add\).*chain of layers.*--arch dataflow"):
        sq.compile_program(graph)


def test_wide_outputs_are_refused_by_name():
    graph = _hardware(f"{MODELS}/brevitas/brevitas_w4a4_qcdq_ts.onnx")
    with pytest.raises(UnsupportedModelError, match=r"\(Dense\): the sequential engine stores activations of at most "
                                                     r"8 bits, not i32"):
        sq.compile_program(graph)


def test_average_pools_with_short_border_windows_are_refused():
    x = Tensor("x", (4, 4, 2), IntType(8, True), 3, (1.0,))
    y = Tensor("y", (4, 4, 2), IntType(8, True), -1, (1.0,))
    rq = {n: Requant((1 << 30,), (32 + n,), -1, -128, 127, Rounding.RNE) for n in (4, 6, 9)}
    node = AvgPool("pool", ("x",), ("y",), (3, 3), (1, 1), (1, 1, 1, 1), False, IntType(32, True), rq)
    graph = verify(assign_accumulators(Graph("g", {"x": x, "y": y}, (node,), ("x",), ("y",))))
    with pytest.raises(UnsupportedModelError, match="node 'pool' \\(AvgPool\\).*border windows"):
        sq.compile_program(graph)
