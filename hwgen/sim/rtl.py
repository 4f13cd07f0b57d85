"""Whole-accelerator co-simulation: tensors in, tensors and cycle counts out.

Packs IR tensors into stream words (see `hwgen.hdl.streams.word_layout`), streams a batch of
samples back to back through the Verilated accelerator with the C++ harness
(`hwgen.sim.verilator`), and unpacks the outputs. Every result carries its cycle counts: the
latency of one inference, the steady-state initiation interval (samples back to back) and the
busy cycles the accelerator's performance counters recorded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..fixed import IntType
from ..fpga.outputs import OutputMux
from .verilator import StreamModel, Trace, build

__all__ = ["pack_words", "unpack_words", "unpack_outputs", "RtlRun", "RtlAccelerator", "PROGRESS_CYCLES"]

logger = logging.getLogger(__name__)

#: Simulations expected to take more cycles than this run in chunks, reporting progress.
PROGRESS_CYCLES = 20_000_000


def pack_words(x: np.ndarray, itype: IntType, lanes: int) -> np.ndarray:
    """(B, *shape) integers -> (words, limbs) uint32: raster order, `lanes` elements per word."""
    flat = np.asarray(x, dtype=np.int64).reshape(-1)
    if not itype.contains(flat):
        raise ValueError(f"values outside {itype}")
    if flat.size % lanes:
        raise ValueError(f"{flat.size} elements do not fill words of {lanes}")
    bits = itype.bits
    assert bits <= 32, "stream elements are at most 32 bits wide"
    elements = (flat & ((1 << bits) - 1)).astype(np.uint64).reshape(-1, lanes)
    limbs = np.zeros((elements.shape[0], (lanes * bits + 31) // 32), dtype=np.uint64)
    for k in range(lanes):
        offset = k * bits
        limb, shift = divmod(offset, 32)
        limbs[:, limb] |= (elements[:, k] << np.uint64(shift)) & np.uint64(0xFFFF_FFFF)
        if shift + bits > 32:
            limbs[:, limb + 1] |= elements[:, k] >> np.uint64(32 - shift)
    return limbs.astype(np.uint32)


def unpack_words(limbs: np.ndarray, itype: IntType, lanes: int, shape: tuple[int, ...]) -> np.ndarray:
    """(words, limbs) uint32 -> (B, *shape) int64, the inverse of pack_words."""
    bits = itype.bits
    wide = limbs.astype(np.uint64)
    out = np.zeros((wide.shape[0], lanes), dtype=np.uint64)
    for k in range(lanes):
        limb, shift = divmod(k * bits, 32)
        value = wide[:, limb] >> np.uint64(shift)
        if shift + bits > 32:
            value |= wide[:, limb + 1] << np.uint64(32 - shift)
        out[:, k] = value & np.uint64((1 << bits) - 1)
    values = out.astype(np.int64).reshape(-1)
    if itype.signed:
        values = np.where(values >= 1 << (bits - 1), values - (1 << bits), values)
    return values.reshape((-1, *shape))


@dataclass(frozen=True)
class RtlRun:
    """Outputs of a batch and what it cost."""

    outputs: dict[str, np.ndarray]   # output tensor -> (B, *its shape) int64
    cycles: int                  # simulated cycles (all chunks)
    latency: int                 # cycles from the first input word to the last output word of sample 0 (in
                                 # a batch, later samples share the engines with it: run one alone for the
                                 # latency of an inference)
    interval: float | None       # steady state: mean cycles between consecutive samples' last output words
    counters: dict[str, int] = field(default_factory=dict)  # perf counter name -> busy cycles (whole run)
    seconds: float = 0.0         # wall time of the simulation

    @property
    def output(self) -> np.ndarray:
        """The output of a one-output accelerator."""
        if len(self.outputs) != 1:
            raise ValueError(f"the accelerator has {len(self.outputs)} outputs: {', '.join(self.outputs)}")
        return next(iter(self.outputs.values()))

    @property
    def cycles_per_second(self) -> float:
        return self.cycles / self.seconds if self.seconds else 0.0


def _interval(ends: np.ndarray) -> float | None:
    """Mean cycles between samples' ends, without the last sample: with no input behind it, it
    has the engines to itself and ends early (a drain, not the steady state)."""
    ends = ends.astype(np.int64)
    if len(ends) < 2:
        return None
    steady = ends[:-1] if len(ends) >= 3 else ends
    return float(steady[-1] - steady[0]) / (len(steady) - 1)


def _tags(limbs: np.ndarray, mux: OutputMux) -> np.ndarray:
    """The output index of each word of a multiplexed output stream."""
    if mux.tag_bits == 0:
        return np.zeros(len(limbs), dtype=np.int64)
    limb, shift = divmod(mux.data_bits, 32)
    wide = limbs.astype(np.uint64)
    value = wide[:, limb] >> np.uint64(shift)
    if shift + mux.tag_bits > 32:
        value |= wide[:, limb + 1] << np.uint64(32 - shift)
    return (value & np.uint64((1 << mux.tag_bits) - 1)).astype(np.int64)


def unpack_outputs(limbs: np.ndarray, mux: OutputMux) -> dict[str, np.ndarray]:
    """The output tensors, by name, in the `o` stream's words (samples back to back)."""
    tags = _tags(limbs, mux)
    return {s.tensor: unpack_words(limbs[tags == k], s.dtype, s.lanes, s.shape) for k, s in enumerate(mux.streams)}


class RtlAccelerator:
    """A Verilated accelerator with its stream formats.

    `outputs` says how the output tensors share the `o` stream; `counter_names` name the 32-bit
    fields of the `perf` port, least significant first.
    """

    def __init__(self, model: StreamModel, in_type: IntType, in_lanes: int, in_shape: tuple[int, ...],
                 outputs: OutputMux, counter_names: list[str], expected_interval: int = 0):
        self.model = model
        self.in_type, self.in_lanes, self.in_shape = in_type, in_lanes, tuple(in_shape)
        self.mux = outputs
        self.counter_names = list(counter_names)
        self.expected_interval = expected_interval

    @classmethod
    def build(cls, verilog: str, top: str, *, trace: Trace | bool | None = None,
              progress: Callable[[str], None] | None = None,
              cache_dir: Path | None = None, **formats) -> RtlAccelerator:
        model = build(verilog, top, trace=trace, progress=progress, cache_dir=cache_dir)
        return cls(model, **formats)

    def run(self, x: np.ndarray, *, stall_prob: float = 0.0, seed: int = 0, trace_path: Path | None = None,
            progress: Callable[[str], None] | None = None) -> RtlRun:
        x = np.asarray(x)
        if x.shape[1:] != self.in_shape:
            raise ValueError(f"expected samples of shape {self.in_shape}, got {x.shape[1:]}")
        batch = x.shape[0]
        in_words = int(np.prod(self.in_shape)) // self.in_lanes
        out_words = self.mux.words_per_sample
        per_sample = max(self.expected_interval, in_words, out_words, 1)
        chunk = batch if trace_path is not None else max(1, min(batch, PROGRESS_CYCLES // per_sample))
        limbs, cycles, seconds = [], 0, 0.0
        latency, interval = None, None
        # room for a slow start (pipeline fill, reset) on top of the expected cycles
        budget = lambda n: 10 * per_sample * (n + 2) + 100_000  # noqa: E731
        for start in range(0, batch, chunk):
            part = x[start:start + chunk]
            words = pack_words(part, self.in_type, self.in_lanes)
            begin = time.perf_counter()
            result = self.model.run(words, len(part) * out_words, stall_seed=seed + start, stall_prob=stall_prob,
                                    max_cycles=budget(len(part)), reset=start == 0, trace_path=trace_path)
            seconds += time.perf_counter() - begin
            cycles += result.cycles
            limbs.append(result.limbs)
            if latency is None:
                ends = self._sample_ends(_tags(result.limbs, self.mux), result.out_cycles)
                latency = int(ends[0]) - int(result.in_cycles[0])
                interval = _interval(ends)
            if progress is not None and batch > chunk:
                done = min(batch, start + chunk)
                progress(f"simulated {done}/{batch} samples, {cycles:,} cycles "
                         f"({cycles / max(seconds, 1e-9) / 1e6:.1f} M cycles/s)")
        outputs = unpack_outputs(np.concatenate(limbs), self.mux)
        perf = self.model.perf()
        counters = {name: (perf >> (32 * k)) & 0xFFFF_FFFF for k, name in enumerate(self.counter_names)}
        return RtlRun(outputs, cycles, latency, interval, counters, seconds)

    def _sample_ends(self, tags: np.ndarray, out_cycles: np.ndarray) -> np.ndarray:
        """The cycle of each sample's last output word (the latest over the outputs), from the words' tags."""
        ends = [out_cycles[tags == k][s.words_per_sample - 1::s.words_per_sample]
                for k, s in enumerate(self.mux.streams)]
        return np.max(np.stack(ends), axis=0)
