#!/usr/bin/env bash
# STEP 3-1) For every target, compare the decision patterns (ModelDiff) of every other task's
# baseline model with the target's and select the most similar one as its backbone.
# Usage: bash run_pickaback/find_backbone.sh [cfg]     (SELECT=dissimilar reproduces the original code)
source "$(dirname "$0")/common.sh"

# shellcheck disable=SC2046
"$PY" pickaback_perceiverIO.py --arch "$ARCH" --dataset_config "$CFG" --seed "$SEED" --device "$DEVICE" \
  --target_id $(task_ids) --select "${SELECT:-similar}" --candidates "${CANDIDATES:-all}"
