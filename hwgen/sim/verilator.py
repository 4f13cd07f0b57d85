"""Verilator co-simulation of hwgen stream accelerators.

A generated accelerator is an Amaranth ``wiring.Component`` with an input stream ``i`` and an
output stream ``o`` in the ``sync`` domain; its Verilog has the ports ``clk``, ``rst``,
``i__payload``, ``i__valid``, ``i__ready``, ``o__payload``, ``o__valid`` and ``o__ready``.

Two ways to simulate it:

* :func:`build` compiles the Verilog with Verilator and a C++ stream harness
  (``templates/verilator/stream_harness.cpp.j2``) into a shared library, cached on disk by a
  hash of its inputs. :meth:`StreamModel.run` streams whole tensors through it in one call:
  millions of cycles per second.
* :class:`PyVerilatorStream` builds with pyverilator-mm and drives the same handshake from a
  Python cycle loop (``sim.io['i__valid']``): 100-500x slower, but every signal is at hand,
  for small component tests.

Both runs follow the same stall pattern for the same seed, so their results, cycle stamps
included, are identical.

Payload words are unsigned integers of the port's width. Words wider than 64 bits travel as
``ceil(width / 32)`` little-endian uint32 limbs, the layout of Verilator's ``VlWide``.
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import functools
import hashlib
import importlib.metadata
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ToolchainError
from ..render import render
from ..render import source as template_source

if TYPE_CHECKING:
    import pyverilator

__all__ = [
    "ToolchainError", "SimulationError", "Trace",
    "build", "StreamModel", "StreamResult", "PyVerilatorStream",
    "default_cache_dir", "to_limbs", "from_limbs",
]


class Trace(enum.StrEnum):
    """The waveform format a build can write: FST (compact, GTKWave and Surfer) or VCD (every viewer)."""

    FST = "fst"
    VCD = "vcd"

    @classmethod
    def of(cls, trace: Trace | bool | None) -> Trace | None:
        """`trace=True` means FST, as before VCD was offered."""
        if trace is True:
            return cls.FST
        return trace or None

    @classmethod
    def for_path(cls, path: str | Path) -> Trace:
        """The format a waveform file's name asks for: .vcd, else FST."""
        return cls.VCD if Path(path).suffix.lower() == ".vcd" else cls.FST

logger = logging.getLogger(__name__)

#: Called with one short line per build step ("verilating muladd", "compiling verilated.cpp").
ProgressCallback = Callable[[str], None]

HARNESS_TEMPLATE = "stream_harness.cpp.j2"
ABI_VERSION = 2  # bump with any change to the C ABI of the harness

VERILATOR_FLAGS = (
    "--cc", "--exe",
    "-Wno-fatal",  # Amaranth's Verilog raises %Warning-WIDTH, fatal by default
    # large designs' memory initializations in functions g++ can compile (one of over a million
    # statements crashed cc1plus: PP-OCRv4 det's weights)
    "--output-split-cfuncs", "20000",
    "-CFLAGS", "-fPIC -fvisibility=hidden -fvisibility-inlines-hidden",
    "-LDFLAGS", "-shared -Wl,-z,defs",
)
# verilated.mk appends OPT_FAST (-Os) after -CFLAGS, so the optimisation level is set here.
MAKE_FLAGS = ("OPT_FAST=-O2", "OPT_SLOW=-O1", "OPT_GLOBAL=-O2")
RESET_CYCLES = 2
DEFAULT_MAX_CYCLES_BASE = 100_000
DEFAULT_MAX_CYCLES_PER_WORD = 1_000

# Verilog port -> direction, for the ports the harness drives and reads.
REQUIRED_PORTS = {"clk": "in", "rst": "in", "i__payload": "in", "i__valid": "in",
                  "i__ready": "out", "o__payload": "out", "o__valid": "out", "o__ready": "in"}

# An optional output port the harness reads after a run (e.g. performance counters).
PERF_PORT = "perf"

# Status codes of hwgen_run, as in the harness.
_OK, _TIMEOUT, _VALID_DROPPED, _PAYLOAD_CHANGED = 0, 1, 2, 3


class SimulationError(RuntimeError):
    """A simulation timed out or the design broke the stream protocol.

    ``result`` holds what was transferred up to the failure.
    """

    def __init__(self, message: str, *, result: StreamResult | None = None) -> None:
        super().__init__(message)
        self.result = result


# --- payload words <-> uint32 limbs ------------------------------------------------------------

def _limb_count(width: int) -> int:
    return (width + 31) // 32


def to_limbs(words: Any, width: int) -> np.ndarray:
    """Converts payload words to a C-contiguous ``(n, ceil(width/32))`` uint32 limb array.

    ``words`` is a sequence or 1-D array of non-negative ints (any integer dtype, or object
    for words wider than 64 bits), or an already limbed 2-D uint32 array.
    """
    n_limbs = _limb_count(width)
    # A list of ints goes through object dtype: np.asarray would turn [0, 2**63] into floats.
    array = words if isinstance(words, np.ndarray) else np.array(list(words), dtype=object)
    if array.ndim == 2:
        if array.dtype != np.uint32 or array.shape[1] != n_limbs:
            raise ValueError(f"A 2-D word array must be uint32 of shape (n, {n_limbs}) for "
                             f"width {width}, not {array.dtype} {array.shape}")
        limbs = np.ascontiguousarray(array)
        top_bits = width - 32 * (n_limbs - 1)
        if top_bits < 32 and limbs.size and int(limbs[:, -1].max()) >> top_bits:
            raise ValueError(f"Word does not fit in {width} bits")
        return limbs
    if array.ndim != 1:
        raise ValueError(f"Words must be a 1-D sequence or a 2-D limb array, not shape "
                         f"{array.shape}")
    if array.size == 0:
        return np.zeros((0, n_limbs), dtype=np.uint32)
    if array.dtype.kind not in "iuO":
        raise TypeError(f"Words must be integers, not {array.dtype}")
    if array.dtype.kind == "O":
        bad = next((w for w in array if not isinstance(w, (int, np.integer))), None)
        if bad is not None:
            raise TypeError(f"Words must be integers, not {bad!r}")
    low, high = int(array.min()), int(array.max())
    if low < 0 or high >> width:
        raise ValueError(f"Word {low if low < 0 else high!r} does not fit in {width} "
                         f"unsigned bits")
    if array.dtype.kind == "O" and high >> 64 == 0:
        array = array.astype(np.uint64)
    limbs = np.zeros((len(array), n_limbs), dtype=np.uint32)
    if array.dtype.kind in "iu":  # at most 64 bits wide
        wide = array.astype(np.uint64)
        limbs[:, 0] = wide & np.uint64(0xFFFF_FFFF)
        if n_limbs > 1:
            limbs[:, 1] = wide >> np.uint64(32)
        return limbs
    for k in range(n_limbs):
        limbs[:, k] = (array >> (32 * k)) & 0xFFFF_FFFF
    return limbs


def from_limbs(limbs: np.ndarray) -> np.ndarray:
    """Converts a ``(n, n_limbs)`` uint32 limb array to a 1-D object array of Python ints."""
    if limbs.shape[1] <= 2:
        wide = limbs[:, 0].astype(np.uint64)
        if limbs.shape[1] == 2:
            wide |= limbs[:, 1].astype(np.uint64) << np.uint64(32)
        return wide.astype(object)
    words = limbs[:, 0].astype(object)
    for k in range(1, limbs.shape[1]):
        words |= limbs[:, k].astype(object) << (32 * k)
    return words


# --- results ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StreamResult:
    """Words collected from ``o`` and when each transfer happened.

    Cycles count from 0, the first cycle after reset. ``in_cycles[k]`` / ``out_cycles[k]``
    is the cycle in which input / output word ``k`` was transferred; ``cycles`` is the number
    of cycles simulated (the last output's cycle + 1 on success).
    """

    limbs: np.ndarray       # (n_out, ceil(W_OUT/32)) uint32
    cycles: int
    in_cycles: np.ndarray   # (n_in_accepted,) uint64
    out_cycles: np.ndarray  # (n_out,) uint64

    @functools.cached_property
    def words(self) -> np.ndarray:
        """Output words as a 1-D object array of Python ints."""
        return from_limbs(self.limbs)

    @property
    def n_in_accepted(self) -> int:
        return len(self.in_cycles)

    @property
    def latency(self) -> int:
        """Cycles from the first input transfer to the first output transfer."""
        return int(self.out_cycles[0]) - int(self.in_cycles[0])

    def interval(self, words_per_tensor: int = 1) -> float:
        """Mean cycles between the last output words of consecutive tensors.

        With ``words_per_tensor=1``, the mean cycles between consecutive output words. Stream
        several tensors back to back (concatenate their words) to measure the steady-state
        initiation interval.
        """
        ends = self.out_cycles[words_per_tensor - 1::words_per_tensor]
        if len(ends) < 2:
            raise ValueError(f"Need outputs of at least 2 tensors of {words_per_tensor} words, "
                             f"have {len(self.out_cycles)} words")
        return float(ends[-1] - ends[0]) / (len(ends) - 1)


def _stall_seed(seed: int | None) -> int:
    return 0 if seed is None else seed & 0xFFFF_FFFF_FFFF_FFFF


def _check_stall_prob(stall_prob: float) -> float:
    if not 0.0 <= stall_prob < 1.0:
        raise ValueError(f"stall_prob must be in [0, 1), not {stall_prob!r}")
    return float(stall_prob)


def _default_max_cycles(n_in: int, n_out: int) -> int:
    return DEFAULT_MAX_CYCLES_BASE + DEFAULT_MAX_CYCLES_PER_WORD * (n_in + n_out)


def _failure_message(code: int, status_cycle: int, n_in: int, n_in_total: int, n_out: int,
                     n_out_total: int, max_cycles: int) -> str:
    progress = (f"{n_in}/{n_in_total} input words accepted, "
                f"{n_out}/{n_out_total} output words collected")
    if code == _TIMEOUT:
        return (f"Timeout after {max_cycles} cycles: {progress} (deadlock, too few cycles, "
                f"or the design emits fewer words than n_out)")
    if code == _VALID_DROPPED:
        return (f"Stream protocol violation at cycle {status_cycle}: o.valid was deasserted "
                f"before its word was transferred ({progress})")
    if code == _PAYLOAD_CHANGED:
        return (f"Stream protocol violation at cycle {status_cycle}: o.payload changed while "
                f"o.valid was waiting for o.ready ({progress})")
    return f"Harness returned unknown status {code!r} ({progress})"


# --- the compiled C++ harness -----------------------------------------------------------------

class _RunStatus(ctypes.Structure):
    _fields_ = [("cycles", ctypes.c_uint64), ("n_in", ctypes.c_uint64),
                ("n_out", ctypes.c_uint64), ("error_cycle", ctypes.c_uint64)]


def _declare_abi(lib: ctypes.CDLL) -> None:
    u32, u64, ptr = ctypes.c_uint32, ctypes.c_uint64, ctypes.c_void_p
    signatures: dict[str, tuple[list[Any], Any]] = {
        "hwgen_abi_version": ([], u32),
        "hwgen_top_name": ([], ctypes.c_char_p),
        "hwgen_in_width": ([], u32),
        "hwgen_out_width": ([], u32),
        "hwgen_has_trace": ([], ctypes.c_int),
        "hwgen_perf_width": ([], u32),
        "hwgen_read_perf": ([ptr, ptr], None),
        "hwgen_create": ([], ptr),
        "hwgen_destroy": ([ptr], None),
        "hwgen_reset": ([ptr, u32], None),
        "hwgen_trace_open": ([ptr, ctypes.c_char_p], ctypes.c_int),
        "hwgen_trace_close": ([ptr], None),
        "hwgen_run": ([ptr, ptr, u64, ptr, u64, ptr, ptr, u64, ctypes.c_double,
                       ctypes.c_double, u64, ctypes.POINTER(_RunStatus)], ctypes.c_int),
    }
    for name, (argtypes, restype) in signatures.items():
        function = getattr(lib, name)
        function.argtypes = argtypes
        function.restype = restype


def _pointer(array: np.ndarray) -> int:
    return array.ctypes.data


class StreamModel:
    """A Verilated stream accelerator loaded from its harness library; see :func:`build`."""

    def __init__(self, library: Path, *, cached: bool = False,
                 build_seconds: float = 0.0) -> None:
        self.library = Path(library)
        self.build_dir = self.library.parent
        self.cached = cached                # True if build() found the library in its cache
        self.build_seconds = build_seconds  # wall time of build(), cached or not
        self._lib = ctypes.CDLL(str(self.library))
        _declare_abi(self._lib)
        abi = self._lib.hwgen_abi_version()
        if abi != ABI_VERSION:
            raise ToolchainError(f"Harness library {self.library} has ABI version {abi}, "
                                 f"expected {ABI_VERSION}; delete it and rebuild")
        self.top: str = self._lib.hwgen_top_name().decode()
        self.in_width: int = self._lib.hwgen_in_width()
        self.out_width: int = self._lib.hwgen_out_width()
        self.in_limbs = _limb_count(self.in_width)
        self.out_limbs = _limb_count(self.out_width)
        self.has_trace = bool(self._lib.hwgen_has_trace())
        self.perf_width: int = self._lib.hwgen_perf_width()  # 0: the design has no `perf` port
        self._sim: int | None = self._lib.hwgen_create()

    def __repr__(self) -> str:
        return (f"StreamModel({self.top!r}, in_width={self.in_width}, "
                f"out_width={self.out_width}, library={str(self.library)!r})")

    def _handle(self) -> int:
        if self._sim is None:
            raise RuntimeError(f"{self!r} is closed")
        return self._sim

    def reset(self, cycles: int = RESET_CYCLES) -> None:
        """Holds ``rst`` for ``cycles`` clock cycles with both streams idle."""
        self._lib.hwgen_reset(self._handle(), cycles)

    def run(self, words_in: Any, n_out: int, *, stall_seed: int | None = None,
            stall_prob: float = 0.0, max_cycles: int | None = None, reset: bool = True,
            trace_path: str | Path | None = None) -> StreamResult:
        """Streams ``words_in`` into ``i`` until ``n_out`` words have come out of ``o``.

        ``words_in``: see :func:`to_limbs`. With ``stall_prob > 0``, each cycle the input is
        withheld between words and ``o.ready`` is dropped, each with that probability, from a
        generator seeded by ``stall_seed`` (default 0). ``max_cycles`` defaults to
        100000 + 1000 per word. ``trace_path`` writes a waveform in the format the
        build traces (needs ``build(..., trace=...)``). Raises :class:`SimulationError` on a timeout or a stream
        protocol violation by the design.
        """
        limbs_in = to_limbs(words_in, self.in_width)
        n_in = len(limbs_in)
        stall_prob = _check_stall_prob(stall_prob)
        if max_cycles is None:
            max_cycles = _default_max_cycles(n_in, n_out)
        limbs_out = np.zeros((n_out, self.out_limbs), dtype=np.uint32)
        in_cycles = np.zeros(n_in, dtype=np.uint64)
        out_cycles = np.zeros(n_out, dtype=np.uint64)
        status = _RunStatus()
        sim = self._handle()
        if trace_path is not None:
            if not self.has_trace:
                raise ValueError(f"{self.top!r} was built without tracing; "
                                 f"pass trace=True to build()")
            if not Path(trace_path).parent.is_dir():
                raise ValueError(f"Trace directory {str(Path(trace_path).parent)!r} "
                                 f"does not exist")
            self._lib.hwgen_trace_open(sim, str(trace_path).encode())
        try:
            if reset:
                self.reset()
            start = time.perf_counter()
            code = self._lib.hwgen_run(
                sim, _pointer(limbs_in), n_in, _pointer(limbs_out), n_out,
                _pointer(in_cycles), _pointer(out_cycles), _stall_seed(stall_seed),
                stall_prob, stall_prob, max_cycles, ctypes.byref(status))
            seconds = time.perf_counter() - start
        finally:
            if trace_path is not None:
                self._lib.hwgen_trace_close(sim)
        result = StreamResult(limbs=limbs_out[:status.n_out], cycles=status.cycles,
                              in_cycles=in_cycles[:status.n_in],
                              out_cycles=out_cycles[:status.n_out])
        logger.debug("%s: %d cycles in %.3f s (%.2f Mcycles/s), %d/%d words in, %d out",
                     self.top, status.cycles, seconds,
                     status.cycles / max(seconds, 1e-9) / 1e6, status.n_in, n_in, status.n_out)
        if code != _OK:
            raise SimulationError(
                f"{self.top}: " + _failure_message(code, status.error_cycle, status.n_in, n_in,
                                                   status.n_out, n_out, max_cycles),
                result=result)
        return result

    def perf(self) -> int:
        """The value of the design's ``perf`` output port now (0 if it has none)."""
        if not self.perf_width:
            return 0
        limbs = np.zeros((1, _limb_count(self.perf_width)), dtype=np.uint32)
        self._lib.hwgen_read_perf(self._handle(), _pointer(limbs))
        return int(from_limbs(limbs)[0])

    def close(self) -> None:
        if self._sim is not None:
            self._lib.hwgen_destroy(self._sim)
            self._sim = None

    def __enter__(self) -> StreamModel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


# --- building -----------------------------------------------------------------------------------

def default_cache_dir(tool: str = "verilator") -> Path:
    """``$XDG_CACHE_HOME/hwgen/<tool>``, or ``~/.cache/hwgen/<tool>``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hwgen" / tool


def _require_verilator() -> str:
    verilator = shutil.which("verilator")
    if verilator is None:
        raise ToolchainError("verilator not found on PATH (install Debian's 'verilator' "
                             "package, 5.006 or newer)")
    return verilator


@functools.cache
def _tool_version(command: str) -> str:
    result = subprocess.run([command, "--version"], capture_output=True, text=True, check=False)
    lines = (result.stdout + result.stderr).splitlines()
    return lines[0].strip() if result.returncode == 0 and lines else f"{command} (unknown version)"


def _read_verilog(verilog: str | Path) -> str:
    if isinstance(verilog, Path):
        return verilog.read_text()
    if not isinstance(verilog, str):
        raise TypeError(f"Verilog must be its text (str) or a file (Path), not {verilog!r}")
    if "module" not in verilog:
        raise ValueError(f"Verilog text has no 'module' (pass a file as pathlib.Path): "
                         f"{verilog[:80]!r}")
    return verilog


def _check_top(top: str) -> None:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", top):
        raise ValueError(f"Top module name must be a plain Verilog identifier, not {top!r}")


def _cache_key(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:20]


# What a failing tool's telling line looks like, most specific first.
_ERROR_MARKERS = ("%Error", "error:", "undefined reference", "No rule to make", "Killed")


def _first_error_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for marker in _ERROR_MARKERS:
        for line in lines:
            if marker in line:
                return line
    return lines[-1] if lines else "(no output)"


#: A build step silent for this long is said to be still running (the model's largest C++ file
#: can take minutes to compile).
HEARTBEAT_SECONDS = 20.0


def _run_tool(name: str, args: Sequence[str], cwd: Path,
              on_line: Callable[[str], None] | None = None,
              still: Callable[[float], None] | None = None) -> str:
    """Runs a build tool, streaming its output to the debug log; raises ToolchainError.
    `still(seconds)` is called every HEARTBEAT_SECONDS the tool prints nothing."""
    logger.debug("running %s", " ".join(args))
    lines: list[str] = []
    last = [time.monotonic()]
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(HEARTBEAT_SECONDS / 4):
            silent = time.monotonic() - last[0]
            if silent >= HEARTBEAT_SECONDS and still is not None:
                last[0] = time.monotonic()   # the next one after as long again
                still(silent)

    beat = threading.Thread(target=heartbeat, daemon=True)
    with subprocess.Popen(args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace") as process:
        assert process.stdout is not None
        beat.start()
        try:
            for line in process.stdout:
                last[0] = time.monotonic()
                lines.append(line)
                logger.debug("%s: %s", name, line.rstrip())
                if on_line is not None:
                    on_line(line)
        finally:
            done.set()
            beat.join()
    output = "".join(lines)
    if process.returncode != 0:
        raise ToolchainError(f"{name} failed (exit {process.returncode}): "
                             f"{_first_error_line(output)}", output=output)
    return output


_PORT_DECL = re.compile(r"VL_(IN|OUT)(?:8|16|64|W)?\(&(\w+),(\d+),(\d+)(?:,\d+)?\);")


def _verilator_ports(header: Path) -> dict[str, tuple[str, str, int]]:
    """Ports of a Verilated model: Verilog name -> (direction, C++ member name, width)."""
    ports = {}
    for direction, member, msb, lsb in _PORT_DECL.findall(header.read_text()):
        name = re.sub(r"__0([0-9A-F]{2})", lambda m: chr(int(m[1], 16)), member)
        ports[name] = (direction.lower(), member, int(msb) - int(lsb) + 1)
    return ports


def _check_ports(top: str, ports: dict[str, tuple[str, str, int]]) -> None:
    missing = [name for name in REQUIRED_PORTS if name not in ports]
    if missing:
        raise ValueError(f"Module {top!r} lacks the stream ports {missing}: hwgen expects "
                         f"{list(REQUIRED_PORTS)}, found {sorted(ports)}")
    for name, direction in REQUIRED_PORTS.items():
        if ports[name][0] != direction:
            raise ValueError(f"Port {name!r} of {top!r} must be an {direction}put")
        if "payload" not in name and ports[name][2] != 1:
            raise ValueError(f"Port {name!r} of {top!r} must be 1 bit wide, not "
                             f"{ports[name][2]}")
    if PERF_PORT in ports and ports[PERF_PORT][0] != "out":
        raise ValueError(f"Port {PERF_PORT!r} of {top!r} must be an output")
    extra = sorted(set(ports) - set(REQUIRED_PORTS) - {PERF_PORT})
    if extra:
        logger.warning("%s: ports %s are not driven by the stream harness (held at 0)",
                       top, extra)


def _render_harness(top: str, ports: dict[str, tuple[str, str, int]], trace: Trace | None) -> str:
    in_width, out_width = ports["i__payload"][2], ports["o__payload"][2]
    return render("verilator", HARNESS_TEMPLATE, dict(
        generator="hwgen.sim.verilator", abi_version=ABI_VERSION, top=top, trace=str(trace or ""),
        in_width=in_width, out_width=out_width,
        in_limbs=_limb_count(in_width), out_limbs=_limb_count(out_width),
        ports={"i_payload": ports["i__payload"][1], "i_valid": ports["i__valid"][1],
               "i_ready": ports["i__ready"][1], "o_payload": ports["o__payload"][1],
               "o_valid": ports["o__valid"][1], "o_ready": ports["o__ready"][1]},
        perf=({"member": ports[PERF_PORT][1], "width": ports[PERF_PORT][2],
               "limbs": _limb_count(ports[PERF_PORT][2])} if PERF_PORT in ports else None)))


@contextlib.contextmanager
def _staging_dir(final: Path) -> Iterator[Path]:
    """A scratch directory beside ``final``, renamed to it on success (atomically, so
    concurrent builders of the same key are safe: the first rename wins)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        yield staging
        try:
            staging.rename(final)
        except OSError:
            if not final.is_dir():
                raise
            logger.debug("%s was built concurrently; using that build", final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _make_progress(top: str, progress: ProgressCallback | None) -> ProgressCallback:
    def report(message: str) -> None:
        logger.info("%s: %s", top, message)
        if progress is not None:
            progress(message)
    return report


def build(verilog: str | Path, top: str, *, trace: Trace | bool | None = None, cache_dir: Path | None = None,
          jobs: int | None = None, progress: ProgressCallback | None = None) -> StreamModel:
    """Verilates ``verilog`` with the stream harness and loads it as a :class:`StreamModel`.

    ``verilog`` is Verilog text (str) or a file (Path); ``top`` names its top module.
    ``trace`` compiles waveform tracing in (Trace.FST or Trace.VCD; True is FST): slower build
    and simulation. Builds are cached
    in ``cache_dir`` (default :func:`default_cache_dir`), keyed by the Verilog text, the
    harness template, the flags and the Verilator version: a second build is a lookup
    (``model.cached`` is True). ``progress`` receives one line per build step, as the log.
    """
    start = time.perf_counter()
    text = _read_verilog(verilog)
    _check_top(top)
    verilator = _require_verilator()
    template_text = template_source("verilator", HARNESS_TEMPLATE)
    trace = Trace.of(trace)
    flags = [*VERILATOR_FLAGS, *({Trace.FST: ["--trace-fst"], Trace.VCD: ["--trace"]}[trace] if trace else [])]
    key = _cache_key(text, top, template_text, " ".join(flags), " ".join(MAKE_FLAGS),
                     str(ABI_VERSION), _tool_version(verilator))
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir("verilator")
    final = root / key
    library_name = f"libhwgen_{top}.so"
    report = _make_progress(top, progress)

    if (final / "manifest.json").is_file():
        report(f"cached build {final}")
        return StreamModel(final / library_name, cached=True,
                           build_seconds=time.perf_counter() - start)

    with _staging_dir(final) as staging:
        verilog_file = staging / f"{top}.v"
        verilog_file.write_text(text)
        harness_file = staging / "harness.cpp"  # rendered once the port names are known
        report(f"verilating {top}")
        _run_tool("verilator", [verilator, *flags, "--Mdir", "obj", "--top-module", top,
                                "--prefix", f"V{top}", "-o", f"../{library_name}",
                                str(verilog_file), str(harness_file)], cwd=staging)
        ports = _verilator_ports(staging / "obj" / f"V{top}.h")
        _check_ports(top, ports)
        harness_file.write_text(_render_harness(top, ports, trace))

        step = ["make"]
        make_start = time.monotonic()

        def on_make_line(line: str) -> None:
            match = re.search(r"\s-o\s+(\S+)", line)
            if match and match[1].endswith(".o"):
                step[0] = f"compiling {match[1][:-2]}.cpp"
                report(step[0])
            elif match and match[1].endswith(".so"):
                step[0] = f"linking {library_name}"
                report(step[0])

        def still(_: float) -> None:  # the last file the compiler started can take minutes
            report(f"still {step[0]} ({time.monotonic() - make_start:.0f} s into the C++ build)")

        _run_tool("make", ["make", f"-j{jobs or os.cpu_count() or 1}", "-f", f"V{top}.mk",
                           *MAKE_FLAGS], cwd=staging / "obj", on_line=on_make_line, still=still)
        for intermediate in (staging / "obj").glob("*.[oa]"):
            intermediate.unlink()
        manifest = {
            "top": top, "trace": str(trace or ""), "flags": flags, "make_flags": list(MAKE_FLAGS),
            "verilator": _tool_version(verilator), "abi_version": ABI_VERSION,
            "ports": {name: {"direction": d, "member": m, "width": w}
                      for name, (d, m, w) in ports.items()},
            "build_seconds": round(time.perf_counter() - start, 3),
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    seconds = time.perf_counter() - start
    report(f"built {library_name} in {seconds:.1f} s")
    return StreamModel(final / library_name, cached=False, build_seconds=seconds)


# --- pyverilator-mm per-signal driver -----------------------------------------------------------

class _SplitMix64:
    """The harness's stall generator, bit for bit."""

    MASK = 0xFFFF_FFFF_FFFF_FFFF

    def __init__(self, seed: int) -> None:
        self.state = seed & self.MASK

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & self.MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & self.MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & self.MASK
        return z ^ (z >> 31)

    def chance(self, p: float) -> bool:
        return p > 0.0 and (self.next() >> 11) * 2.0 ** -53 < p


@contextlib.contextmanager
def _captured_fds() -> Iterator[list[str]]:
    """Captures what child processes write to fds 1 and 2 (pyverilator lets verilator
    inherit them); the text is appended to the yielded list on exit."""
    captured: list[str] = []
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield captured
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            captured.append(sink.read().decode(errors="replace"))


class PyVerilatorStream:
    """Drives a stream accelerator signal by signal through pyverilator-mm.

    ``self.sim`` is the :class:`pyverilator.PyVerilator` (``sim.io['i__valid']``), with
    ``auto_eval`` off: :meth:`cycle` evaluates explicitly. For small component tests; use
    :func:`build` for whole tensors.
    """

    def __init__(self, sim: pyverilator.PyVerilator, *, cached: bool = False) -> None:
        self.sim = sim
        self.sim.auto_eval = False
        self.cached = cached
        io_names = set(sim.io)
        missing = [name for name in REQUIRED_PORTS if name not in io_names]
        if missing:
            raise ValueError(f"Module {sim.module_name!r} lacks the stream ports {missing}")
        self.in_width = sim.io["i__payload"].signal.width
        self.out_width = sim.io["o__payload"].signal.width

    @classmethod
    def build(cls, verilog: str | Path, top: str, *, cache_dir: Path | None = None,
              progress: ProgressCallback | None = None) -> PyVerilatorStream:
        """Builds ``verilog`` with pyverilator-mm, cached like :func:`build`."""
        import pyverilator  # optional dependency, only for this helper

        try:
            pyverilator_version = importlib.metadata.version("pyverilator-mm")
        except importlib.metadata.PackageNotFoundError:
            pyverilator_version = "unknown"
        text = _read_verilog(verilog)
        _check_top(top)
        verilator = _require_verilator()
        args = ["-Wno-lint", "-Wno-style", "-Wno-UNOPTFLAT"]
        key = _cache_key(text, top, " ".join(args), pyverilator_version,
                         _tool_version(verilator))
        root = Path(cache_dir) if cache_dir is not None else default_cache_dir("pyverilator")
        final = root / key
        library = final / "obj" / f"V{top}"
        report = _make_progress(top, progress)
        if not library.is_file():
            report(f"building {top} with pyverilator-mm")
            start = time.perf_counter()
            with _staging_dir(final) as staging:
                (staging / f"{top}.v").write_text(text)
                with _captured_fds() as output:
                    try:
                        pyverilator.PyVerilator.build(
                            str(staging / f"{top}.v"), build_dir=str(staging / "obj"),
                            quiet=True, args=args)
                        failure = None
                    except subprocess.CalledProcessError as error:
                        failure = error
                text_output = "".join(output)
                if failure is not None:
                    text_output += (failure.stdout or b"").decode(errors="replace")
                    text_output += (failure.stderr or b"").decode(errors="replace")
                logger.debug("pyverilator build output:\n%s", text_output)
                if failure is not None:
                    raise ToolchainError(f"pyverilator build of {top!r} failed: "
                                         f"{_first_error_line(text_output)}",
                                         output=text_output)
            report(f"built {top} in {time.perf_counter() - start:.1f} s")
            cached = False
        else:
            report(f"cached build {final}")
            cached = True
        return cls(pyverilator.PyVerilator(str(library)), cached=cached)

    def _eval_with_clock(self, clk: int) -> None:
        self.sim.io["clk"] = clk
        self.sim.eval()

    def reset(self, cycles: int = RESET_CYCLES) -> None:
        """Holds ``rst`` for ``cycles`` clock cycles with both streams idle."""
        io = self.sim.io
        io["i__valid"] = 0
        io["o__ready"] = 0
        io["rst"] = 1
        for _ in range(cycles):
            self._eval_with_clock(0)
            self._eval_with_clock(1)
        io["rst"] = 0
        self._eval_with_clock(0)

    def cycle(self, in_word: int | None, out_ready: bool) -> tuple[bool, int | None]:
        """One clock cycle offering ``in_word`` (None: i.valid low) with o.ready = out_ready.

        Returns whether the input word was accepted and the output word transferred, if any.
        The caller keeps offering a word until it is accepted (stream rule 2).
        """
        io = self.sim.io
        io["i__valid"] = in_word is not None
        if in_word is not None:
            io["i__payload"] = in_word
        io["o__ready"] = out_ready
        self._eval_with_clock(0)
        accepted = in_word is not None and bool(io["i__ready"])
        out_word = int(io["o__payload"]) if out_ready and io["o__valid"] else None
        self._eval_with_clock(1)
        return accepted, out_word

    def run(self, words_in: Any, n_out: int, *, stall_seed: int | None = None,
            stall_prob: float = 0.0, max_cycles: int | None = None,
            reset: bool = True) -> StreamResult:
        """Same stimulus, stall pattern and result as :meth:`StreamModel.run`, from a
        Python loop (without the output protocol check)."""
        words = [int(w) for w in from_limbs(to_limbs(words_in, self.in_width))]
        stall_prob = _check_stall_prob(stall_prob)
        if max_cycles is None:
            max_cycles = _default_max_cycles(len(words), n_out)
        rng = _SplitMix64(_stall_seed(stall_seed))
        if reset:
            self.reset()
        out_words: list[int] = []
        in_cycles: list[int] = []
        out_cycles: list[int] = []
        offering = False
        cycle = 0
        while len(out_words) < n_out and cycle < max_cycles:
            if not offering and len(in_cycles) < len(words):
                offering = not rng.chance(stall_prob)
            out_ready = not rng.chance(stall_prob)
            accepted, out_word = self.cycle(words[len(in_cycles)] if offering else None,
                                            out_ready)
            if out_word is not None:
                out_words.append(out_word)
                out_cycles.append(cycle)
            if accepted:
                in_cycles.append(cycle)
                offering = False
            cycle += 1
        self.sim.io["i__valid"] = 0
        self.sim.io["o__ready"] = 0
        result = StreamResult(
            limbs=to_limbs(np.array(out_words, dtype=object), self.out_width),
            cycles=cycle, in_cycles=np.array(in_cycles, dtype=np.uint64),
            out_cycles=np.array(out_cycles, dtype=np.uint64))
        if len(out_words) < n_out:
            raise SimulationError(
                f"{self.sim.module_name}: " + _failure_message(
                    _TIMEOUT, cycle, len(in_cycles), len(words), len(out_words), n_out,
                    max_cycles), result=result)
        return result
