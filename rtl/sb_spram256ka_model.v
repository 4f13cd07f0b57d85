// hwgen: behavioural model of the iCE40 UltraPlus SB_SPRAM256KA (16K x 16 single-port RAM), for
// simulation only. The RTL co-simulation of a sequential engine built for the UP5K (its activation
// banks are SB_SPRAM256KA instances, hwgen/hdl/spram.py) appends it to the Verilog it verilates;
// synthesis uses the real cell. Power modes are not modelled (STANDBY, SLEEP and POWEROFF must be
// 0, 0 and 1, as hwgen ties them). After a write DATAOUT is undefined, as the cell's is: hwgen never
// reads a bank in a cycle it writes it.

module SB_SPRAM256KA (
    input  wire [13:0] ADDRESS,
    input  wire [15:0] DATAIN,
    input  wire [3:0]  MASKWREN,
    input  wire        WREN,
    input  wire        CHIPSELECT,
    input  wire        CLOCK,
    input  wire        STANDBY,
    input  wire        SLEEP,
    input  wire        POWEROFF,
    output reg  [15:0] DATAOUT
);
    reg [15:0] memory [0:16383];

    always @(posedge CLOCK) begin
        if (CHIPSELECT) begin
            if (!WREN) begin
                DATAOUT <= memory[ADDRESS];
            end else begin
                if (MASKWREN[0]) memory[ADDRESS][3:0]   <= DATAIN[3:0];
                if (MASKWREN[1]) memory[ADDRESS][7:4]   <= DATAIN[7:4];
                if (MASKWREN[2]) memory[ADDRESS][11:8]  <= DATAIN[11:8];
                if (MASKWREN[3]) memory[ADDRESS][15:12] <= DATAIN[15:12];
                DATAOUT <= 16'hxxxx;
            end
        end
    end
endmodule
