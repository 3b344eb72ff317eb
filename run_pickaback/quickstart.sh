#!/usr/bin/env bash
# The README's main command: set up .venv (first run only), then run the whole pipeline on the demo
# config (steps 1 -> 2-1 -> 2-2 -> 3-1 -> 4 -> 3-2, which writes results_<cfg>.csv) and print one summary table.
# Re-running resumes: finished work is skipped (FORCE=1 redoes it). Another config:
# bash run_pickaback/quickstart.sh cifar100. Several seeds: SEEDS="1 2 3" bash run_pickaback/quickstart.sh
# runs the pipeline once per seed (side by side: seed S != 2 under seed<S>/) and reports them together.
set -euo pipefail
cfg=${1:-demo}
case "$cfg" in *.toml|*.json) [[ "$cfg" = /* ]] || cfg="$PWD/$cfg" ;; esac   # a config file: the caller's path
source "$(dirname "$0")/../tools/setup_venv.sh"
arch=${ARCH:-perceiver_io}
seeds=${SEEDS:-${SEED:-$("$PY" -c 'from utils.paths import DEFAULT_SEED; print(DEFAULT_SEED)')}}
started=$(date +%s)
for seed in $seeds; do
  of_seed=""
  if [ "$(wc -w <<< "$seeds")" -gt 1 ]; then of_seed=" (seed ${seed})"; fi
  for step in baseline wo_backbone select_pruning_ratio_of_backbone find_backbone transfer_kv w_backbone; do
    echo
    echo "##### run_pickaback/${step}.sh ${cfg}${of_seed}"
    SEED=$seed bash "run_pickaback/${step}.sh" "$cfg"
  done
  "$PY" -m tools.report "$cfg" --arch "$arch" --seed "$seed" --summary
done
echo
echo "Pipeline finished in $(( $(date +%s) - started ))s."
echo
# shellcheck disable=SC2086  # one argument per seed
"$PY" -m tools.report "$cfg" --arch "$arch" --seeds $seeds
echo
# shellcheck disable=SC2086  # one argument per task
n=$("$PY" -m tools.task_info "$cfg" --list ${TASKS:-} | wc -l)   # the tasks this run trained
echo "Is the selected backbone the one that helps most? The transfer control trains every target on every"
echo "candidate, ${n} x $(( n - 1 )) runs, again at a second training seed to tell real differences from noise:"
echo "  CONTROL_SEEDS=\"3\" bash run_pickaback/transfer_matrix.sh ${cfg}"
echo "Better than learning the tasks in sequence alone? METHOD=cpg (or packnet) bash run_pickaback/learn_in_sequence.sh ${cfg}"
