#!/usr/bin/env bash
# CONTINUAL-LEARNING BASELINES) What a device would do alone: learn the config's tasks (or TASKS, in that order)
# one after another in one model, and evaluate every task learned so far after each one (the accuracy matrix R,
# <sequence folder>/accuracy_matrix.json). Needs step 1: the first task is its model, trained alone.
#   METHOD=cpg      CPG as in its paper: each task picks from every earlier task's weights, grows (by 0.5, up to
#                   MAX_WIDTH, default 2.0) while under its baseline, is pruned gradually (PRUNE_STAGES) while it
#                   stays at its baseline, and hands on step 2-2's choice.
#   METHOD=packnet  PackNet: each task trains on the free weights, every earlier task's weight used whole and
#                   frozen, then PACKNET_PRUNE (default 0.5) of its weights are freed at once and the rest
#                   retrained for PRUNE_EPOCHS; no growth.
# Then `python -m tools.continual table <cfg>` sets the sequences beside scratch and Pick-a-back (cl_<cfg>.csv).
# Usage: [METHOD=cpg|packnet] [TASKS="3 1 2"] bash run_pickaback/learn_in_sequence.sh [cfg]
source "$(dirname "$0")/common.sh"

check_choice METHOD cpg packnet
METHOD=${METHOD:-cpg}
check_number PACKNET_PRUNE number 'v > 0 && v < 1' "a share greater than 0 and less than 1"
PACKNET_PRUNE=${PACKNET_PRUNE:-0.5}
read -r -a ids <<< "$(task_ids)"
S="$(path_of sequences_root)/${METHOD}_$(IFS=-; echo "${ids[*]}")"   # the order is part of the sequence's name
echo "Sequence ${METHOD} of tasks ${ids[*]} in ${S}"

# The width the finetune of the task whose gradual_prune/ folder is $1 ended at: the next task starts there.
width_of() { "$PY" -m tools.transfer_control width "$(dirname "$1")"; }

# One CPG task on the model of the tasks before it (folder $2; none for the first); sets model_of_task.
cpg_task() {
  local task=$1 previous=$2 R="$S/$1" from=1.0
  [ -z "$previous" ] || from=$(width_of "$previous")
  compact_task "$task" "$R" "$from" "${MAX_WIDTH:-2.0}" "${#ids[@]}" ${previous:+--load_folder "$previous"}
  "$PY" -m tools.choose_appropriate_pruning_ratio_for_next_task_notrmfiles \
    --pruning_ratio_to_acc_record_file "$R/gradual_prune/record.txt" --baseline_acc_file "$BASELINE_FILE" \
    --dataset "$task" --log_path "$R/train.log" "${ACC_ARGS[@]}"
  model_of_task="$R/gradual_prune"
}

# One PackNet task on the model of the tasks before it (folder $2; none for the first: step 1's model).
packnet_task() {
  local task=$1 previous=$2 R="$S/$1" trained
  local PACKNET=("$PY" packnet_cifar100_main_normal.py "${COMMON_ARGS[@]}" --dataset "$task" "${TRAIN_ARGS[@]}"
                 --logfile "$BASELINE_FILE" $FORCE_FLAG)
  trained="$R/scratch"
  if [ -z "$previous" ]; then
    trained=$(path_of baseline_dir "$task")
  else
    echo "=== ${task}: train on the free weights"
    run_status "${PACKNET[@]}" --load_folder "$previous" --save_folder "$trained" --epochs "$EPOCHS" --lr "$LR"
    case "$status" in
      0) ;;
      5) echo "Task ${task} owns no free weights: it keeps its place in the sequence, untrained but for its head."
         model_of_task=$trained; return 0 ;;
      *) echo "PackNet training of ${task} stopped (exit ${status})." >&2; exit "$status" ;;
    esac
  fi
  echo "=== ${task}: prune ${PACKNET_PRUNE} of its weights, retrain"
  run_status "${PACKNET[@]}" --mode prune --load_folder "$trained" --save_folder "$R/gradual_prune" \
    --one_shot_prune_perc "$PACKNET_PRUNE" --epochs "$PRUNE_EPOCHS" --lr "$PRUNE_LR"
  [ "$status" = 0 ] || { echo "PackNet pruning of ${task} stopped (exit ${status})." >&2; exit "$status"; }
  model_of_task="$R/gradual_prune/${PACKNET_PRUNE}"
}

model_of_task=""
for id in "${ids[@]}"; do
  task=$(task_name "$id")
  echo "##### ${METHOD}: task ${id} (${task})"
  "${METHOD}_task" "$task" "$model_of_task"
  trained_in=("$S/$task")
  if [ "$id" = "${ids[0]}" ]; then trained_in+=("$(path_of baseline_dir "$task")"); fi   # its epochs are step 1's
  "$PY" -m tools.continual evaluate "$CFG" --arch "$ARCH" --seed "$SEED" --sequence "$S" --tasks "${ids[@]}" \
    --after "$id" --model "$model_of_task" \
    --trained_in "${trained_in[@]}"
done
echo "Sequence done. The CL table: ${PY} -m tools.continual table ${CFG_NAME}"
