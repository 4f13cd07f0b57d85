"""The exceptions hwgen raises for bad input. The CLI turns each into one line and exit code 2."""

from __future__ import annotations

__all__ = ["HwgenError", "ModelLoadError", "UnsupportedModelError", "InvalidOptionError", "VerificationError",
           "ToolchainError", "ResourceLimitError"]


class HwgenError(Exception):
    """Base class: a problem with the user's model, input or options (not a bug in hwgen)."""

    exit_code = 2


class ModelLoadError(HwgenError):
    """The file is missing, is not an ONNX model, or fails the ONNX checker."""


class UnsupportedModelError(HwgenError):
    """The model is valid ONNX but uses something hwgen cannot compile exactly."""

    def __init__(self, reason: str, *, node: str | None = None, op: str | None = None):
        self.node, self.op, self.reason = node, op, reason
        where = ""
        if node is not None or op is not None:
            where = f"node {node!r} ({op}): " if node is not None else f"{op}: "
        super().__init__(where + reason)


class InvalidOptionError(HwgenError):
    """A command-line option or input array does not fit the model."""


class ResourceLimitError(HwgenError):
    """The work would need more memory than hwgen's limit (`hwgen.budget`)."""


class VerificationError(HwgenError):
    """The IR breaks an invariant; the message names the first bad node."""


class ToolchainError(HwgenError):
    """An external tool (Verilator, clang, qemu, yosys, nextpnr) is missing or failed.

    The message quotes the tool's own error line; `output` keeps its whole log.
    """

    exit_code = 1

    def __init__(self, message: str, *, output: str = ""):
        super().__init__(message)
        self.output = output
