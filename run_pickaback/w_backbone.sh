#!/usr/bin/env bash
# STEP 3-2) Train every target of pickaback_<cfg>_result.csv on its selected backbone with CPG,
# growing the network (1.0 -> 1.5 -> 2.0) while it stays under its baseline.
# Usage: bash run_pickaback/w_backbone.sh [cfg]
source "$(dirname "$0")/common.sh"

result="$OUT/pickaback_${CFG}_result.csv"
if [ ! -f "$result" ]; then
  echo "error: ${result} is missing; run run_pickaback/find_backbone.sh ${CFG} first." >&2
  exit 1
fi
max_width=${MAX_WIDTH:-2.0}
wanted=" $(task_ids) "
under=()

mapfile -t rows < <(tail -n +2 "$result" | tr -d '\r"')
for row in "${rows[@]}"; do
  IFS=, read -r target_id task_id <<< "$row"
  [[ "$wanted" == *" ${target_id} "* ]] || continue
  target=$(task_name "$target_id"); backbone=$(task_name "$task_id")
  B="$OUT/checkpoints_${ARCH}/CPG_single_scratch_woexp/${ARCH}/${CFG}/${backbone}/gradual_prune"
  T="$OUT/checkpoints_${ARCH}/CPG_fromsingle_scratch_woexp_target/${ARCH}/${CFG}/${backbone}/${target}"
  if [ "$ARCH" = perceiver_io ]; then
    # the file step 4 wrote from the checkpoint step 2-2 chose (never a guess among the files present)
    start=(--load_checkpoint "$("$PY" tools/task_info.py "$CFG" "$target_id" --transfer_on "$task_id" \
      --arch "$ARCH" --seed "$SEED")")
  else
    start=(--load_folder "$B")
  fi
  echo "=== target ${target_id} (${target}) on backbone ${task_id} (${backbone})"
  finetune_growing "$max_width" "$PY" CPG_MM_main_normal.py "${COMMON_ARGS[@]}" --dataset "$target" \
    --mode finetune "${start[@]}" --save_folder "$T/scratch" --epochs "$EPOCHS" --lr 1e-2 --lr_mask 1e-4 \
    --weight_decay 4e-5 --pruning_ratio_to_acc_record_file "$T/gradual_prune/record.txt" \
    --log_path "$T/train.log" --jsonfile "$BASELINE_FILE" --total_num_tasks 5 "${ACC_ARGS[@]}" $FORCE_FLAG
  case "$status" in
    0|5) ;;
    *) echo "Step 3-2 stopped at target ${target} (exit ${status})." >&2; exit "$status" ;;
  esac
  if grep -qs '"reached_baseline": false' "$T/scratch/outcome.json"; then under+=("${target_id} (${target})"); fi
done

if [ ${#under[@]} -gt 0 ]; then
  echo "Under their baseline at the widest network allowed (${max_width}): ${under[*]}"
fi
