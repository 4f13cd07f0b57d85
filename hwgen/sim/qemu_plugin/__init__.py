"""The QEMU TCG plugin that counts executed instructions per function (C source, package data)."""
