"""Identifiers for generated code, whatever the ONNX names contain."""

from __future__ import annotations

import re

__all__ = ["identifier", "unique_identifiers", "comment"]

# Words no generated identifier may be: C, C++ and Verilog keywords a sanitized name could hit.
RESERVED = frozenset("""
auto break case char const continue default do double else enum extern float for goto if inline int long
register restrict return short signed sizeof static struct switch typedef union unsigned void volatile while
bool true false class new delete this template typename namespace operator private public protected
module endmodule input output inout wire reg logic assign always begin end initial posedge negedge
parameter localparam function endfunction task endtask generate endgenerate genvar integer
""".split())


def identifier(name: str, prefix: str = "n") -> str:
    """A C / Verilog / Python identifier from any string: [a-z0-9_], not starting with a digit."""
    s = re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()
    s = re.sub(r"_+", "_", s)
    if not s or s[0].isdigit() or s in RESERVED or s.startswith("_"):
        s = f"{prefix}_{s}" if s else prefix
    return s[:48].rstrip("_")


def unique_identifiers(names: list[str], prefix: str = "n") -> list[str]:
    """identifier() of each name, made unique in order by numeric suffixes."""
    out, taken = [], set()
    for name in names:
        base = identifier(name, prefix)
        ident, i = base, 1
        while ident in taken:
            ident, i = f"{base}_{i}", i + 1
        taken.add(ident)
        out.append(ident)
    return out


def comment(text: str) -> str:
    """Text safe inside a /* */ or // comment on one line (also in Verilog and Python #)."""
    return re.sub(r"[^\x20-\x7e]", "?", text).replace("*/", "*_/").replace("/*", "/_*").replace("\\", "/")
