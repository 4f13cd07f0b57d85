"""The FPGAs hwgen synthesizes for: what each chip holds and how the tools are told about it.

Capacities are the vendors' datasheet figures; the logic, FF, DSP, block RAM and SPRAM counts
are the same numbers nextpnr 0.11 reports as "available" (``tests/synth/data`` keeps such
reports, and a test checks this table against them).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .errors import HwgenError, InvalidOptionError

__all__ = ["Family", "Device", "DEVICES", "device", "DoesNotFitError"]


class Family(enum.Enum):
    ICE40 = "ice40"
    ECP5 = "ecp5"


@dataclass(frozen=True, slots=True)
class Device:
    """One FPGA in one package, at the speed grade hwgen assumes."""

    name: str                # hwgen's name, as given to --device
    family: Family
    part: str                # vendor part number (documentation only)
    nextpnr_args: tuple[str, ...]  # selects the die, package and speed grade
    synth_command: str       # the yosys synthesis pass with its options, without -top
    logic: int               # iCE40: logic cells (LUT4 + FF + carry); ECP5: LUT4s
    ffs: int
    dsps: int                # iCE40: SB_MAC16; ECP5: MULT18X18D (two per sysDSP slice)
    dsp_width: tuple[int, int]   # the largest product one DSP computes, bits x bits
    brams: int               # iCE40: SB_RAM40_4K; ECP5: DP16KD
    bram_bits: int           # per block, data bits (ECP5: with the 9th "parity" bits)
    sprams: int              # SB_SPRAM256KA (UP5K only); cannot be initialized by the bitstream
    spram_bits: int
    io: int                  # user I/O pins of the package (datasheet)
    default_clock_mhz: float  # nextpnr's timing target unless --clock says otherwise
    placer: str              # nextpnr's placer unless --placer says otherwise

    @property
    def nextpnr(self) -> str:
        """The nextpnr binary's family suffix: nextpnr-ice40 or nextpnr-ecp5."""
        return f"nextpnr-{self.family.value}"

    @property
    def bram_total_bits(self) -> int:
        return self.brams * self.bram_bits

    @property
    def spram_total_bits(self) -> int:
        return self.sprams * self.spram_bits

    def capacity(self) -> dict[str, int]:
        """Resource name -> how many the device has, in the names of :class:`Resources`."""
        return {"logic": self.logic, "ff": self.ffs, "dsp": self.dsps, "bram": self.brams,
                "spram": self.sprams, "io": self.io}


# The UP5K's EBRs are 4 kbit; ECP5's DP16KD are 18 kbit (16 kbit + parity, usable as data at
# x9/x18/x36 widths). ECP5 speed grade 6 is the slowest and what the ULX3S carries.
# synth_ice40 needs -dsp to map multipliers to SB_MAC16 at all (TOOLCHAIN.md: 1406 LCs at 21 MHz
# without, 227 LCs + 4 DSPs at 80 MHz with), -device u to time LUTs for the UltraPlus, and -spram
# to let large single-port RAMs use the SPRAMs. ECP5 uses nextpnr's static placer: its placement
# of person_detect routes where the default heap placer's does not, and TinyCNN (ECP5-25k) and
# MobileNet (ECP5-45k) reach 101.6 and 87.2 MHz with it (89.2 and 91.0 with heap placement).
DEVICES: dict[str, Device] = {d.name: d for d in (
    Device("ice40-up5k", Family.ICE40, "iCE40UP5K-SG48I", ("--up5k", "--package", "sg48"),
           "synth_ice40 -device u -dsp -spram",
           logic=5280, ffs=5280, dsps=8, dsp_width=(16, 16), brams=30, bram_bits=4096,
           sprams=4, spram_bits=256 * 1024, io=39, default_clock_mhz=48.0, placer="heap"),
    Device("ecp5-25k", Family.ECP5, "LFE5U-25F-6BG381C",
           ("--25k", "--package", "CABGA381", "--speed", "6"), "synth_ecp5",
           logic=24288, ffs=24288, dsps=28, dsp_width=(18, 18), brams=56, bram_bits=18 * 1024,
           sprams=0, spram_bits=0, io=197, default_clock_mhz=80.0, placer="static"),
    Device("ecp5-45k", Family.ECP5, "LFE5U-45F-6BG381C",
           ("--45k", "--package", "CABGA381", "--speed", "6"), "synth_ecp5",
           logic=43848, ffs=43848, dsps=72, dsp_width=(18, 18), brams=108, bram_bits=18 * 1024,
           sprams=0, spram_bits=0, io=203, default_clock_mhz=80.0, placer="static"),
    Device("ecp5-85k", Family.ECP5, "LFE5U-85F-6BG381C",
           ("--85k", "--package", "CABGA381", "--speed", "6"), "synth_ecp5",
           logic=83640, ffs=83640, dsps=156, dsp_width=(18, 18), brams=208, bram_bits=18 * 1024,
           sprams=0, spram_bits=0, io=205, default_clock_mhz=80.0, placer="static"),
)}


def device(name: str | Device) -> Device:
    """The device called ``name`` (a :class:`Device` passes through)."""
    if isinstance(name, Device):
        return name
    try:
        return DEVICES[name]
    except KeyError:
        raise InvalidOptionError(f"unknown device {name!r}; choose from {', '.join(DEVICES)}") from None


class DoesNotFitError(HwgenError):
    """A design needs more of a resource than the device has."""

    def __init__(self, device: Device, resource: str, need: int, have: int, detail: str = ""):
        self.device, self.resource, self.need, self.have = device, resource, need, have
        over = f"{need - have} more than the {have} it has" if have else "it has none"
        super().__init__(f"does not fit {device.name}: needs {need} {resource}{detail}, {over}")
