"""Which architecture, at which size, for a device: `--device D` without `--arch`.

The dataflow accelerator is fitted as before (`fit.fit_device`). The sequential engine is sized
here: the largest L x L array whose DSPs (L^2 products, one per DSP, and its requantizer's DSP
chunks) the device has, whose activation banks fit its SPRAMs (UP5K) or block RAMs, with the
weight stream in a ROM when the block RAMs left hold it and else in a quad SPI flash. Its logic is
not estimated yet (the one measured point: person_detect's 2 x 2 engine took 84 % of a UP5K).

`choose` takes the dataflow accelerator where it fits and the sequential engine where it does not
(until the sequential engine's logic is modelled, that is the safe order), and says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..devices import DEVICES, Device
from ..errors import UnsupportedModelError
from ..ir import Graph
from .fit import DoesNotFitDevice, Fit, fit_device
from .hardware import dsp_chunks, sprams_for
from .resources import blocks_for
from .sequential import ELEMENT_BITS, FLASH_ADDRESS, SeqPlan, WeightSource, make_seq_plan

__all__ = ["SeqFit", "fit_sequential", "Choice", "choose"]


@dataclass(frozen=True)
class SeqFit:
    device: Device
    plan: SeqPlan
    dsp: int
    bram: int
    spram: int

    def summary(self) -> str:
        d = self.device
        spram = f", {self.spram}/{d.sprams} SPRAM" if d.sprams else ""
        return (f"{d.name}: estimated {self.dsp}/{d.dsps} DSP, {self.bram}/{d.brams} block RAM{spram} "
                "(logic not estimated)")

    def to_json(self) -> dict:
        return {"device": self.device.name, "arch": "sequential", "lanes": self.plan.lanes,
                "weights": self.plan.weights.value, "interval": self.plan.interval,
                "estimate": {"dsp": self.dsp, "bram": self.bram, "spram": self.spram, "logic": None, "ff": None}}


def fit_sequential(graph: Graph, device: Device | str, lanes: int | None = None,
                   weights: WeightSource | None = None, flash_address: int = FLASH_ADDRESS) -> SeqFit:
    """The fastest sequential engine that fits `device` by its DSPs and memories: the largest array
    (or `lanes`), its weights in a ROM if the block RAMs hold it, else in a quad flash (or `weights`)."""
    device = DEVICES[device] if isinstance(device, str) else device
    reasons = []
    sources = (weights,) if weights is not None else (WeightSource.ROM, WeightSource.QSPI)
    for size in ([lanes] if lanes else range(max(1, math.isqrt(device.dsps)), 0, -1)):
        for source in sources:
            plan, program = make_seq_plan(graph, size, 1, source, flash_address, device.sprams > 0)
            fmt = program.fmt
            dsp = size * size + dsp_chunks(fmt.acc_bits) * dsp_chunks(fmt.multiplier_bits)
            bank_bits = ELEMENT_BITS * size
            spram = sum(sprams_for(w, bank_bits) for w in plan.bank_words) if device.sprams else 0
            bram = blocks_for(2 * program.tile_depth, fmt.entry_bits, device.family)
            if not device.sprams:
                bram += sum(blocks_for(w, bank_bits, device.family) for w in plan.bank_words)
            if source is WeightSource.ROM:
                bram += blocks_for(program.stream_length, fmt.word_bits, device.family)
            needs = (("DSPs", dsp, device.dsps), ("block RAMs", bram, device.brams), ("SPRAMs", spram, device.sprams))
            over = [(n, need, have) for n, need, have in needs if need > have]
            if not over:
                return SeqFit(device, plan, dsp, bram, spram)
            reasons.append(f"{size}x{size} with weights from {source.value}: needs " +
                           ", ".join(f"{need} {n} of {have}" for n, need, have in over))
    raise DoesNotFitDevice(f"{graph.name}: no sequential engine fits {device.name}: " + "; ".join(reasons[-2:]))


@dataclass(frozen=True)
class Choice:
    """The architecture `--device` chose, and why."""

    fit: Fit | SeqFit
    why: str


def choose(graph: Graph, device: Device | str) -> Choice:
    """The dataflow folding that fits `device`, else the sequential engine that does (its logic is
    not estimated yet, so it is chosen only where the dataflow cannot be); the estimated
    inferences/s of both, at the device's clock, say why."""
    device = DEVICES[device] if isinstance(device, str) else device
    rate = lambda f: device.default_clock_mhz * 1e6 / f.plan.interval  # noqa: E731
    try:
        dataflow = fit_device(graph, device)
    except DoesNotFitDevice as exc:
        try:
            sequential = fit_sequential(graph, device)
        except (DoesNotFitDevice, UnsupportedModelError) as why_not:
            raise DoesNotFitDevice(f"{exc}; nor the sequential engine: {why_not}") from None
        return Choice(sequential, f"{device.name}: the sequential engine, an estimated {rate(sequential):,.1f} "
                                  f"inferences/s at {device.default_clock_mhz:g} MHz; the dataflow accelerator does "
                                  f"not fit ({exc})")
    return Choice(dataflow, f"{device.name}: the dataflow accelerator, an estimated {rate(dataflow):,.1f} "
                            f"inferences/s at {device.default_clock_mhz:g} MHz")
