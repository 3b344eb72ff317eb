# Sourced by every step script: the dataset config ($1), the Python of .venv, and the settings of
# the chosen profile. Override with environment variables, e.g.
#   ARCH=lenet5 PROFILE=paper TASKS="1 4" FORCE=1 bash run_pickaback/baseline.sh cifar100
set -euo pipefail

# The dataset config: a built-in name, a name with data/<name>/dataset.toml, or a path to a .toml/.json
# file. A relative path is the caller's, so it is made absolute before the cd to the repository.
CFG=${1:-demo}
case "$CFG" in *.toml|*.json) [[ "$CFG" = /* ]] || CFG="$PWD/$CFG" ;; esac
# so are relative output and data roots (the Python steps read them in the repository)
for root in MMPAB_OUTPUT_ROOT MMPAB_DATA_ROOT; do
  if [ -n "${!root:-}" ] && [[ "${!root}" != /* ]]; then export "$root=$PWD/${!root}"; fi
done
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# A bad setting is one sentence and exit 1 (2, 3, 5 and 6 are the steps' protocol), before any work.
refuse() { echo "$*" >&2; exit 1; }
# check_number NAME KIND CONDITION REQUIREMENT: $NAME (unless empty: the default) must be a KIND (whole: digits;
# number: a decimal; list: decimals separated by spaces; wholes: whole numbers separated by spaces) for which the
# awk CONDITION on v holds (p: the list's previous item); REQUIREMENT says what it must be. Whole numbers lose their
# leading zeros (bash reads 010 as 8, and 02 is seed 2).
check_number() {
  local name=$1 kind=$2 condition=$3 requirement=$4 value=${!1:-} items=() item prev="" wholes=()
  local pattern='^[-+]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][-+]?[0-9]+)?$'
  [ -n "$value" ] || return 0
  if [ "$kind" = list ] || [ "$kind" = wholes ]; then read -r -a items <<< "$value"; else items=("$value"); fi
  if [ "$kind" = whole ] || [ "$kind" = wholes ]; then pattern='^[0-9]+$'; fi
  for item in "${items[@]}"; do
    [[ "$item" =~ $pattern ]] && awk -v x="$item" -v y="$prev" "BEGIN { v = x + 0; p = y + 0; exit !($condition) }" ||
      refuse "${name} must be ${requirement}, not \"${value}\"."
    prev=$item
    item=${item#"${item%%[!0]*}"}; wholes+=("${item:-0}")
  done
  if [ "$kind" = whole ] || [ "$kind" = wholes ]; then printf -v "$name" '%s' "${wholes[*]}"; fi
}
# check_choice NAME CHOICE...: $NAME (unless empty: the default) must be one of the choices.
check_choice() {
  local name=$1 choice; shift
  for choice in "" "$@"; do [ "${!name:-}" != "$choice" ] || return 0; done
  refuse "${name} must be one of: $(printf '%s, ' "$@" | sed 's/, $//') (or empty), not \"${!name}\"."
}
check_choice ARCH perceiver_io lenet5
check_choice PROFILE demo paper
if [ -n "${MMPAB_OUTPUT_ROOT:-}" ] && [ -e "$MMPAB_OUTPUT_ROOT" ] && [ ! -d "$MMPAB_OUTPUT_ROOT" ]; then
  refuse "MMPAB_OUTPUT_ROOT names a file, ${MMPAB_OUTPUT_ROOT}, where the steps write into a folder: give a folder's path."
fi

ARCH=${ARCH:-perceiver_io}
if [ -x .venv/bin/python ]; then PY=${PYTHON:-.venv/bin/python}; else PY=${PYTHON:-python3}; fi
# Output paths and messages use the config's name (a config file's `name`, not its path); reading it here
# also stops a wrong config file with its one-line error before any work starts.
CFG_NAME=$("$PY" -m tools.task_info "$CFG" --config_name)
# The demo config trains the small model for a CPU; real data gets the paper's sizes and epochs.
if [ "$CFG_NAME" = demo ]; then PROFILE=${PROFILE:-demo}; else PROFILE=${PROFILE:-paper}; fi
SEED=${SEED:-$("$PY" -c 'from utils.paths import DEFAULT_SEED; print(DEFAULT_SEED)')}
DEVICE=${DEVICE:-auto}

if [ "$PROFILE" = paper ]; then
  OPTIMIZER=${OPTIMIZER:-sgd}   # the original's recipe: SGD at 1e-2, its pruning stages at 1e-3
  LR=${LR:-1e-2}
  PRUNE_LR=${PRUNE_LR:-1e-3}
  EPOCHS=${EPOCHS:-100}
  PRUNE_EPOCHS=${PRUNE_EPOCHS:-20}
  PRUNE_STAGES=${PRUNE_STAGES:-"0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9 0.95"}
  PRUNING_INTERVAL=${PRUNING_INTERVAL:-4}    # epochs over which a stage's sparsity ramps up
  PRUNING_FREQUENCY=${PRUNING_FREQUENCY:-10} # optimizer steps between mask updates
else
  # Adam learns the demo's shape tasks in 15 epochs where SGD at 1e-2 stayed under 0.5 in 30
  OPTIMIZER=${OPTIMIZER:-adam}
  LR=${LR:-2e-3}
  PRUNE_LR=${PRUNE_LR:-5e-4}
  EPOCHS=${EPOCHS:-15}
  PRUNE_EPOCHS=${PRUNE_EPOCHS:-2}
  # independent tasks as parallel single-threaded processes: on 2 cores 1.4x the throughput of one
  # two-threaded process (the demo model's operations are too small to use two cores well)
  JOBS=${JOBS:-$(( $(nproc) < 4 ? $(nproc) : 4 ))}
  PRUNE_STAGES=${PRUNE_STAGES:-"0.3 0.6 0.9"}
  PRUNING_INTERVAL=${PRUNING_INTERVAL:-1}
  PRUNING_FREQUENCY=${PRUNING_FREQUENCY:-2}
fi
JOBS=${JOBS:-1}
MODELDIFF_ITERATIONS=${MODELDIFF_ITERATIONS:-0}     # the profiling-input search's length (the original's: 100)
# Every setting once, as the Python flags they become take them (utils/cli.py), so that a bad one stops here and
# not after hours of work (or, like JOBS=0, in a bash error).
check_number JOBS whole 'v >= 1' "a whole number of at least 1"
check_number EPOCHS whole 'v >= 1' "a whole number of at least 1"
check_number PRUNE_EPOCHS whole 'v >= 1' "a whole number of at least 1"
check_number PRUNING_INTERVAL whole 'v >= 1' "a whole number of at least 1"
check_number PRUNING_FREQUENCY whole 'v >= 1' "a whole number of at least 1"
check_number MODELDIFF_ITERATIONS whole 'v >= 0' "a whole number of at least 0"
check_number SEED whole 'v < 2 ^ 32' "a whole number from 0 to 4294967295"
check_number CONTROL_SEEDS wholes 'v < 2 ^ 32' "whole numbers from 0 to 4294967295 separated by spaces (training seeds)"
check_number LR number 'v > 0' "a number greater than 0"
check_number PRUNE_LR number 'v > 0' "a number greater than 0"
check_number MAX_WIDTH number 'v >= 1' "a number of at least 1 (a width multiplier; training starts at 1.0)"
check_number PRUNE_STAGES list 'v > 0 && v < 1 && v > p' \
  "pruning ratios greater than 0 and less than 1, separated by spaces, each greater than the one before"
# the tolerance of every "reached its baseline?" decision (steps 2-1, 2-2, 3-2): an accuracy difference
check_number ALLOW_ACC_LOSS number 'v >= 0 && v < 1' "a number from 0 up to (not including) 1"
check_choice DEVICE auto cpu cuda
check_choice OPTIMIZER sgd adam
check_choice FORCE 0 1
check_choice VERBOSE 0 1
check_choice TENSORBOARD 0 1
check_choice UNTRAINED 0 1
# step 3-1's choices, checked before step 1 rather than after step 2 (tests/test_run_jobs.py holds them to its parser)
check_choice SCORE modeldiff modeldiff_cos logme leep cka modeldiff_untrained
check_choice SELECT similar dissimilar
check_choice CANDIDATES all same-modality
check_choice CROSS_MODAL_PROBES paired target_adapter
# the task lists as ids, each once and in their order ("01" and a task's name are its id): an unknown task stops here
for list in TASKS TARGETS CONTROL_TARGETS; do
  [ -n "${!list:-}" ] || continue
  ids=$("$PY" -m tools.task_info "$CFG" --list ${!list})
  printf -v "$list" '%s' "${ids//$'\n'/ }"
done
FORCE_FLAG=""
if [ "${FORCE:-0}" = 1 ]; then FORCE_FLAG="--force"; fi
# The console shows one line per finished stage (or target); VERBOSE=1 echoes every line of the logs too
# (each epoch's, each candidate's distances), as the original printed them.
VERBOSE_FLAG=""
if [ "${VERBOSE:-0}" = 1 ]; then VERBOSE_FLAG="--verbose"; fi

COMMON_ARGS=(--arch "$ARCH" --profile "$PROFILE" --dataset_config "$CFG" --seed "$SEED" --device "$DEVICE")
TRAIN_ARGS=(--optimizer "$OPTIMIZER" --weight_decay 4e-5)   # every training run of steps 1, 2-1 and 3-2
if [ -n "$VERBOSE_FLAG" ]; then TRAIN_ARGS+=("$VERBOSE_FLAG"); fi
if [ "${TENSORBOARD:-0}" = 1 ]; then TRAIN_ARGS+=(--tensorboard); fi   # scalars in tensorboard/ beside train.log

# The task ids to run: $TASKS when given, else every task of the config (LeNet-5: its image tasks).
task_ids() {
  local only=()
  if [ "$ARCH" = lenet5 ]; then only=(--modality image); fi
  if [ -n "${TASKS:-}" ]; then echo "$TASKS"; else "$PY" -m tools.task_info "$CFG" --list "${only[@]}" | tr '\n' ' '; fi
}

task_name() { "$PY" -m tools.task_info "$CFG" "$1" --field name; }

# path_of <kind> [<task> [<backbone folder> [<training seed>]]]: an output path of this run (seed, arch,
# $MMPAB_OUTPUT_ROOT) as utils/paths.py lays it out, e.g. `path_of backbone_dir shapes_clean` (kinds:
# tools/task_info.py --help); a training seed names a transfer-control run's repeat with that seed.
path_of() {
  local kind=$1 task=${2:-} backbone=${3:-} training_seed=${4:-}
  "$PY" -m tools.task_info "$CFG" ${task:+"$task"} --path "$kind" ${backbone:+--backbone "$backbone"} \
    ${training_seed:+--training_seed "$training_seed"} --arch "$ARCH" --seed "$SEED"
}

# Run a command and put its exit status in $status without tripping `set -e`.
run_status() { status=0; "$@" || status=$?; }

# CPG's loop for task $1 (name) into folder $2, in one process: its finetune into $2/scratch, from width $3 growing
# by 0.5 up to $4 while under its baseline, then the pruning stages its arguments ask for into $2/gradual_prune, each
# kept while the task stays at its baseline; $5 names the run in the message when it stops; more arguments are
# passed on.
cpg_loop() {
  local task=$1 R=$2 from=$3 max=$4 what=$5; shift 5
  run_status "$PY" CPG_MM_main_normal.py "${COMMON_ARGS[@]}" --dataset "$task" --mode cpg --jsonfile "$BASELINE_FILE" \
    "${TRAIN_ARGS[@]}" --pruning_ratio_to_acc_record_file "$R/gradual_prune/record.txt" --log_path "$R/train.log" \
    "${ACC_ARGS[@]}" $FORCE_FLAG --save_folder "$R/scratch" --epochs "$EPOCHS" --lr "$LR" --lr_mask 1e-4 \
    --network_width_multiplier "$from" --max_allowed_network_width_multiplier "$max" "$@"
  [ "$status" = 0 ] || { echo "${what} stopped (exit ${status})." >&2; exit "$status"; }
}

# CPG's compact step for task $1 in folder $2 (step 2-1, and learn_in_sequence.sh's CPG): cpg_loop from width $3 up
# to $4 with the pruning stages; $5 is the number of tasks the model is to hold (the pruning loop frees enough for
# them), more arguments (the earlier tasks' model) go to the finetune.
compact_task() {
  # shellcheck disable=SC2086  # one argument per stage
  cpg_loop "$1" "$2" "$3" "$4" "CPG training of $1 into $2" --total_num_tasks "$5" --prune_stages $PRUNE_STAGES \
    --prune_epochs "$PRUNE_EPOCHS" --prune_lr "$PRUNE_LR" --pruning_interval "$PRUNING_INTERVAL" \
    --pruning_frequency "$PRUNING_FREQUENCY" "${@:6}"
}

# Step 3-2's recipe, for step 3-2 and the transfer control: cpg_loop of target $1 (name) into folder $2 from width
# $3 up to $4, no pruning; further arguments (the start checkpoint) are passed on.
train_target() {
  cpg_loop "$1" "$2" "$3" "$4" "Training of target $1 into $2" --total_num_tasks 5 "${@:5}"
}

# The arguments that start target id $1 on backbone id $2, in start_args: step 4's transfer file (LeNet-5: the
# backbone's chosen checkpoint).
start_on_backbone() {
  local transfer
  if [ "$ARCH" = perceiver_io ]; then
    # the file step 4 wrote from the checkpoint step 2-2 chose (never a guess among the files present)
    transfer=$("$PY" -m tools.task_info "$CFG" "$1" --transfer_on "$2" --arch "$ARCH" --seed "$SEED")
    start_args=(--load_checkpoint "$transfer")
  else
    start_args=(--load_folder "$(path_of backbone_dir "$(task_name "$2")")/gradual_prune")
  fi
}

# Target id $1 on backbone id $2, growing 1.0 -> MAX_WIDTH, into folder $3 (empty: step 3-2's folder of the
# pair); more arguments are passed on.
train_on_backbone() {
  local target_id=$1 backbone_id=$2 folder=$3; shift 3
  local target
  target=$(task_name "$target_id")
  start_on_backbone "$target_id" "$backbone_id"
  train_target "$target" "${folder:-$(path_of target_dir "$target" "$(task_name "$backbone_id")")}" 1.0 \
    "${MAX_WIDTH:-2.0}" "${start_args[@]}" "$@"
}

# Target id $1 on the untrained twin of backbone id $2 (its structure, ownership and pruning, fresh weights) at
# width $3, the width the target's run on that backbone ended at, not growing, into folder $4 (empty: step 3-2's
# untrained/ folder); more arguments are passed on. On the backbone - on the twin (knowledge transfer) then sets two
# runs of one capacity against each other, as the transfer control's capacity-matched scratch does.
train_on_untrained_twin() {
  local target_id=$1 backbone_id=$2 width=$3 folder=$4; shift 4
  local target
  target=$(task_name "$target_id")
  start_on_backbone "$target_id" "$backbone_id"
  train_target "$target" "${folder:-$(path_of target_dir "$target" untrained)}" "$width" "$width" "${start_args[@]}" \
    --untrained_backbone "$@"
}

# The width target id $1's run on backbone id $2 (step 3-2's) ended at.
final_width() {
  "$PY" -m tools.transfer_control width "$(path_of target_dir "$(task_name "$1")" "$(task_name "$2")")"
}

# Step 3-2 of target id $1 on backbone id $2 (w_backbone.sh's, and Ray's, job per pair): on the backbone, then on
# its untrained twin at the width that run ended at (UNTRAINED=0 skips it), whose accuracy results_<cfg>.csv sets
# against it as knowledge transfer.
target_on_backbone() {
  local target_id=$1 task_id=$2 width
  echo "=== target ${target_id} ($(task_name "$target_id")) on backbone ${task_id} ($(task_name "$task_id"))"
  train_on_backbone "$target_id" "$task_id" ""
  if [ "${UNTRAINED:-1}" = 1 ]; then
    echo "=== target ${target_id} on the untrained twin of backbone ${task_id}"
    width=$(final_width "$target_id" "$task_id")
    train_on_untrained_twin "$target_id" "$task_id" "$width" ""
  fi
}

# run_jobs <log dir> <name> <function> <item>...: `<function> <item>` for every item (an item is split into
# words). JOBS=1: one after another, on the console. JOBS>1: up to JOBS at once, each with its share of the
# cores and its output in <log dir>/<name>_<first word of the item>.log, one console line per job started
# and finished; the first failure stops launching new jobs and, once the running ones end, the step.
run_jobs() {
  local logs=$1 name=$2 fn=$3; shift 3
  if [ "$JOBS" -le 1 ]; then
    local item
    # shellcheck disable=SC2086
    for item in "$@"; do $fn $item; done
    return
  fi
  mkdir -p "$logs"
  local cores failed=() item
  cores=$(nproc)
  export OMP_NUM_THREADS=$(( cores / JOBS > 0 ? cores / JOBS : 1 ))
  declare -A log_of=()
  for item in "$@"; do
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do reap_one; done
    [ ${#failed[@]} -eq 0 ] || break
    local log="$logs/${name}_${item%% *}.log"
    # shellcheck disable=SC2086
    ($fn $item > "$log" 2>&1) &
    log_of[$!]=$log
    echo "${name} ${item%% *}: started (log: ${log})"
  done
  # every job started, reaped: one that ended before this loop (a fast failure) is no longer running but failed
  while [ ${#log_of[@]} -gt 0 ]; do reap_one; done
  if [ ${#failed[@]} -gt 0 ]; then
    echo "Stopped: $(printf '%s; ' "${failed[@]}" | sed 's/; $//')." >&2
    exit 1
  fi
}

# (run_jobs) wait for one job; report it, and record it in `failed` when it failed.
reap_one() {
  local pid status=0
  wait -n -p pid || status=$?
  if [ -z "${pid:-}" ]; then log_of=(); return 0; fi     # no job left to wait for
  if [ "$status" = 0 ]; then
    echo "$(basename "${log_of[$pid]}" .log): done"
  else
    # the job's one sentence on the console, so the user need not open the log to know why: its last error line
    # (a step's "... stopped" line follows it), else its last line; without its full stop, as the "Stopped: ..."
    # line ends with one of its own
    local said
    said=$(grep '^error: ' "${log_of[$pid]}" | tail -n 1 | sed 's/^error: //' || true)    # none: grep fails
    [ -n "$said" ] || said=$(tail -n 1 "${log_of[$pid]}")
    failed+=("${log_of[$pid]} (exit ${status}) says: ${said%.}")
  fi
  unset "log_of[$pid]"
}

# One tolerance for every "reached its baseline?" decision (steps 2-1, 2-2, 3-2); the Python default otherwise.
ACC_ARGS=()
if [ -n "${ALLOW_ACC_LOSS:-}" ]; then ACC_ARGS=(--allow_acc_loss "$ALLOW_ACC_LOSS"); fi
# Outputs go under the repository, or under $MMPAB_OUTPUT_ROOT when it is set; a seed other than the
# default writes the same layout under seed<S>/, so seeds live side by side.
BASELINE_FILE=$(path_of baseline_acc_file)
T_ROOT=$(path_of targets_root)   # step 3-2's runs

# Two runs of one step on the same outputs (config, arch, seed, output root) would write the same files: a step
# script (the file that sourced this one) locks each task it works on, and a second run on any of them is refused,
# naming the first. The first run's jobs (run_jobs's, its Python processes) share its locks; runs of other tasks
# (the Ray launcher's per-task jobs) and other steps are not held up. Step 3-2 and the transfer control train the
# same selected pairs, so they share one lock.
lock_tasks() {
  local step=$1 dir id fd file; shift
  dir="$(dirname "$BASELINE_FILE")/locks"
  mkdir -p "$dir"
  for id in "$@"; do
    file="${dir}/${CFG_NAME}_${step}_task${id//[^A-Za-z0-9_.@-]/_}.lock"
    exec {fd}>>"$file"
    if ! flock -n "$fd"; then
      exec {fd}>&-      # closed, so that only the lock's holders have the file open while lock_holder looks
      refuse "Task ${id} of config ${CFG_NAME} is already in a run of this step on these outputs" \
        "($(lock_holder "$file")); wait for it to end, or run other tasks (lock: ${file})."
    fi
    echo "pid $$ ($0 ${CFG}, since $(date '+%F %T'))" > "$file"
  done
}

# (lock_tasks) who holds lock file $1: the run that took it, or, when that run has ended (killed while its jobs went
# on: they hold every lock it took), the processes holding it now (Linux's /proc) and how to stop them
lock_holder() {
  local file pid holders
  file=$(realpath "$1")
  read -r _ pid _ < "$file" || true     # "pid <N> (<script> <cfg>, since <time>)"
  # running, not a zombie (killed, its parent not having collected it yet), which kill -0 would count as alive
  if [ -n "${pid:-}" ] && [[ "$(sed 's/.*) //' "/proc/${pid}/stat" 2>/dev/null)" =~ ^[^Z] ]]; then
    cat "$file"; return
  fi
  holders=$(find /proc/[0-9]*/fd -lname "$file" 2>/dev/null | cut -d/ -f3 | sort -un | tr '\n' ' ')
  echo "$(cat "$file"), which has ended; processes it started still hold the lock${holders:+: kill ${holders% }}"
}
if [ -n "${BASH_SOURCE[1]:-}" ]; then
  case "$(basename "${BASH_SOURCE[1]}" .sh)" in
    find_backbone) lock_tasks find_backbone ${TARGETS:-$(task_ids)} ;;
    w_backbone) lock_tasks w_backbone $(task_ids) ;;
    transfer_matrix) lock_tasks w_backbone ${CONTROL_TARGETS:-$(task_ids)} ;;
    learn_in_sequence) lock_tasks "learn_in_sequence_${METHOD:-cpg}" $(task_ids) ;;   # the methods run side by side
    *) lock_tasks "$(basename "${BASH_SOURCE[1]}" .sh)" $(task_ids) ;;
  esac
fi

# The paper profile without a GPU: say so before any work (a Perceiver stage of a real task takes hours there).
if [ "$PROFILE" = paper ] && { [ "$DEVICE" = cpu ] || ! nvidia-smi -L >/dev/null 2>&1; }; then
  echo "Config ${CFG_NAME} trains the paper profile (the original's model sizes) on the CPU, where one stage of a" \
    "real task can take hours (each stage says its estimate after its first epoch); PROFILE=demo trains a" \
    "CPU-sized model." >&2
fi
# The demo data is generated on first use and again when the generator's format changes (seeded: the
# same files on every machine); a complete copy of the current format is kept, whatever its sizes.
if [ "$CFG_NAME" = demo ]; then "$PY" -m tools.make_demo_data --if-outdated; fi
