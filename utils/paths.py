"""Where every step reads and writes (DESIGN §3): the one definition of the output layout.

Outputs live under the repository root, or under `$MMPAB_OUTPUT_ROOT` when it is set (tests use
it to run the pipeline in a temporary folder).
"""
import json
import os
from pathlib import Path

from utils.errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent
CHOSEN_FILE = "chosen.json"   # step 2-2's choice: which checkpoint of gradual_prune/ is the backbone


def output_root():
    return Path(os.environ.get("MMPAB_OUTPUT_ROOT", REPO_ROOT))


def checkpoints_dir(arch):
    return output_root() / f"checkpoints_{arch}"


def logs_dir(arch):
    return output_root() / f"logs_{arch}"


def checkpoint_file(folder, epoch):
    return Path(folder) / f"checkpoint-{epoch}.pth.tar"


def baseline_dir(arch, cfg_name, task_name):
    return checkpoints_dir(arch) / "baseline_scratch" / arch / cfg_name / task_name


def baseline_acc_file(arch, cfg_name):
    """Validation accuracy of every task trained alone: the criterion of every later decision."""
    return logs_dir(arch) / f"baseline_{cfg_name}_acc.txt"


def baseline_test_acc_file(arch, cfg_name):
    """Test accuracy of the same models, for reporting only."""
    return logs_dir(arch) / f"baseline_{cfg_name}_test_acc.txt"


def backbone_dir(arch, cfg_name, task_name):
    """Step 2-1 output of one task: `scratch/`, `gradual_prune/<ratio>/`, `train.log`, `train.csv`."""
    return checkpoints_dir(arch) / "CPG_single_scratch_woexp" / arch / cfg_name / task_name


def target_dir(arch, cfg_name, backbone_name, target_name):
    """Step 3-2 output of one target trained on one backbone."""
    return (checkpoints_dir(arch) / "CPG_fromsingle_scratch_woexp_target" / arch / cfg_name
            / backbone_name / target_name)


def pickaback_result_csv(cfg_name):
    return output_root() / f"pickaback_{cfg_name}_result.csv"


def pickaback_table_csv(cfg_name):
    return output_root() / f"pickaback_{cfg_name}_table.csv"


def folder_checkpoint(folder):
    """The checkpoint a folder offers: the one step 2-2 chose, else its only checkpoint (never a guess)."""
    folder = Path(folder)
    chosen = folder / CHOSEN_FILE
    if chosen.exists():
        return folder / json.loads(chosen.read_text())["checkpoint"]
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
