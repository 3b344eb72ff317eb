#!/usr/bin/env bash
# STEP 3-1) For every target, compare the decision patterns (ModelDiff) of every other task's
# baseline model with the target's and select the most similar one as its backbone.
# Usage: bash run_pickaback/find_backbone.sh [cfg]     (SCORE=logme|leep|cka ranks by a score reported beside
# ModelDiff instead; CROSS_MODAL_PROBES=paired compares a candidate of the other modality on the target's paired
# samples where the config pairs them; SELECTION_ARGS adds any other step 3-1 argument.) The original code's
# selection: SELECT=dissimilar MODELDIFF_ITERATIONS=100 SELECTION_ARGS="--ddv_outputs logits --ddv_pairs halves
#   --n_inputs 100 --compare baseline --profile_source both" bash run_pickaback/find_backbone.sh [cfg]
source "$(dirname "$0")/common.sh"

# TASKS narrows both the targets and their peers (a peer must have gone through steps 1 and 2-1); TARGETS
# narrows the targets only (the Ray launcher runs one target per job).
tasks=$(task_ids)
targets=${TARGETS:-$tasks}
# shellcheck disable=SC2086
"$PY" pickaback_perceiverIO.py --arch "$ARCH" --dataset_config "$CFG" --seed "$SEED" --device "$DEVICE" \
  --target_id $targets --candidate_ids $tasks --select "${SELECT:-similar}" ${SCORE:+--score "$SCORE"} \
  --candidates "${CANDIDATES:-all}" --cross_modal_probes "${CROSS_MODAL_PROBES:-target_adapter}" \
  --max_iterations "$MODELDIFF_ITERATIONS" $FORCE_FLAG $VERBOSE_FLAG ${SELECTION_ARGS:-}
