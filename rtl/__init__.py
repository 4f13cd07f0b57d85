"""Hand-written HDL that hwgen's generated designs instantiate (installed as package data hwgen.rtl).

* `spi_flash_model.v`: a behavioural SPI NOR flash (READ 0x03 and Fast Read Quad Output 0x6B)
  serving a hex image; the Verilator co-simulation of a sequential engine whose weights stream from
  flash instantiates it in the wrapper `hwgen.sim.flash.simulation_top` writes.
* `sb_spram256ka_model.v`: a behavioural SB_SPRAM256KA for the RTL co-simulation of a sequential
  engine whose activation banks are UP5K SPRAMs (`hwgen.hdl.spram`); synthesis uses the real cell.
"""
