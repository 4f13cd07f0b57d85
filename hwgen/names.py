"""ONNX names as data in everything hwgen writes: one escaping function per output language.

Names in an ONNX file (graph, node, tensor and file names) are arbitrary strings. They never
become code: an identifier is made from them (`identifier`), and where the name itself is shown
it goes through the function of the place it lands in:

* `c_comment`: inside a C, C++, Verilog or Makefile comment (`/* */`, `//`, `#`);
* `py_comment`: inside a Python comment or a triple-quoted docstring;
* `py_string` / `c_string`: a complete string literal of that language;
* `terminal`: text printed on a terminal (no control characters, no bidirectional overrides).

The template environment (`hwgen.render`) offers the first four as filters.
"""

from __future__ import annotations

import re

__all__ = ["identifier", "unique_identifiers", "comment", "c_comment", "py_comment", "py_string", "c_string",
           "terminal"]

# Words no generated identifier may be: C, C++ and Verilog keywords a sanitized name could hit.
RESERVED = frozenset("""
auto break case char const continue default do double else enum extern float for goto if inline int long
register restrict return short signed sizeof static struct switch typedef union unsigned void volatile
while bool true false class new delete this template typename namespace operator private public
protected module endmodule input output inout wire reg logic assign always begin end initial posedge
negedge parameter localparam function endfunction task endtask generate endgenerate genvar integer
""".split())  # noqa: SIM905 - a word list reads better as text


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


def _one_printable_line(text: str) -> str:
    """Printable ASCII on one line: every other character (newlines, escapes, non-ASCII) is '?',
    and backslashes, which continue comment lines in C, Make and Verilog, are '/'."""
    return re.sub(r"[^\x20-\x7e]", "?", str(text)).replace("\\", "/")


def c_comment(text: str) -> str:
    """Text safe inside a /* */ or // comment on one line of C, C++ or Verilog, and in a Makefile
    # comment: no comment delimiters, no line continuation, no trigraphs."""
    text = _one_printable_line(text).replace("*/", "*_/").replace("/*", "/_*")
    return re.sub(r"\?(?=\?)", "?_", text)


#: The historical name of `c_comment`.
comment = c_comment


def py_comment(text: str) -> str:
    """Text safe inside a Python # comment or a \"\"\" docstring: one printable line without
    backslashes or double quotes (so it can neither end the docstring nor escape its end)."""
    return _one_printable_line(text).replace('"', "'")


def py_string(text: str) -> str:
    """A Python string literal (ASCII, every special character escaped) holding `text`."""
    return ascii(str(text))


_C_SIMPLE = {"\\": "\\\\", '"': '\\"', "?": "\\?"}  # "\?" keeps "??x" from being a trigraph


def c_string(text: str) -> str:
    """A C string literal holding the UTF-8 bytes of `text` (printable ASCII as is, the rest in octal)."""
    out = []
    for byte in str(text).encode("utf-8", "surrogateescape"):
        ch = chr(byte)
        if ch in _C_SIMPLE:
            out.append(_C_SIMPLE[ch])
        elif 0x20 <= byte < 0x7F:
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


# C0 and C1 control characters, DEL, and Unicode format characters that reorder or hide text
# (bidirectional overrides and isolates, zero-width characters, the BOM, line/paragraph separators).
_UNSAFE_ON_TERMINAL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")


def terminal(text: str, *, newlines: bool = False) -> str:
    """Text safe to print: control and reordering characters shown as escapes (\\x1b, \\u202e).

    Tabs stay; newlines stay only with `newlines=True` (for whole reports, whose names were
    already made safe line by line)."""
    def escape(m: re.Match) -> str:
        c = ord(m.group())
        return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"

    text = _UNSAFE_ON_TERMINAL.sub(escape, str(text))
    return text if newlines else text.replace("\n", "\\n")
