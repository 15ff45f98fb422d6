#!/usr/bin/env bash
# The checks that need a GPU, in one run (about 5 minutes on one H100-class GPU):
#   1. the real MusicGen sizes through SynthGen's LoRA + fp16 training step: peak memory and speed
#   2. each separator family's training speed on the GPU, in the trainer's mixed precision
#   3. the doors on the GPU: `synthgen train` for every family (SynthGen from `synthgen encode`)
#      and `synthgen separate` with every bundled separator, each reporting the GPU memory it took
# Usage: bash bench/gpu.sh [folder for the runs' files]   (a failed check is reported and the others still run;
# the exit status says whether any failed)
set -uo pipefail
export TQDM_DISABLE=1  # no progress bars in the log
work=$(realpath -m "${1:-$(mktemp -d)}")
cd "$(dirname "$0")/.."  # the repository: python -m bench.*, the example under assets/
py=${PYTHON:-python3}
# `synthgen` itself, through python -m, plus the peak GPU memory of the command
sg() { "$py" -c 'import sys, torch
from synthgen_lib.cli import main
code = main(sys.argv[1:])
if torch.cuda.is_available():
    print(f"[{sys.argv[1]} on {torch.cuda.get_device_name(0)}: peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MB]")
sys.exit(code)' "$@"; }
"$py" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "bench/gpu.sh: no GPU on this machine")' || exit 2
failed=0
check() { "$@" || { echo "FAILED: $*"; failed=1; }; }

echo "== 1. SynthGen at the published sizes: LoRA + fp16 step"
check "$py" -m bench.synthgen --measure --steps "${STEPS:-10}"
echo "== 2. training speed per family on the GPU"
check "$py" -m bench.training --device cuda
echo "== 3. the doors on the GPU"
check sg prepare --source synthetic --tracks 8 --seed 5 --output "$work/data"
for family in lstm encoder synthmatch; do
  check sg train --model "$family" --data "$work/data" --output "$work/$family" --epochs 1 --steps-per-epoch 20 \
    --max-valid-windows 8
done
check sg encode --source synthetic --tracks 8 --output "$work/codes"
check sg train --model synthgen --data "$work/codes" --output "$work/synthgen" --epochs 1 --steps-per-epoch 20
models=$(sg models | cut -f1 | grep -v '^\[')
[ -n "$models" ] || { echo "FAILED: synthgen models lists no bundled model"; failed=1; }
for model in $models; do
  check sg separate assets/examples/mix/example.flac --model "$model" --output "$work/separated-$model"
done
echo "== done ($([ $failed = 0 ] && echo 'every check passed' || echo 'some checks FAILED'))"
exit $failed
