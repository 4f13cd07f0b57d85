"""Which architecture, at which size, for a device: `--device D` without `--arch`.

The dataflow accelerator is fitted as before (`fit.fit_device`). The sequential engine is sized
here: every L x L array whose DSPs (L^2 products, one per DSP, and its requantizer's chunks), block
RAMs, SPRAMs and estimated logic (`seqresources.seq_estimate`, logic within the same
LOGIC_MARGIN as the dataflow's) fit the device, with its weights in a ROM where the block RAMs hold
it and in a quad SPI flash otherwise; of those, the one the cycle model says is fastest (a bigger
array is not always faster: its steps carry more zeros and more flash bytes).

`choose` takes whichever of the two architectures has the higher estimated inferences/s, both at
the device's clock, and says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..devices import DEVICES, Device, Family
from ..errors import UnsupportedModelError
from ..ir import Graph
from .fit import LOGIC_MARGIN, DoesNotFitDevice, Fit, fit_device, overflows
from .seqresources import SeqEstimate, seq_estimate
from .sequential import FLASH_ADDRESS, SeqPlan, WeightSource, make_seq_plan

__all__ = ["SeqFit", "fit_sequential", "Choice", "choose"]


@dataclass(frozen=True)
class SeqFit:
    device: Device
    plan: SeqPlan
    estimate: SeqEstimate

    def summary(self) -> str:
        d, e = self.device, self.estimate
        spram = f", {e.spram}/{d.sprams} SPRAM" if d.sprams else ""
        logic = "logic cells" if d.family is Family.ICE40 else "LUT4"
        return (f"{d.name}: {self.plan.lanes}x{self.plan.lanes} array, weights from {self.plan.weights.value}, "
                f"interval {self.plan.interval:,} cycles; estimated {e.cells:,}/{d.logic:,} {logic}, {e.ff:,} FF, "
                f"{e.dsp}/{d.dsps} DSP, {e.bram}/{d.brams} block RAM{spram}")

    def to_json(self) -> dict:
        return {"device": self.device.name, "arch": "sequential", "lanes": self.plan.lanes,
                "weights": self.plan.weights.value, "interval": self.plan.interval, "logic_margin": LOGIC_MARGIN,
                "estimate": self.estimate.to_json()}


def _over(e: SeqEstimate, device: Device) -> list[str]:
    return [f"{need:,} {name} of {have:,}" for name, need, have in overflows(e, device)]


def fit_sequential(graph: Graph, device: Device | str, lanes: int | None = None,
                   weights: WeightSource | None = None, flash_address: int = FLASH_ADDRESS) -> SeqFit:
    """The fastest sequential engine that fits `device`: over every array size (or `lanes`) and
    weight source (ROM, else a quad flash; or `weights`), by the cycle model's interval, the
    smaller array on a tie."""
    device = DEVICES[device] if isinstance(device, str) else device
    reasons, best = [], None
    sizes = [lanes] if lanes else range(1, max(1, math.isqrt(device.dsps)) + 1)
    for size in sizes:
        sources = (weights,) if weights is not None else (WeightSource.ROM, WeightSource.QSPI)
        for source in sources:
            plan, program = make_seq_plan(graph, size, 1, source, flash_address, device.sprams > 0)
            est = seq_estimate(program, device)
            over = _over(est, device)
            if over:
                reasons.append(f"{size}x{size} with weights from {source.value}: needs {', '.join(over)}")
                continue
            if best is None or plan.interval < best.plan.interval:
                best = SeqFit(device, plan, est)
            break   # a ROM that fits beats a flash
    if best is None:
        raise DoesNotFitDevice(f"{graph.name}: no sequential engine fits {device.name}: " + "; ".join(reasons[:2]))
    return best


@dataclass(frozen=True)
class Choice:
    """The architecture `--device` chose, and why."""

    fit: Fit | SeqFit
    why: str


def choose(graph: Graph, device: Device | str) -> Choice:
    """Of the dataflow folding and the sequential engine that fit `device`, the one with the higher
    estimated inferences/s at the device's clock; the why names both."""
    device = DEVICES[device] if isinstance(device, str) else device
    clock = device.default_clock_mhz

    def rate(fit) -> str:
        return f"{clock * 1e6 / fit.plan.interval:,.1f} inferences/s"

    fits, why_not = {}, {}
    try:
        fits["dataflow"] = fit_device(graph, device)
    except DoesNotFitDevice as exc:
        why_not["dataflow"] = str(exc)
    try:
        fits["sequential"] = fit_sequential(graph, device)
    except (DoesNotFitDevice, UnsupportedModelError) as exc:
        why_not["sequential"] = str(exc)
    if not fits:
        raise DoesNotFitDevice(f"{why_not['dataflow']}; nor the sequential engine: {why_not['sequential']}")
    arch = min(fits, key=lambda a: (fits[a].plan.interval, a))   # dataflow on a tie
    other = "sequential" if arch == "dataflow" else "dataflow"
    names = {"dataflow": "the dataflow accelerator", "sequential": "the sequential engine"}
    because = (f"{names[other]}: {rate(fits[other])}" if other in fits
               else f"{names[other]} does not fit ({why_not[other]})")
    return Choice(fits[arch], f"{device.name}: {names[arch]}, an estimated {rate(fits[arch])} at {clock:g} MHz; "
                              f"{because}")
