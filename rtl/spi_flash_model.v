// hwgen: behavioural model of an SPI NOR flash, for simulation only (Verilator).
//
// Instantiated by the co-simulation wrapper that hwgen.sim.flash writes around a sequential
// engine whose weights stream from flash (hwgen compile --arch sequential --weights flash).
// It answers two commands, as a W25Q128JV does in SPI mode 0 (data sampled on the rising edge of
// sck, shifted out after the falling edge):
//
//   0x03 Read Data:              command, 24-bit address on io0; data on io1, MSB first
//   0x6B Fast Read Quad Output:  command, 24-bit address on io0, 8 dummy clocks; data on io[3:0],
//                                high nibble first
//
// The image file (hex, one byte per line) is the flash content from address BASE on; reads past
// it return 0xFF, as erased flash does. The address auto-increments while cs_n stays low.

module hwgen_spi_flash_model #(
    parameter IMAGE = "",
    parameter integer BYTES = 1,
    parameter integer BASE = 0
) (
    input  wire       sck,
    input  wire       cs_n,
    input  wire       io0,
    output reg  [3:0] dq
);
    reg [7:0] memory [0:BYTES - 1];
    initial begin
        $readmemh(IMAGE, memory);
        dq = 4'b0;
    end

    localparam COMMAND = 0, ADDRESS = 1, DUMMY = 2, DATA = 3;
    reg [1:0]  state = COMMAND;
    reg [5:0]  count = 0;        // bits (or dummy clocks) received in this state
    reg [7:0]  command = 0;
    reg [23:0] address = 0;

    function [7:0] byte_at(input [23:0] a);
        byte_at = (a >= BASE && a - BASE < BYTES) ? memory[a - BASE] : 8'hFF;
    endfunction

    // command, address and dummy clocks: sampled on the rising edge
    always @(posedge sck or posedge cs_n) begin
        if (cs_n) begin
            state <= COMMAND;
            count <= 0;
        end else begin
            case (state)
                COMMAND: begin
                    command <= {command[6:0], io0};
                    count <= count + 1;
                    if (count == 7) begin
                        state <= ADDRESS;
                        count <= 0;
                    end
                end
                ADDRESS: begin
                    address <= {address[22:0], io0};
                    count <= count + 1;
                    if (count == 23) begin
                        count <= 0;
                        state <= (command == 8'h6B) ? DUMMY : DATA;
                    end
                end
                DUMMY: begin
                    count <= count + 1;
                    if (count == 7) state <= DATA;
                end
                default: ;
            endcase
        end
    end

    // data: shifted out after the falling edge, from `pointer` (loaded from the address once)
    reg        streaming = 0;
    reg [23:0] pointer = 0;
    reg [2:0]  part = 0;         // single: the bit of the byte; quad: the nibble (0 high, 1 low)
    wire [23:0] at = streaming ? pointer : address;
    wire [7:0]  current = byte_at(at);
    wire        last_part = (command == 8'h6B) ? (part == 1) : (part == 7);
    always @(negedge sck or posedge cs_n) begin
        if (cs_n) begin
            streaming <= 0;
            part <= 0;
        end else if (state == DATA) begin
            if (command == 8'h6B)
                dq <= part == 0 ? current[7:4] : current[3:0];
            else
                dq <= {2'b00, current[7 - part], 1'b0};
            part <= last_part ? 0 : part + 1;
            pointer <= last_part ? at + 1 : at;
            streaming <= 1;
        end
    end
endmodule
