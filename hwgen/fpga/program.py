"""An engine's schedules compiled to ROM contents and datapath wiring (no hardware tools needed).

An engine of PE x SIMD lanes runs the schedules of one or more layers (its *contexts*). Each
context's input vectors sit in a buffer of `lanes`-element words that lanes read through read
ports. This module decides, from the schedules alone:

* the read ports of each context: lanes that read the same word at every step share one. A
  port's address is *affine* when it is `a*k + c*f + b` (k: the step within its fold, f: the
  fold within the output position), as in every dense layer: counters make it, no ROM bit
  does. Other ports (zero weights skipped) take their address from the control ROM;
* each lane's source: a port and the element of its word (constant, or a control ROM field);
* each lane's weight over all steps of all contexts: a constant (0: the lane has no multiplier,
  as for zero weights in a fully unrolled layer) or a field of the weight ROM;
* where a fold ends: a context whose folds all take S steps counts them; others keep a `last`
  bit in the control ROM;
* the fold ROM (per fold, the bias of every PE's channel) and the requantization ROM: the PE
  results of a fold drain through R shared requantizers in D = ceil(PE / R) cycles, and word
  `fold * stride + j` holds the multipliers and shifts of drain step j.

So the weight ROM holds nothing but weights, and a dense layer needs no control ROM at all.
Fields of different contexts overlap in the control ROM, since one context runs at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..fixed import IntType, signed_bits
from ..ir import Requant
from .schedule import Schedule

__all__ = ["Field", "Affine", "LayerProgram", "ContextProgram", "RequantProgram", "EngineProgram",
           "compile_engine", "min_requantizers", "reduce_multiplier"]


@dataclass(frozen=True)
class Field:
    """Bits [offset, offset + width) of a ROM word."""

    offset: int
    width: int
    signed: bool = False

    def pack(self, value: int) -> int:
        assert (-(1 << (self.width - 1)) <= value < (1 << (self.width - 1))) if self.signed else \
            (0 <= value < (1 << self.width)), (value, self)
        return (value & ((1 << self.width) - 1)) << self.offset


@dataclass(frozen=True)
class Affine:
    """A read address `step * k + fold * f + offset` (k: step within the fold, f: fold within the position)."""

    step: int
    fold: int
    offset: int

    @property
    def constant(self) -> bool:
        return self.step == 0 and self.fold == 0


@dataclass(frozen=True, eq=False)
class LayerProgram:
    """What an engine needs to know about one MAC layer (one context)."""

    name: str             # identifier, for signal names
    schedule: Schedule
    lanes: int            # input vector elements per buffer word
    vector: int           # input vector length
    in_type: IntType
    out_type: IntType
    bias: np.ndarray      # (Cout,)
    requant: Requant
    acc: IntType

    @property
    def words(self) -> int:
        return self.vector // self.lanes


@dataclass(frozen=True)
class ContextProgram:
    layer: LayerProgram
    base: int                                   # its first step in the ROMs
    fold_base: int                              # its first fold in the fold ROM
    ports: tuple[Field | Affine, ...]           # per read port: control ROM field or affine address
    sources: dict[tuple[int, int], tuple[int, Field | int]]  # (p, l) -> (port, element field or constant)
    fold_steps: int | None                      # steps of every fold, or None: the control ROM marks the last

    @property
    def steps(self) -> int:
        return self.layer.schedule.steps

    @property
    def folds(self) -> int:
        return self.layer.schedule.folds

    @property
    def pe(self) -> int:
        return self.layer.schedule.pe

    @property
    def counted(self) -> bool:
        return self.fold_steps is not None


@dataclass(frozen=True)
class RequantProgram:
    """R requantizers shared by the PEs: per requantizer, its multiplier and shift (ROM fields or
    constants, one value for the whole engine), and the ROM they come from."""

    count: int                                  # R
    drain: int                                  # D = ceil(PE / R): cycles a fold's results take
    stride: int                                 # ROM words per fold (D rounded up to a power of two)
    multiplier: tuple[Field | int, ...]         # per requantizer
    shift: tuple[Field | int, ...]
    rom: tuple[int, ...]
    width: int
    multiplier_bits: int
    min_shift: int
    max_shift: int


@dataclass(frozen=True)
class EngineProgram:
    pe: int
    simd: int
    contexts: tuple[ContextProgram, ...]
    weights: dict[tuple[int, int], Field | int]  # (p, l) -> weight ROM field or constant weight
    weight_rom: tuple[int, ...]  # one word per step of every context (empty: all weights constant)
    weight_width: int
    control_rom: tuple[int, ...]  # one word per step (empty: every context counted and affine)
    control_width: int
    last: Field | None           # in the control ROM, for contexts that do not count their folds
    bias: tuple[Field, ...]      # per PE, in the fold ROM
    fold_rom: tuple[int, ...]    # one word per fold of every context
    requant: RequantProgram
    operand: IntType             # every lane's operand, as a signed type wide enough for all contexts
    weight: IntType              # every lane's weight
    acc: IntType                 # the widest accumulator of the contexts

    @property
    def steps(self) -> int:
        return sum(c.steps for c in self.contexts)

    @property
    def multipliers(self) -> int:
        """Lanes with a multiplier: every lane with a non-zero weight somewhere."""
        return sum(1 for w in self.weights.values() if w != 0)

    @property
    def variable_lanes(self) -> list[tuple[int, int]]:
        """Lanes whose weight changes from step to step (a real multiplier), in (p, l) order."""
        return [lane for lane, w in sorted(self.weights.items()) if isinstance(w, Field)]

    @property
    def constant_lanes(self) -> list[tuple[int, int]]:
        """Lanes with one non-zero weight at every step (shifts and adds)."""
        return [lane for lane, w in sorted(self.weights.items()) if isinstance(w, int) and w != 0]

    @property
    def folds(self) -> int:
        return sum(c.folds for c in self.contexts)

    @property
    def uniform_folds(self) -> bool:
        return all(c.counted for c in self.contexts)


def reduce_multiplier(multiplier: int, shift: int) -> tuple[int, int]:
    """(M, s) with M's trailing zero bits moved into s: acc*M / 2**s is the same number, so every
    rounding is the same, with a narrower product."""
    if multiplier == 0:
        return 0, 0
    zeros = min((multiplier & -multiplier).bit_length() - 1, shift)
    return multiplier >> zeros, shift - zeros


def _bits(n: int) -> int:
    """Bits of an unsigned field holding 0..n-1 (at least 1)."""
    return max(1, (n - 1).bit_length())


def _group_ports(words: np.ndarray, lanes: list[tuple[int, int]]) -> tuple[list[np.ndarray], dict]:
    """Lanes whose word sequences agree wherever both read share a port. -1 means idle."""
    ports: list[np.ndarray] = []
    port_of = {}
    for lane in lanes:
        seq = words[:, lane[0], lane[1]]
        if (seq < 0).all():
            continue
        for k, merged in enumerate(ports):
            if ((merged < 0) | (seq < 0) | (merged == seq)).all():
                ports[k] = np.where(merged < 0, seq, merged)
                port_of[lane] = k
                break
        else:
            port_of[lane] = len(ports)
            ports.append(seq.copy())
    return ports, port_of


def _constant(seq: np.ndarray) -> int | None:
    """The single value of the non-negative entries of seq (0 if none), or None."""
    used = np.unique(seq[seq >= 0])
    return int(used[0]) if len(used) == 1 else 0 if len(used) == 0 else None


def _affine(seq: np.ndarray, step: np.ndarray, fold: np.ndarray) -> Affine | None:
    """seq == a*step + c*fold + b wherever seq >= 0, with integers a, c, b >= 0; else None."""
    used = seq >= 0
    if not used.any():
        return Affine(0, 0, 0)
    y, k, f = seq[used], step[used], fold[used]
    solution, *_ = np.linalg.lstsq(np.stack([k, f, np.ones_like(k)], axis=1).astype(float), y.astype(float),
                                   rcond=None)
    a, c, b = (int(round(v)) for v in solution)
    if min(a, c, b) < 0 or not np.array_equal(a * k + c * f + b, y):
        return None
    return Affine(a, c, b)


def _step_in_fold(s: Schedule) -> np.ndarray:
    starts = np.flatnonzero(s.first)
    return np.arange(s.steps) - np.repeat(starts, np.diff(np.append(starts, s.steps)))


def min_requantizers(contexts: list[tuple[int, np.ndarray]]) -> int:
    """The fewest shared requantizers that never stall an engine, from each context's (PE, steps of
    each fold). A fold's PE results drain in ceil(PE / R) cycles, which must not outlast the next
    fold: any fold of the same context, or the first fold of any context (the next position)."""
    first = min(int(steps[0]) for _, steps in contexts)
    return max(math.ceil(pe / min(int(steps.min()), first)) for pe, steps in contexts)


def _fold_lengths(s: Schedule) -> np.ndarray:
    return np.diff(np.append(np.flatnonzero(s.first), s.steps))


def _pack_rom(rows: list[dict]) -> tuple[tuple[int, ...], int]:
    """Words from {Field: value} rows, and the width."""
    width = max((f.offset + f.width for row in rows for f in row), default=0)
    return tuple(sum(f.pack(v) for f, v in row.items()) for row in rows), width


def compile_engine(layers: list[LayerProgram], pe: int, simd: int, requantizers: int | None = None) -> EngineProgram:
    """The ROMs and wiring of an engine; `requantizers` (default: the fewest that never stall)."""
    total_steps = sum(layer.schedule.steps for layer in layers)
    needs_last = any(len(set(_fold_lengths(layer.schedule).tolist())) > 1 for layer in layers)
    offset = 0

    def field(width: int, signed: bool = False) -> Field:
        nonlocal offset
        f = Field(offset, width, signed)
        offset += width
        return f

    # -- control ROM: the `last` bit, then per-context ports and sources in a shared region ------
    last = field(1) if needs_last else None
    control = [{} for _ in range(total_steps)]
    region = offset
    contexts, base, fold_base, region_end = [], 0, 0, region
    for layer in layers:
        s = layer.schedule
        assert s.pe <= pe and s.simd <= simd, (layer.name, s.pe, s.simd, pe, simd)
        offset = region
        k_of, f_of = _step_in_fold(s), s.fold
        word_of = np.where(s.entry >= 0, s.entry // layer.lanes, -1)
        element = np.where(s.entry >= 0, s.entry % layer.lanes, -1)
        lanes = [(p, l) for p in range(s.pe) for l in range(s.simd)]
        port_seqs, port_of = _group_ports(word_of, lanes)
        ports = []
        for seq in port_seqs:
            affine = _affine(seq, k_of, f_of)
            ports.append(affine if affine is not None else field(_bits(layer.words)))
        sources = {}
        for lane, k in port_of.items():
            const = _constant(element[:, lane[0], lane[1]])
            sources[lane] = (k, const if const is not None else field(_bits(layer.lanes)))
        lengths = set(_fold_lengths(s).tolist())
        for t in range(s.steps):
            row = control[base + t]
            for k, f in enumerate(ports):
                if isinstance(f, Field):
                    row[f] = max(0, int(port_seqs[k][t]))
            for lane, (_, f) in sources.items():
                if isinstance(f, Field):
                    row[f] = max(0, int(element[t, lane[0], lane[1]]))
            if last is not None:
                row[last] = int(s.last[t])
        contexts.append(ContextProgram(layer, base, fold_base, tuple(ports), sources,
                                       lengths.pop() if len(lengths) == 1 else None))
        region_end = max(region_end, offset)
        base += s.steps
        fold_base += s.folds
    control_rom, control_width = _pack_rom(control)
    if control_width == 0:
        control_rom = ()

    # -- weight ROM: per lane over all steps -------------------------------------------------------
    all_w = np.zeros((total_steps, pe, simd), dtype=np.int64)
    for c in contexts:
        s = c.layer.schedule
        all_w[c.base:c.base + s.steps, :s.pe, :s.simd] = s.weight
    wtype = IntType(signed_bits(min(int(all_w.min()), -1), max(int(all_w.max()), 1)), True)
    weights, offset = {}, 0
    rows = [{} for _ in range(total_steps)]
    for p in range(pe):
        for l in range(simd):
            seq = all_w[:, p, l]
            if (seq == seq[0]).all():
                weights[p, l] = int(seq[0])
            else:
                f = field(wtype.bits, signed=True)
                weights[p, l] = f
                for t in range(total_steps):
                    rows[t][f] = int(seq[t])
    weight_rom, weight_width = _pack_rom(rows)
    if weight_width == 0:
        weight_rom = ()

    operand_bits = max(layer.in_type.bits + (0 if layer.in_type.signed else 1) for layer in layers)
    acc = IntType(max(layer.acc.bits for layer in layers), True)
    bias, fold_rom = _fold_rom(contexts, pe, acc)
    r = requantizers if requantizers is not None else min_requantizers([(l.schedule.pe, _fold_lengths(l.schedule))
                                                                         for l in layers])
    if not 1 <= r <= pe:
        raise ValueError(f"an engine of {pe} PEs has 1 to {pe} requantizers, not {r}")
    return EngineProgram(pe, simd, tuple(contexts), weights, weight_rom, weight_width, control_rom, control_width,
                         last, bias, fold_rom, _requant_program(contexts, pe, r), IntType(operand_bits, True), wtype,
                         acc)


def _fold_rom(contexts: list[ContextProgram], pe: int, acc: IntType) -> tuple[tuple[Field, ...], tuple[int, ...]]:
    """One word per fold: the bias of every PE's output channel."""
    fields = tuple(Field(p * acc.bits, acc.bits, True) for p in range(pe))
    words = []
    for c in contexts:
        for f in range(c.folds):
            words.append(sum(fields[p].pack(int(c.layer.bias[f * c.pe + p])) for p in range(c.pe)))
    return fields, tuple(words)


def _requant_program(contexts: list[ContextProgram], pe: int, r: int) -> RequantProgram:
    drain = -(-pe // r)
    stride = 1 << (drain - 1).bit_length()
    # per fold and drain step, per requantizer: (M, s) of its channel, None past the context's PEs
    table: list[list[tuple[int, int] | None]] = []
    for c in contexts:
        rq = c.layer.requant
        cout = len(c.layer.bias)
        mult = list(rq.multiplier) * cout if len(rq.multiplier) == 1 else list(rq.multiplier)
        shift = list(rq.shift) * cout if len(rq.shift) == 1 else list(rq.shift)
        for f in range(c.folds):
            for j in range(stride):
                row = []
                for k in range(r):
                    p = j * r + k
                    o = f * c.pe + p
                    row.append(reduce_multiplier(mult[o], shift[o]) if j < drain and p < c.pe else None)
                table.append(row)
    used = [v for row in table for v in row if v is not None]
    m_bits = max(1, max(m.bit_length() for m, _ in used))
    min_shift, max_shift = min(s for _, s in used), max(s for _, s in used)
    if len(set(used)) == 1:
        (m, s), = set(used)
        return RequantProgram(r, drain, stride, (m,) * r, (s,) * r, (), 0, m_bits, s, s)
    s_bits = max(1, max_shift.bit_length())
    mults = tuple(Field(k * (m_bits + s_bits), m_bits) for k in range(r))
    shifts = tuple(Field(k * (m_bits + s_bits) + m_bits, s_bits) for k in range(r))
    rows = [{f: v for k, value in enumerate(row) if value is not None for f, v in zip((mults[k], shifts[k]), value)}
            for row in table]
    rom, width = _pack_rom(rows)
    return RequantProgram(r, drain, stride, mults, shifts, rom, r * (m_bits + s_bits), m_bits, min_shift, max_shift)
