#!/usr/bin/env bash
# Regenerates the README's first example: the default model on assets/example_lr.png, and a
# side-by-side sheet (input enlarged by pixel repetition | bicubic | swinir builtin-x4).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
swinir restore assets/example_lr.png -o "$tmp"
cp "$tmp/example_lr.png" assets/example_x4.png
python - <<'PY'
import cv2
lr = cv2.imread("assets/example_lr.png", cv2.IMREAD_COLOR)
cv2.imwrite("assets/example_bicubic_x4.png", cv2.resize(lr, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC))
PY
swinir compare assets/example_lr.png assets/example_bicubic_x4.png assets/example_x4.png \
  --labels "input 128x128 (pixels x4)" "bicubic x4" "swinir builtin-x4" --full -o assets/example_compare.png
rm -rf "$tmp" assets/example_bicubic_x4.png
