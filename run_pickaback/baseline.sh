#!/usr/bin/env bash
# STEP 1) Train every task of the config from scratch; its accuracy is the criterion for growing
# and for choosing the pruning ratio. Usage: bash run_pickaback/baseline.sh [cfg]
source "$(dirname "$0")/common.sh"

train_baselines() {
  "$PY" packnet_cifar100_main_normal.py "${COMMON_ARGS[@]}" --dataset "$@" \
    "${TRAIN_ARGS[@]}" --lr "$LR" --epochs "$EPOCHS" $FORCE_FLAG
}

# One process per JOBS share of the tasks (dealt round robin), importing torch once per process
# instead of once per task.
read -r -a ids <<< "$(task_ids)"
groups=()
for i in "${!ids[@]}"; do groups[i % JOBS]+="${ids[i]} "; done
run_jobs "$(path_of logs_dir)" "baseline_${CFG_NAME}_tasks" train_baselines "${groups[@]}"

echo "Baseline accuracies: $BASELINE_FILE"
