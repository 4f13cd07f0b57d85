"""The jinja2 templates of every generated text file, by family (fpga/, rvv/, verilator/).

Installed as the package data `hwgen.templates` (see pyproject.toml); `hwgen.render` loads them."""
