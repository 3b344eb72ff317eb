"""Steps 1, 2-1 and 3-2: CPG training of one task (compact, pick, grow), any arch, any modality.

    --mode finetune   train the task on the free weights (+ a piggyback mask over earlier tasks')
    --mode prune      gradually prune the task's own weights from --initial_sparsity to --target_sparsity
    --mode inference  evaluate a task of a checkpoint at its own width
    --mode cpg        the bash loop's stages in one process: finetune, widening by 0.5 up to
                      --max_allowed_network_width_multiplier while under the baseline, then the pruning stages of
                      --prune_stages (into gradual_prune/ beside --save_folder), each kept while at the baseline

Step 1 (packnet_cifar100_main_normal.py) is this finetune of a fresh model at width 1.0 with no baseline to reach
(its accuracy becomes the baseline); step 2-1's finetune of the task alone is then the very same stage, taken from it.
The exit status tells the bash loop what to do next: utils.errors.ExitStatus, the protocol's one definition.
"""
import argparse
import logging
import shutil
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from models.cpg import CPGModel
from transfer_kv_perceiver_io import transfer_provenance
from utils import paths
from utils.baseline import reaches_baseline, read_baseline, tolerance
from utils.checkpoint import load_checkpoint, load_model, remove_other_checkpoints, save_model
from utils.cli import (ArgumentParser, add_common_args, fraction, non_negative_float, non_negative_int,
                       positive_float, positive_int, resolve_task, seed_int)
from utils.data import data_fingerprint, task_loaders
from utils.dataset_config import get_config
from utils.errors import ExitStatus, UserError, run_main
from utils.paths import folder_checkpoint
from utils.logs import (TrainCsv, commit_train_csv, console_info, read_train_csv, remove_train_csv_rows,
                        setup_logging, stage_line, validate_line)
from utils.provenance import DECISION_SETTINGS, provenance, settings_of, why_stale
from utils.pruner import GradualPruner
from utils.records import locked, read_json_record, remove_json_keys, update_json_record, write_json_atomic
from utils.results import OUTCOME_FILE, STEP_1, read_chosen, read_prune_record
from utils.train import Recipe, StageState, evaluate, fit, resolve_device, seed_everything

STEP_1_STAGE = "baseline"     # step 1's stage: its name in train.csv and on the console


def get_args_parser():
    p = ArgumentParser(description="CPG training of one task: finetune, prune or inference.")
    add_common_args(p)
    p.add_argument("--dataset", required=True, help="task name or 1-based task id")
    p.add_argument("--mode", required=True, choices=["finetune", "prune", "inference", "cpg"])
    p.add_argument("--lr_mask", type=non_negative_float, default=1e-4, help="Adam lr of the piggyback mask")
    p.add_argument("--save_folder", required=True)
    p.add_argument("--load_folder", default="", help="start from the checkpoint in this folder")
    p.add_argument("--load_checkpoint", default="", help="start from this checkpoint file (step 4's output)")
    p.add_argument("--jsonfile", help="baseline accuracy JSON (step 1)")
    p.add_argument("--network_width_multiplier", type=positive_float, default=1.0)
    p.add_argument("--max_allowed_network_width_multiplier", type=positive_float, default=1.0)
    p.add_argument("--pruning_ratio_to_acc_record_file", help="record.txt: ratio -> accuracy")
    p.add_argument("--log_path", help="train.log (train.csv is written beside it)")
    p.add_argument("--total_num_tasks", type=positive_int, default=5)
    p.add_argument("--initial_sparsity", type=fraction, default=0.0)
    p.add_argument("--target_sparsity", type=fraction, default=0.1)
    p.add_argument("--pruning_interval", type=non_negative_int, default=4,
                   help="epochs over which the sparsity ramps; 0 prunes to the target at once, before the first step "
                        "(PackNet's one-shot pruning)")
    p.add_argument("--pruning_frequency", type=positive_int, default=10, help="optimizer steps between mask updates")
    p.add_argument("--prune_stages", type=fraction, nargs="*",
                   help="--mode cpg: the pruning stages' target sparsities, increasing (none: no pruning)")
    p.add_argument("--prune_epochs", type=positive_int, help="--mode cpg: epochs per pruning stage (default --epochs)")
    p.add_argument("--prune_lr", type=positive_float, help="--mode cpg: lr of the pruning stages (default --lr)")
    p.add_argument("--allow_acc_loss", type=fraction, default=None,
                   help="accuracy a run may fall short of its baseline and still count as reaching it (growing "
                        "and pruning; step 2-2 uses the same); default: one standard error of the baseline on the "
                        "validation samples; 0.001 is the original's rule")
    p.add_argument("--training_seed", type=seed_int,
                   help="seed of the initialisation and the data order (default: --seed); the validation split "
                        "and the output layout follow --seed, so the transfer control's repeats with another "
                        "training seed never validate on samples their start checkpoint trained on")
    p.add_argument("--untrained_backbone", action="store_true",
                   help="re-initialise the start checkpoint's earlier tasks' weights before training (the "
                        "transfer control's untrained backbone: same structure and recipe, no knowledge)")
    p.add_argument("--keep_finished", action="store_true",
                   help="refuse to train a finished stage again under other settings (the transfer control's run of "
                        "a selected pair, which is step 3-2's own)")
    return p


def check_args(args):
    """Checks between arguments (each one's own range is checked while parsing): one sentence, exit 1."""
    if args.network_width_multiplier > args.max_allowed_network_width_multiplier:
        raise UserError(f"--network_width_multiplier {args.network_width_multiplier} exceeds "
                        f"--max_allowed_network_width_multiplier {args.max_allowed_network_width_multiplier}.")
    stages = [0.0, *(args.prune_stages or [])]
    if any(b <= a for a, b in zip(stages, stages[1:])):
        raise UserError(f"--prune_stages must be greater than 0, each greater than the one before, not "
                        f"{' '.join(map(str, args.prune_stages))}.")
    if args.mode == "prune" and args.target_sparsity <= args.initial_sparsity:
        raise UserError(f"--target_sparsity {args.target_sparsity} must be greater than --initial_sparsity "
                        f"{args.initial_sparsity} with --mode prune.")


# ---------------------------------------------------------------- loading and saving

def save_run(path, model, cfg, run, outcome, *, accuracy, test_accuracy, status):
    """The stage's checkpoint, with what produced it (settings, inputs' fingerprints, start file) and its
    `outcome` (outcome_record's), then that outcome in outcome.json beside it."""
    save_model(path, model, cfg.name, epoch=run.args.epochs, accuracy=accuracy, test_accuracy=test_accuracy,
               status=int(status), args=settings_of(run.args), provenance=run.provenance,
               started_from=str(run.start) if run.start else None, outcome=outcome)
    write_json_atomic(Path(path).parent / OUTCOME_FILE, outcome)


def restore_outcome(checkpoint, payload):
    """Write outcome.json again from the checkpoint's copy when the file is missing or is not the checkpoint's (a
    run killed between writing the two, a file edited or copied by hand): step 1's record is read from it. A
    checkpoint of a version that did not hold its outcome leaves the file as it is."""
    if "outcome" not in payload:
        return
    path = Path(checkpoint).parent / OUTCOME_FILE
    try:
        written = read_json_record(path)
    except UserError:       # not JSON, or not an object
        written = None
    if written != payload["outcome"]:
        write_json_atomic(path, payload["outcome"])


def outcome_record(task, run, *, accuracy, test_accuracy, status):
    """The stage's result and settings, for readers without torch (the bash summary; step 1's record; the
    transfer control's collector, which checks that the checkpoint the run started from is still the same; the
    report over seeds, which compares the seeds' settings)."""
    return {
        "task": task.name, "mode": run.args.mode, "width": run.args.network_width_multiplier,
        "max_width": run.args.max_allowed_network_width_multiplier,
        "val_accuracy": round(accuracy, 4), "test_accuracy": round(test_accuracy, 4), "baseline": run.baseline,
        "val_samples": run.val_samples, "tolerance": run.tolerance,
        "reached_baseline": None if run.sets_baseline else reaches_baseline(accuracy, run.baseline, run.tolerance),
        "status": int(status), "start": start_record(run), "settings": run.provenance["settings"]}


def start_record(run):
    """The checkpoint the run started from (inside the output root: relative to it, so a copied root keeps it)
    and its fingerprint; None for a fresh model."""
    if run.start is None:
        return None
    return {"path": paths.within_output_root(run.start), "fingerprint": run.provenance["inputs"]["start"]}


def prepare_model(args, cfg, task, start):
    """The model to train: the start checkpoint (or a fresh model), at the asked width, with the task active."""
    width = args.network_width_multiplier
    if start:
        model, payload = load_model(start, expect_arch=args.arch, expect_config=cfg)
        refuse_an_outdated_transfer(start, payload, cfg, args, task)
    else:
        model = CPGModel.create(args.arch, args.profile, width)
    if model.width_mult < width:
        model = model.grown(width)
    if task.name in model.task_names:
        if model.task_names[-1] != task.name:
            raise UserError(f"Task {task.name} is an earlier task of the starting checkpoint (its tasks: "
                            f"{', '.join(model.task_names)}); only the newest task can train, or later tasks "
                            f"would change.")
        model.set_active_task(task.name)
        model.claim_free_weights()
    else:
        model.add_task(task, cfg)
    if args.untrained_backbone:
        model.reinitialise_earlier_tasks()
    return model


def refuse_an_outdated_transfer(start, payload, cfg, args, task):
    """Step 4's transfer of a target onto a backbone is made from the target's step-1 model and the backbone's
    chosen checkpoint; made from earlier versions of them (a step re-run since, step 4 not), it would train the
    target with an adapter or on a backbone the pipeline no longer has; made for another target (a file copied or
    renamed), `task` would train through that target's adapter."""
    if "target" not in payload or "backbone" not in payload:
        return      # not step 4's output (LeNet-5 starts from the chosen checkpoint itself)
    target, backbone = cfg.task(payload["target"]), cfg.task(payload["backbone"])
    if target.name != task.name:
        raise UserError(f"{start} is step 4's transfer for target {target.name}, not {task.name}; re-run step 4 "
                        f"(bash run_pickaback/transfer_kv.sh {cfg.name}) for target {task.name}.")
    chosen = paths.chosen_backbone(args.arch, cfg.name, backbone.name, args.seed)
    reason = why_stale(payload.get("provenance"), transfer_provenance(cfg, args.arch, target, backbone, args.seed,
                                                                      chosen))
    if reason is not None:
        raise UserError(f"{start} is out of date ({reason}); re-run step 4 (bash run_pickaback/transfer_kv.sh "
                        f"{cfg.name}) before training target {target.name} on it.")


# ---------------------------------------------------------------- decisions

def owns_weights(model):
    return model.stats()["task_ratio"] > 0


def finetune_decision(args, model, val_acc, baseline, tolerance):
    """The original's end-of-finetune rule, with growth decided by validation accuracy vs baseline (without the
    original's second gate, train accuracy > 0.95: docs/decisions.md)."""
    if baseline is None:
        return ExitStatus.DONE      # step 1: its accuracy is the baseline
    good_enough = reaches_baseline(val_acc, baseline, tolerance)
    at_max_width = args.network_width_multiplier >= args.max_allowed_network_width_multiplier
    if good_enough or at_max_width:
        if not owns_weights(model):
            logging.info("There is no left space in convolutional layer for curr task, so needless to prune")
            return ExitStatus.NO_CAPACITY
        return ExitStatus.DONE
    logging.info("It's time to expand the Network")
    logging.info("Auto expand network")
    return ExitStatus.GROW


def must_prune_ratio(args, model):
    """The pruning ratio this task must reach to leave room for the tasks still to come (original rule)."""
    remain = max(args.total_num_tasks - len(model.task_names), 0)
    allow = round(1.0 / (remain + 1), 1)
    logging.info("we reach the upperbound and still do not get the accuracy over our target on curr task")
    logging.info(f"remain_num_tasks: {remain}")
    logging.info(f"ratio_allow_for_curr_task: {allow:.4f}")
    return 1.0 - allow


# ---------------------------------------------------------------- training

def mask_lr_factor(epoch, epochs, task_owns_weights):
    """Piggyback mask lr: x0.2 after 50% of the epochs, frozen after 70% unless the task owns no weights."""
    if epoch >= 0.7 * epochs and task_owns_weights:
        return 0.0
    return 0.2 if epoch >= 0.5 * epochs else 1.0


def log_validation(model, loader, device, epoch):
    loss, acc = evaluate(model, loader, device)
    logging.info(validate_line(epoch, loss, acc, model.stats()))
    return acc


def train_stage(run, model, loaders, device, recipe, make_pruner=None):
    """The stage's epochs (resumed after the last one a killed run finished); returns (model, val acc, train acc)."""
    model, val_acc, train_acc = fit(model, loaders, device, recipe, stage=run.stage, csv_path=run.csv_path,
                                    state=run.state, make_pruner=make_pruner, tensorboard_dir=run.tensorboard_dir)
    logging.info("-" * 16)
    return model, val_acc, train_acc


def take_finished_run(run, model, loaders, device):
    """A finished run of this very training taken as this finetune's result: step 1's, or this stage's own one made
    under other decisions (it kept its train.csv rows); returns its validation accuracy, on which the stage decides."""
    if run.reuse == output_checkpoint(run.args):
        logging.info(f"Finetune stage: {run.reuse} decided again on its weights (only the decisions after it changed).")
        rows = [row for row in read_train_csv(run.csv_path) if row[3:4] == [run.stage]]
    else:
        console_info(f"Finetune stage: the same run as step 1 (same task, width 1.0 and settings), so its "
                     f"checkpoint {run.reuse} is taken instead of training again.")
        # their time is step 1's: counted once, in its train.csv
        rows = [[epoch, val_acc, train_acc, run.stage, "0.00"]
                for epoch, val_acc, train_acc, *_ in read_train_csv(run.reuse.parent / "train.csv")]
    TrainCsv(run.csv_path, stage=run.stage, rows=rows)
    return log_validation(model, loaders[1], device, run.args.epochs)


def finetune(run, cfg, task, device, loaders):
    args = run.args
    if run.reuse:
        model = load_model(run.reuse, expect_arch=args.arch, expect_config=cfg)[0].to(device)
        val_acc = take_finished_run(run, model, loaders, device)
    else:
        model = prepare_model(args, cfg, task, run.start).to(device)
        logging.info("Baseline stage (step 1)..." if run.sets_baseline else "Finetune stage...")
        owns = owns_weights(model)
        if len(model.task_names) > 1 and args.lr_mask > 0 and not owns:
            logging.info("There is no left space in convolutional layer for curr task, we will try to use prior "
                         "experience as long as possible")
        recipe = Recipe(epochs=args.epochs, lr=args.lr, optimizer=args.optimizer, weight_decay=args.weight_decay,
                        lr_mask=args.lr_mask, mask_lr_factor=partial(mask_lr_factor, epochs=args.epochs,
                                                                     task_owns_weights=owns))
        model, val_acc, _ = train_stage(run, model, loaders, device, recipe)
    if args.pruning_ratio_to_acc_record_file:
        update_json_record(args.pruning_ratio_to_acc_record_file, "0.0", round(val_acc, 4))
    return model, val_acc, finetune_decision(args, model, val_acc, run.baseline, run.tolerance)


def prune(run, cfg, task, device, loaders):
    args, baseline = run.args, run.baseline
    if not args.pruning_ratio_to_acc_record_file:
        raise UserError("--mode prune needs --pruning_ratio_to_acc_record_file (the record.txt of the task).")
    record = read_prune_record(args.pruning_ratio_to_acc_record_file)
    model = prepare_model_for_pruning(args, task, run.start, cfg).to(device)
    at_max_width = args.network_width_multiplier >= args.max_allowed_network_width_multiplier
    if at_max_width and not reaches_baseline(record.get(0.0, 1.0), baseline, run.tolerance):
        if args.initial_sparsity >= must_prune_ratio(args, model):
            return model, None, ExitStatus.PRUNE_FAILED
    if not owns_weights(model):
        logging.info("There is no left space in convolutional layer for curr task, so needless to prune")
        return model, None, ExitStatus.NO_CAPACITY
    logging.info("")
    logging.info("Before pruning: ")
    logging.info(f"Sparsity range: {args.initial_sparsity} -> {args.target_sparsity}")
    log_validation(model, loaders[1], device, 0)
    steps = len(loaders[0])

    def make_pruner(model):
        return GradualPruner(model, initial=args.initial_sparsity, target=args.target_sparsity, begin=0,
                             end=min(args.pruning_interval, args.epochs) * steps, frequency=args.pruning_frequency)

    recipe = Recipe(epochs=args.epochs, lr=args.lr, optimizer=args.optimizer, weight_decay=args.weight_decay,
                    decay_lr=False)
    model, val_acc, _ = train_stage(run, model, loaders, device, recipe, make_pruner)
    update_json_record(args.pruning_ratio_to_acc_record_file, str(args.target_sparsity), round(val_acc, 4))
    if not reaches_baseline(val_acc, baseline, run.tolerance):
        logging.info(f"Pruning to {args.target_sparsity} left accuracy {val_acc:.4f} under the baseline "
                     f"{baseline:.4f}; the pruning loop stops here.")
        return model, val_acc, ExitStatus.PRUNE_FAILED
    return model, val_acc, ExitStatus.DONE


def prepare_model_for_pruning(args, task, start, cfg):
    model, _ = load_model(start, expect_arch=args.arch, expect_config=cfg)
    if task.name not in model.task_names or model.task_names[-1] != task.name:
        raise UserError(f"The checkpoint {start} was not trained last on task {task.name}; "
                        f"only the newest task of a checkpoint can be pruned.")
    model.set_active_task(task.name)
    return model


def inference(args, cfg, task, device, loaders):
    source = Path(args.load_checkpoint) if args.load_checkpoint else folder_checkpoint(args.load_folder or args.save_folder)
    model, _ = load_model(source, expect_arch=args.arch, expect_config=cfg)
    if task.name not in model.task_names:
        raise UserError(f"{source} holds no task {task.name}; it holds {', '.join(model.task_names)}.")
    view = model.task_view(task.name).to(device)
    loss, acc = evaluate(view, loaders[1], device)
    model.set_active_task(task.name)
    console_info(validate_line(1, loss, acc, model.stats()))
    _, test_acc = evaluate(view, loaders[2], device)
    console_info(f"Test accuracy of {task.name}: {test_acc:.4f}")
    return ExitStatus.DONE


# ---------------------------------------------------------------- what a run reads, and resume

@dataclass
class StageRun:
    """One finetune or prune stage: its arguments, the baseline it must reach, the files it reads."""
    args: argparse.Namespace
    baseline: float | None    # None: step 1, whose accuracy becomes the baseline
    start: Path | None        # the checkpoint it starts from (None: a fresh model)
    reuse: Path | None        # a finished run of this very finetune's training (take_finished_run)
    provenance: dict
    stage: str = ""           # its name in train.csv and on the console: finetune@<width> | prune<sparsity>
    csv_path: Path | None = None
    state: StageState | None = None       # saved after every epoch, so a killed run resumes
    tensorboard_dir: Path | None = None
    val_samples: int = 0      # how many samples the decisions' validation accuracy is measured on
    tolerance: float = 0.0    # how far under its baseline the stage may end and still reach it (utils.baseline)

    @property
    def sets_baseline(self):
        return self.baseline is None


def start_checkpoint(args):
    if args.load_checkpoint:
        return Path(args.load_checkpoint)
    if args.mode == "prune":
        folder = Path(args.load_folder)
        return folder_checkpoint(folder if args.initial_sparsity == 0 else folder / str(args.initial_sparsity))
    return folder_checkpoint(args.load_folder) if args.load_folder else None


def step_1_checkpoint(args, cfg, task):
    """The one step-1 checkpoint of `task` in this run's output root, as (path, payload); None when there is none
    (a baseline file of one's own). One of another version of the config (a validation share, a normalisation
    edited since) is refused: its accuracy, the baseline, was measured on other samples or inputs."""
    found = sorted(paths.baseline_dir(args.arch, cfg.name, task.name, args.seed).glob("checkpoint-*.pth.tar"))
    if len(found) != 1:
        return None
    return found[0], load_checkpoint(found[0], expect_arch=args.arch, expect_config=cfg)


def step_1_run(args, cfg, task, wanted, step_1):
    """Step 1's checkpoint of `task` when this finetune is the stage step 1 ran (a fresh model at width 1.0, the
    same settings but for the decisions after it, the same data: `wanted`, this stage's provenance); else None."""
    if args.mode != "finetune" or args.load_checkpoint or args.load_folder or args.network_width_multiplier != 1.0:
        return None
    path, payload = step_1
    if path != paths.checkpoint_file(path.parent, args.epochs):
        return None
    return path if why_stale(payload.get("provenance"), wanted, ignore=DECISION_SETTINGS) is None else None


def refuse_a_baseline_step_1_did_not_make(args, cfg, task, data, baseline, step_1):
    """A stage is judged against its task's step-1 baseline: not one of a model trained on other data (the task's
    files changed since step 1), which would set accuracies on two datasets against each other, nor a value of this
    run's baseline file that its step-1 model did not reach (the file edited, or left by an earlier step 1)."""
    path, payload = step_1
    trained_on = (payload.get("provenance") or {}).get("inputs", {}).get("data")
    if trained_on not in (None, data):
        raise UserError(f"The data of task {task.name} changed after its step-1 baseline {path} was trained; "
                        f"re-run step 1 ({STEP_1} {cfg.name}) and the steps after it for this data first.")
    own_file = paths.baseline_acc_file(args.arch, cfg.name, args.seed)
    reached = (payload.get("outcome") or {}).get("val_accuracy")      # None: a checkpoint of an older version
    if reached is not None and Path(args.jsonfile).resolve() == own_file.resolve() and round(reached, 4) != baseline:
        raise UserError(f"{args.jsonfile} gives task {task.name} the baseline {baseline:.4f}, but its step-1 model "
                        f"{path} reached {reached:.4f}; re-run step 1 ({STEP_1} {cfg.name}), which writes the "
                        f"file from its models.")


def plan_run(args, cfg, task, sets_baseline):
    baseline = None if sets_baseline else read_baseline(args.jsonfile, task.name)
    settings = settings_of(args, dataset=task.name, baseline_accuracy=baseline, dataset_config=cfg.provenance_id,
                           val_fraction=cfg.val_share(args.val_fraction))
    start = start_checkpoint(args)
    data = data_fingerprint(cfg, task)
    wanted = provenance(settings, {"start": start} if start else {}, data=data)
    step_1 = None if sets_baseline else step_1_checkpoint(args, cfg, task)
    reuse = None
    if step_1 is not None:
        refuse_a_baseline_step_1_did_not_make(args, cfg, task, data, baseline, step_1)
        reuse = step_1_run(args, cfg, task, wanted, step_1)     # no input of this stage: its very result
    return StageRun(args, baseline, start, reuse, wanted)


def output_checkpoint(args):
    folder = Path(args.save_folder)
    if args.mode == "prune":
        folder = folder / str(args.target_sparsity)
    return folder / f"checkpoint-{args.epochs}.pth.tar"


def finished_status(run, task, checkpoint):
    """(the stored exit status when this very run already finished, so a re-run resumes, else None; the run).

    A grow loop re-run fast-forwards: a finetune already saved at a wider width (same settings
    otherwise) answers "grow" for the narrower widths it went through. A finetune saved with other decision
    settings only is not trained again: the run returned takes its weights and decides on them again.
    """
    args = run.args
    if args.force or not checkpoint.exists():
        if args.keep_finished:
            refuse_to_replace(args, checkpoint, why_trained_otherwise(run, checkpoint))
        return None, run
    payload = load_checkpoint(checkpoint)
    saved = payload.get("provenance")
    reason = why_stale(saved, run.provenance, ignore=("network_width_multiplier",))
    if reason is not None:
        run = run if run.reuse else with_own_run_to_decide_again(run, checkpoint, saved)
        if run.reuse != checkpoint:
            refuse_to_replace(args, checkpoint, reason)
        console_info(f"Retraining the baseline of {task.name}: {reason}." if run.sets_baseline
                     else f"Deciding {checkpoint} again: {reason}; its training would be the same, so its "
                          f"weights are kept." if run.reuse == checkpoint else f"Redoing {checkpoint}: {reason}.")
        return None, run
    restore_outcome(checkpoint, payload)
    run.state.remove()      # left by a redo (FORCE) killed mid-way: the stage is done with these settings
    saved_width = saved["settings"]["network_width_multiplier"]
    if args.mode == "finetune" and saved_width > args.network_width_multiplier:
        return ExitStatus.GROW, run
    if saved_width == args.network_width_multiplier:
        return ExitStatus(payload.get("status", 0)), run
    return None, run


def refuse_to_replace(args, checkpoint, reason):
    """With --keep_finished (the transfer control's run of a selected pair, which is step 3-2's own), a finished run
    that would be trained again in its place, for `reason` (None: it would not), is refused instead."""
    if args.keep_finished and reason is not None:
        raise UserError(f"{checkpoint.parent} holds step 3-2's run, which the control would train again in its place "
                        f"({reason}): bring step 3-2 up to date first (run_pickaback/w_backbone.sh) or run the "
                        f"control with its settings; REPLACE_STEP_3_2=1 lets the control replace it, in a copy of "
                        f"the outputs (docs/transfer-control.md).")


def why_trained_otherwise(run, checkpoint):
    """Why training the stage (under FORCE, at any width of its grow loop) would not remake its finished run in the
    folder; None when it would, or when there is none."""
    if checkpoint.exists():
        return why_stale(load_checkpoint(checkpoint).get("provenance"), run.provenance,
                         ignore=DECISION_SETTINGS | {"network_width_multiplier"})
    if any(checkpoint.parent.glob("checkpoint-*.pth.tar")):
        return "a checkpoint of another number of epochs is there"
    return None


def with_own_run_to_decide_again(run, checkpoint, saved):
    """The run, told to take `checkpoint`'s weights when that finetune differs from it only in DECISION_SETTINGS
    (the baseline, MAX_WIDTH, ALLOW_ACC_LOSS, the tasks to leave room for): its training would be the same."""
    same_training = why_stale(saved, run.provenance, ignore=DECISION_SETTINGS) is None
    if run.args.mode != "finetune" or run.sets_baseline or not same_training:
        return run
    return replace(run, reuse=checkpoint)


def main(args):
    if args.mode == "cpg":
        return run_cpg(args)
    return run_stage_saying_why(args)


def run_stage_saying_why(args):
    """run_stage, and the sentence its exit status means (but for DONE) on the console; the status."""
    status, task = run_stage(args)
    if status != ExitStatus.DONE:
        console_info(status.sentence(task.name))
    return status


# --mode cpg's own flags, and the pruning flags a finetune stage leaves at their defaults: each stage it runs has the
# arguments the same stage run alone has, so its provenance (what a re-run compares) is the same either way
CPG_ONLY = ("prune_stages", "prune_epochs", "prune_lr")
PRUNE_ONLY = ("initial_sparsity", "target_sparsity", "pruning_interval", "pruning_frequency")


def stage_defaults():
    """Every flag's default: what a stage run alone has for each flag it is not given."""
    return vars(get_args_parser().parse_args(["--dataset", "-", "--mode", "finetune", "--save_folder", "-"]))


def stage_args(args, defaults, reset=(), **changes):
    """One stage of --mode cpg: its arguments with --mode cpg's own and `reset` at their defaults, and `changes`."""
    return argparse.Namespace(**{**vars(args), **{k: defaults[k] for k in (*CPG_ONLY, *reset)}, **changes})


def run_cpg(args):
    """--mode cpg: the finetune, grown while under the baseline, then the pruning stages while they keep it. DONE
    when the loop ran to its end (a task owning no free weights, or a stage missing its goal, ends the pruning, as
    in the bash loop); another status is the stage's that stopped it."""
    check_args(args)
    width, top, defaults = args.network_width_multiplier, args.max_allowed_network_width_multiplier, stage_defaults()
    while True:
        status = run_stage_saying_why(stage_args(args, defaults, PRUNE_ONLY, mode="finetune",
                                                 network_width_multiplier=width))
        if status != ExitStatus.GROW or width >= top:
            break
        width = min(width + 0.5, top)
        console_info(f"New network_width_multiplier: {width:g}")
    if status not in (ExitStatus.DONE, ExitStatus.NO_CAPACITY):
        return status
    stages = (args.prune_stages or []) if status == ExitStatus.DONE else []   # no free weights: nothing to prune
    ran = {0.0}     # the stages this loop runs or finds done: any other stage is of an earlier plan
    scratch, pruned, initial = args.save_folder, str(Path(args.save_folder).parent / "gradual_prune"), 0.0
    for target in stages:
        ran.add(target)
        status = run_stage_saying_why(stage_args(
            args, defaults, mode="prune", load_folder=scratch if initial == 0.0 else pruned, load_checkpoint="",
            save_folder=pruned, epochs=args.prune_epochs or args.epochs, lr=args.prune_lr or args.lr, lr_mask=0.0,
            network_width_multiplier=width, initial_sparsity=initial, target_sparsity=target,
            untrained_backbone=False))
        if status in (ExitStatus.NO_CAPACITY, ExitStatus.PRUNE_FAILED):
            break
        if status != ExitStatus.DONE:
            return status
        initial = target
    if args.pruning_ratio_to_acc_record_file:
        forget_stages(Path(args.pruning_ratio_to_acc_record_file), log_path_of(args).with_suffix(".csv"),
                      lambda ratio: ratio not in ran)
    return ExitStatus.DONE


def run_stage(args, sets_baseline=False):
    """The stage the arguments ask for (or its stored result, when it is done already); (exit status, task).
    `sets_baseline`: step 1's finetune, which has no baseline to reach (its accuracy becomes the baseline)."""
    check_args(args)
    cfg = get_config(args.dataset_config)
    task = resolve_task(cfg, args.dataset, args)
    log_path = log_path_of(args)
    setup_logging(log_path, args.verbose)
    device = resolve_device(args.device)
    if args.mode == "inference":
        seed_everything(args.seed)
        return inference(args, cfg, task, device, task_loaders_of(args, cfg, task, device)), task

    # one process at a time per task folder: a second one (a run of a script killed while its jobs went on) would
    # write the same checkpoints, train.log and train.csv at once
    with locked(log_path, busy=f"Another process is training {task.name} in {log_path.parent} right now (a run still "
                              f"going, or one a killed script left behind); let it end or stop it, then run this "
                              f"again."):
        return train_or_resume(args, cfg, task, device, log_path, sets_baseline), task


def train_or_resume(args, cfg, task, device, log_path, sets_baseline):
    """The training stage the arguments ask for, or its stored result when it is done already; its exit status."""
    checkpoint = output_checkpoint(args)
    run = with_stage_files(plan_run(args, cfg, task, sets_baseline), cfg, checkpoint, log_path)
    status, run = finished_status(run, task, checkpoint)
    if status is not None:
        console_info(f"Baseline of {task.name} already done ({checkpoint}); pass --force to retrain."
                     if run.sets_baseline else
                     f"{checkpoint} is already done (exit status {int(status)}); pass --force to redo it.")
        return status
    seed_everything(training_seed(args))
    loaders = task_loaders_of(args, cfg, task, device)
    val_samples = loaders[1].num_samples
    allowed = 0.0 if run.sets_baseline else tolerance(run.baseline, val_samples, args.allow_acc_loss)
    run = replace(run, val_samples=val_samples, tolerance=allowed)
    started = time.time()
    step = finetune if args.mode == "finetune" else prune
    model, val_acc, status = step(run, cfg, task, device, loaders)
    if val_acc is not None:
        _, test_acc = evaluate(model, loaders[2], device)
        drop_what_the_old_stage_made(args, checkpoint, run.csv_path)
        outcome = outcome_record(task, run, accuracy=val_acc, test_accuracy=test_acc, status=status)
        save_run(checkpoint, model, cfg, run, outcome, accuracy=val_acc, test_accuracy=test_acc, status=status)
        run.state.remove()
        commit_train_csv(run.csv_path, run.stage)
        console_info(stage_line(task.name, run.stage, val_acc, test_acc, time.time() - started,
                                under_baseline_note(run, val_acc, status)))
    return status


def log_path_of(args):
    return Path(args.log_path) if args.log_path else Path(args.save_folder).parent / "train.log"


def drop_what_the_old_stage_made(args, checkpoint, csv_path):
    """Just before a stage's new checkpoint is written (a run killed earlier leaves the old outputs whole), remove
    what was made from its earlier version (other data or settings): the other checkpoints of its folder (another
    epoch count), the stages above the one it starts from (made after its earlier version, or by an earlier plan
    of stages: step 2-2 would otherwise choose among them) and step 2-2's choice of this stage or of those."""
    remove_other_checkpoints(checkpoint)
    if not args.pruning_ratio_to_acc_record_file:
        return
    made = args.target_sparsity if args.mode == "prune" else 0.0
    above = args.initial_sparsity if args.mode == "prune" else 0.0
    record_file = Path(args.pruning_ratio_to_acc_record_file)
    forget_stages(record_file, csv_path, lambda ratio: ratio > above and ratio != made)
    discard_choice_if(record_file.parent, lambda ratio: ratio == made)


def forget_stages(record_file, csv_path, forget):
    """Remove every pruning stage whose ratio `forget(ratio)` is true of: its record.txt entry, its folder, its
    train.csv rows and step 2-2's choice of it (with its copy and step 4's transfers), so no later step reads it."""
    read_prune_record(record_file)      # a malformed record: one sentence, before anything is removed
    remove_json_keys(record_file, lambda ratio: forget(float(ratio)))
    for folder in record_file.parent.iterdir() if record_file.parent.is_dir() else ():
        ratio = pruning_ratio_of(folder.name)
        if folder.is_dir() and ratio is not None and forget(ratio):
            shutil.rmtree(folder)
    remove_train_csv_rows(csv_path, lambda stage: stage.startswith("prune")
                          and (ratio := pruning_ratio_of(stage[len("prune"):])) is not None and forget(ratio))
    discard_choice_if(record_file.parent, forget)


def discard_choice_if(prune_dir, chosen_ratio):
    """Remove step 2-2's choice in `prune_dir` when `chosen_ratio(its ratio)` is true."""
    chosen_file = prune_dir / paths.CHOSEN_FILE
    chosen = read_chosen(chosen_file)
    if chosen is None or not chosen_ratio(chosen["ratio"]):
        return
    copy = prune_dir / chosen["checkpoint"]
    for stale in prune_dir.glob(copy.name.replace(".pth.tar", "_kv_transfer_*.pth.tar")):
        stale.unlink()
    if copy.is_file():
        copy.unlink()
    chosen_file.unlink()


def pruning_ratio_of(name):
    """The pruning ratio a stage folder of gradual_prune/ is named by; None for any other name."""
    try:
        return float(name)
    except ValueError:
        return None


def with_stage_files(run, cfg, checkpoint, log_path):
    """The run with its stage's name, train.csv, per-epoch state file and TensorBoard folder."""
    args = run.args
    stage = (STEP_1_STAGE if run.sets_baseline else f"finetune@{args.network_width_multiplier}"
             if args.mode == "finetune" else f"prune{args.target_sparsity}")
    state = StageState(paths.stage_state_file(checkpoint), cfg.name, run.provenance)
    if args.force:
        state.remove()
    tensorboard_dir = log_path.parent / "tensorboard" / stage if args.tensorboard else None
    return replace(run, stage=stage, csv_path=log_path.with_suffix(".csv"), state=state,
                   tensorboard_dir=tensorboard_dir)


def under_baseline_note(run, val_acc, status):
    """What the stage line adds when a finished task is kept under its baseline (at the widest network)."""
    if status != ExitStatus.DONE or run.sets_baseline or reaches_baseline(val_acc, run.baseline, run.tolerance):
        return ""
    return (f"stayed under its baseline {run.baseline:.4f} at the widest network allowed "
            f"({run.args.network_width_multiplier}); kept as it is")


def training_seed(args):
    return args.seed if args.training_seed is None else args.training_seed


def task_loaders_of(args, cfg, task, device):
    return task_loaders(cfg, task, batch_size=args.batch_size, val_batch_size=args.val_batch_size,
                        val_fraction=args.val_fraction, seed=training_seed(args), split_seed=args.seed,
                        device=device)


if __name__ == "__main__":
    run_main(main, get_args_parser)
