#!/usr/bin/env bash
# The demo: compile a pruned, quantized TinyCNN and run it on ten test digits, then find a face with BlazeFace.
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

echo
echo "== hwgen detect: BlazeFace on the astronaut photograph (boxes in image pixels; build/demo/faces.png)"
hwgen detect examples/models/detect/blazeface_qdq_s8s8_pc.onnx --input examples/models/detect/astronaut.png \
    --draw build/demo/faces.png
