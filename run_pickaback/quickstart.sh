#!/usr/bin/env bash
# The README's main command: set up .venv (first run only), then run the whole pipeline on the demo
# config (steps 1 -> 2-1 -> 2-2 -> 3-1 -> 4 -> 3-2) and print one summary table. Re-running resumes:
# finished work is skipped (FORCE=1 redoes it). Another config: bash run_pickaback/quickstart.sh cifar100
set -euo pipefail
source "$(dirname "$0")/../tools/setup_venv.sh"
cfg=${1:-demo}
started=$(date +%s)
for step in baseline wo_backbone select_pruning_ratio_of_backbone find_backbone transfer_kv w_backbone; do
  echo
  echo "##### run_pickaback/${step}.sh ${cfg}"
  bash "run_pickaback/${step}.sh" "$cfg"
done
"$PY" tools/summarize_pipeline.py "$cfg" --arch "${ARCH:-perceiver_io}" --seed "${SEED:-2}"
echo
echo "Pipeline finished in $(( $(date +%s) - started ))s."
echo
"$PY" tools/report.py "$cfg" --arch "${ARCH:-perceiver_io}" --seed "${SEED:-2}"
echo
echo "Is the selected backbone the one that helps most? The transfer control trains every target on every"
echo "candidate (more than an hour on 2 cores for the demo's 12 x 11 pairs): bash run_pickaback/transfer_matrix.sh ${cfg}"
