#!/usr/bin/env bash
# THE TRANSFER CONTROL) Train every target with step 3-2's recipe on every candidate backbone (or a
# subset), from scratch at the width its selected-backbone run ended at (capacity-matched scratch),
# and on an untrained backbone; collect every run into pickaback_<cfg>_transfer.csv, which
# tools/bench_selection.py turns into regret, rank and correlation. Needs steps 1 to 3-1; the selected
# pair is step 3-2's own run (reused when it is done). Backbones are only read, never written.
# Usage: [CONTROL_BACKBONES=all|related|random:K] [JOBS=2] bash run_pickaback/transfer_matrix.sh [cfg]
source "$(dirname "$0")/common.sh"

jobs=${JOBS:-1}
# shellcheck disable=SC2046
mapfile -t plan < <("$PY" tools/transfer_control.py plan "$CFG" --arch "$ARCH" --seed "$SEED" \
  --backbones "${CONTROL_BACKBONES:-all}" --targets $(task_ids))

if [ "$ARCH" = perceiver_io ]; then   # step 4 for every (target, backbone) pair, in one process
  pairs=()
  for line in "${plan[@]}"; do
    read -r target_id backbone_ids <<< "$line"
    for backbone_id in $backbone_ids; do pairs+=("${target_id}:${backbone_id}"); done
  done
  "$PY" transfer_kv_perceiver_io.py --arch "$ARCH" --dataset_config "$CFG" --seed "$SEED" --pairs "${pairs[@]}" \
    $FORCE_FLAG
fi

# One target: its selected backbone first (the width that run ends at sizes the scratch control), then
# scratch at that width, the untrained backbone (the selected one's structure, re-initialised), and the
# other candidates.
control_target() {
  local target_id=$1 selected=$2; shift 2
  local target width
  target=$(task_name "$target_id")
  echo "=== control of target ${target_id} (${target}): backbones ${selected} (selected) $*, scratch, untrained"
  train_on_backbone "$target_id" "$selected" ""
  width=$("$PY" tools/transfer_control.py width "$T_ROOT/$(task_name "$selected")/${target}")
  train_target "$target" "$T_ROOT/scratch@${width}/${target}" "$width" "$width"
  train_on_backbone "$target_id" "$selected" "$T_ROOT/untrained/${target}" --untrained_backbone
  for backbone_id in "$@"; do train_on_backbone "$target_id" "$backbone_id" ""; done
}

if [ "$jobs" -gt 1 ]; then
  # independent targets as parallel processes, each with its share of the cores; a log per target
  cores=$(nproc)
  export OMP_NUM_THREADS=$(( cores / jobs > 0 ? cores / jobs : 1 ))
  mkdir -p "$T_ROOT"
  for line in "${plan[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
      wait -n || { echo "A target's control failed; see $T_ROOT/control_<target id>.log." >&2; exit 1; }
    done
    echo "control of target ${line%% *}: log in $T_ROOT/control_${line%% *}.log"
    # shellcheck disable=SC2086
    (control_target $line > "$T_ROOT/control_${line%% *}.log" 2>&1) &
  done
  while [ "$(jobs -rp | wc -l)" -gt 0 ]; do
    wait -n || { echo "A target's control failed; see $T_ROOT/control_<target id>.log." >&2; exit 1; }
  done
else
  for line in "${plan[@]}"; do
    # shellcheck disable=SC2086
    control_target $line
  done
fi

"$PY" tools/transfer_control.py collect "$CFG" --arch "$ARCH" --seed "$SEED"
seed_flag=""; [ "$SEED" = 2 ] || seed_flag=" --seed $SEED"
echo "Selection quality: .venv/bin/python tools/bench_selection.py ${CFG}${seed_flag}"
