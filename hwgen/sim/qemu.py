"""Build RISC-V programs with clang-19 and run them under qemu-user, optionally counting
dynamic instructions per function with our TCG plugin; build and run host programs under
AddressSanitizer and UBSan.

Tools (Debian 12): clang-19, lld-19, libc6-dev-riscv64-cross, libgcc-12-dev-riscv64-cross,
qemu-user, and a host ``cc`` (gcc, whose libasan/libubsan come with it).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ToolchainError

__all__ = [
    "ToolchainError", "SanitizerError", "InsnCounts", "QemuResult",
    "missing_rvv_tools", "have_rvv_toolchain", "build_plugin", "compile_riscv", "run_qemu",
    "compile_native_sanitized", "run_native",
]

logger = logging.getLogger(__name__)

CLANG = "clang-19"
LLD = "ld.lld-19"
QEMU = "qemu-riscv64"
HOST_CC = "cc"
RISCV_SYSROOT = Path("/usr/riscv64-linux-gnu")
RISCV_LIBGCC_GLOB = "/usr/lib/gcc-cross/riscv64-linux-gnu/*/libgcc.a"

#: The plugin's C source (package data of hwgen.sim.qemu_plugin).
PLUGIN_SOURCE = importlib.resources.files("hwgen.sim.qemu_plugin") / "insncount.c"
PLUGIN_CFLAGS = ("-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror")
WARNING_FLAGS = ("-Wall", "-Wextra", "-Werror")
SANITIZER_FLAGS = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                   "-fno-omit-frame-pointer", "-g", "-O1")
# qemu 7.2 refuses other VLENs ("only supports VLEN in the range [128, 1024]").
VLEN_MIN, VLEN_MAX = 128, 1024
DEFAULT_TIMEOUT = 120.0
# First stderr lines that start a sanitizer report.
_SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


class SanitizerError(ToolchainError):
    """A sanitized host program reported a bug; ``report`` is the sanitizer's report."""

    def __init__(self, message: str, *, report: str, output: str = "") -> None:
        super().__init__(message, output=output)
        self.report = report


@dataclass(frozen=True)
class InsnCounts:
    """Dynamic instruction counts of one run.

    ``total`` is counted per translation block, independently of the per-instruction
    counters, so ``total == sum(per_symbol.values()) + unattributed`` is a real check.
    """
    per_symbol: Mapping[str, int]
    unattributed: int  # instructions outside any sized function symbol
    total: int


@dataclass(frozen=True)
class QemuResult:
    stdout: bytes
    stderr: bytes
    counts: InsnCounts | None  # only with run_qemu(..., count=True)


def missing_rvv_tools() -> list[str]:
    """What is missing to build and run RVV programs (empty when everything is there)."""
    missing = [tool for tool in (CLANG, LLD, QEMU, HOST_CC) if shutil.which(tool) is None]
    if not (RISCV_SYSROOT / "lib" / "libc.a").exists():
        missing.append("libc6-dev-riscv64-cross")
    if not list(Path("/").glob(RISCV_LIBGCC_GLOB.lstrip("/"))):
        missing.append("libgcc-12-dev-riscv64-cross")
    return missing


def have_rvv_toolchain() -> bool:
    return not missing_rvv_tools()


def _text(output: bytes) -> str:
    return output.decode(errors="replace")


def _error_line(stderr: bytes | str, markers: Sequence[str] = ("error",)) -> str:
    """The line of a tool's stderr that best says what went wrong."""
    text = _text(stderr) if isinstance(stderr, bytes) else stderr
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for marker in markers:
        for line in lines:
            if marker.lower() in line.lower():
                return line
    return lines[-1] if lines else "(no output)"


def _run(cmd: Sequence[str | os.PathLike[str]], *, stdin: bytes | None = None,
         timeout: float = DEFAULT_TIMEOUT, cwd: Path | None = None,
         env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    argv = [os.fspath(arg) for arg in cmd]
    logger.debug("running %s", subprocess.list2cmdline(argv))
    start = time.perf_counter()
    try:
        # No stdin means an empty one, not the caller's terminal.
        proc = subprocess.run(argv, input=stdin or b"", capture_output=True,
                              timeout=timeout, cwd=cwd, env=env)
    except FileNotFoundError as exc:
        raise ToolchainError(f"{argv[0]} not found: {exc.strerror}") from exc
    except subprocess.TimeoutExpired as exc:
        raise ToolchainError(f"{Path(argv[0]).name} timed out after {timeout} s: "
                             f"{subprocess.list2cmdline(argv)}") from exc
    logger.debug("%s finished in %.3f s (status %d)", Path(argv[0]).name,
                 time.perf_counter() - start, proc.returncode)
    return proc


def _status(returncode: int) -> str:
    # A guest killed by a signal takes qemu down with it, often silently.
    if returncode >= 0:
        return f"status {returncode}"
    try:
        return f"killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"killed by signal {-returncode}"


def _cache_dir() -> Path:
    # Same layout as hwgen.sim.verilator.default_cache_dir("qemu").
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hwgen" / "qemu"


def build_plugin() -> Path:
    """The instruction-counting QEMU plugin, compiled once per source version and cached."""
    source = PLUGIN_SOURCE.read_bytes()
    key = hashlib.sha256(source + "\0".join(PLUGIN_CFLAGS).encode()).hexdigest()[:16]
    target = _cache_dir() / f"libinsncount-{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target, then rename: concurrent builders never see half a file.
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".insncount-", suffix=".so")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        start = time.perf_counter()
        with importlib.resources.as_file(PLUGIN_SOURCE) as source_file:
            proc = _run([HOST_CC, *PLUGIN_CFLAGS, "-o", tmp, source_file])
        if proc.returncode != 0:
            raise ToolchainError(f"building the QEMU plugin failed: {_error_line(proc.stderr)}",
                                 output=_text(proc.stderr))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    logger.info("built QEMU plugin %s in %.2f s", target, time.perf_counter() - start)
    return target


def compile_riscv(sources: Sequence[Path], out: Path, *, vector: bool = True,
                  opt: str = "-O2", extra_flags: Sequence[str] = ()) -> Path:
    """Build a static riscv64 Linux executable (rv64gcv, or rv64gc without vector)."""
    march = "rv64gcv" if vector else "rv64gc"
    out.parent.mkdir(parents=True, exist_ok=True)
    # Without -fuse-ld=lld clang calls the host's ld, which cannot link riscv64.
    proc = _run([CLANG, "--target=riscv64-linux-gnu", f"-march={march}", opt, "-static",
                 "-fuse-ld=lld", *WARNING_FLAGS, *extra_flags, *sources, "-o", out])
    if proc.returncode != 0:
        raise ToolchainError(f"{CLANG} failed: {_error_line(proc.stderr)}",
                             output=_text(proc.stderr))
    return out


def _qemu_escape(value: str | os.PathLike[str]) -> str:
    # qemu's option parser splits at commas; ",," is a literal comma.
    return os.fspath(value).replace(",", ",,")


def _parse_counts(text: str) -> InsnCounts:
    per_symbol: dict[str, int] = {}
    for line in text.splitlines():
        name, count = line.rsplit("\t", 1)
        per_symbol[name] = int(count)
    total = per_symbol.pop("<total>")
    unattributed = per_symbol.pop("<unknown>", 0)
    return InsnCounts(per_symbol=per_symbol, unattributed=unattributed, total=total)


def _link_or_copy(src: Path, dst: Path) -> None:
    # Not a symlink: qemu reports the link's target as /proc/self/exe.
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
        dst.chmod(0o755)


def run_qemu(binary: Path, *, vlen: int = 128, args: Sequence[str] = (),
             stdin: bytes | None = None, count: bool = False,
             timeout: float = DEFAULT_TIMEOUT) -> QemuResult:
    """Run a riscv64 executable under qemu-user with a VLEN-bit vector unit.

    The guest runs as ``prog`` from a fresh scratch directory, with an empty environment:
    glibc's start-up code walks argv, the environment and the executable's real path
    (``/proc/self/exe``), so otherwise instruction counts would depend on where and by whom
    the program was run. (They still depend on the length of the temp dir's path.)
    Raises ToolchainError if qemu fails or the program exits with a non-zero status.
    """
    if not (VLEN_MIN <= vlen <= VLEN_MAX and vlen & (vlen - 1) == 0):
        raise ValueError(f"VLEN must be a power of two in [{VLEN_MIN}, {VLEN_MAX}], "
                         f"not {vlen!r}")
    cpu = f"rv64,v=true,vlen={vlen},vext_spec=v1.0"
    with tempfile.TemporaryDirectory(prefix="hwgen-qemu-") as scratch_name:
        scratch = Path(scratch_name)
        _link_or_copy(binary, scratch / "prog")
        counts_file = scratch / "counts.tsv"
        cmd = [QEMU, "-cpu", cpu, "-0", "prog"]
        if count:
            cmd += ["-plugin", f"{_qemu_escape(build_plugin())},"
                               f"outfile={_qemu_escape(counts_file)}"]
        proc = _run([*cmd, "prog", *args], stdin=stdin, timeout=timeout, cwd=scratch,
                    env={})
        if proc.returncode != 0:
            raise ToolchainError(
                f"{binary.name} failed under {QEMU} ({_status(proc.returncode)}): "
                f"{_error_line(proc.stderr, ('insncount:', f'{QEMU}:'))}",
                output=_text(proc.stderr))
        counts = None
        if count:
            if not counts_file.exists() or b"insncount:" in proc.stderr:
                raise ToolchainError(f"instruction counting failed for {binary.name}: "
                                     f"{_error_line(proc.stderr, ('insncount:',))}",
                                     output=_text(proc.stderr))
            counts = _parse_counts(counts_file.read_text())
    return QemuResult(stdout=proc.stdout, stderr=proc.stderr, counts=counts)


def compile_native_sanitized(sources: Sequence[Path], out: Path, *,
                             extra_flags: Sequence[str] = ()) -> Path:
    """Build a host executable under AddressSanitizer and UBSan (first error aborts)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = _run([HOST_CC, *SANITIZER_FLAGS, *WARNING_FLAGS, *extra_flags, *sources,
                 "-o", out])
    if proc.returncode != 0:
        raise ToolchainError(f"{HOST_CC} failed: {_error_line(proc.stderr)}",
                             output=_text(proc.stderr))
    return out


def run_native(binary: Path, *, args: Sequence[str] = (), stdin: bytes | None = None,
               timeout: float = DEFAULT_TIMEOUT) -> bytes:
    """Run a host executable and return its stdout.

    Raises SanitizerError with the report if a sanitizer reported anything, and
    ToolchainError if the program otherwise exits with a non-zero status.
    """
    proc = _run([binary.resolve(), *args], stdin=stdin, timeout=timeout)
    stderr = _text(proc.stderr)
    starts = [stderr.find(marker) for marker in _SANITIZER_MARKERS if marker in stderr]
    if starts:
        report_start = stderr.rfind("\n", 0, min(starts)) + 1
        report = stderr[report_start:]
        raise SanitizerError(f"{binary.name} failed under sanitizers: "
                             f"{_error_line(report, _SANITIZER_MARKERS)}\n{report}",
                             report=report, output=stderr)
    if proc.returncode != 0:
        raise ToolchainError(f"{binary.name} failed ({_status(proc.returncode)}): "
                             f"{_error_line(stderr)}", output=stderr)
    return proc.stdout
