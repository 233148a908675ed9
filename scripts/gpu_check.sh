#!/usr/bin/env bash
# The GPU check: on a machine with a CUDA GPU, from a fresh checkout, in at most 8 minutes (install included):
#   1. install (torch with CUDA: the machine's own, else one in a venv; this package),
#   2. the CUDA tests (tests/test_cuda.py: fused and plain paths in fp32 and bf16, channels_last, torch.compile,
#      gradient checkpointing, CUDA graphs, training steps, the Accelerate loop),
#   3. scripts/benchmark.py --device cuda on (a), (b) and (e) at batch 16 and 64, fp32 and bf16, against the GPU's
#      own convolution limit,
#   4. model (e) eager against CUDA graphs (scripts/benchmark_cuda_graphs.py), batch 16 and 64, fp32 and bf16,
#   5. 2 minutes of configs/moving_mnist_openstl_s.yaml training, with its sequences per second,
# and writes one markdown report ($OUT/report.md). A step that fails or runs out of time is reported as such and the
# next one still runs; every step has a time limit and the whole script stops within 8 minutes.
#
#   scripts/gpu_check.sh              # the check
#   scripts/gpu_check.sh --dry-run    # any machine, CPU only, under a minute: every step but the CUDA parts
#                                     # (install, CUDA tests, CUDA graphs), with tiny sizes (tests/test_gpu_check.py)
#
# Environment:
#   PYTHON           the interpreter (default python3; in a dry run .venv/bin/python if present)
#   TORCH_SPEC       "auto" (default): use $PYTHON's torch when it sees a GPU (GPU images ship a torch built for
#                    their driver; the package is installed into that interpreter's environment), else install
#                    torch==2.13.0 into a venv: on Linux x86_64 the default package index serves it as a CUDA build.
#                    "system": always $PYTHON's torch. Anything else: the pip requirement for torch to install.
#   VENV             the venv for an installed torch (default .venv-gpu); USE_VENV=0 installs into $PYTHON's
#                    environment instead
#   TORCH_INDEX_URL  a wheel index for torch only, e.g. PyTorch's index of the wheels for one CUDA version (see the
#                    install page of pytorch.org) when the driver needs another CUDA than the default wheel's
#   PIP_NO_INDEX=1 PIP_FIND_LINKS=DIR   offline: install from a folder of wheels (pip reads these itself)
#   OUT              report folder (default outputs/gpu_check); TRAIN_MINUTES: the training budget (default 2)
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
DRY_RUN=0
for argument in "$@"; do
    case "$argument" in
        --dry-run) DRY_RUN=1 ;;
        -h | --help) sed -n '2,30p' "$0"; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument '$argument' (expected --dry-run or --help)" >&2; exit 2 ;;
    esac
done

OUT="${OUT:-outputs/gpu_check}"
TRAIN_MINUTES="${TRAIN_MINUTES:-2}"
TORCH_SPEC="${TORCH_SPEC:-auto}"
VENV="${VENV:-.venv-gpu}"
USE_VENV="${USE_VENV:-1}"
TOTAL_SECONDS=480
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
STEPS="$OUT/steps.md"
: >"$STEPS"
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's code, installed or not
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
if [ "$DRY_RUN" = 1 ]; then
    if [ -z "${PYTHON:-}" ]; then
        PYTHON=python3
        [ -x .venv/bin/python ] && PYTHON=.venv/bin/python
    fi
    PY="$PYTHON"
    DEVICE=cpu
    BATCHES="2"
else
    PYTHON="${PYTHON:-python3}"
    PY="$PYTHON"
    DEVICE=cuda
    BATCHES="16 64"
fi
DEADLINE=$((SECONDS + TOTAL_SECONDS))

# run_step NAME MAX_SECONDS LOG COMMAND...: run with a time limit (never past the deadline), record the outcome.
run_step() {
    local name="$1" cap="$2" log="$3"
    shift 3
    local left=$((DEADLINE - SECONDS))
    local limit=$((cap < left ? cap : left))
    if [ "$limit" -lt 5 ]; then
        echo "| $name | skipped: the 8-minute budget is spent | 0 |" >>"$STEPS"
        return 1
    fi
    local started=$SECONDS status
    echo "== $name (at most ${limit} s)" >&2
    timeout --signal=INT --kill-after=10 "$limit" "$@" >"$log" 2>&1
    status=$?
    local outcome="ok"
    if [ $status -eq 124 ] || [ $status -eq 137 ]; then
        outcome="timed out after ${limit} s"
    elif [ $status -ne 0 ]; then
        outcome="failed (exit $status)"
    fi
    echo "| $name | $outcome | $((SECONDS - started)) |" >>"$STEPS"
    [ $status -eq 0 ]
}

skip_step() {
    echo "| $1 | skipped: $2 | 0 |" >>"$STEPS"
}

install() {
    set -e
    if [ "$TORCH_SPEC" != system ]; then
        if [ "$USE_VENV" = 1 ]; then
            [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
        fi
        "$PY" -m pip install -q ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "$TORCH_SPEC"
    fi
    # this package and its dependencies (already there are kept); offline, setuptools may have to come from the
    # environment rather than an isolated build
    "$PY" -m pip install -q -e . || "$PY" -m pip install -q --no-build-isolation -e .
    "$PY" -c "import pytest" 2>/dev/null || "$PY" -m pip install -q pytest
    "$PY" -c "import torch, bidirectional_conv_lstm; print('torch', torch.__version__, 'CUDA', torch.version.cuda,
'GPU available:', torch.cuda.is_available())"
    "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'torch sees no GPU: a CPU build? '
'set TORCH_SPEC / TORCH_INDEX_URL (scripts/gpu_check.sh --help)')"
}

# ------------------------------------------------------------------------------------------------ 1. install
if [ "$DRY_RUN" = 1 ]; then
    skip_step "install" "dry run (would install torch ($TORCH_SPEC) and pip install -e .)"
else
    if [ "$TORCH_SPEC" = auto ]; then
        TORCH_SPEC="torch==2.13.0"
        "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null \
            && TORCH_SPEC=system
    fi
    # The machine's own CUDA torch is used where it is (a GPU image's torch matches its driver): its interpreter
    # takes the package. A torch to install goes into a venv.
    [ "$TORCH_SPEC" != system ] && [ "$USE_VENV" = 1 ] && PY="$VENV/bin/python"
    export PYTHON VENV TORCH_SPEC USE_VENV PY TORCH_INDEX_URL="${TORCH_INDEX_URL:-}"
    export -f install
    run_step "install ($([ "$TORCH_SPEC" = system ] && echo "the machine's torch" || echo "$TORCH_SPEC"))" 150 \
        "$OUT/install.log" bash -c install
fi

# ------------------------------------------------------------------------------------------------ 2. CUDA tests
if [ "$DRY_RUN" = 1 ]; then
    skip_step "CUDA tests" "dry run (needs CUDA; the normal test suite collects tests/test_cuda.py and skips them)"
else
    run_step "CUDA tests" 90 "$OUT/tests.log" \
        "$PY" -m pytest tests/test_cuda.py -m cuda -q -rs -p no:cacheprovider
fi

# ------------------------------------------------------------------------------------------------ 3. benchmark
VARIANTS="ours,ours+bf16,concat,concat+bf16,limit fp32,limit bf16"
for batch in $BATCHES; do
    options=(--device "$DEVICE" --configs a,b,e --batch "$batch" --no-compile --variants "$VARIANTS")
    [ "$DRY_RUN" = 1 ] && options+=(--quick)
    run_step "benchmark, batch $batch" 60 "$OUT/benchmark_$batch.log" "$PY" scripts/benchmark.py \
        "${options[@]}" --output "$OUT/benchmark_$batch.md" --output-json "$OUT/benchmark_$batch.json"
done

# ------------------------------------------------------------------------------------------------ 4. CUDA graphs
if [ "$DRY_RUN" = 1 ]; then
    skip_step "CUDA graphs" "dry run (needs CUDA)"
else
    run_step "CUDA graphs" 60 "$OUT/graphs.log" "$PY" scripts/benchmark_cuda_graphs.py --batches 16,64 \
        --output "$OUT/graphs.md"
fi

# ------------------------------------------------------------------------------------------------ 5. training
TRAIN=(scripts/train.py --config configs/moving_mnist_openstl_s.yaml --output_dir "$OUT/train"
    --data.cache_dir "$OUT/data_cache" --data.num_validation 256 --data.num_test 256 --eval_num_samples 256
    --test_num_samples 256 --eval_steps 1000000 --checkpointing_steps 1000000 --max_train_minutes "$TRAIN_MINUTES")
if [ "$DRY_RUN" = 1 ]; then
    TRAIN+=(--max_train_steps 2 --model.hidden_sizes "[8]" --model.kernel_size 3 --data.num_train 16
        --data.num_validation 4 --data.num_test 4 --eval_num_samples 4 --test_num_samples 4
        --per_device_train_batch_size 4 --per_device_eval_batch_size 4 --dataloader_num_workers 0
        --mixed_precision auto)
fi
run_step "training, $TRAIN_MINUTES min of moving_mnist_openstl_s" $((TRAIN_MINUTES * 60 + 100)) \
    "$OUT/train.log" "$PY" "${TRAIN[@]}"

# ------------------------------------------------------------------------------------------------ report
{
    echo "# GPU check$([ "$DRY_RUN" = 1 ] && echo ' (DRY RUN on CPU: no figure here is a GPU figure)')"
    echo
    echo "- $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    "$PY" -c "import platform, torch
gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'
print(f'- torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}), '
      f'Python {platform.python_version()}, GPU: {gpu}')" 2>/dev/null || echo "- torch: not importable"
    command -v nvidia-smi >/dev/null && echo "- nvidia-smi: $(nvidia-smi --query-gpu=name,driver_version,memory.total \
        --format=csv,noheader 2>/dev/null | head -1)"
    echo "- total: $SECONDS s (limit $TOTAL_SECONDS s)"
    echo
    echo "| step | outcome | seconds |"
    echo "|---|---|---:|"
    cat "$STEPS"
    echo
    echo "## CUDA tests"
    echo
    if [ -f "$OUT/tests.log" ]; then echo '```'; tail -n 25 "$OUT/tests.log"; echo '```'
    else echo "Not run (dry run)."; fi
    for batch in $BATCHES; do
        echo
        echo "## Benchmark, batch $batch"
        echo
        cat "$OUT/benchmark_$batch.md" 2>/dev/null || { echo '```'; tail -n 20 "$OUT/benchmark_$batch.log"; echo '```'; }
    done
    echo
    echo "## CUDA graphs"
    echo
    if [ -f "$OUT/graphs.md" ]; then cat "$OUT/graphs.md"
    elif [ -f "$OUT/graphs.log" ]; then echo '```'; tail -n 20 "$OUT/graphs.log"; echo '```'
    else echo "Not run (dry run)."; fi
    echo
    echo "## Training: configs/moving_mnist_openstl_s.yaml, $TRAIN_MINUTES minutes"
    echo
    "$PY" - "$OUT/train.log" <<'PYTHON' || { echo '```'; tail -n 20 "$OUT/train.log"; echo '```'; }
import json, sys, yaml
text = open(sys.argv[1]).read()
start = text.rfind("\n{\n")
result = json.loads(text[start:text.rfind("}") + 1])
config = yaml.safe_load(open(f"{result['output_dir']}/training_config.yaml"))
batch = config["per_device_train_batch_size"]
seconds = max(60 * result["train_minutes"], 1e-3)  # a dry run can finish in well under a second
notes = [line[2:] for line in open(f"{result['output_dir']}/training_config.yaml") if line.startswith("# ")]
print(f"{result['steps']} steps of {batch} sequences in {seconds:.0f} s: **{result['steps'] * batch / seconds:.1f} "
      "sequences/s** (the loop's wall clock, its final validation included), "
      f"mixed_precision {config['mixed_precision']!r}{' (' + notes[0].strip() + ')' if notes else ''}.")
test = result["test"]
print(f"Test scores ({config['test_num_samples']} sequences): MSE {test['mse']:.1f}, SSIM {test['ssim']:.3f}.")
PYTHON
} >"$OUT/report.md"
echo "report: $OUT/report.md" >&2
grep -q "failed\|timed out" "$STEPS" && exit 1
exit 0
