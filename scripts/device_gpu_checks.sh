#!/usr/bin/env bash
# The GPU checks of issue 15 in one call of the device tool (docs/cost.md "GPU path"):
#
#   run(command="bash scripts/device_gpu_checks.sh", carry=[".whl"], timeout_s=590)
#
# 1. the CUDA tests (adapt on CUDA returns the model home, synthesis, noise top-up and
#    fine-tuning on CUDA);
# 2. seconds per stage and the share of adapt outside the model's passes at 720p, for the
#    2.57 M-parameter stand-in, with DIS and with the GPU flow (cost.py tables 1 and 2: the
#    issue's goal, so it comes first);
# 3. the host's waits for the GPU per stage and call site, 16 against 64 patches at 720p
#    (benchmarks/host_waits.py: a wait per patch shows as 1 or more per added patch);
# 4. flow accuracy and speed, DIS on the CPU against PyramidFlow on the GPU;
# 5. videos per hour of adapt_many on the GPU (docs/cost.md section 4's dataset), for 1, 2 and
#    4 workers sharing it (0.25 GPU each) when Ray imports here, else for 1 worker in-process.
# Each step tees into $OUT as it goes: a run cut short by the time limit keeps what finished.
# Everything printed also lands in $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/ttblur-out}
mkdir -p "$OUT"
source scripts/device_env.sh
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -m pytest -q -p no:cacheprovider tests/test_finetune.py tests/test_api.py \
    tests/stages/test_reblur.py tests/stages/test_pyramid_flow.py -k "cuda or device_train" 2>&1 | tee "$OUT/cuda_tests.log"
for flow in opencv pyramid; do
    python3 benchmarks/cost.py --device cuda --threads 8 --skip-memory --skip-adapt-memory \
        --clips 20x720x1280 --models wide --flow "$flow" 2>&1 | tee "$OUT/cost_$flow.md"
done
python3 benchmarks/host_waits.py --device cuda --threads 8 --clip 20x720x1280 --patch-size 256 \
    --max-patches 16 64 --flow pyramid --top 30 2>&1 | tee "$OUT/host_waits.md"
python3 benchmarks/flow_accuracy.py --role evaluation --device cuda --threads 8 2>&1 \
    | tee "$OUT/flow_accuracy.md"
if python3 -c "import ray" 2>/dev/null; then workers="1 2 4"; else workers="1"; fi
python3 benchmarks/batch_throughput.py --device cuda --gpus-per-video 0.25 --patch-size 128 \
    --workers $workers 2>&1 | tee "$OUT/batch_throughput.md"
