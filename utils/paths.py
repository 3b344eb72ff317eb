"""Where every step reads and writes: the one definition of the output layout (the bash steps ask
tools/task_info.py --path for theirs).

Outputs live under the repository root, or under `$MMPAB_OUTPUT_ROOT` when it is set (tests use
it to run the pipeline in a temporary folder). The default seed's outputs stay where the original
put them; every other seed S gets the same layout under `seed<S>/`, so runs of several seeds live
side by side and never resume from one another.
"""
import os
from pathlib import Path

from utils.errors import UserError
from utils.results import CHOSEN_FILE, STEP_2_2, chosen_checkpoint

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SEED = 2
# the untrained twin's run folder beside the backbones' under targets_root (so no task may be named so)
UNTRAINED = "untrained"


def output_root(seed=DEFAULT_SEED):
    root = Path(os.environ.get("MMPAB_OUTPUT_ROOT", REPO_ROOT))
    return root if seed == DEFAULT_SEED else root / f"seed{seed}"


def within_output_root(path) -> str:
    """`path` relative to the output root when inside it (a copied root keeps its records true), else absolute."""
    path, root = Path(path).resolve(), output_root().resolve()
    return str(path.relative_to(root) if path.is_relative_to(root) else path)


def checkpoints_dir(arch, seed=DEFAULT_SEED):
    return output_root(seed) / f"checkpoints_{arch}"


def logs_dir(arch, seed=DEFAULT_SEED):
    return output_root(seed) / f"logs_{arch}"


def checkpoint_file(folder, epoch):
    return Path(folder) / f"checkpoint-{epoch}.pth.tar"


def stage_state_file(checkpoint):
    """What a stage saves after every epoch until it writes `checkpoint` (not a checkpoint-*.pth.tar)."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.name + ".partial")


def baseline_dir(arch, cfg_name, task_name, seed=DEFAULT_SEED):
    return checkpoints_dir(arch, seed) / "baseline_scratch" / arch / cfg_name / task_name


def baseline_acc_file(arch, cfg_name, seed=DEFAULT_SEED):
    """Validation accuracy of every task trained alone: the criterion of every later decision."""
    return logs_dir(arch, seed) / f"baseline_{cfg_name}_acc.txt"


def baseline_test_acc_file(arch, cfg_name, seed=DEFAULT_SEED):
    """Test accuracy of the same models, for reporting only."""
    return test_acc_file_of(baseline_acc_file(arch, cfg_name, seed))


def test_acc_file_of(acc_file):
    """The test-accuracy record beside a validation-accuracy record: `<x>_acc.txt` -> `<x>_test_acc.txt`, any
    other `<x>.<ext>` -> `<x>_test.<ext>`; never the same file, which would overwrite the validation baseline."""
    acc_file = Path(acc_file)
    stem = acc_file.name[:-len(acc_file.suffix)] if acc_file.suffix else acc_file.name
    test_stem = stem[:-len("_acc")] + "_test_acc" if stem.endswith("_acc") else stem + "_test"
    return acc_file.with_name(test_stem + acc_file.suffix)


def backbones_root(arch, cfg_name, seed=DEFAULT_SEED):
    """Step 2-1's runs, one folder per task."""
    return checkpoints_dir(arch, seed) / "CPG_single_scratch_woexp" / arch / cfg_name


def backbone_dir(arch, cfg_name, task_name, seed=DEFAULT_SEED):
    """Step 2-1 output of one task: `scratch/`, `gradual_prune/<ratio>/`, `train.log`, `train.csv`."""
    return backbones_root(arch, cfg_name, seed) / task_name


def prune_dir(arch, cfg_name, task_name, seed=DEFAULT_SEED):
    """Step 2-1's gradual_prune/ of a task: its pruning stages, record.txt, and step 2-2's choice (chosen.json)."""
    return backbone_dir(arch, cfg_name, task_name, seed) / "gradual_prune"


def chosen_backbone(arch, cfg_name, task_name, seed=DEFAULT_SEED):
    """The checkpoint a task hands over as a backbone: the one step 2-2 chose."""
    folder = prune_dir(arch, cfg_name, task_name, seed)
    chosen = chosen_checkpoint(folder)
    if chosen is None:
        raise UserError(f"Task {task_name} has no backbone checkpoint chosen ({folder / CHOSEN_FILE} is missing); run "
                        f"{STEP_2_2} for it first.")
    return chosen


def baseline_checkpoint(arch, cfg_name, task_name, seed=DEFAULT_SEED):
    """Step 1's checkpoint of a task (its folder keeps one)."""
    return folder_checkpoint(baseline_dir(arch, cfg_name, task_name, seed))


def candidate_checkpoint(arch, cfg_name, task_name, seed, compared):
    """The file of a candidate step 3-1 compares: step 2-2's choice ("received") or step 1's baseline."""
    if compared == "received":
        return chosen_backbone(arch, cfg_name, task_name, seed)
    return baseline_checkpoint(arch, cfg_name, task_name, seed)


def targets_root(arch, cfg_name, seed=DEFAULT_SEED):
    """Step 3-2's and the transfer control's runs: <backbone, scratch@<w> or untrained>/<target>/."""
    return checkpoints_dir(arch, seed) / "CPG_fromsingle_scratch_woexp_target" / arch / cfg_name


def target_dir(arch, cfg_name, backbone_name, target_name, seed=DEFAULT_SEED):
    """Step 3-2 output of one target trained on one backbone."""
    return targets_root(arch, cfg_name, seed) / backbone_name / target_name


def sequences_root(arch, cfg_name, seed=DEFAULT_SEED):
    """The continual-learning sequences (run_pickaback/learn_in_sequence.sh): <method>_<task ids>/<task>/."""
    return checkpoints_dir(arch, seed) / "sequence" / arch / cfg_name


def accuracy_matrix_file(sequence_folder):
    """A sequence's accuracy matrix R (tools/continual.py evaluate): every task after each task learned."""
    return Path(sequence_folder) / "accuracy_matrix.json"


REPEAT_PREFIX = "training_seed"


def repeat_dir(run_folder, training_seed) -> Path:
    """A transfer-control run trained again with another training seed (CONTROL_SEEDS): inside the run's folder."""
    return Path(run_folder) / f"{REPEAT_PREFIX}{training_seed}"


def repeat_dirs(run_folder) -> dict[int, Path]:
    """{training seed: folder} of the repeats of a run (repeat_dir), by seed."""
    found = {}
    for folder in Path(run_folder).glob(f"{REPEAT_PREFIX}*"):
        suffix = folder.name[len(REPEAT_PREFIX):]
        if folder.is_dir() and suffix.isdigit():
            found[int(suffix)] = folder
    return dict(sorted(found.items()))


def pickaback_result_csv(cfg_name, seed=DEFAULT_SEED):
    return output_root(seed) / f"pickaback_{cfg_name}_result.csv"


def pickaback_table_csv(cfg_name, seed=DEFAULT_SEED):
    return output_root(seed) / f"pickaback_{cfg_name}_table.csv"


def pickaback_table_json(cfg_name, seed=DEFAULT_SEED):
    """The table's sidecar: "<target id>,<candidate id>" -> the provenance of that row's distances."""
    return pickaback_table_csv(cfg_name, seed).with_suffix(".json")


def transfer_csv(cfg_name, seed=DEFAULT_SEED):
    """The transfer control's runs: one row per (target, backbone), capacity-matched scratch and untrained."""
    return output_root(seed) / f"pickaback_{cfg_name}_transfer.csv"


def results_csv(cfg_name, seed=DEFAULT_SEED):
    """One row per target of the run: scratch and on-backbone accuracies, forward and backward transfer, regret
    (tools/results_table.py)."""
    return output_root(seed) / f"results_{cfg_name}.csv"


def cl_table_csv(cfg_name, seed=DEFAULT_SEED):
    """The continual-learning table of a run (python -m tools.continual table): one row per method."""
    return output_root(seed) / f"cl_{cfg_name}.csv"


def report_dir(arch, cfg_name, seed=DEFAULT_SEED):
    """tools/report.py's figures and report.md of one run."""
    return logs_dir(arch, seed) / f"report_{cfg_name}"


def seeds_report_dir(arch, cfg_name):
    """tools/report.py --seeds: the report over several seeds, beside the default seed's report."""
    return logs_dir(arch) / f"report_{cfg_name}_seeds"


def folder_checkpoint(folder):
    """The checkpoint a folder offers: the one step 2-2 chose, else its only checkpoint (never a guess)."""
    folder = Path(folder)
    chosen = chosen_checkpoint(folder)
    if chosen is not None:
        return chosen
    found = [f for f in sorted(folder.glob("checkpoint-*.pth.tar")) if "_kv_transfer_" not in f.name]
    if len(found) == 1:
        return found[0]
    if not found:
        raise UserError(f"No checkpoint in {folder}; run the step that writes it first.")
    raise UserError(f"{folder} holds {len(found)} checkpoints and no {CHOSEN_FILE}; "
                    f"run run_pickaback/select_pruning_ratio_of_backbone.sh to choose one.")


def kv_transfer_checkpoint(chosen, target_id):
    """Step 4's output beside the backbone's chosen checkpoint: checkpoint-<E>_kv_transfer_<target id>.pth.tar."""
    chosen = Path(chosen)
    return chosen.with_name(chosen.name.replace(".pth.tar", f"_kv_transfer_{target_id}.pth.tar"))
