"""Command-line options shared by several commands, and their typed options below the CLI."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..backends.fpga import FpgaOptions
from ..backends.rvv import VLEN_CHOICES, RvvOptions
from ..compiler import CompileOptions
from ..devices import DEVICES
from ..fixed import MULTIPLIER_BITS, Rounding
from ..fpga.arch import Arch
from ..fpga.folding import DEFAULT_MULTIPLIERS
from ..fpga.sequential import FLASH_ADDRESS, WeightSource

__all__ = ["add_model_options", "compile_options", "add_fpga_options", "fpga_options", "add_rvv_options",
           "rvv_options", "HelpFormatter"]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults shown once, and only where there is one (not for required options or flags)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.required or action.default in (None, False, argparse.SUPPRESS) or "default" in text:
            return text
        return super()._get_help_string(action)


def add_model_options(p: argparse.ArgumentParser, model_help: str = "the quantized ONNX model") -> None:
    p.add_argument("model", type=Path, metavar="MODEL", help=model_help)
    p.add_argument("--rounding", choices=[r.value for r in Rounding], default=Rounding.RNE.value,
                   help="requantization rounding: rne (ties to even, as ONNX) or rnu (ties up, cheaper in "
                        "hardware)")
    p.add_argument("--multiplier-bits", type=int, default=MULTIPLIER_BITS, metavar="N",
                   help="bits of the requantization multipliers, 2..32")


def compile_options(args: argparse.Namespace) -> CompileOptions:
    return CompileOptions(Rounding(args.rounding), args.multiplier_bits)


def add_fpga_options(p: argparse.ArgumentParser, *, compiling: bool) -> None:
    group = p.add_argument_group("FPGA target (--target fpga)" if compiling else "FPGA accelerator (--backend rtl)")
    group.add_argument("--multipliers", dest="fpga_multipliers", type=int, default=None, metavar="N",
                       help=f"multiplier budget the layers share, balanced so every engine takes about the same "
                            f"cycles (default: {DEFAULT_MULTIPLIERS}, or what fits --device; requantization "
                            f"needs DSPs of its own)")
    group.add_argument("--fold", dest="fpga_folds", action="append", default=[], metavar="LAYER=PE,SIMD",
                       help="give LAYER (node name or identifier) its own engine of PE output channels x SIMD "
                            "inputs in parallel (repeatable; PE must divide Cout, SIMD the fan-in K)")
    group.add_argument("--device", dest="fpga_device", default=None, choices=list(DEVICES),
                       help="fit the accelerator to this FPGA: the fastest folding whose estimated DSPs, block RAM "
                            "and logic fit it (with --multipliers N: that budget, checked against the device)")
    group.add_argument("--arch", dest="fpga_arch", default=None, choices=[a.value for a in Arch],
                       help="dataflow: one unit per layer, weights on chip; sequential: one MAC array of "
                            "floor(sqrt(--multipliers)) squared multipliers (default 4x4, or what fits --device) runs "
                            "the layers one after another, activations in two banks (chains of Conv, Gemm, pooling "
                            "layers) (default: dataflow, or with --device the faster of the two that fit)")
    group.add_argument("--weights", dest="fpga_weights", default=None, choices=[w.value for w in WeightSource],
                       help="where the sequential engine's weights stream from: a ROM on chip, or an SPI flash "
                            "holding OUT/fpga/weights.bin (spi: READ on one data line; qspi: Fast Read Quad Output) "
                            "(default: rom, or with --device a ROM if it fits, else qspi)")
    group.add_argument("--flash-address", dest="fpga_flash_address", type=lambda v: int(v, 0), default=FLASH_ADDRESS,
                       metavar="ADDRESS", help=f"where weights.bin sits in the flash (default {FLASH_ADDRESS:#x}: past "
                                               "an iCE40 bitstream)")
    if compiling:
        group.add_argument("--measure", dest="fpga_measure", action="store_true",
                           help="also measure latency, interval and busy cycles in Verilator")


def fpga_options(args: argparse.Namespace) -> FpgaOptions:
    return FpgaOptions(args.fpga_device, args.fpga_multipliers, tuple(args.fpga_folds),
                       getattr(args, "fpga_measure", False), args.fpga_arch and Arch(args.fpga_arch),
                       args.fpga_weights and WeightSource(args.fpga_weights), args.fpga_flash_address)


def add_rvv_options(p: argparse.ArgumentParser, *, compiling: bool) -> None:
    group = p.add_argument_group("RISC-V vector target (--target rvv)" if compiling else
                                 "RISC-V vector code (--backend rvv)")
    if compiling:
        group.add_argument("--rvv-no-count", dest="rvv_no_count", action="store_true",
                           help="do not measure instruction counts under QEMU for rvv/report.json")
    else:
        group.add_argument("--vlen", dest="rvv_vlen", type=int, choices=VLEN_CHOICES, default=128,
                           help="VLEN of the simulated vector unit")


def rvv_options(args: argparse.Namespace) -> RvvOptions:
    return RvvOptions(vlen=getattr(args, "rvv_vlen", 128), count=not getattr(args, "rvv_no_count", False),
                      config=getattr(args, "config", None))
