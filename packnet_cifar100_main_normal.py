"""Step 1, and PackNet (Mallya & Lazebnik, 2018) for the continual-learning sequence.

    python packnet_cifar100_main_normal.py --dataset 1                  step 1: task 1 alone, from scratch
    python packnet_cifar100_main_normal.py --dataset 2 --load_folder F --save_folder G
                                  PackNet: task 2 on the free weights of F's model, every earlier weight used whole
    python packnet_cifar100_main_normal.py --mode prune --dataset 2 --load_folder G --save_folder H \
        --one_shot_prune_perc 0.5         PackNet: free half of task 2's weights at once, retrain the rest

A PackNet stage is a CPG stage (CPG_MM_main_normal.run_stage, the same model and ownership) whose piggyback
selection stays all ones (its mask lr is 0: every earlier task's weight is used, frozen), that never grows,
and whose pruning is one shot with no accuracy goal.
"""
import argparse
import logging
import time
from pathlib import Path

import CPG_MM_main_normal

from packnet_models.baseline import build_baseline
from utils import paths
from utils.data import data_fingerprint, task_loaders
from utils.checkpoint import NOT_MADE, remove_other_checkpoints, save_model, why_redo
from utils.cli import ArgumentParser, add_common_args, fraction, resolve_task
from utils.dataset_config import get_config
from utils.errors import ExitStatus, UserError, run_main
from utils.logs import commit_train_csv, console_info, setup_logging, stage_line
from utils.provenance import provenance, settings_of
from utils.records import update_json_record
from utils.results import read_baselines
from utils.train import Recipe, StageState, evaluate, fit, resolve_device, seed_everything

STAGE = "baseline"    # the stage column of train.csv


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
    p.add_argument("--one_shot_prune_perc", type=fraction, default=0.5,
                   help="PackNet's pruning: the share of the task's own weights freed for later tasks")
    p.add_argument("--logfile", help="baseline accuracy JSON; default: logs_<arch>/baseline_<cfg>_acc.txt "
                                     "(PackNet reads it: its stages record whether they stayed at the baseline)")
    return p


def run_provenance(args, cfg, task):
    """What shapes this task's baseline: the settings (one task, the config's validation share resolved, the
    config as its provenance_id: a config file's values, not the path it was given by) and the task's data."""
    return provenance(settings_of(args, dataset=task.name, val_fraction=cfg.val_share(args.val_fraction),
                                  dataset_config=cfg.provenance_id), inputs={}, data=data_fingerprint(cfg, task))


def why_retrain(checkpoint, logfile, task, wanted):
    """None when this task's baseline is done with the same settings, else the reason to train it."""
    if task.name not in read_baselines(logfile):
        return NOT_MADE
    return why_redo(checkpoint, wanted)


def train(args, cfg, task, model, device, save_folder, state):
    """Step 1's stage, resumable after its last finished epoch; returns (model, val, train, test accuracy)."""
    loaders = task_loaders(cfg, task, batch_size=args.batch_size, val_batch_size=args.val_batch_size,
                           val_fraction=args.val_fraction, seed=args.seed, device=device)
    recipe = Recipe(epochs=args.epochs, lr=args.lr, optimizer=args.optimizer, weight_decay=args.weight_decay)
    model, val_acc, train_acc = fit(model, loaders, device, recipe, stage=STAGE,
                                    csv_path=save_folder / "train.csv", state=state,
                                    tensorboard_dir=save_folder / "tensorboard" if args.tensorboard else None)
    _, test_acc = evaluate(model, loaders[2], device)
    return model, val_acc, train_acc, test_acc


def run_task(args, cfg, task):
    """Train and record one task (or say that it is done already)."""
    save_folder = (Path(args.save_folder) if args.save_folder
                   else paths.baseline_dir(args.arch, cfg.name, task.name, args.seed))
    logfile = Path(args.logfile) if args.logfile else paths.baseline_acc_file(args.arch, cfg.name, args.seed)
    test_logfile = paths.test_acc_file_of(logfile)
    checkpoint = paths.checkpoint_file(save_folder, args.epochs)
    wanted = run_provenance(args, cfg, task)
    reason = "--force" if args.force else why_retrain(checkpoint, logfile, task, wanted)
    setup_logging(save_folder / "train.log", args.verbose)
    if reason is None:
        console_info(f"Baseline of {task.name} already done ({checkpoint}); pass --force to retrain.")
        return

    if reason != NOT_MADE:
        console_info(f"Retraining the baseline of {task.name}: {reason}.")
    seed_everything(args.seed)
    device = resolve_device(args.device)
    model = build_baseline(args.arch, args.profile, cfg, task).to(device)
    state = StageState(paths.stage_state_file(checkpoint), cfg.name, wanted)
    if args.force:
        state.remove()
    started = time.time()
    model, val_acc, train_acc, test_acc = train(args, cfg, task, model, device, save_folder, state)
    save_model(checkpoint, model, cfg.name, epoch=args.epochs, accuracy=val_acc, train_accuracy=train_acc,
               test_accuracy=test_acc, args=settings_of(args), provenance=wanted)
    state.remove()
    commit_train_csv(save_folder / "train.csv", STAGE)
    remove_other_checkpoints(checkpoint)
    update_json_record(logfile, task.name, f"{val_acc:.4f}")
    update_json_record(test_logfile, task.name, f"{test_acc:.4f}")
    seconds = time.time() - started
    logging.info(f"Baseline {task.name}: saved {checkpoint}")
    console_info(stage_line(task.name, "baseline", val_acc, test_acc, seconds))


def packnet_stage_args(args, cfg):
    """CPG's arguments for this PackNet stage: this run's settings, all earlier weights selected and frozen (mask
    lr 0; a new piggymask starts above the threshold everywhere), no growth, one-shot pruning (no ramp)."""
    folder = Path(args.save_folder)
    stage = {"dataset": args.dataset[0], "mode": args.mode, "save_folder": str(folder),
             "load_folder": args.load_folder, "lr_mask": 0.0, "log_path": str(folder.parent / "train.log"),
             "jsonfile": str(args.logfile or paths.baseline_acc_file(args.arch, cfg.name, args.seed)),
             "pruning_ratio_to_acc_record_file": str(folder / "record.txt") if args.mode == "prune" else None,
             "initial_sparsity": 0.0, "target_sparsity": args.one_shot_prune_perc, "pruning_interval": 0}
    cpg = CPG_MM_main_normal.stage_defaults()
    settings = {**cpg, **{k: v for k, v in vars(args).items() if k in cpg}, **stage}
    return argparse.Namespace(**settings)


def run_packnet_stage(args):
    """PackNet's stage; a pruned task under its baseline is kept (PackNet prunes to its share, whatever it costs)."""
    if len(args.dataset) > 1 or not args.save_folder or not args.load_folder:
        raise UserError("A PackNet stage takes one --dataset, --load_folder and --save_folder.")
    if args.mode == "prune" and args.one_shot_prune_perc == 0:
        raise UserError("--one_shot_prune_perc must be greater than 0 with --mode prune (the share of the task's "
                        "weights to free).")
    status, task = CPG_MM_main_normal.run_stage(packnet_stage_args(args, get_config(args.dataset_config)))
    if status == ExitStatus.PRUNE_FAILED:
        console_info(f"PackNet keeps {task.name} with {args.one_shot_prune_perc:g} of its weights freed, under its "
                     f"baseline; the freed weights go to the next task.")
        return ExitStatus.DONE
    if status != ExitStatus.DONE:
        console_info(status.sentence(task.name))
    return status


def main(args):
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
