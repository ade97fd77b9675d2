#!/usr/bin/env bash
# The GPU checks of the step-speed work, prepared to run on a lent device in as few calls as
# possible (shared/GPU.md: no kornia there, carry its wheels; 10 minutes a call; logs under $OUT).
#
#   stage "speed" (about 3 minutes): augmentation throughput (static round, per-op round, a CUDA
#     graph replay), then ms/step of the FixMatch and MPL presets, eager and --capture, bf16.
#   stage "fixmatch" / "supervised" / "mpl" (9 minutes each): bench/time_to_accuracy.py of that
#     recipe on CIFAR-10-4K (the JPEG copy, balanced split), curve and summary under $OUT.
#
#     CAPTURE=--capture runs them captured (once the speed stage shows that --capture is faster).
#
# A session's device time (15 minutes, start-up included) holds the speed stage and one 9-minute
# stage at most: plan one recipe per session.
# Carry: .whl (kornia, kornia-rs wheels for cp312) and data/cifar10-jpeg.tar.gz. Usage on the device:
#   bash bench/device_check.sh speed
#   CAPTURE=--capture bash bench/device_check.sh fixmatch
set -uo pipefail
stage=${1:?stage: speed, fixmatch, supervised or mpl}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD
DATA=${DATA:-data/cifar10-jpeg.tar.gz}
log() { echo "== $*" | tee -a "$OUT/log.txt"; }
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python3 -c "import torch, kornia; print(torch.__version__, kornia.__version__)"; } >> "$OUT/log.txt" 2>&1

case "$stage" in
speed)
    log augment
    timeout 120 python3 bench/augment.py --batch 448 --repeats 50 --device cuda --data-path "$DATA" 2>&1 | tee -a "$OUT/log.txt"
    for preset in fixmatch-cifar10 mpl-cifar10; do
        for capture in "" --capture; do
            log "step_time $preset $capture"
            timeout 150 python3 bench/step_time.py --steps 50 --warmup 20 --preset "$preset" --data-path "$DATA" \
                --num-labeled 4000 --device cuda $capture 2>&1 | tail -20 | tee -a "$OUT/log.txt"
        done
    done
    ;;
fixmatch | supervised | mpl)
    preset=fixmatch-cifar10; extra=()
    [ "$stage" = mpl ] && preset=mpl-cifar10
    [ "$stage" = supervised ] && extra=(--method supervised)
    log "time_to_accuracy $stage"
    timeout 580 python3 bench/time_to_accuracy.py --minutes 9 --points 15 --out "$OUT/$stage" -- \
        --preset "$preset" "${extra[@]}" ${CAPTURE:-} --data-path "$DATA" --num-labeled 4000 --device cuda 2>&1 | tee -a "$OUT/log.txt"
    ;;
*) echo "unknown stage $stage" >&2; exit 2 ;;
esac
