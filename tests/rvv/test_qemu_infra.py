"""Tests of hwgen.sim.qemu: RVV builds under qemu, instruction counting, sanitized host builds."""

import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from hwgen.sim.qemu import (
    HOST_CC,
    InsnCounts,
    SanitizerError,
    ToolchainError,
    build_plugin,
    compile_native_sanitized,
    compile_riscv,
    missing_rvv_tools,
    run_native,
    run_qemu,
)

DATA = Path(__file__).parent / "data"
VLENS = (128, 256, 512)

_missing = missing_rvv_tools()
needs_rvv = pytest.mark.skipif(
    bool(_missing), reason=f"RVV toolchain incomplete, missing: {', '.join(_missing)}")
needs_cc = pytest.mark.skipif(
    shutil.which(HOST_CC) is None, reason=f"no host C compiler {HOST_CC!r} on PATH")
pytestmark = pytest.mark.rvv


def dot_input(a: np.ndarray, x: np.ndarray) -> bytes:
    m, n = a.shape
    return struct.pack("<II", m, n) + a.astype(np.int8).tobytes() + x.astype(np.int8).tobytes()


def dot_reference(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    return a.astype(np.int64) @ x.astype(np.int64)


def dot_cases() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(20240611)
    cases = [(rng.integers(-128, 128, (m, n)), rng.integers(-128, 128, n))
             for m, n in [(1, 1), (3, 17), (4, 100), (2, 4096), (2, 0)]]
    # Largest products everywhere: (-128) * (-128) * 4099 still fits int32.
    cases.append((np.full((2, 4099), -128), np.full(4099, -128)))
    return cases


@pytest.fixture(scope="module")
def dot_rvv(tmp_path_factory) -> Path:
    return compile_riscv([DATA / "dot.c"], tmp_path_factory.mktemp("rvv") / "dot")


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    return compile_riscv([DATA / "straight.c"], tmp_path_factory.mktemp("rv") / "straight",
                         vector=False)


def kernel_count(binary: Path, vlen: int, a: np.ndarray, x: np.ndarray, symbol: str) -> int:
    counts = run_qemu(binary, vlen=vlen, stdin=dot_input(a, x), count=True).counts
    return counts.per_symbol[symbol]


@needs_rvv
@pytest.mark.parametrize("vlen", VLENS)
def test_rvv_dot_matches_numpy(dot_rvv, vlen):
    for a, x in dot_cases():
        out = np.frombuffer(run_qemu(dot_rvv, vlen=vlen, stdin=dot_input(a, x)).stdout, "<i4")
        scalar, vector = out.reshape(2, a.shape[0])
        np.testing.assert_array_equal(scalar, dot_reference(a, x), err_msg=f"{a.shape=}")
        np.testing.assert_array_equal(vector, dot_reference(a, x), err_msg=f"{a.shape=}")


@needs_rvv
def test_counts_are_repeatable_and_independent_of_path(dot_rvv, tmp_path):
    a, x = dot_cases()[2]
    first = run_qemu(dot_rvv, vlen=256, stdin=dot_input(a, x), count=True).counts
    second = run_qemu(dot_rvv, vlen=256, stdin=dot_input(a, x), count=True).counts
    assert first == second
    # libc start-up reads the executable's path; run_qemu hides it.
    elsewhere = tmp_path / "a_much_longer_directory_name" / "renamed_binary"
    elsewhere.parent.mkdir()
    shutil.copy(dot_rvv, elsewhere)
    assert run_qemu(elsewhere, vlen=256, stdin=dot_input(a, x), count=True).counts == first


@needs_rvv
def test_vector_kernel_count_falls_with_vlen(dot_rvv):
    rng = np.random.default_rng(1)
    a, x = rng.integers(-128, 128, (1, 4096)), rng.integers(-128, 128, 4096)
    rvv = [kernel_count(dot_rvv, vlen, a, x, "dot_rvv") for vlen in VLENS]
    scalar = [kernel_count(dot_rvv, vlen, a, x, "dot_scalar") for vlen in VLENS]
    assert rvv[0] > rvv[1] > rvv[2]
    # e8m1 strip-mining runs 4096 / (VLEN / 8) = 256, 128, 64 iterations of the same loop
    # body, so the count is affine in the iteration count.
    assert rvv[0] - rvv[1] == 2 * (rvv[1] - rvv[2])
    # The reference is scalar code: its count must not depend on VLEN.
    assert scalar[0] == scalar[1] == scalar[2] > 4096


@needs_rvv
@pytest.mark.parametrize("calls", [1, 1000])
def test_straight_line_function_count_is_exact(straight, calls):
    result = run_qemu(straight, args=[str(calls)], count=True)
    assert result.counts.per_symbol["straight10"] == 10 * calls


@needs_rvv
def test_total_equals_per_symbol_sum(straight, dot_rvv):
    a, x = dot_cases()[1]
    for counts in [run_qemu(straight, args=["7"], count=True).counts,
                   run_qemu(dot_rvv, vlen=512, stdin=dot_input(a, x), count=True).counts]:
        assert isinstance(counts, InsnCounts)
        assert counts.total == sum(counts.per_symbol.values()) + counts.unattributed
        assert counts.per_symbol["main"] > 0


@needs_rvv
def test_plugin_is_built_once(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    plugin = build_plugin()
    assert plugin.parent == tmp_path / "hwgen" / "qemu" and plugin.exists()
    built_at = plugin.stat().st_mtime_ns
    assert build_plugin() == plugin
    assert plugin.stat().st_mtime_ns == built_at
    assert [p.name for p in plugin.parent.iterdir()] == [plugin.name]  # no temp files left


@pytest.mark.parametrize("vlen", [64, 96, 2048])
def test_run_qemu_rejects_unsupported_vlen(vlen):
    with pytest.raises(ValueError, match=rf"^VLEN must be a power of two in \[128, 1024\], "
                                         rf"not {vlen}$"):
        run_qemu(Path("unused"), vlen=vlen)


@needs_rvv
def test_compile_error_quotes_clang(tmp_path):
    bad = tmp_path / "bad.c"
    bad.write_text("int f(void) { int unused; return 0; }\n")
    with pytest.raises(ToolchainError, match=r"^clang-19 failed: .*bad\.c:1:19: error: "
                                             r"unused variable 'unused'"):
        compile_riscv([bad], tmp_path / "bad")


@needs_rvv
def test_guest_failure_quotes_program(dot_rvv):
    with pytest.raises(ToolchainError, match=r"^dot failed under qemu-riscv64 \(status 2\): "
                                             r"dot: short input$"):
        run_qemu(dot_rvv, stdin=b"\x01")


@needs_cc
def test_native_sanitized_scalar_path_matches_numpy(tmp_path):
    binary = compile_native_sanitized([DATA / "dot.c"], tmp_path / "dot")
    for a, x in dot_cases():
        out = np.frombuffer(run_native(binary, stdin=dot_input(a, x)), "<i4")
        np.testing.assert_array_equal(out, dot_reference(a, x), err_msg=f"{a.shape=}")


@pytest.fixture(scope="module")
def sanitize_me(tmp_path_factory) -> Path:
    return compile_native_sanitized([DATA / "sanitize_me.c"],
                                    tmp_path_factory.mktemp("native") / "sanitize_me")


@needs_cc
def test_sanitized_clean_run_passes(sanitize_me):
    assert run_native(sanitize_me, args=["clean", "16"]) == b"120\n"


@needs_cc
@pytest.mark.parametrize("mode, message", [
    ("oob", r"ERROR: AddressSanitizer: heap-buffer-overflow"),
    ("overflow", r"sanitize_me\.c:\d+:\d+: runtime error: signed integer overflow"),
])
def test_sanitizer_reports_raise(sanitize_me, mode, message):
    with pytest.raises(SanitizerError, match=rf"^sanitize_me failed under sanitizers: .*{message}"
                       ) as info:
        run_native(sanitize_me, args=[mode, "16"])
    assert "sanitize_me.c" in info.value.report  # the report locates the bug
