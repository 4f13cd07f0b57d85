"""The RISC-V Vector backend: C with RVV 1.0 intrinsics (and scalar fallbacks) from the IR.

plan.py picks a kernel and computes the constants of each layer, memory.py places
the activations, codegen.py renders templates/rvv/, program.py builds and runs the
generated test program under QEMU, measure.py counts its instructions.
"""
