"""Kernel variants: which C kernel functions a model needs, and the names the template uses.

A variant is one kernel function in the generated kernels.h, specialised at render
time for its element types, accumulator LMUL, pixel tile and rounding mode (vxrm
must be a compile-time constant in the intrinsics). Layers that agree on all of
these share one function; their shapes are compile-time constants of the layer
function that inlines it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from fractions import Fraction

from .types import CType, vsuffix, vtype

__all__ = ["Kind", "Store", "Variant", "StoreHelper", "LoadHelper", "acc_lmul", "depthwise_lmul", "conv_tile",
           "depthwise_tile", "e8_lmul", "helpers_for", "ROWS_MAX_CHANNELS", "ROWS_MAX_LANES", "DOT_MAX_OUTPUTS"]

#: The V extension guarantees VLEN >= 128, so one register holds at least 4 int32 lanes.
VLEN_MIN = 128

#: Pixels per tile of the convolution kernels, by accumulator LMUL: as many int32
#: accumulator groups as fit beside the weight vector and the requantization
#: temporaries in 32 vector registers.
_CONV_TILE = {1: 8, 2: 12, 4: 4, 8: 3}  # LMUL 2: 12 (24 registers) beats 8, 10 and 16 on person_detect
_DEPTHWISE_TILE = {1: 8, 2: 6, 4: 3}


def acc_lmul(channels: int) -> int:
    """The smallest LMUL whose int32 group covers `channels` lanes at VLEN 128 (at most 8)."""
    for lmul in (1, 2, 4):
        if channels <= lmul * VLEN_MIN // 32:
            return lmul
    return 8


def depthwise_lmul(channels: int) -> int:
    """At most 4 for depthwise: wider tiles of LMUL 4 beat LMUL 8 (whose x, w and four-register
    accumulators leave room for two pixels only) on person_detect."""
    return min(4, acc_lmul(channels))


#: Depthwise layers of at most this many channels (and stride 1) vectorize over pixels and channels
#: together: channels alone would fill at most half of an LMUL 4 group at VLEN 128.
ROWS_MAX_CHANNELS = 16
#: The tables of that kernel cover this many lanes (LMUL 8 at VLEN 1024); wider machines use part.
ROWS_MAX_LANES = 256
#: A layer computing one pixel of at most this many outputs (a classifier) takes dot products over
#: its inputs instead: vectorized over outputs it would fill at most one int32 register.
DOT_MAX_OUTPUTS = 4


def e8_lmul(channels: int) -> int:
    """Like acc_lmul, for kernels that work on 8-bit lanes only (max pooling, copies)."""
    for lmul in (1, 2, 4):
        if channels <= lmul * VLEN_MIN // 8:
            return lmul
    return 8


def conv_tile(lmul: int, width: int) -> int:
    return max(1, min(_CONV_TILE[lmul], width))


def depthwise_tile(lmul: int, width: int) -> int:
    return max(1, min(_DEPTHWISE_TILE[lmul], width))


class Kind(enum.StrEnum):
    """A kernel (and the layer calling it: a concatenation is copies)."""

    CONV = "conv"
    DEPTHWISE = "depthwise"
    DEPTHWISE_ROWS = "depthwise_rows"
    DOT = "dot"
    MAXPOOL = "maxpool"
    AVGPOOL = "avgpool"
    GLOBAL_AVGPOOL = "global_avgpool"
    ADD = "add"
    REQUANTIZE = "requantize"
    COPY = "copy"
    CONCAT = "concat"   # a layer kind only: its kernel is COPY
    LOOKUP = "lookup"
    MUL = "mul"
    AFFINE = "affine"
    GATHER = "gather"   # data movement as an index map
    RESIZE = "resize"   # linear

    @property
    def bytes_only(self) -> bool:
        """Its lanes are of its elements' width and it computes nothing (no accumulators, no requantization)."""
        return self in (Kind.MAXPOOL, Kind.COPY, Kind.GATHER, Kind.LOOKUP)


class Store(enum.StrEnum):
    """How a kernel stores its results: requantized with vxrm in this rounding mode, or raw int32."""

    RNE = "rne"
    RNU = "rnu"
    RAW = "raw"


@dataclass(frozen=True, order=True)
class Variant:
    """One kernel function.

    lmul: of the int32 accumulators, or of the 8-bit lanes for maxpool and copy.
    """

    kind: Kind
    x: CType | None = None
    y: CType | None = None
    lmul: int = 1
    tile: int = 1
    rounding: Store = Store.RNE
    x2: CType | None = None  # the second operand of add and mul
    index_bits: int = 0      # gather: the width of its byte offsets
    w: CType | None = None   # weighted kernels: the stored weights' type (int8, or int16 if they need it)
    packed: bool = False     # conv: 8-bit weights of two input channels packed in an int16 (plan._conv_weights)

    @property
    def name(self) -> str:
        types = "_".join(t.short for t in (self.x, self.x2, self.y) if t is not None)
        tile = f"_t{self.tile}" if self.tile > 1 else ""
        rounding = f"_{self.rounding}" if not self.kind.bytes_only else ""
        index = f"_ix{self.index_bits}" if self.index_bits else ""
        weights = f"_w{self.w.bits}{'p' if self.packed else ''}" if self.w is not None else ""
        return f"hwgen_{self.kind}_{types}{weights}_m{self.lmul}{tile}{rounding}{index}"

    @property
    def w_array(self) -> str:
        """The C type of the weights array: packed pairs of 8-bit weights are int16_t."""
        return "int16_t" if self.packed else self.w.name

    @property
    def raw(self) -> bool:
        return self.rounding is Store.RAW

    @property
    def base_sew(self) -> int:
        return 8 if self.kind.bytes_only else 32

    def lanes(self, sew: int) -> Fraction:
        return Fraction(self.lmul * sew, self.base_sew)

    def sfx(self, sew: int, signed: bool = True) -> str:
        """Intrinsic suffix of SEW-bit lanes as many as this kernel's vectors: 'i16m4'."""
        return vsuffix(sew, signed, self.lanes(sew))

    def vt(self, sew: int, signed: bool = True) -> str:
        return vtype(sew, signed, self.lanes(sew))

    def lm(self, sew: int) -> str:
        """The LMUL part of vsetvl's name for SEW-bit lanes: 'm8'."""
        return self.sfx(sew)[len(str(sew)) + 1:]

    @property
    def store(self) -> StoreHelper:
        return StoreHelper(self.y, self.lmul, self.rounding)

    def load(self, x: CType, sew: int) -> LoadHelper:
        return LoadHelper(x, sew, self.lmul)

    @property
    def vxrm(self) -> str:
        return "__RISCV_VXRM_RNU" if self.rounding is Store.RNU else "__RISCV_VXRM_RNE"


@dataclass(frozen=True, order=True)
class StoreHelper:
    """Requantize int32 lanes of LMUL `lmul` and store them as `y` (or store them raw)."""

    y: CType
    lmul: int
    rounding: Store

    @property
    def name(self) -> str:
        if self.rounding is Store.RAW:
            return f"hwgen_store_raw_m{self.lmul}"
        return f"hwgen_store_{self.y.short}_m{self.lmul}_{self.rounding}"

    @property
    def half(self) -> StoreHelper:
        return StoreHelper(self.y, self.lmul // 2, self.rounding)

    def sfx(self, sew: int, signed: bool = True) -> str:
        return vsuffix(sew, signed, Fraction(self.lmul * sew, 32))

    def vt(self, sew: int, signed: bool = True) -> str:
        return vtype(sew, signed, Fraction(self.lmul * sew, 32))

    @property
    def vxrm(self) -> str:
        return "__RISCV_VXRM_RNU" if self.rounding is Store.RNU else "__RISCV_VXRM_RNE"

    @property
    def narrowing(self) -> tuple[int, ...]:
        """The lane widths requantized int32 lanes narrow through: (16, 8) for 8-bit outputs."""
        return tuple(b for b in (16, 8) if b >= self.y.bits)


@dataclass(frozen=True, order=True)
class LoadHelper:
    """Load 8-bit activations widened to `sew`-bit signed lanes matching int32 accumulators of `lmul`."""

    x: CType
    sew: int  # 16 or 32
    lmul: int

    @property
    def name(self) -> str:
        return f"hwgen_load_{self.x.short}_as_i{self.sew}_m{self.lmul}"

    def sfx(self, sew: int, signed: bool = True) -> str:
        return vsuffix(sew, signed, Fraction(self.lmul * sew, 32))

    def vt(self, sew: int, signed: bool = True) -> str:
        return vtype(sew, signed, Fraction(self.lmul * sew, 32))


def helpers_for(variants) -> tuple[list[LoadHelper], list[StoreHelper]]:
    """The load and store helpers the variants call, each once, in a stable order."""
    loads, stores = set(), set()
    for v in variants:
        if v.kind in (Kind.DEPTHWISE, Kind.DEPTHWISE_ROWS, Kind.DOT):
            loads.add(v.load(v.x, 16))
        elif v.kind in (Kind.AVGPOOL, Kind.GLOBAL_AVGPOOL, Kind.REQUANTIZE):
            loads.add(v.load(v.x, 32))
        elif v.kind in (Kind.ADD, Kind.MUL):
            loads.update((v.load(v.x, 32), v.load(v.x2, 32)))
        elif v.kind in (Kind.AFFINE, Kind.RESIZE):
            loads.add(v.load(v.x, 32))
        if not v.kind.bytes_only and v.kind is not Kind.DOT:  # dot requantizes scalars
            stores.add(v.store)
            if v.store.lmul == 8 and not v.raw:
                stores.add(v.store.half)
    return sorted(loads), sorted(stores, key=lambda s: (s.lmul, s.y, s.rounding))
