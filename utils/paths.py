"""Where every step reads and writes (DESIGN §3): the one definition of the output layout.

Outputs live under the repository root, or under `$MMPAB_OUTPUT_ROOT` when it is set (tests use
it to run the pipeline in a temporary folder).
"""
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


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
    return logs_dir(arch) / f"baseline_{cfg_name}_acc.txt"


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
