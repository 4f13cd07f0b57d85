#!/usr/bin/env bash
# The demo: compile a pruned, quantized TinyCNN and run it on ten test digits.
set -euo pipefail
cd "$(dirname "$0")/.."
model=examples/models/digits/tinycnn_pruned_qdq_s8s8_pc.onnx

echo "== hwgen compile $model -o build/demo"
hwgen compile "$model" -o build/demo

echo
echo "== hwgen run (golden model) on ten test digits"
python - <<'PY'
import numpy as np
data = np.load("examples/models/digits/digits_test.npz")
np.save("build/demo/digits10.npy", data["X"][:10])
np.save("build/demo/labels10.npy", data["y"][:10])
PY
hwgen run "$model" --input build/demo/digits10.npy --output build/demo/logits10.npy
python - <<'PY'
import numpy as np
logits, labels = np.load("build/demo/logits10.npy"), np.load("build/demo/labels10.npy")
print("predicted:", logits.argmax(axis=1).tolist())
print("labels:   ", labels.tolist())
PY
