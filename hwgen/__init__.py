"""hwgen: compile pruned, quantized ONNX models to bit-exact FPGA accelerators and RISC-V Vector C."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hwgen")
except PackageNotFoundError:  # running from a checkout without installing
    __version__ = "0.0.0+checkout"
