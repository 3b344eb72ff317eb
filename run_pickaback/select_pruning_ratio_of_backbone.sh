#!/usr/bin/env bash
# STEP 2-2) For every task, choose the largest pruning ratio that keeps the baseline accuracy;
# its checkpoint becomes the task's backbone model. Usage: bash run_pickaback/select_pruning_ratio_of_backbone.sh [cfg]
source "$(dirname "$0")/common.sh"

for id in $(task_ids); do
  task=$(task_name "$id")
  R=$(path_of backbone_dir "$task")
  echo "=== task ${id} (${task})"
  "$PY" -m tools.choose_appropriate_pruning_ratio_for_next_task_notrmfiles \
    --pruning_ratio_to_acc_record_file "$R/gradual_prune/record.txt" --baseline_acc_file "$BASELINE_FILE" \
    --dataset "$task" --log_path "$R/train.log" "${ACC_ARGS[@]}"
done
