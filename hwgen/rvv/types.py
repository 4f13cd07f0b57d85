"""C element types of activation buffers, and names of RVV vector types and intrinsic suffixes.

Kernels keep int32 accumulators in register groups of LMUL 1..8; the narrower vectors
they load (int16 weights, 8-bit activations) use proportionally smaller groups, so all
vectors of a kernel have the same number of lanes.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from ..errors import UnsupportedModelError
from ..fixed import IntType

__all__ = ["CType", "ctype_of", "vsuffix", "vtype", "c_float"]


@dataclass(frozen=True, slots=True, order=True, repr=False)
class CType(IntType):
    """The element type of a tensor buffer in the generated C: an IntType of 8, 16 or 32 bits."""

    @property
    def name(self) -> str:
        return f"{'' if self.signed else 'u'}int{self.bits}_t"

    @property
    def short(self) -> str:
        return repr(self)

    @property
    def bytes(self) -> int:
        return self.bits // 8

    @property
    def numpy(self) -> str:
        return f"<{'i' if self.signed else 'u'}{self.bytes}"


def ctype_of(t: IntType, what: str, node=None) -> CType:
    """The narrowest C type of 8, 16 or 32 bits holding the IR type `t` (same signedness)."""
    for bits in (8, 16, 32):
        if t.bits <= bits:
            return CType(bits, t.signed)
    raise UnsupportedModelError(f"{what} has type {t}; the RVV backend handles at most 32 bits",
                                node=getattr(node, "name", None), op=getattr(node, "op", None))


def _lmul_name(lmul: Fraction) -> str:
    return f"m{int(lmul)}" if lmul >= 1 else f"mf{int(1 / lmul)}"


def vsuffix(sew: int, signed: bool, lmul: Fraction | int) -> str:
    """Intrinsic suffix of a vector type: vsuffix(16, True, 4) == 'i16m4', vsuffix(8, False, 1/2) == 'u8mf2'."""
    return f"{'i' if signed else 'u'}{sew}{_lmul_name(Fraction(lmul))}"


def vtype(sew: int, signed: bool, lmul: Fraction | int) -> str:
    """C type of a vector: vtype(16, True, 4) == 'vint16m4_t'."""
    return f"v{'int' if signed else 'uint'}{vsuffix(sew, signed, lmul)[1:]}_t"


def c_float(value: float) -> str:
    """A C float literal of a float32 value (nine significant digits round-trip a float32)."""
    text = f"{float(value):.9g}"
    if not any(c in text for c in ".en"):  # "1" would be an int and "1f" no literal at all
        text += ".0"
    return f"{text}f"
