"""The shape of the code: every op in every backend's table, planning without Amaranth, imports
that only run down the layers and never in a circle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from hwgen import golden, irjson
from hwgen.fpga.geometry import MATRICES
from hwgen.fpga.units import UNITS
from hwgen.hdl.units import BUILDERS
from hwgen.ir import OP_TYPES
from hwgen.passes.channels import CONSUMERS, KEEPS_CHANNELS, PRODUCERS
from hwgen.rvv.plan import PLANNERS

PACKAGE = Path(__file__).resolve().parents[2] / "hwgen"

#: Every backend's table keyed by IR op type: an op needs an entry in each (or, where the table
#: says so, a worded refusal).
TABLES = {
    "golden.OPS": golden.OPS,
    "fpga.units.UNITS": UNITS,
    "hdl.units.BUILDERS": BUILDERS,
    "rvv.plan.PLANNERS": PLANNERS,
    "irjson.NODE_TYPES": {cls: cls for cls in irjson.NODE_TYPES.values()},
}


@pytest.mark.parametrize("op", OP_TYPES, ids=lambda op: op.op)
def test_every_op_has_an_entry_in_every_table(op):
    missing = [name for name, table in TABLES.items() if op not in table]
    assert not missing, f"{op.op} has no entry in {', '.join(missing)} (see docs/adding-an-op.md)"
    assert (op in CONSUMERS) != (op in KEEPS_CHANNELS), \
        f"{op.op}: passes.channels needs a rule (CONSUMERS) or a worded refusal (KEEPS_CHANNELS)"
    assert op not in KEEPS_CHANNELS or len(KEEPS_CHANNELS[op]) > 20


def test_tables_hold_only_ops_of_the_ir():
    for name, table in {**TABLES, "CONSUMERS": CONSUMERS, "PRODUCERS": PRODUCERS, "MATRICES": MATRICES}.items():
        assert set(table) <= set(OP_TYPES), name
    assert set(MATRICES) == {op for op in OP_TYPES if op.weighted}
    assert set(PRODUCERS) <= set(MATRICES)


def test_planning_imports_no_hardware_tools():
    """Every hwgen.fpga module (planning, cycle and resource models) loads without Amaranth."""
    modules = sorted(f"hwgen.fpga.{p.stem}" for p in (PACKAGE / "fpga").glob("*.py") if p.stem != "__init__")
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules) + \
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'amaranth'))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout


# -- imports ------------------------------------------------------------------------------------------

#: Lowest first. A module may import modules of its own layer and of layers below it, never above:
#: cli -> backends -> compiler -> frontend / passes / golden -> ir -> fixed.
LAYERS = (
    ("hwgen.version", "hwgen.fixed", "hwgen.errors", "hwgen.names", "hwgen.budget", "hwgen.logs", "hwgen.modelconfig"),
    ("hwgen.ir", "hwgen.devices", "hwgen.outdir", "hwgen.render", "hwgen.progress"),
    ("hwgen.frontend", "hwgen.passes", "hwgen.golden", "hwgen.report", "hwgen.irjson", "hwgen.arrays",
     "hwgen.images", "hwgen.detect", "hwgen.drawing", "hwgen.plots"),
    ("hwgen.compiler", "hwgen.reference"),
    ("hwgen.fpga", "hwgen.rvv", "hwgen.sim"),
    ("hwgen.hdl", "hwgen.synth"),
    ("hwgen.backends",),
    ("hwgen.api",),
    ("hwgen.experiments", "hwgen.sweep"),
    ("hwgen.console", "hwgen.commands", "hwgen.cli"),
    ("hwgen",),
)


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The hwgen modules `path` imports, anywhere in it (in functions too), but for type checking."""
    tree = ast.parse(path.read_text())
    name = _module(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING" for n in ast.walk(block)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else [])) if node.level else node.module or ""
            for alias in node.names:
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in modules else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in modules and m != name}


def _layer(module: str) -> int:
    best = max((prefix for layer in LAYERS for prefix in layer
                if module == prefix or module.startswith(prefix + ".")), key=len)
    return next(i for i, layer in enumerate(LAYERS) if best in layer)


@pytest.fixture(scope="module")
def import_graph() -> dict[str, set[str]]:
    paths = {_module(p): p for p in PACKAGE.rglob("*.py")}
    return {m: _imports(p, set(paths)) for m, p in paths.items()}


def test_imports_run_down_the_layers(import_graph):
    upward = sorted(f"{m} ({_layer(m)}) imports {t} ({_layer(t)})" for m, targets in import_graph.items()
                    for t in targets if _layer(t) > _layer(m))
    assert not upward, "\n".join(upward)


def test_no_import_circles(import_graph):
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in import_graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in sorted(import_graph):
        if module not in index:
            visit(module)
    assert not circles, circles


def test_library_code_does_not_print():
    """Only the command (cli, commands, console) prints; the library logs."""
    printing = []
    for path in PACKAGE.rglob("*.py"):
        if _module(path).startswith(("hwgen.cli", "hwgen.commands", "hwgen.console")):
            continue
        tree = ast.parse(path.read_text())
        printing += [f"{_module(path)}:{n.lineno}" for n in ast.walk(tree)
                     if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "print"]
    assert not printing, printing
