"""Code generators. Each target module provides:

* ``add_arguments(parser)``: its options for ``hwgen compile`` and ``hwgen run``;
* ``emit(compiled, out_dir, args) -> None``: write ``out_dir/<target>/``;
* ``run_core(compiled, inputs, args) -> outputs``: run the integer core (IR inputs
  to IR outputs, (B, *shape) int64 arrays) on the generated code, for ``hwgen run``;
* optionally ``register_commands(subparsers)`` for target-specific subcommands.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: target name -> module, imported on first use (their toolchains are heavy).
TARGETS = {"fpga": "hwgen.backends.fpga", "rvv": "hwgen.backends.rvv"}


def backend(name: str) -> ModuleType:
    return importlib.import_module(TARGETS[name])


def available() -> dict[str, ModuleType]:
    """The targets whose modules exist in this checkout."""
    found = {}
    for name in TARGETS:
        try:
            found[name] = backend(name)
        except ModuleNotFoundError as exc:
            if exc.name != TARGETS[name]:
                raise
    return found
