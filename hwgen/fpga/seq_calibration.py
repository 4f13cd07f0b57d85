"""The sequential engine's logic model, fitted to yosys by bench/calibrate_sequential.py. GENERATED: do not edit.

Regenerate with `.venv/bin/python bench/calibrate_sequential.py` (or `--refit` from
bench/sequential_calibration.csv). Fitted on the 13 designs of DESIGNS, on iCE40 those of
arrays up to 4x4.
SEQ_LOGIC[family]["lut"|"ff"][feature]: LUT4s / flip-flops per unit of each feature of
seqresources.seq_features.
"""

SEQ_LOGIC = {
    'ecp5': {
        'lut': {
            'array_bits': 2.415,
            'blocks': 6.788,
            'const': 690.8,
            'flash': 91.26,
            'lane_bits': 3.12,
            'layers': 47.81,
            'requant_bits': 2.636,
            'word_bits': 0.1117,
        },
        'ff': {
            'array_bits': 2.784,
            'const': 315.1,
            'flash': 252.2,
            'lane_bits': 3.31,
            'layers': 36.45,
            'requant_bits': 7.183,
            'word_bits': 1.816,
        },
    },
    'ice40': {
        'lut': {
            'array_bits': 3.096,
            'blocks': 5.058,
            'const': 673.8,
            'flash': 165.1,
            'lane_bits': 1.259,
            'layers': 33.19,
            'requant_bits': 2.725,
            'word_bits': 0.6891,
        },
        'ff': {
            'array_bits': 3.288,
            'const': 200.0,
            'flash': 203.1,
            'lane_bits': 1.874,
            'layers': 38.48,
            'requant_bits': 9.434,
            'word_bits': 2.471,
        },
    },
}

# iCE40 logic cells per (LUT4 + flip-flop), from nextpnr's placements of PLACED_ICE40
SEQ_CELLS = {'ice40': 0.8169}
