#!/usr/bin/env bash
# STEP 2-1) Train every task alone with CPG and prune it gradually; each task's pruned model is a
# candidate backbone for later targets. Usage: bash run_pickaback/wo_backbone.sh [cfg]
source "$(dirname "$0")/common.sh"

max_width=${MAX_WIDTH:-1.0}

# One task: its CPG finetune (growing while under its baseline), then its pruning stages.
backbone_of_task() {
  local id=$1 task R initial load target
  task=$(task_name "$id")
  R=$(path_of backbone_dir "$task")
  local CPG=("$PY" CPG_MM_main_normal.py "${COMMON_ARGS[@]}" --dataset "$task" --jsonfile "$BASELINE_FILE"
             "${TRAIN_ARGS[@]}" --total_num_tasks 5
             --pruning_ratio_to_acc_record_file "$R/gradual_prune/record.txt" --log_path "$R/train.log"
             "${ACC_ARGS[@]}" $FORCE_FLAG)
  echo "=== task ${id} (${task}): finetune"
  finetune_growing 1.0 "$max_width" "${CPG[@]}" --mode finetune --save_folder "$R/scratch" --epochs "$EPOCHS" \
    --lr "$LR" --lr_mask 1e-4
  case "$status" in
    0) ;;
    5) echo "Task ${task} owns no free weights: skipping its pruning."; return 0 ;;
    *) echo "Step 2-1 stopped at task ${task} (exit ${status})." >&2; exit "$status" ;;
  esac

  initial=0.0
  for target in $PRUNE_STAGES; do
    load="$R/gradual_prune"; [ "$initial" = 0.0 ] && load="$R/scratch"
    echo "=== task ${id} (${task}): prune ${initial} -> ${target}"
    run_status "${CPG[@]}" --mode prune --load_folder "$load" --save_folder "$R/gradual_prune" \
      --epochs "$PRUNE_EPOCHS" --lr "$PRUNE_LR" --lr_mask 0.0 --network_width_multiplier "$width" \
      --max_allowed_network_width_multiplier "$max_width" \
      --initial_sparsity "$initial" --target_sparsity "$target" \
      --pruning_interval "$PRUNING_INTERVAL" --pruning_frequency "$PRUNING_FREQUENCY"
    case "$status" in
      0) initial=$target ;;
      5|6) break ;;
      *) echo "Step 2-1 stopped at task ${task}, pruning stage ${target} (exit ${status})." >&2; exit "$status" ;;
    esac
  done
}

# shellcheck disable=SC2046
run_jobs "$(path_of backbones_root)" backbone_of_task backbone_of_task $(task_ids)
