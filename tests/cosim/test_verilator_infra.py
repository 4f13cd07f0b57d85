"""Tests of hwgen.sim.verilator: the C++ stream harness and the pyverilator-mm driver.

The device under test is a small Amaranth pipeline defined here, checked against a Python
model. Tests marked ``cosim`` build with Verilator (a few seconds per design, cached for the
session) and are skipped when it is missing; the limb conversion tests need no tools.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from amaranth import Module, Signal, unsigned
from amaranth.back import verilog
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from hypothesis import given
from hypothesis import strategies as st

from hwgen.sim.verilator import (
    PyVerilatorStream,
    SimulationError,
    StreamModel,
    ToolchainError,
    build,
    from_limbs,
    to_limbs,
)


class MulAdd(wiring.Component):
    """``o = (i * k + c) mod 2**w_out``, pipelined in 2 stages, II=1, with back-pressure.

    Stage 1 registers ``i * k``, stage 2 adds ``c`` into ``o``. A stage loads when it is empty
    or its contents move on this cycle, so ``i.ready`` follows ``o.ready`` combinationally.
    """

    def __init__(self, w_in: int, w_out: int, k: int, c: int) -> None:
        self.k, self.c = k, c
        super().__init__({"i": In(stream.Signature(unsigned(w_in))),
                          "o": Out(stream.Signature(unsigned(w_out)))})

    def elaborate(self, platform):
        m = Module()
        product = Signal(len(self.i.payload) + self.k.bit_length())
        product_valid = Signal()
        o_free = ~self.o.valid | self.o.ready
        product_free = ~product_valid | o_free
        m.d.comb += self.i.ready.eq(product_free)
        with m.If(product_free):
            m.d.sync += [product_valid.eq(self.i.valid), product.eq(self.i.payload * self.k)]
        with m.If(o_free):
            m.d.sync += [self.o.valid.eq(product_valid), self.o.payload.eq(product + self.c)]
        return m


class PulseOut(wiring.Component):
    """Broken on purpose: raises o.valid for one cycle per word, whatever o.ready says."""

    def __init__(self) -> None:
        super().__init__({"i": In(stream.Signature(unsigned(8))),
                          "o": Out(stream.Signature(unsigned(8)))})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.i.ready.eq(1)
        m.d.sync += [self.o.valid.eq(self.i.valid), self.o.payload.eq(self.i.payload)]
        return m


# name: (w_in, w_out, k, c); wide uses VlWide ports, narrow IData in and QData out.
DESIGNS = {
    "wide": (100, 110, 1000, (1 << 109) | 0x1234_5678_9ABC_DEF0),
    "narrow": (24, 48, 0xABCDE, 0xF0_0000_0001),
}


def model(words: list[int], w_out: int, k: int, c: int) -> list[int]:
    return [(word * k + c) % (1 << w_out) for word in words]


def random_words(width: int, count: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    return [int.from_bytes(rng.bytes((width + 7) // 8), "little") % (1 << width)
            for _ in range(count)]


def to_verilog(component: wiring.Component, name: str) -> str:
    with mock.patch.dict(os.environ, {"AMARANTH_USE_YOSYS": "builtin"}):
        return verilog.convert(component, name=name)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("verilator") is None:
        pytest.skip("verilator not found on PATH (apt-get install verilator)")
    return tmp_path_factory.mktemp("hwgen-cache")


@pytest.fixture(scope="session")
def design_verilog() -> dict[str, str]:
    return {name: to_verilog(MulAdd(*params), f"muladd_{name}")
            for name, params in DESIGNS.items()}


@pytest.fixture(scope="session")
def build_progress() -> dict[str, list[str]]:
    return {}


@pytest.fixture(scope="session")
def models(cache_dir: Path, design_verilog: dict[str, str],
           build_progress: dict[str, list[str]]) -> dict[str, StreamModel]:
    return {name: build(design_verilog[name], f"muladd_{name}", cache_dir=cache_dir,
                        progress=build_progress.setdefault(name, []).append)
            for name in DESIGNS}


# --- limb conversion (no tools) -----------------------------------------------------------------

@given(st.integers(1, 300).flatmap(
    lambda width: st.tuples(st.just(width), st.lists(st.integers(0, (1 << width) - 1)))))
def test_limbs_round_trip(case: tuple[int, list[int]]) -> None:
    width, words = case
    limbs = to_limbs(words, width)
    assert limbs.dtype == np.uint32 and limbs.shape == (len(words), (width + 31) // 32)
    assert list(from_limbs(limbs)) == words
    assert np.array_equal(to_limbs(limbs, width), limbs)


def test_limbs_from_numpy_dtypes() -> None:
    words = np.array([0, 1, 0xFFFF_FFFF, 0x1_0000_0000, 2**64 - 1], dtype=np.uint64)
    expected = [[0, 0, 0], [1, 0, 0], [0xFFFF_FFFF, 0, 0], [0, 1, 0],
                [0xFFFF_FFFF, 0xFFFF_FFFF, 0]]
    assert to_limbs(words, 70).tolist() == expected
    assert to_limbs(np.arange(4, dtype=np.int8), 3).tolist() == [[0], [1], [2], [3]]


def test_limbs_reject_bad_words() -> None:
    with pytest.raises(ValueError, match=r"^Word 8 does not fit in 3 unsigned bits$"):
        to_limbs([1, 8], 3)
    with pytest.raises(ValueError, match=r"^Word -1 does not fit in 3 unsigned bits$"):
        to_limbs(np.array([-1, 2]), 3)
    with pytest.raises(TypeError, match=r"^Words must be integers, not 1\.5$"):
        to_limbs([1, 1.5], 8)
    with pytest.raises(TypeError, match=r"^Words must be integers, not float64$"):
        to_limbs(np.array([1.5]), 8)
    with pytest.raises(ValueError, match=r"^Word does not fit in 40 bits$"):
        to_limbs(np.array([[0, 0x100]], dtype=np.uint32), 40)


# --- C++ harness --------------------------------------------------------------------------------

@pytest.mark.cosim
@pytest.mark.parametrize("name", DESIGNS)
def test_matches_model_without_stalls(models: dict[str, StreamModel], name: str) -> None:
    w_in, w_out, k, c = DESIGNS[name]
    words = random_words(w_in, 500, seed=1)
    result = models[name].run(words, len(words))
    assert list(result.words) == model(words, w_out, k, c)
    # II=1 and latency 2: word n goes in at cycle n and comes out at cycle n + 2.
    assert result.in_cycles.tolist() == list(range(500))
    assert result.out_cycles.tolist() == list(range(2, 502))
    assert result.latency == 2 and result.interval() == 1.0 and result.cycles == 502


@pytest.mark.cosim
@pytest.mark.parametrize("name", DESIGNS)
@pytest.mark.parametrize(("seed", "stall_prob"), [(1, 0.1), (2, 0.5), (3, 0.9)])
def test_matches_model_with_stalls(models: dict[str, StreamModel], name: str, seed: int,
                                   stall_prob: float) -> None:
    w_in, w_out, k, c = DESIGNS[name]
    words = random_words(w_in, 300, seed=seed)
    result = models[name].run(words, len(words), stall_seed=seed, stall_prob=stall_prob)
    assert list(result.words) == model(words, w_out, k, c)
    assert result.cycles > 302 and result.n_in_accepted == 300
    assert np.all(np.diff(result.out_cycles.astype(np.int64)) >= 1)
    again = models[name].run(words, len(words), stall_seed=seed, stall_prob=stall_prob)
    assert np.array_equal(again.out_cycles, result.out_cycles)  # seeded: repeatable


@pytest.mark.cosim
def test_accepts_numpy_and_limb_words(models: dict[str, StreamModel]) -> None:
    w_in, w_out, k, c = DESIGNS["narrow"]
    words = np.random.default_rng(4).integers(0, 1 << w_in, size=64, dtype=np.uint32)
    expected = model([int(w) for w in words], w_out, k, c)
    assert list(models["narrow"].run(words, 64).words) == expected
    wide_words = random_words(DESIGNS["wide"][0], 64, seed=5)
    limbs = to_limbs(wide_words, DESIGNS["wide"][0])
    result = models["wide"].run(limbs, 64)
    assert list(result.words) == model(wide_words, *DESIGNS["wide"][1:])
    assert result.limbs.shape == (64, 4) and result.limbs.dtype == np.uint32


@pytest.mark.cosim
def test_back_to_back_tensors_give_steady_state_interval(
        models: dict[str, StreamModel]) -> None:
    w_in, w_out, k, c = DESIGNS["wide"]
    tensors = [random_words(w_in, 16, seed=10 + t) for t in range(8)]
    words = [word for tensor in tensors for word in tensor]
    result = models["wide"].run(words, len(words))
    assert list(result.words) == model(words, w_out, k, c)
    assert result.interval(words_per_tensor=16) == 16.0


@pytest.mark.cosim
def test_run_without_reset_continues_the_stream(models: dict[str, StreamModel]) -> None:
    w_in, w_out, k, c = DESIGNS["narrow"]
    words = random_words(w_in, 40, seed=6)
    first = models["narrow"].run(words[:20], 20, stall_prob=0.3)
    second = models["narrow"].run(words[20:], 20, stall_prob=0.3, stall_seed=9, reset=False)
    assert list(first.words) + list(second.words) == model(words, w_out, k, c)


@pytest.mark.cosim
def test_second_build_hits_cache(cache_dir: Path, design_verilog: dict[str, str],
                                 models: dict[str, StreamModel]) -> None:
    library = models["wide"].library
    mtime = library.stat().st_mtime_ns
    again = build(design_verilog["wide"], "muladd_wide", cache_dir=cache_dir)
    assert again.cached and again.library == library
    assert library.stat().st_mtime_ns == mtime
    assert again.build_seconds < 1.0
    assert library.parent.parent == cache_dir


@pytest.mark.cosim
def test_build_reports_progress(cache_dir: Path, design_verilog: dict[str, str],
                                models: dict[str, StreamModel],
                                build_progress: dict[str, list[str]]) -> None:
    cold = build_progress["narrow"]  # the session's first build, into an empty cache
    assert cold[0] == "verilating muladd_narrow"
    assert {"compiling harness.cpp", "compiling Vmuladd_narrow__ALL.cpp"} <= set(cold)
    assert cold[-2] == "linking libhwgen_muladd_narrow.so"
    assert re.fullmatch(r"built libhwgen_muladd_narrow\.so in \d+\.\d s", cold[-1])
    lines: list[str] = []
    build(design_verilog["narrow"], "muladd_narrow", cache_dir=cache_dir, progress=lines.append)
    assert lines == [f"cached build {models['narrow'].build_dir}"]


@pytest.mark.cosim
def test_timeout_names_progress(models: dict[str, StreamModel]) -> None:
    words = random_words(DESIGNS["narrow"][0], 10, seed=7)
    with pytest.raises(SimulationError, match=(
            r"^muladd_narrow: Timeout after 500 cycles: 10/10 input words accepted, "
            r"10/11 output words collected")) as info:
        models["narrow"].run(words, 11, max_cycles=500)
    assert info.value.result is not None and len(info.value.result.words) == 10


@pytest.mark.cosim
@pytest.mark.parametrize(("words", "violation"), [
    ([7] * 50, r"o\.valid was deasserted before its word was transferred"),
    (list(range(50)), r"o\.payload changed while o\.valid was waiting for o\.ready"),
], ids=["valid_dropped", "payload_changed"])
def test_detects_output_protocol_violation(cache_dir: Path, words: list[int],
                                           violation: str) -> None:
    broken = build(to_verilog(PulseOut(), "pulse_out"), "pulse_out", cache_dir=cache_dir)
    with pytest.raises(SimulationError,
                       match=rf"^pulse_out: Stream protocol violation at cycle \d+: {violation}"):
        broken.run(words, len(words), stall_prob=0.5, stall_seed=1)


@pytest.mark.cosim
def test_trace_writes_fst(cache_dir: Path, design_verilog: dict[str, str],
                          tmp_path: Path) -> None:
    traced = build(design_verilog["narrow"], "muladd_narrow", cache_dir=cache_dir, trace=True)
    assert traced.has_trace
    w_in, w_out, k, c = DESIGNS["narrow"]
    words = random_words(w_in, 20, seed=8)
    result = traced.run(words, 20, stall_prob=0.3, trace_path=tmp_path / "run.fst")
    assert list(result.words) == model(words, w_out, k, c)
    assert (tmp_path / "run.fst").stat().st_size > 100


@pytest.mark.cosim
def test_bad_arguments(models: dict[str, StreamModel], design_verilog: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"^stall_prob must be in \[0, 1\), not 1\.0$"):
        models["narrow"].run([1], 1, stall_prob=1.0)
    with pytest.raises(ValueError, match=r"^'muladd_narrow' was built without tracing"):
        models["narrow"].run([1], 1, trace_path="x.fst")
    with pytest.raises(ValueError, match=r"^Verilog text has no 'module'"):
        build("design.v", "design")
    with pytest.raises(ValueError, match=r"^Top module name must be a plain Verilog identifier"):
        build(design_verilog["wide"], "muladd wide")


@pytest.mark.cosim
def test_verilator_error_is_quoted(cache_dir: Path) -> None:
    with pytest.raises(ToolchainError, match=(
            r"^verilator failed \(exit \d+\): %Error: \S*broken\.v:2:\d+: syntax error")) as info:
        build("module broken(input clk);\n  wire x = ;\nendmodule\n", "broken", cache_dir=cache_dir)
    assert "%Error" in info.value.output
    assert not list(cache_dir.glob(".*"))  # the failed build left no staging directory


@pytest.mark.cosim
def test_missing_stream_ports_are_named(cache_dir: Path) -> None:
    with pytest.raises(ValueError, match=(
            r"^Module 'plain' lacks the stream ports \['i__payload', 'i__valid', 'i__ready', "
            r"'o__payload', 'o__valid', 'o__ready'\]")):
        build("module plain(input clk, input rst, output q);\n  assign q = 0;\nendmodule\n",
              "plain", cache_dir=cache_dir)


# --- pyverilator-mm per-signal driver -----------------------------------------------------------

@pytest.fixture(scope="session")
def pyverilator_stream(cache_dir: Path, design_verilog: dict[str, str]) -> PyVerilatorStream:
    pytest.importorskip("pyverilator", reason="pyverilator-mm not installed")
    return PyVerilatorStream.build(design_verilog["wide"], "muladd_wide",
                                   cache_dir=cache_dir / "pyverilator")


@pytest.mark.cosim
def test_pyverilator_driver_matches_harness(pyverilator_stream: PyVerilatorStream,
                                            models: dict[str, StreamModel]) -> None:
    w_in, w_out, k, c = DESIGNS["wide"]
    words = random_words(w_in, 200, seed=11)
    slow = pyverilator_stream.run(words, len(words), stall_seed=3, stall_prob=0.3)
    fast = models["wide"].run(words, len(words), stall_seed=3, stall_prob=0.3)
    assert list(slow.words) == model(words, w_out, k, c)
    # Same stall generator on both sides: identical cycle by cycle.
    assert np.array_equal(slow.in_cycles, fast.in_cycles)
    assert np.array_equal(slow.out_cycles, fast.out_cycles)


@pytest.mark.cosim
def test_pyverilator_per_signal_back_pressure(pyverilator_stream: PyVerilatorStream) -> None:
    _, w_out, k, c = DESIGNS["wide"]
    sim = pyverilator_stream.sim
    pyverilator_stream.reset()
    # With o.ready low the two stages fill up, then i.ready falls.
    accepted = [pyverilator_stream.cycle(word, out_ready=False)[0] for word in (5, 6, 7)]
    assert accepted == [True, True, False]
    sim.io["o__ready"] = 1
    sim.eval()
    assert sim.io["o__valid"] == 1 and sim.io["o__payload"] == model([5], w_out, k, c)[0]
    assert sim.io["i__ready"] == 1  # i.ready follows o.ready combinationally
