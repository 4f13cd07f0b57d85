"""Planning the FPGA accelerator, without any hardware tools.

* `geometry`: how each IR node's data meets the hardware (MAC layers as a matrix times an
  input vector per output position);
* `schedule`: the step program of a MAC layer at a folding (PE x SIMD), with zero weights skipped;
* `folding`: folding options and the balancer that shares a multiplier budget among the layers;
* `plan`: the whole accelerator as typed data (engines, lanes, FIFOs), saved in the manifest;
* `cycles`: the cycle model (expected busy cycles per layer and the initiation interval);
* `sequential`: the other architecture, `--arch sequential` (`arch.Arch`): one MAC array running
  the layers from a compiled program, its weight stream and flash image, and its cycle model.
"""
