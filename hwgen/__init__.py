"""hwgen: compile pruned, quantized ONNX models to bit-exact FPGA accelerators and RISC-V Vector C.

The Python API (see docs/api.md):

    import hwgen
    compiled = hwgen.compile("model.onnx", targets=("fpga", "rvv"), multipliers=16)
    compiled.write("out")
    y = hwgen.run(compiled, x, backend="rvv")
"""

from .api import compile, detect_image, image_input, run  # noqa: A004 - hwgen.compile is the API's name
from .compiler import Compiled, CompileOptions
from .errors import (
    HwgenError,
    InvalidOptionError,
    ModelLoadError,
    ResourceLimitError,
    ToolchainError,
    UnsupportedModelError,
    VerificationError,
)
from .fixed import Rounding
from .version import __version__

__all__ = ["compile", "run", "image_input", "detect_image",
           "Compiled", "CompileOptions", "FpgaOptions", "RvvOptions", "Rounding", "HwgenError",
           "InvalidOptionError", "ModelLoadError", "ResourceLimitError", "ToolchainError", "UnsupportedModelError",
           "VerificationError", "__version__"]


def __getattr__(name: str):
    """The targets' option classes, loaded on first use (their modules are heavier)."""
    if name == "FpgaOptions":
        from .backends.fpga import FpgaOptions
        return FpgaOptions
    if name == "RvvOptions":
        from .backends.rvv import RvvOptions
        return RvvOptions
    raise AttributeError(f"module 'hwgen' has no attribute {name!r}")
