"""Hostile names for ONNX models: strings that would be code, markup or terminal commands if any
generated file or printed line took them as they are."""

from __future__ import annotations

import itertools

import onnx

#: Each tries to escape a different place: Python docstrings and strings, C and Verilog comments,
#: Make, shells, terminals (ANSI escapes, carriage returns, bidirectional overrides).
PAYLOADS = (
    'x"""; __import__("os").system("touch PWNED_PY"); """',
    'a\n"""\nimport os; os.system("touch PWNED_NL")\n#',
    "q'''; __import__('os').system('touch PWNED_SQ'); '''",
    "*/ int pwned_c = 1; /*",
    "// line \\\nint pwned_continued = 1;",
    "trigraph ??/\nint pwned_trigraph = 1;",
    "$(shell touch PWNED_MAKE) `touch PWNED_SH` $$(touch PWNED_SH2)",
    "\x1b[2J\x1b[31mred\x1b[0m\r\x07bell",
    "right-to-left \u202e gnp.exe \u2066 isolate \u200b zero-width",
    "endmodule module pwned; initial $finish; endmodule //",
    "{{ 7*7 }} {% raw %} jinja",
    "\\x00 \x00 nul and \ttab",
    "\u00e9\u00e8 \u4e2d\u6587 \U0001f600 unicode",
    " ",
    "",
)


def hostile_names() -> itertools.cycle:
    return itertools.cycle(PAYLOADS)


def rename(model: onnx.ModelProto, names=None) -> onnx.ModelProto:
    """A copy of `model` whose graph, nodes and tensors (inputs, outputs, initializers, values) are
    renamed to hostile names, each made unique by a numeric suffix; the computation is unchanged."""
    names = names or hostile_names()
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    mapping: dict[str, str] = {}

    def new(old: str) -> str:
        if old == "":
            return ""  # an omitted optional input stays omitted
        if old not in mapping:
            mapping[old] = f"{next(names)}#{len(mapping)}"
        return mapping[old]

    g.name = next(names) + " graph"
    for i, node in enumerate(g.node):
        node.name = f"{next(names)}@{i}"
        node.input[:] = [new(n) for n in node.input]
        node.output[:] = [new(n) for n in node.output]
    for value in [*g.input, *g.output, *g.value_info]:
        value.name = new(value.name)
    for init in g.initializer:
        init.name = new(init.name)
    return out
