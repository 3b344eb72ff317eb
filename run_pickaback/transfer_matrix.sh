#!/usr/bin/env bash
# THE TRANSFER CONTROL) Train every target with step 3-2's recipe on every candidate backbone (or a
# subset), from scratch at the width its selected-backbone run ended at (capacity-matched scratch),
# and on an untrained backbone; collect every run into pickaback_<cfg>_transfer.csv, which
# `python -m tools.transfer_control quality` turns into regret, rank and correlation. Needs steps 1 to 3-1; the selected
# pair is step 3-2's own run (reused when it is done; FORCE=1 redoes every run, that one too). Backbones are only
# read, never written.
# CONTROL_SEEDS="3 4" trains each target's control runs again with each of these training seeds (the same
# backbones and transfer files; a run of seed S in <run folder>/training_seed<S>/), so that the figures are
# means over seeds and the spread between seeds says how large a difference the control can resolve;
# CONTROL_TARGETS="1 4" runs the control for these targets only (the candidates stay every task of TASKS).
# A MAX_WIDTH, EPOCHS, LR, ... other than step 3-2's is refused (FORCE=1 too), as the selected pairs' runs would be
# trained (or decided) again in their place; REPLACE_STEP_3_2=1 allows it (in a copy of the outputs:
# docs/transfer-control.md).
# Usage: [CONTROL_BACKBONES=all|related|random:K] [CONTROL_SEEDS=...] [CONTROL_TARGETS=...] [JOBS=2]
#        [MAX_WIDTH=...] [REPLACE_STEP_3_2=1]
#        bash run_pickaback/transfer_matrix.sh [cfg]
source "$(dirname "$0")/common.sh"

# (an assignment, not `mapfile < <(...)`, so that a refused plan stops the script with its exit status)
# shellcheck disable=SC2046
planned=$("$PY" -m tools.transfer_control plan "$CFG" --arch "$ARCH" --seed "$SEED" \
  --backbones "${CONTROL_BACKBONES:-all}" --targets $(task_ids) ${CONTROL_TARGETS:+--only $CONTROL_TARGETS} \
  --max_width "${MAX_WIDTH:-2.0}" $([ "${REPLACE_STEP_3_2:-0}" = 1 ] && echo --replace_step_3_2))
mapfile -t plan <<< "$planned"

if [ "$ARCH" = perceiver_io ]; then   # step 4 for every (target, backbone) pair, in one process
  pairs=()
  for line in "${plan[@]}"; do
    read -r target_id backbone_ids <<< "$line"
    for backbone_id in $backbone_ids; do pairs+=("${target_id}:${backbone_id}"); done
  done
  "$PY" transfer_kv_perceiver_io.py --arch "$ARCH" --dataset_config "$CFG" --seed "$SEED" --pairs "${pairs[@]}" \
    $FORCE_FLAG
fi

# The selected pair's runs (on the backbone, on its twin) are step 3-2's own: trained again under other settings
# they would be replaced, so they are refused unless REPLACE_STEP_3_2=1.
keep_step_3_2=(--keep_finished)
[ "${REPLACE_STEP_3_2:-0}" != 1 ] || keep_step_3_2=()

# One target: its selected backbone first (the width that run ends at sizes the scratch control), then
# scratch at that width, the untrained backbone (the selected one's structure, re-initialised, at that width), and
# the other candidates; then all of them again for each training seed of CONTROL_SEEDS.
control_target() {
  local target_id=$1 selected=$2; shift 2
  local target matched training_seed backbone_id
  target=$(task_name "$target_id")
  echo "=== control of target ${target_id} (${target}): backbones ${selected} (selected) $*, scratch, untrained"
  train_on_backbone "$target_id" "$selected" "" "${keep_step_3_2[@]}"
  matched=$(final_width "$target_id" "$selected")
  train_target "$target" "$(path_of target_dir "$target" "scratch@${matched}")" "$matched" "$matched"
  train_on_untrained_twin "$target_id" "$selected" "$matched" "" "${keep_step_3_2[@]}"
  for backbone_id in "$@"; do train_on_backbone "$target_id" "$backbone_id" ""; done
  for training_seed in ${CONTROL_SEEDS:-}; do
    [ "$training_seed" != "$SEED" ] || continue
    echo "=== control of target ${target_id} (${target}) again, training seed ${training_seed}"
    # another initialisation and data order; the validation split stays $SEED's, the one step 4's start
    # checkpoints were trained beside (a split redrawn by the training seed would validate on their train part)
    for backbone_id in "$selected" "$@"; do
      train_on_backbone "$target_id" "$backbone_id" \
        "$(path_of target_dir "$target" "$(task_name "$backbone_id")" "$training_seed")" --training_seed "$training_seed"
    done
    train_target "$target" "$(path_of target_dir "$target" "scratch@${matched}" "$training_seed")" "$matched" \
      "$matched" --training_seed "$training_seed"
    train_on_untrained_twin "$target_id" "$selected" "$matched" \
      "$(path_of target_dir "$target" untrained "$training_seed")" --training_seed "$training_seed"
  done
}

run_jobs "$T_ROOT" control control_target "${plan[@]}"

"$PY" -m tools.transfer_control collect "$CFG" --arch "$ARCH" --seed "$SEED"
"$PY" -m tools.results_table "$CFG" --arch "$ARCH" --seed "$SEED"   # now with each target's regret
seed_flag=""; [ "$SEED" = 2 ] || seed_flag=" --seed $SEED"
echo "Selection quality: .venv/bin/python -m tools.transfer_control quality ${CFG}${seed_flag}"
