"""The iCE40 PLL (SB_PLL40_PAD, simple feedback): dividers for a wanted clock, as icepll finds them.

    f_pfd = f_in / (DIVR + 1)        10 .. 133 MHz
    f_vco = f_pfd * (DIVF + 1)       533 .. 1066 MHz
    f_out = f_vco / 2 ** DIVQ        16 .. 275 MHz, DIVQ 1 .. 6

(Lattice's iCE40 sysCLOCK PLL design guide, and icestorm's icepll, whose FILTER_RANGE rule this is.)
A design's clock must not exceed what timing allows, so `ice40_pll` takes the fastest clock at or
below the one asked for, not the nearest.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidOptionError

__all__ = ["Pll", "ice40_pll", "PLL_MIN_MHZ", "PLL_MAX_MHZ"]

PLL_MIN_MHZ, PLL_MAX_MHZ = 16.0, 275.0


@dataclass(frozen=True)
class Pll:
    f_in_mhz: float
    divr: int
    divf: int
    divq: int

    @property
    def f_pfd_mhz(self) -> float:
        return self.f_in_mhz / (self.divr + 1)

    @property
    def f_vco_mhz(self) -> float:
        return self.f_pfd_mhz * (self.divf + 1)

    @property
    def f_out_mhz(self) -> float:
        return self.f_vco_mhz / (1 << self.divq)

    @property
    def filter_range(self) -> int:
        pfd = self.f_pfd_mhz
        return next(k for k, bound in enumerate((17, 26, 44, 66, 101), 1) if pfd < bound) if pfd < 101 else 6


def ice40_pll(f_in_mhz: float, f_out_mhz: float) -> Pll:
    """The dividers giving the fastest clock <= `f_out_mhz` from `f_in_mhz` (ties: the lowest VCO)."""
    if not PLL_MIN_MHZ <= f_out_mhz <= PLL_MAX_MHZ:
        raise InvalidOptionError(f"the iCE40 PLL makes {PLL_MIN_MHZ:g} to {PLL_MAX_MHZ:g} MHz, not {f_out_mhz:g}")
    best, best_key = None, None
    for divr in range(16):
        if not 10 <= f_in_mhz / (divr + 1) <= 133:
            continue
        for divf in range(128):
            for divq in range(1, 7):
                pll = Pll(f_in_mhz, divr, divf, divq)
                if not 533 <= pll.f_vco_mhz <= 1066 or not PLL_MIN_MHZ <= pll.f_out_mhz <= f_out_mhz + 1e-9:
                    continue
                key = (round(pll.f_out_mhz, 9), -pll.f_vco_mhz)
                if best is None or key > best_key:
                    best, best_key = pll, key
    if best is None:
        raise InvalidOptionError(f"the iCE40 PLL cannot make {f_out_mhz:g} MHz or less from {f_in_mhz:g} MHz")
    return best
