"""Code generators, one module per target. Each provides:

* `Options`: a frozen dataclass of its typed options (validated in `__post_init__`, one-line errors);
* `emit(compiled, options) -> dict[str, bytes]`: the files of `OUT/<target>/`, by name;
* `run_core(compiled, inputs, options) -> outputs`: run the integer core (IR inputs to IR outputs,
  (B, *shape) int64 arrays) on the generated code, for `hwgen run`;
* `describe(out_dir) -> str | None`: its part of `hwgen report OUT` (None when OUT has none).

Target modules load on first use (their toolchains are heavy to import).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import InvalidOptionError

__all__ = ["TARGETS", "backend", "options_type"]

#: target name -> (module, its options class).
TARGETS = {"fpga": ("hwgen.backends.fpga", "FpgaOptions"), "rvv": ("hwgen.backends.rvv", "RvvOptions")}


def backend(name: str) -> ModuleType:
    if name not in TARGETS:
        raise InvalidOptionError(f"unknown target {name!r}; choose from {', '.join(TARGETS)}")
    return importlib.import_module(TARGETS[name][0])


def options_type(name: str) -> type:
    """The options dataclass of a target."""
    return getattr(backend(name), TARGETS[name][1])
