"""The one place templates are found and rendered.

Every generated text file comes from a jinja2 template under `templates/<family>/` (installed as
the package data `hwgen.templates`), rendered with
StrictUndefined (a missing value is an error, never an empty string) and with the escaping
functions of `hwgen.names` as filters, so an ONNX name reaches a file only through the escaping
of the language it lands in.
"""

from __future__ import annotations

import functools

import jinja2
import numpy as np

from . import names

__all__ = ["environment", "render", "source"]

#: The package the templates install as (templates/ of the checkout).
TEMPLATE_PACKAGE = "hwgen.templates"

def c_values(values, per_line: int = 16) -> str:
    """C array initializer lines: 16 values per line, indented, comma-separated."""
    text = [str(int(v)) for v in np.asarray(values).reshape(-1)]
    lines = [", ".join(text[i:i + per_line]) for i in range(0, len(text), per_line)]
    return ",\n".join("    " + line for line in lines)


FILTERS = {
    "c_values": c_values,
    "c_comment": names.c_comment,
    "py_comment": names.py_comment,
    "py_string": names.py_string,
    "c_string": names.c_string,
}


@functools.cache
def environment(family: str) -> jinja2.Environment:
    """The environment of templates/<family>/ (fpga, rvv, verilator)."""
    env = jinja2.Environment(loader=jinja2.PackageLoader(TEMPLATE_PACKAGE, family), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)
    env.filters.update(FILTERS)
    return env


def render(family: str, template: str, context: dict) -> str:
    return environment(family).get_template(template).render(context)


def source(family: str, template: str) -> str:
    """A template's own text (for cache keys of what it generates)."""
    env = environment(family)
    return env.loader.get_source(env, template)[0]
