"""C element types of activation buffers, and the names of RVV vector types and intrinsics.

Kernels keep int32 accumulators in register groups of LMUL 1..8; the narrower types
they load and store (int16 weights, 8-bit activations) use proportionally smaller
groups, so every vector in a kernel has the same number of lanes.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from ..errors import UnsupportedModelError
from ..fixed import IntType

__all__ = ["CType", "ctype_of", "vsuffix", "vtype", "ACC_LMULS"]

#: LMULs for int32 accumulators (e64 products of LMUL 8 need accumulators of LMUL <= 4).
ACC_LMULS = (1, 2, 4, 8)


@dataclass(frozen=True, order=True)
class CType:
    """An element type of a tensor buffer in the generated C."""

    bits: int  # 8, 16 or 32
    signed: bool

    @property
    def name(self) -> str:
        return f"{'' if self.signed else 'u'}int{self.bits}_t"

    @property
    def short(self) -> str:
        return f"{'i' if self.signed else 'u'}{self.bits}"

    @property
    def bytes(self) -> int:
        return self.bits // 8

    @property
    def lo(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def hi(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def numpy(self) -> str:
        return f"<{'i' if self.signed else 'u'}{self.bytes}"


def ctype_of(t: IntType, what: str = "tensor", *, node=None) -> CType:
    """The C type holding an IR integer type (8, 16 or 32 bits)."""
    for bits in (8, 16, 32):
        if t.bits <= bits:
            if t.bits == bits or t.signed or bits == 8:
                return CType(bits, t.signed)
            return CType(bits, t.signed)
    raise UnsupportedModelError(f"{what} has type {t}; the RVV backend handles at most 32 bits",
                                node=node.name if node else None, op=node.op if node else None)


def _lmul_name(lmul: Fraction) -> str:
    if lmul >= 1:
        return f"m{int(lmul)}"
    return f"mf{int(1 / lmul)}"


def vsuffix(sew: int, signed: bool, acc_lmul: int) -> str:
    """Intrinsic suffix of SEW-bit lanes matching int32 accumulators of LMUL acc_lmul: i16m4, u8mf2, ..."""
    lmul = Fraction(acc_lmul * sew, 32)
    return f"{'i' if signed else 'u'}{sew}{_lmul_name(lmul)}"


def vtype(sew: int, signed: bool, acc_lmul: int) -> str:
    """C vector type name for vsuffix(...): vint16m4_t, vuint8mf2_t, ..."""
    s = vsuffix(sew, signed, acc_lmul)
    return f"v{'int' if signed else 'uint'}{s[1:]}_t"
