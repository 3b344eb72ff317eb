"""Step 1, and PackNet (Mallya & Lazebnik, 2018) for the continual-learning sequence.

    python packnet_cifar100_main_normal.py --dataset 1                  step 1: task 1 alone, from scratch
    python packnet_cifar100_main_normal.py --dataset 2 --load_folder F --save_folder G
                                  PackNet: task 2 on the free weights of F's model, every earlier weight used whole
    python packnet_cifar100_main_normal.py --mode prune --dataset 2 --load_folder G --save_folder H \
        --one_shot_prune_perc 0.5         PackNet: free half of task 2's weights at once, retrain the rest

Step 1's stage is CPG's finetune of a fresh model holding the task alone (CPG_MM_main_normal.run_stage), so
step 2-1's finetune of the task at width 1.0 is the same stage and takes step 1's checkpoint instead of training.
A PackNet stage is a CPG stage (CPG_MM_main_normal.run_stage, the same model and ownership) whose piggyback
selection stays all ones (its mask lr is 0: every earlier task's weight is used, frozen), that never grows,
and whose pruning is one shot with no accuracy goal.
"""
import argparse
from pathlib import Path

import CPG_MM_main_normal

from utils import paths
from utils.cli import ArgumentParser, add_common_args, fraction, resolve_task
from utils.dataset_config import get_config
from utils.errors import ExitStatus, UserError, run_main
from utils.logs import console_info
from utils.records import update_json_record
from utils.results import read_outcome


def get_args_parser():
    p = ArgumentParser(description="Train task(s) from scratch (baseline).")
    add_common_args(p)
    p.add_argument("--dataset", required=True, nargs="+",
                   help="task name(s) or 1-based id(s); several are trained one after the other")
    p.add_argument("--mode", default="finetune", choices=["finetune", "prune"],
                   help="finetune: step 1, or with --load_folder PackNet's next task; prune: PackNet's one-shot "
                        "pruning of the newest task of --load_folder's model, then retraining")
    p.add_argument("--save_folder", help="default: checkpoints_<arch>/baseline_scratch/<arch>/<cfg>/<task>")
    p.add_argument("--load_folder", help="PackNet: the model holding the earlier tasks (finetune), or the task to "
                                         "prune (prune)")
    p.add_argument("--one_shot_prune_perc", type=fraction, default=None,
                   help="PackNet's pruning (--mode prune only): the share of the task's own weights freed for later "
                        "tasks; default 0.5")
    p.add_argument("--logfile", help="baseline accuracy JSON; default: logs_<arch>/baseline_<cfg>_acc.txt "
                                     "(PackNet reads it: its stages record whether they stayed at the baseline)")
    return p


def step_1_stage_args(args, cfg, task):
    """Step 1's stage: CPG's finetune of a fresh model holding `task` alone, at width 1.0, logged in its folder."""
    folder = Path(args.save_folder) if args.save_folder else paths.baseline_dir(args.arch, cfg.name, task.name,
                                                                                 args.seed)
    return cpg_stage_args(args, dataset=task.name, mode="finetune", save_folder=str(folder), load_folder="",
                          log_path=str(folder / "train.log"))


def run_task(args, cfg, task):
    """Train one task and record its accuracies as its baseline (or say that it is done already)."""
    stage = step_1_stage_args(args, cfg, task)
    CPG_MM_main_normal.run_stage(stage, sets_baseline=True)
    outcome = read_outcome(Path(stage.save_folder))
    logfile = Path(args.logfile) if args.logfile else paths.baseline_acc_file(args.arch, cfg.name, args.seed)
    update_json_record(logfile, task.name, f"{outcome['val_accuracy']:.4f}")
    update_json_record(paths.test_acc_file_of(logfile), task.name, f"{outcome['test_accuracy']:.4f}")


def cpg_stage_args(args, **stage):
    """CPG's arguments for a stage of this script: each CPG flag at this run's value or its default, and `stage`."""
    cpg = CPG_MM_main_normal.stage_defaults()
    return argparse.Namespace(**{**cpg, **{k: v for k, v in vars(args).items() if k in cpg}, **stage})


def packnet_stage_args(args, cfg):
    """CPG's arguments for this PackNet stage: this run's settings, all earlier weights selected and frozen (mask
    lr 0; a new piggymask starts above the threshold everywhere), no growth, one-shot pruning (no ramp)."""
    folder = Path(args.save_folder)
    stage = {"dataset": args.dataset[0], "mode": args.mode, "save_folder": str(folder),
             "load_folder": args.load_folder, "lr_mask": 0.0, "log_path": str(folder.parent / "train.log"),
             "jsonfile": str(args.logfile or paths.baseline_acc_file(args.arch, cfg.name, args.seed)),
             "pruning_ratio_to_acc_record_file": str(folder / "record.txt") if args.mode == "prune" else None,
             "initial_sparsity": 0.0, "target_sparsity": args.one_shot_prune_perc, "pruning_interval": 0}
    return cpg_stage_args(args, **stage)


def run_packnet_stage(args):
    """PackNet's stage; a pruned task under its baseline is kept (PackNet prunes to its share, whatever it costs)."""
    if len(args.dataset) > 1 or not args.save_folder or not args.load_folder:
        raise UserError("A PackNet stage takes one --dataset, --load_folder and --save_folder.")
    if args.mode == "prune" and args.one_shot_prune_perc == 0:
        raise UserError("--one_shot_prune_perc must be greater than 0 with --mode prune (the share of the task's "
                        "weights to free).")
    args.one_shot_prune_perc = 0.5 if args.one_shot_prune_perc is None else args.one_shot_prune_perc
    status, task = CPG_MM_main_normal.run_stage(packnet_stage_args(args, get_config(args.dataset_config)))
    if status == ExitStatus.PRUNE_FAILED:
        console_info(f"PackNet keeps {task.name} with {args.one_shot_prune_perc:g} of its weights freed, under its "
                     f"baseline; the freed weights go to the next task.")
        return ExitStatus.DONE
    if status != ExitStatus.DONE:
        console_info(status.sentence(task.name))
    return status


def main(args):
    if args.mode != "prune" and args.one_shot_prune_perc is not None:
        raise UserError("--one_shot_prune_perc is the share PackNet's --mode prune frees; --mode finetune prunes "
                        "nothing.")
    if args.mode == "prune" or args.load_folder:
        return run_packnet_stage(args)
    cfg = get_config(args.dataset_config)
    tasks = [resolve_task(cfg, key, args) for key in args.dataset]
    if len(tasks) > 1 and args.save_folder:
        raise UserError("--save_folder names one task's folder; give one --dataset with it, or leave it out.")
    for task in tasks:
        run_task(args, cfg, task)
    return 0


if __name__ == "__main__":
    run_main(main, get_args_parser)
