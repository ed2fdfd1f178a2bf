#!/usr/bin/env bash
# GPU readiness check of fsar: cuda tests, torchrun/NCCL training, fp16 and bf16 training, the TA2N / TATs / bf16
# (and, when present, loader) benchmarks on one GPU, in under 8 minutes on an H100/H200. Writes one JSON summary
# (runs/gpu_check/summary.json by default). Details and options: benchmarks/gpu_check.py (--help).
#
#   bash benchmarks/gpu_check.sh                        # on the GPU machine, from anywhere in the repository
#   bash benchmarks/gpu_check.sh --cpu --work /tmp/gc   # the same flow on a CPU at toy sizes
#   bash benchmarks/gpu_check.sh --dry-run              # only the plan
#
# Python: $PYTHON if set, else the repository's .venv, else python3.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
if [[ -n "${PYTHON:-}" ]]; then
  py="$PYTHON"
elif [[ -x "$repo/.venv/bin/python" ]]; then
  py="$repo/.venv/bin/python"
else
  py="python3"
fi
cd "$repo"
export HF_HUB_OFFLINE=1
exec "$py" "$here/gpu_check.py" "$@"
