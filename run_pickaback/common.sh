# Sourced by every step script: the dataset config ($1), the Python of .venv, and the settings of
# the chosen profile. Override with environment variables, e.g.
#   ARCH=lenet5 PROFILE=paper TASKS="1 4" FORCE=1 bash run_pickaback/baseline.sh cifar100
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CFG=${1:-demo}
ARCH=${ARCH:-perceiver_io}
# The demo config trains the small model for a CPU; real data gets the paper's sizes and epochs.
if [ "$CFG" = demo ]; then PROFILE=${PROFILE:-demo}; else PROFILE=${PROFILE:-paper}; fi
SEED=${SEED:-2}
DEVICE=${DEVICE:-auto}
if [ -x .venv/bin/python ]; then PY=${PYTHON:-.venv/bin/python}; else PY=${PYTHON:-python3}; fi

if [ "$PROFILE" = paper ]; then
  EPOCHS=${EPOCHS:-100}
  PRUNE_EPOCHS=${PRUNE_EPOCHS:-20}
  PRUNE_STAGES=${PRUNE_STAGES:-"0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9 0.95"}
  PRUNING_INTERVAL=${PRUNING_INTERVAL:-4}    # epochs over which a stage's sparsity ramps up
  PRUNING_FREQUENCY=${PRUNING_FREQUENCY:-10} # optimizer steps between mask updates
else
  EPOCHS=${EPOCHS:-30}
  PRUNE_EPOCHS=${PRUNE_EPOCHS:-3}
  PRUNE_STAGES=${PRUNE_STAGES:-"0.3 0.6 0.9"}
  PRUNING_INTERVAL=${PRUNING_INTERVAL:-1}
  PRUNING_FREQUENCY=${PRUNING_FREQUENCY:-2}
fi
MODELDIFF_ITERATIONS=${MODELDIFF_ITERATIONS:-100}   # the original's profiling-input search length
MODELDIFF_SEARCH=${MODELDIFF_SEARCH:-single}        # or "batched" (see pickaback_perceiverIO.py --help)
FORCE_FLAG=""
if [ "${FORCE:-0}" = 1 ]; then FORCE_FLAG="--force"; fi

COMMON_ARGS=(--arch "$ARCH" --profile "$PROFILE" --dataset_config "$CFG" --seed "$SEED" --device "$DEVICE")

# The demo data is generated on first use (seeded: the same files on every machine).
if [ "$CFG" = demo ] && [ ! -f "${MMPAB_DATA_ROOT:-data}/demo/.complete" ]; then
  "$PY" tools/make_demo_data.py
fi

# The task ids to run: $TASKS when given, else every task of the config (LeNet-5: its image tasks).
task_ids() {
  local only=()
  if [ "$ARCH" = lenet5 ]; then only=(--modality image); fi
  if [ -n "${TASKS:-}" ]; then echo "$TASKS"; else "$PY" tools/task_info.py "$CFG" --list "${only[@]}" | tr '\n' ' '; fi
}

task_name() { "$PY" tools/task_info.py "$CFG" "$1" --field name; }

# a >= b for decimal numbers (bash compares only integers, and "2" vs "2.0" as strings)
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; }

# Run a command and put its exit status in $status without tripping `set -e`.
run_status() { status=0; "$@" || status=$?; }

# The grow loop of steps 2-1 and 3-2: run a finetune command at width 1.0, 1.5, ... while it exits 2
# (under its baseline) and the width is below $1. Leaves the last exit status in $status and the
# last width in $width.
finetune_growing() {
  local max_width=$1; shift
  width=1.0
  while true; do
    run_status "$@" --network_width_multiplier "$width" --max_allowed_network_width_multiplier "$max_width"
    if [ "$status" = 2 ] && ! ge "$width" "$max_width"; then
      width=$(awk -v w="$width" -v m="$max_width" 'BEGIN { w += 0.5; if (w > m) w = m; printf "%g", w }')
      echo "New network_width_multiplier: ${width}"
      continue
    fi
    break
  done
}

# Outputs go under the repository, or under $MMPAB_OUTPUT_ROOT when it is set; a seed other than the
# default writes the same layout under seed<S>/, so seeds live side by side (as in utils/paths.py).
OUT=${MMPAB_OUTPUT_ROOT:-.}
if [ "$SEED" != 2 ]; then OUT="$OUT/seed$SEED"; fi
# One tolerance for every "reached its baseline?" decision (steps 2-1, 2-2, 3-2); the Python default otherwise.
ACC_ARGS=()
if [ -n "${ALLOW_ACC_LOSS:-}" ]; then ACC_ARGS=(--allow_acc_loss "$ALLOW_ACC_LOSS"); fi
BASELINE_FILE="$OUT/logs_${ARCH}/baseline_${CFG}_acc.txt"
