#!/usr/bin/env bash
# STEP 3-2) Train every target of pickaback_<cfg>_result.csv on its selected backbone with CPG,
# growing the network (1.0 -> 1.5 -> 2.0) while it stays under its baseline, and on the backbone's untrained
# twin (the same structure, ownership and recipe with fresh weights: what the recipe gives without the
# backbone's knowledge; UNTRAINED=0 skips it); then write results_<cfg>.csv.
# Usage: [UNTRAINED=0] bash run_pickaback/w_backbone.sh [cfg]
source "$(dirname "$0")/common.sh"

# says so when step 3-1 has not run, or made a pick of these targets from a model changed since
read -ra targets <<< "$(task_ids)"
picks=$("$PY" -m tools.task_info "$CFG" --selections "${targets[@]}" --arch "$ARCH" --seed "$SEED")

pairs=()
while read -r target_id task_id; do
  [ -n "$target_id" ] && pairs+=("${target_id} ${task_id}")
done <<< "$picks"
run_jobs "$T_ROOT" target_on_backbone target_on_backbone "${pairs[@]}"

under=()
for pair in "${pairs[@]}"; do
  read -r target_id task_id <<< "$pair"
  target=$(task_name "$target_id")
  if grep -qs '"reached_baseline": false' "$(path_of target_dir "$target" "$(task_name "$task_id")")/scratch/outcome.json"; then
    under+=("${target_id} (${target})")
  fi
done
if [ ${#under[@]} -gt 0 ]; then
  echo "Under their baseline at the widest network allowed (${MAX_WIDTH:-2.0}): ${under[*]}"
fi
# the run's figures per target (results_<cfg>.csv), read by the summary and the report
"$PY" -m tools.results_table "$CFG" --arch "$ARCH" --seed "$SEED"
