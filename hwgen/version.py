"""hwgen's version, as the installed package says (a leaf module: generated files name it)."""

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("hwgen")
except PackageNotFoundError:  # running from a checkout without installing
    __version__ = "0.0.0+checkout"
