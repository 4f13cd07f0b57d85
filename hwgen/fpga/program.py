"""An engine's schedules compiled to ROM contents and datapath wiring (no hardware tools needed).

An engine of PE x SIMD lanes runs the schedules of one or more layers (its *contexts*). Each
context's input vectors sit in a buffer memory of `lanes`-element words; lanes read them through
read ports. This module decides, from the schedules alone:

* the read ports of each context: lanes that read the same word at every step share one, and a
  port whose address never changes needs no ROM field;
* each lane's source: a port and the element of its word (constant, or a ROM field);
* each lane's weight over all steps of all contexts: a constant (0: the lane has no multiplier,
  as for zero weights in a fully unrolled layer) or a ROM field;
* the step ROM: one word per step with the fold flags, the fold index and those fields. Fields of
  different contexts overlap, since only one context runs at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..fixed import IntType, signed_bits
from ..ir import Requant
from .schedule import Schedule

__all__ = ["Field", "LayerProgram", "ContextProgram", "EngineProgram", "compile_engine"]


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
    base: int                                   # its first step in the step ROM
    fold_base: int                              # its first fold in the fold ROM
    ports: tuple[Field | int, ...]              # per read port: ROM field or constant word address
    sources: dict[tuple[int, int], tuple[int, Field | int]]  # (p, l) -> (port, element field or constant)

    @property
    def steps(self) -> int:
        return self.layer.schedule.steps

    @property
    def folds(self) -> int:
        return self.layer.schedule.folds

    @property
    def pe(self) -> int:
        return self.layer.schedule.pe


@dataclass(frozen=True)
class EngineProgram:
    pe: int
    simd: int
    contexts: tuple[ContextProgram, ...]
    weights: dict[tuple[int, int], Field | int]  # (p, l) -> ROM field or constant weight
    first: Field
    last: Field
    pixel_last: Field
    fold: Field
    rom: tuple[int, ...]       # one word per step of every context
    width: int                 # bits per ROM word
    operand: IntType           # every lane's operand, as a signed type wide enough for all contexts
    weight: IntType            # every lane's weight
    acc: IntType               # the widest accumulator of the contexts

    @property
    def multipliers(self) -> int:
        """Lanes with a multiplier: every lane with a non-zero weight somewhere."""
        return sum(1 for w in self.weights.values() if w != 0)

    @property
    def folds(self) -> int:
        return sum(c.folds for c in self.contexts)


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


def compile_engine(layers: list[LayerProgram], pe: int, simd: int) -> EngineProgram:
    offset = 0

    def field(width: int, signed: bool = False) -> Field:
        nonlocal offset
        f = Field(offset, width, signed)
        offset += width
        return f

    total_steps = sum(layer.schedule.steps for layer in layers)
    total_folds = sum(layer.schedule.folds for layer in layers)
    first, last, pixel_last = field(1), field(1), field(1)
    fold = field(_bits(total_folds))
    words = [0] * total_steps

    # -- per-context ports and sources, in a ROM region the contexts share -----------------------
    region = offset
    contexts, base, fold_base, region_end = [], 0, 0, region
    for layer in layers:
        s = layer.schedule
        assert s.pe <= pe and s.simd <= simd, (layer.name, s.pe, s.simd, pe, simd)
        offset = region
        word_of = np.where(s.entry >= 0, s.entry // layer.lanes, -1)
        element = np.where(s.entry >= 0, s.entry % layer.lanes, -1)
        lanes = [(p, l) for p in range(s.pe) for l in range(s.simd)]
        port_seqs, port_of = _group_ports(word_of, lanes)
        ports = []
        for seq in port_seqs:
            const = _constant(seq)
            ports.append(const if const is not None else field(_bits(layer.words)))
        sources = {}
        for lane, k in port_of.items():
            const = _constant(element[:, lane[0], lane[1]])
            sources[lane] = (k, const if const is not None else field(_bits(layer.lanes)))
        for t in range(s.steps):
            word = 0
            for k, f in enumerate(ports):
                if isinstance(f, Field):
                    word |= f.pack(max(0, int(port_seqs[k][t])))
            for lane, (_, f) in sources.items():
                if isinstance(f, Field):
                    word |= f.pack(max(0, int(element[t, lane[0], lane[1]])))
            word |= first.pack(int(s.first[t])) | last.pack(int(s.last[t])) | fold.pack(fold_base + int(s.fold[t]))
            word |= pixel_last.pack(int(t == s.steps - 1))
            words[base + t] = word
        contexts.append(ContextProgram(layer, base, fold_base, tuple(ports), sources))
        region_end = max(region_end, offset)
        base += s.steps
        fold_base += s.folds
    offset = region_end

    # -- weights, per lane over all steps --------------------------------------------------------
    all_w = np.zeros((total_steps, pe, simd), dtype=np.int64)
    for c in contexts:
        s = c.layer.schedule
        all_w[c.base:c.base + s.steps, :s.pe, :s.simd] = s.weight
    wtype = IntType(signed_bits(min(int(all_w.min()), -1), max(int(all_w.max()), 1)), True)
    weights = {}
    for p in range(pe):
        for l in range(simd):
            seq = all_w[:, p, l]
            if (seq == seq[0]).all():
                weights[p, l] = int(seq[0])
            else:
                f = field(wtype.bits, signed=True)
                weights[p, l] = f
                for t in range(total_steps):
                    words[t] |= f.pack(int(seq[t]))

    operand_bits = max(layer.in_type.bits + (0 if layer.in_type.signed else 1) for layer in layers)
    acc_bits = max(layer.acc.bits for layer in layers)
    return EngineProgram(pe, simd, tuple(contexts), weights, first, last, pixel_last, fold, tuple(words),
                         max(offset, 1), IntType(operand_bits, True), wtype, IntType(acc_bits, True))
