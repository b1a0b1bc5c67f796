#!/usr/bin/env bash
# Train the "base" reference network on a lent GPU machine, in one call of the device tool.
#
# Prepared for docs/reference-model.md ("Training on a GPU machine"); run from the repository
# root there, with the pydantic wheels that machine lacks carried in `.whl` (see that page):
#
#   run(command="bash scripts/device_train_base.sh", carry=[".whl", "runs/base-gpu"],
#       timeout_s=590)
#
# What it does, inside the call's 10-minute limit:
# 1. trains `--max-seconds` (default 420 s) on CUDA, the pool rendered by 14 worker processes,
#    then stops at a checkpoint (a later call that carries runs/base-gpu resumes it exactly);
# 2. evaluates the checkpoint on held-out gopro videos (moving / nearly still frames);
# 3. copies the log, the evaluation and the checkpoint (tar, split in 15 MB parts: the device
#    tool returns files of at most 16 MB) to $OUT.
# Back here: `cat OUT/ckpt.tar.part-* | tar x -C runs/base-gpu` restores the checkpoint.
set -euo pipefail

RUN=${RUN:-runs/base-gpu}
BUDGET=${BUDGET:-420}
OUT=${OUT:-/tmp/ttblur-out}
DEVICE=${DEVICE:-cuda}      # DEVICE=cpu WORKERS=2 NUM_VIDEOS=4 BUDGET=5: a smoke test on a CPU
WORKERS=${WORKERS:-14}
NUM_VIDEOS=${NUM_VIDEOS:-128}
EVAL_FRAMES=${EVAL_FRAMES:-12}
mkdir -p "$OUT" "$RUN"

source scripts/device_env.sh
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true

python3 -m ttblur.training.reference train --arch base --motion-mix --hand-pauses --shutter-mix \
    --content varied --out "$RUN" \
    --device "$DEVICE" --workers "$WORKERS" --max-seconds "$BUDGET" --threads 2 \
    --steps 24000 --batch-size 16 --crop 192 --num-videos "$NUM_VIDEOS" --video-frames 12 \
    --video-size 224 288 --refresh-every 4 --checkpoint-every 1000 --lr 3e-4 \
    --warmup-steps 1000 --eval-every 2000 --seed 0 --no-progress 2>&1 | tee "$OUT/train.log"

python3 -m ttblur.training.reference evaluate --weights "$RUN/checkpoint/model" \
    --presets gopro --hand-pauses --shutter-mix --videos-per-photo 2 --frames "$EVAL_FRAMES" --size 192 256 \
    --threads 8 --json "$OUT/evaluate.json" 2>&1 | tee "$OUT/evaluate.log"

cp "$RUN/log.jsonl" "$OUT/log.jsonl"
tar c -C "$RUN" checkpoint train_config.json | split -b 15M - "$OUT/ckpt.tar.part-"
ls -la "$OUT"
