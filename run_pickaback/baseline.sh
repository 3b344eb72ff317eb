#!/usr/bin/env bash
# STEP 1) Train every task of the config from scratch; its accuracy is the criterion for growing
# and for choosing the pruning ratio. Usage: bash run_pickaback/baseline.sh [cfg]
source "$(dirname "$0")/common.sh"

# One process for all tasks: importing torch once instead of once per task.
# shellcheck disable=SC2046
"$PY" packnet_cifar100_main_normal.py "${COMMON_ARGS[@]}" --dataset $(task_ids) \
  --lr 1e-2 --weight_decay 4e-5 --epochs "$EPOCHS" $FORCE_FLAG

echo "Baseline accuracies: $OUT/logs_${ARCH}/baseline_${CFG}_acc.txt"
