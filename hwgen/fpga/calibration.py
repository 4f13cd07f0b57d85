"""Resource model coefficients, fitted to yosys by bench/calibrate_resources.py. GENERATED: do not edit.

Regenerate with `.venv/bin/python bench/calibrate_resources.py` (synthesizes the design set)
or `.venv/bin/python bench/calibrate_resources.py --refit` (refits bench/resource_calibration.csv).
Fitted on 16 designs x 2 families: dense_b16_lut8, dense_b2, dense_b32, dense_b8, dense_b8_lut4,
mobilenet_b16, mobilenet_b16_lut8, mobilenet_b2, mobilenet_b32, mobilenet_b4, mobilenet_unstruct_b8,
pruned_b16, pruned_b4, pruned_pt_b8, pt_b8, unstruct_b8. Kinds not in the set: avgpool (as
global_avgpool), requantize (as add), concat (as maxpool), lookup (as maxpool), mul (as add), affine
(as add), move (as window), remap (as window).
LOGIC[family][kind]["lut"|"ff"][feature]: LUT4s / flip-flops per unit of each feature of
resources.unit_features (features absent cost nothing); MEMORY[family]: resources.memory_logic's
coefficients; CELLS: iCE40 from bench/synth_calibration.csv (nextpnr), ECP5 LUT RAM measured
(calibrate_resources.ECP5_LUTRAM_POSITIONS); BLOCK_WORTH is not fitted.
Scaled by flat / sum-of-units synthesis: ecp5 LUT x0.968 FF x1.000, ice40 LUT x0.997 FF x1.000.
"""

LOGIC = {
    'ecp5': {
        'engine': {
            'lut': {'adder_bits': 1.338, 'const': 36.82, 'contexts': 150.3, 'csd_bits': 1.0, 'lut_lane_bits': 2.929, 'port_bits': 0.4328, 'product_bits': 0.1939, 'requant_bits': 1.276},
            'ff': {'adder_bits': 0.8454, 'const': 190.6, 'contexts': 94.36, 'drain_bits': 0.5905, 'product_bits': 0.6169, 'requant_bits': 0.4939},
        },
        'window': {
            'lut': {'address_bits': 3.881, 'const': 128.7, 'lane_bits': 0.8934},
            'ff': {'address_bits': 5.447, 'lane_bits': 2.195},
        },
        'maxpool': {
            'lut': {'const': 34.54, 'lane_bits': 0.4443},
            'ff': {'const': 18.52, 'lane_bits': 0.8153},
        },
        'avgpool': {
            'lut': {'const': 60.46, 'lane_bits': 2.64, 'requant_bits': 0.7663},
            'ff': {'const': 59.42, 'lane_bits': 4.032, 'requant_bits': 0.8119},
        },
        'global_avgpool': {
            'lut': {'const': 60.46, 'lane_bits': 2.64, 'requant_bits': 0.7663},
            'ff': {'const': 59.42, 'lane_bits': 4.032, 'requant_bits': 0.8119},
        },
        'add': {
            'lut': {'const': 88.03, 'lane_bits': 1.577, 'requant_bits': 1.026},
            'ff': {'const': 85.26, 'lane_bits': 1.806, 'requant_bits': 1.017},
        },
        'requantize': {
            'lut': {'const': 88.03, 'lane_bits': 1.577, 'requant_bits': 1.026},
            'ff': {'const': 85.26, 'lane_bits': 1.806, 'requant_bits': 1.017},
        },
        'concat': {
            'lut': {'const': 34.54, 'lane_bits': 0.4443},
            'ff': {'const': 18.52, 'lane_bits': 0.8153},
        },
        'lookup': {
            'lut': {'const': 34.54, 'lane_bits': 0.4443},
            'ff': {'const': 18.52, 'lane_bits': 0.8153},
        },
        'mul': {
            'lut': {'const': 88.03, 'lane_bits': 1.577, 'requant_bits': 1.026},
            'ff': {'const': 85.26, 'lane_bits': 1.806, 'requant_bits': 1.017},
        },
        'affine': {
            'lut': {'const': 88.03, 'lane_bits': 1.577, 'requant_bits': 1.026},
            'ff': {'const': 85.26, 'lane_bits': 1.806, 'requant_bits': 1.017},
        },
        'move': {
            'lut': {'address_bits': 3.881, 'const': 128.7, 'lane_bits': 0.8934},
            'ff': {'address_bits': 5.447, 'lane_bits': 2.195},
        },
        'remap': {
            'lut': {'address_bits': 3.881, 'const': 128.7, 'lane_bits': 0.8934},
            'ff': {'address_bits': 5.447, 'lane_bits': 2.195},
        },
        'glue': {
            'lut': {'convert_bits': 0.0893, 'counter_bits': 1.268, 'fork_bits': 10.92},
            'ff': {'convert_bits': 0.984, 'counter_bits': 1.06, 'fork_bits': 2.593},
        },
    },
    'ice40': {
        'engine': {
            'lut': {'adder_bits': 1.339, 'contexts': 61.91, 'csd_bits': 1.0, 'drain_bits': 8.647, 'fold_bits': 8.92, 'lut_lane_bits': 5.23},
            'ff': {'adder_bits': 0.3447, 'const': 155.4, 'contexts': 133.3, 'drain_bits': 0.2754, 'fold_bits': 1.731, 'lut_lane_bits': 0.4712, 'product_bits': 0.1399, 'requant_bits': 0.3032},
        },
        'window': {
            'lut': {'const': 129.0, 'lane_bits': 2.886},
            'ff': {'address_bits': 2.892, 'const': 47.9, 'lane_bits': 2.036},
        },
        'maxpool': {
            'lut': {'const': 22.21},
            'ff': {'const': 18.52, 'lane_bits': 0.8153},
        },
        'avgpool': {
            'lut': {'const': 30.79, 'requant_bits': 0.3805},
            'ff': {'const': 55.16, 'lane_bits': 3.704, 'requant_bits': 0.7566},
        },
        'global_avgpool': {
            'lut': {'const': 30.79, 'requant_bits': 0.3805},
            'ff': {'const': 55.16, 'lane_bits': 3.704, 'requant_bits': 0.7566},
        },
        'add': {
            'lut': {'const': 67.75, 'lane_bits': 1.341, 'requant_bits': 0.8047},
            'ff': {'const': 76.4, 'lane_bits': 1.696, 'requant_bits': 0.9198},
        },
        'requantize': {
            'lut': {'const': 67.75, 'lane_bits': 1.341, 'requant_bits': 0.8047},
            'ff': {'const': 76.4, 'lane_bits': 1.696, 'requant_bits': 0.9198},
        },
        'concat': {
            'lut': {'const': 22.21},
            'ff': {'const': 18.52, 'lane_bits': 0.8153},
        },
        'lookup': {
            'lut': {'const': 22.21},
            'ff': {'const': 18.52, 'lane_bits': 0.8153},
        },
        'mul': {
            'lut': {'const': 67.75, 'lane_bits': 1.341, 'requant_bits': 0.8047},
            'ff': {'const': 76.4, 'lane_bits': 1.696, 'requant_bits': 0.9198},
        },
        'affine': {
            'lut': {'const': 67.75, 'lane_bits': 1.341, 'requant_bits': 0.8047},
            'ff': {'const': 76.4, 'lane_bits': 1.696, 'requant_bits': 0.9198},
        },
        'move': {
            'lut': {'const': 129.0, 'lane_bits': 2.886},
            'ff': {'address_bits': 2.892, 'const': 47.9, 'lane_bits': 2.036},
        },
        'remap': {
            'lut': {'const': 129.0, 'lane_bits': 2.886},
            'ff': {'address_bits': 2.892, 'const': 47.9, 'lane_bits': 2.036},
        },
        'glue': {
            'lut': {'convert_bits': 0.1177, 'counter_bits': 1.077, 'fork_bits': 5.288},
            'ff': {'convert_bits': 0.985, 'counter_bits': 1.059, 'fork_bits': 2.598},
        },
    },
}
MEMORY = {
    'ecp5': {'bram_lut': 9.302, 'lutram_mux': 1.046, 'rom_lut': 1.571, 'ram_mux': 0.4841, 'ram_decode': 0.9682, 'rom_exp': 1.0},
    'ice40': {'bram_lut': 8.651, 'lutram_mux': 0.4983, 'rom_lut': 1.318, 'ram_mux': 0.3043, 'ram_decode': 8.371, 'rom_exp': 1.0},
}
BLOCK_WORTH = {'ecp5': 120.0, 'ice40': 60.0}
CELLS = {'ecp5': {'ff': 0.0, 'lutram': 6.5}, 'ice40': {'ff': 1.0, 'lutram': 0.0}}
