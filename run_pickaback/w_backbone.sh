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
wanted=" $(task_ids) "
under=()

mapfile -t rows < <(tail -n +2 "$result" | tr -d '\r"')
for row in "${rows[@]}"; do
  IFS=, read -r target_id task_id <<< "$row"
  [[ "$wanted" == *" ${target_id} "* ]] || continue
  target=$(task_name "$target_id"); backbone=$(task_name "$task_id")
  echo "=== target ${target_id} (${target}) on backbone ${task_id} (${backbone})"
  train_on_backbone "$target_id" "$task_id" ""
  if grep -qs '"reached_baseline": false' "$T_ROOT/${backbone}/${target}/scratch/outcome.json"; then
    under+=("${target_id} (${target})")
  fi
done

if [ ${#under[@]} -gt 0 ]; then
  echo "Under their baseline at the widest network allowed (${MAX_WIDTH:-2.0}): ${under[*]}"
fi
