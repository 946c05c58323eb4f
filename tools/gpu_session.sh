#!/usr/bin/env bash
# One prepared run on a lent GPU (the device tool gives 15 minutes a task, in one call):
#   1. the CUDA checks (tests/test_cuda.py: golden outputs, fp16 on released M/L shapes, engine, training),
#      (first use, 2026-11-26, H100: checks 18 s, benchmark ~130 s, three 301 s training runs; 489 s in all)
#   2. the GPU benchmark against the hardware (benchmarks/gpu.py: eager vs CUDA graphs, TFLOP/s, fraction of
#      peak, a 100-image swinir restore) and the training throughput (benchmarks/train.py),
#   3. the three built-ins trained side by side on the one GPU, each within a wall-clock budget that ends
#      the whole script inside GPU_LIMIT seconds (train.time_limit re-plans iterations and milestones),
#   4. everything packed under $OUT (at most 8 files come back).
# Data travel in .devdata/ (git-ignored, carried): tools/gpu_session.sh --prepare builds it from ../shared.
#
#   bash tools/gpu_session.sh --prepare          # here, before the call
#   bash tools/gpu_session.sh                    # there: run(command="bash tools/gpu_session.sh", carry=[".devdata"])
#   GPU_DRYRUN=1 GPU_LIMIT=150 bash tools/gpu_session.sh   # a CPU rehearsal of the script itself
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD

if [[ "${1:-}" == "--prepare" ]]; then
  set -e
  S=${SWINIR_SHARED:-../shared}
  rm -rf .devdata && mkdir -p .devdata/golden/models .devdata/data/train/T91 .devdata/whl
  cp "$S/golden/released_state_dicts.json" .devdata/golden/
  cp "$S/golden/models/index.json" .devdata/golden/models/
  for n in pixelshuffle_x2 nearestconv_x4_3conv denoise_color jpeg_gray_w7; do cp "$S/golden/models/$n"* .devdata/golden/models/; done
  cp -r "$S/data/Set5" .devdata/data/
  cp -r "$S/data/train/BSD400" .devdata/data/train/
  # T91 as lossless PNG (the BMPs are twice the size; pixels are checked equal)
  python - "$S" <<'EOF'
import glob, os, sys
import cv2, numpy as np
for f in sorted(glob.glob(os.path.join(sys.argv[1], "data/train/T91/*"))):
    img = cv2.imread(f, cv2.IMREAD_UNCHANGED)
    out = ".devdata/data/train/T91/" + os.path.splitext(os.path.basename(f))[0] + ".png"
    cv2.imwrite(out, img, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    assert np.array_equal(cv2.imread(out, cv2.IMREAD_UNCHANGED), img), f
EOF
  python -m pip download -q --no-deps --only-binary=:all: -d .devdata/whl spandrel==0.4.2
  grep -qx "/.devdata/" .git/info/exclude 2>/dev/null || echo "/.devdata/" >> .git/info/exclude
  du -sh .devdata
  exit 0
fi

START=$(date +%s)
LIMIT=${GPU_LIMIT:-540}
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT" runs
LOG=$OUT/device.log
export PYTHONUNBUFFERED=1 PYTHONPATH=$ROOT/src SWINIR_SHARED=$ROOT/.devdata
PY=python3
DEV=cuda
if [[ -n "${GPU_DRYRUN:-}" ]]; then DEV=cpu; PY=python; fi
elapsed() { echo $(( $(date +%s) - START )); }
say() { echo "[$(elapsed)s] $*" | tee -a "$LOG"; }

say "start; limit ${LIMIT}s; device $DEV"
{ nvidia-smi 2>&1 | head -15; $PY -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())"; nproc; } >> "$LOG" 2>&1
if [[ -z "${GPU_DRYRUN:-}" ]]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .devdata/whl/*.whl >> "$LOG" 2>&1 \
    && export PYTHONPATH=$PYTHONPATH:/tmp/site
fi

# 1. CUDA checks
say "checks"
if [[ -z "${GPU_DRYRUN:-}" ]]; then
  timeout 80 $PY -m pytest -q -s -p no:cacheprovider tests/test_cuda.py > "$OUT/checks.log" 2>&1
  say "checks rc $?: $(tail -1 "$OUT/checks.log")"
fi

# 2. the benchmark against the hardware (issue 18): eager vs captured (CUDA graph per tile shape) for
#    classical x2 M, real-world L x4, lightweight x4 at 256/512 in fp32/bf16/fp16, with achieved TFLOP/s and
#    the fraction of the dense peak; then swinir restore on 100 images of 512x512 (decode + encode included);
#    then training throughput with the data wait split from the step.
say "benchmark"
if [[ -z "${GPU_DRYRUN:-}" ]]; then
  timeout ${GPU_BENCH_S:-200} $PY benchmarks/gpu.py --repeats 10 --folder 100 --output "$OUT/bench_gpu.md" >> "$LOG" 2>&1
  say "benchmark rc $?"
  timeout ${GPU_TRAIN_BENCH_S:-90} $PY benchmarks/train.py --presets builtin-x2-gpu --variants bf16 --iters 50 \
    --set train.device=cuda >> "$OUT/bench_gpu.md" 2>&1
  say "train benchmark rc $?"
else
  $PY benchmarks/gpu.py --device cpu --configs lightweight_x4 --sizes 32 --precisions fp32 --repeats 1 \
    --capture compile --compile-backend aot_eager --folder 2 --folder-side 32 --folder-config lightweight_x4 \
    --output "$OUT/bench_gpu.md" >> "$LOG" 2>&1
  say "benchmark rc $?"
fi

# 3. training, three runs side by side; the budget leaves ~70 s for start-up, the last validation and packing
T=$(( LIMIT - $(elapsed) - 70 ))
say "training: time_limit ${T}s each"
EXTRA=()
if [[ -n "${GPU_DRYRUN:-}" ]]; then EXTRA=(train.device=cpu train.amp=none data.batch_size=2 data.patch_size=16 \
  data.num_workers=1 model.depths=[2] model.num_heads=[2] model.embed_dim=16 model.init_from=null \
  val.max_images=2 val.max_size=64 val.every=50 log.every=10); fi
if [[ "$DEV" == cuda ]]; then
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader -l 20 >> "$LOG" 2>&1 &
  SMI=$!
fi
PIDS=()
for r in x2 x4 denoise; do
  rm -rf "runs/gpu-$r"
  SETS=()
  for kv in "train.time_limit=$T" train.threads=2 log.progress=false "${EXTRA[@]}"; do SETS+=(--set "$kv"); done
  timeout -s TERM $(( T + 50 )) $PY -m swinir train "builtin-$r-gpu" --out "runs/gpu-$r" "${SETS[@]}" \
    > "runs/gpu-$r.out" 2>&1 &
  PIDS+=($!)
done
for p in "${PIDS[@]}"; do wait "$p"; echo "run pid $p rc $?" >> "$LOG"; done
[[ -n "${SMI:-}" ]] && kill "$SMI" 2>/dev/null
say "training done"
for r in x2 x4 denoise; do
  grep -E "time limit|val @|finished|Error|error" "runs/gpu-$r/train.log" "runs/gpu-$r.out" 2>/dev/null | tail -12 >> "$LOG"
  cp "runs/gpu-$r.out" "runs/gpu-$r/stdout.log" 2>/dev/null
  files=()
  for f in config.yaml train.log stdout.log metrics.jsonl curves.png val checkpoints/latest.pt; do
    [[ -e "runs/gpu-$r/$f" ]] && files+=("gpu-$r/$f")
  done
  tar czf "$OUT/gpu-$r.tgz" -C runs "${files[@]}" && say "packed gpu-$r.tgz $(du -h "$OUT/gpu-$r.tgz" | cut -f1)"
done
say "end"
