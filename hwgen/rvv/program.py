"""Build the generated test program and run batches of samples through it.

The program (main.c) reads N samples of raw inputs on stdin and writes N samples of
raw outputs, so one process handles a whole batch. Binaries are cached on disk by
a hash of the generated sources, the build flags and the compiler, so `hwgen run`
and the tests compile each model once.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InvalidOptionError
from ..sim import qemu
from .codegen import Generated, Port

__all__ = ["Build", "RVV", "SCALAR", "AUTOVEC", "NATIVE_SANITIZED", "write_sources", "build", "built",
           "encode_inputs", "decode_outputs", "run", "Result"]


@dataclass(frozen=True)
class Build:
    """One way to compile the generated C."""

    name: str
    target: str           # riscv | native
    vector: bool = True   # -march=rv64gcv (else rv64gc)
    opt: str = "-O2"
    defines: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.target == "native":
            return "host cc, scalar kernels, -fsanitize=address,undefined"
        flags = " ".join((f"-march={'rv64gcv' if self.vector else 'rv64gc'}", self.opt, *self.defines))
        return f"clang-19 {flags}"


#: The RVV kernels (what hwgen generates for RISC-V).
RVV = Build("rvv", "riscv")
#: The portable scalar kernels without the vector extension.
SCALAR = Build("scalar", "riscv", vector=False)
#: The same scalar kernels, auto-vectorized by clang at -O3 for rv64gcv.
AUTOVEC = Build("autovec", "riscv", opt="-O3", defines=("-DHWGEN_FORCE_SCALAR",))
#: The scalar kernels on the host under AddressSanitizer and UBSan.
NATIVE_SANITIZED = Build("native-sanitized", "native")


#: The files a build reads (the Makefile does not matter).
BUILD_FILES = ("model.h", "model.c", "kernels.h", "main.c")


def write_sources(generated: Generated, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in generated.files.items():
        (directory / name).write_text(text)
    return directory


@functools.cache
def _compiler_identity(target: str) -> str:
    tool = qemu.CLANG if target == "riscv" else qemu.HOST_CC
    try:
        return subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return tool


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hwgen" / "rvv"


def _compile(generated: Generated, flavour: Build, workdir: Path, out: Path) -> Path:
    src = write_sources(generated, workdir)
    sources = [src / name for name in generated.sources]
    if flavour.target == "native":
        return qemu.compile_native_sanitized(sources, out, extra_flags=flavour.defines)
    return qemu.compile_riscv(sources, out, vector=flavour.vector, opt=flavour.opt, extra_flags=flavour.defines)


def build(generated: Generated, flavour: Build = RVV) -> Path:
    """The test program built with `flavour`, compiled once per distinct source and cached."""
    h = hashlib.sha256()
    for name in sorted(BUILD_FILES):
        h.update(name.encode() + b"\0" + generated.files[name].encode() + b"\0")
    h.update(repr(flavour).encode() + _compiler_identity(flavour.target).encode())
    target = _cache_dir() / h.hexdigest()[:24] / f"{generated.model}_{flavour.name}"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build in a private directory, then rename: concurrent builders never see half a binary.
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as tmp:
        os.replace(_compile(generated, flavour, Path(tmp), Path(tmp) / target.name), target)
    return target


def _batch(ports: Sequence[Port], inputs: Mapping[str, np.ndarray]) -> int:
    sizes = {np.asarray(inputs[p.tensor]).shape[0] for p in ports}
    if len(sizes) != 1:
        raise InvalidOptionError(f"inputs have different batch sizes {sorted(sizes)}")
    return sizes.pop()


def encode_inputs(ports: Sequence[Port], inputs: Mapping[str, np.ndarray]) -> tuple[bytes, int]:
    """stdin for the test program: every sample's inputs in port order, raw little-endian.
    (Also encodes outputs for a Makefile check: the layout is the same.)"""
    batch = _batch(ports, inputs)
    parts = []
    for p in ports:
        x = np.asarray(inputs[p.tensor])
        if x.shape[1:] != p.shape:
            raise InvalidOptionError(f"input {p.tensor!r}: expected samples of shape {p.shape}, got {x.shape[1:]}")
        if x.size and (x.min() < p.ctype.lo or x.max() > p.ctype.hi):
            raise InvalidOptionError(f"input {p.tensor!r} has values outside {p.ctype.name}")
        parts.append(np.ascontiguousarray(x, dtype=p.ctype.numpy).reshape(batch, -1).view(np.uint8))
    return np.concatenate(parts, axis=1).tobytes() if parts else b"", batch


def decode_outputs(ports: Sequence[Port], data: bytes, batch: int) -> dict[str, np.ndarray]:
    """The test program's stdout as {IR tensor: (batch, *shape) int64}."""
    sample = sum(p.size * p.ctype.bytes for p in ports)
    if len(data) != batch * sample:
        raise AssertionError(f"the test program wrote {len(data)} bytes, expected {batch * sample}")
    rows = np.frombuffer(data, dtype=np.uint8).reshape(batch, sample)
    outputs, at = {}, 0
    for p in ports:
        n = p.size * p.ctype.bytes
        values = rows[:, at:at + n].copy().view(p.ctype.numpy)
        outputs[p.tensor] = values.reshape((batch, *p.shape)).astype(np.int64)
        at += n
    return outputs


@dataclass(frozen=True)
class Result:
    outputs: dict[str, np.ndarray]
    counts: qemu.InsnCounts | None  # per function symbol, when counted


@contextlib.contextmanager
def built(generated: Generated, flavour: Build = RVV, *, cache: bool = True) -> Iterator[Path]:
    """The test program: from the cache, or (cache=False, for one-off graphs such as the kernel
    tests draw) built in a temporary directory that is removed afterwards."""
    if cache:
        yield build(generated, flavour)
        return
    with tempfile.TemporaryDirectory(prefix="hwgen-rvv-") as tmp:
        yield _compile(generated, flavour, Path(tmp), Path(tmp) / f"{generated.model}_{flavour.name}")


def run(generated: Generated, inputs: Mapping[str, np.ndarray], *, flavour: Build = RVV, vlen: int = 128,
        count: bool = False, binary: Path | None = None) -> Result:
    """Run a batch of samples ({IR input: (B, *shape)}) through one process of the test program
    (`binary`, else the cached build)."""
    stdin, batch = encode_inputs(generated.inputs, inputs)
    binary = binary or build(generated, flavour)
    timeout = qemu.DEFAULT_TIMEOUT + 2.0 * batch
    if flavour.target == "native":
        stdout, counts = qemu.run_native(binary, args=[str(batch)], stdin=stdin, timeout=timeout), None
    else:
        result = qemu.run_qemu(binary, vlen=vlen, args=[str(batch)], stdin=stdin, count=count, timeout=timeout)
        stdout, counts = result.stdout, result.counts
    return Result(decode_outputs(generated.outputs, stdout, batch), counts)
