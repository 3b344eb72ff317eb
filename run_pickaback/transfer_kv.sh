#!/usr/bin/env bash
# STEP 4) For every row of pickaback_<cfg>_result.csv, register the target in a copy of its
# backbone's chosen checkpoint with the target's own key/value input projection.
# Usage: bash run_pickaback/transfer_kv.sh [cfg]
source "$(dirname "$0")/common.sh"

if [ "$ARCH" != perceiver_io ]; then
  echo "${ARCH} has no key/value input projection; step 3-2 starts from the backbone's chosen checkpoint."
  exit 0
fi
# shellcheck disable=SC2046
"$PY" transfer_kv_perceiver_io.py --arch "$ARCH" --dataset_config "$CFG" --seed "$SEED" --target_id $(task_ids) $FORCE_FLAG
