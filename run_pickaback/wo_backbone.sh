#!/usr/bin/env bash
# STEP 2-1) Train every task alone with CPG and prune it gradually; each task's pruned model is a
# candidate backbone for later targets. Usage: bash run_pickaback/wo_backbone.sh [cfg]
source "$(dirname "$0")/common.sh"

max_width=${MAX_WIDTH:-1.0}

# One task alone: CPG's compact step (common.sh), from a fresh model at width 1.0.
backbone_of_task() {
  local task
  task=$(task_name "$1")
  echo "=== task $1 (${task})"
  compact_task "$task" "$(path_of backbone_dir "$task")" 1.0 "$max_width" 5
}

# shellcheck disable=SC2046
run_jobs "$(path_of backbones_root)" backbone_of_task backbone_of_task $(task_ids)
