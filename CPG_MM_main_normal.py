"""Steps 2-1 and 3-2: CPG training of one task (compact, pick, grow), any arch, any modality.

    --mode finetune   train the task on the free weights (+ a piggyback mask over earlier tasks')
    --mode prune      gradually prune the task's own weights from --initial_sparsity to --target_sparsity
    --mode inference  evaluate a task of a checkpoint at its own width

The exit status tells the bash loop what to do next (utils.errors.ExitStatus): 0 done, 2 grow the
network and retry, 3 baseline missing, 5 the task owns no free capacity, 6 a pruning stage missed
its accuracy goal.
"""
import argparse
import logging
import math
from pathlib import Path

from tqdm import tqdm

from models.cpg import CPGModel
from utils.checkpoint import load_checkpoint, load_model, save_model
from utils.cli import add_common_args, resolve_task
from utils.data import task_loaders
from utils.dataset_config import get_config
from utils.errors import ExitStatus, UserError, run_main
from utils.paths import folder_checkpoint
from utils.logs import TrainCsv, setup_logging, train_line, validate_line
from utils.pruner import GradualPruner
from utils.records import read_json_record, update_json_record
from utils.train import build_optimizers, evaluate, resolve_device, seed_everything, set_lr, step_decay_factor, train_one_epoch

def get_args_parser():
    p = argparse.ArgumentParser(description="CPG training of one task: finetune, prune or inference.")
    add_common_args(p)
    p.add_argument("--dataset", required=True, help="task name or 1-based task id")
    p.add_argument("--mode", required=True, choices=["finetune", "prune", "inference"])
    p.add_argument("--lr_mask", type=float, default=1e-4, help="Adam lr of the piggyback mask")
    p.add_argument("--save_folder", required=True)
    p.add_argument("--load_folder", default="", help="start from the checkpoint in this folder")
    p.add_argument("--load_checkpoint", default="", help="start from this checkpoint file (step 4's output)")
    p.add_argument("--jsonfile", help="baseline accuracy JSON (step 1)")
    p.add_argument("--network_width_multiplier", type=float, default=1.0)
    p.add_argument("--max_allowed_network_width_multiplier", type=float, default=1.0)
    p.add_argument("--pruning_ratio_to_acc_record_file", help="record.txt: ratio -> accuracy")
    p.add_argument("--log_path", help="train.log (train.csv is written beside it)")
    p.add_argument("--total_num_tasks", type=int, default=5)
    p.add_argument("--initial_sparsity", type=float, default=0.0)
    p.add_argument("--target_sparsity", type=float, default=0.1)
    p.add_argument("--pruning_interval", type=int, default=4, help="epochs over which the sparsity ramps")
    p.add_argument("--pruning_frequency", type=int, default=10, help="optimizer steps between mask updates")
    p.add_argument("--train_acc_gate", action="store_true",
                   help="also require train accuracy > 0.95 before accepting a width (the original's rule)")
    return p


# ---------------------------------------------------------------- loading and saving

def save_run(path, model, cfg, *, epoch, accuracy, test_accuracy, status, args):
    save_model(path, model, cfg.name, epoch=epoch, accuracy=accuracy, test_accuracy=test_accuracy,
               status=int(status), args=args)


def prepare_model(args, cfg, task):
    """The model to train: the start checkpoint (or a fresh model), at the asked width, with the task active."""
    width = args.network_width_multiplier
    if args.load_checkpoint:
        model, _ = load_model(args.load_checkpoint, expect_arch=args.arch, expect_config=cfg.name)
    elif args.load_folder:
        model, _ = load_model(folder_checkpoint(args.load_folder), expect_arch=args.arch, expect_config=cfg.name)
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
    return model


# ---------------------------------------------------------------- decisions

def read_baseline(jsonfile, task):
    if not jsonfile or not Path(jsonfile).is_file():
        raise UserError(f"You should provide the baseline accuracy file ({jsonfile or '--jsonfile'}) as the "
                        f"criterion to decide whether the capacity of the network is enough for a new task; "
                        f"run run_pickaback/baseline.sh first.", exit_code=ExitStatus.NO_BASELINE)
    record = read_json_record(jsonfile)
    if task.name not in record:
        raise UserError(f"{jsonfile} has no baseline accuracy for task {task.name}; run run_pickaback/baseline.sh "
                        f"for it first.", exit_code=ExitStatus.NO_BASELINE)
    return float(record[task.name])


def owns_weights(model):
    return model.stats()["task_ratio"] > 0


def finetune_decision(args, model, val_acc, train_acc, baseline):
    """The original's end-of-finetune rule, with growth decided by validation accuracy vs baseline."""
    good_enough = val_acc >= baseline and (train_acc > 0.95 or not args.train_acc_gate)
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


def run_epochs(args, model, loaders, device, csv_log, *, lr, lr_mask, decay_lr, pruner=None):
    """Train for args.epochs; returns (final val acc, final train acc)."""
    train_loader, val_loader, _ = loaders
    optimizer, mask_optimizer = build_optimizers(model, lr, lr_mask, args.weight_decay)
    owns = owns_weights(model)
    if mask_optimizer is not None and not owns:
        logging.info("There is no left space in convolutional layer for curr task, we will try to use prior "
                     "experience as long as possible")
    val_acc = train_acc = 0.0
    for epoch in tqdm(range(args.epochs), desc=f"{args.mode} {model.active_task}", dynamic_ncols=True):
        epoch_lr = lr * step_decay_factor(epoch, args.epochs) if decay_lr else lr
        set_lr(optimizer, epoch_lr)
        if mask_optimizer is not None:
            set_lr(mask_optimizer, lr_mask * mask_lr_factor(epoch, args.epochs, owns))
        train_loss, train_acc = train_one_epoch(model, train_loader, optimizer, device, epoch + 1,
                                                weight_decay=args.weight_decay, mask_optimizer=mask_optimizer,
                                                after_step=pruner)
        if pruner is not None and epoch == args.epochs - 1:
            pruner.finish()
        logging.info(train_line(epoch + 1, train_loss, train_acc, epoch_lr, model.stats()["sparsity"],
                                math.sqrt(model.width_mult)))
        val_acc = log_validation(model, val_loader, device, epoch + 1)
        csv_log.append(epoch, val_acc, train_acc)
    logging.info("-" * 16)
    return val_acc, train_acc


def finetune(args, cfg, task, device, loaders, csv_log):
    baseline = read_baseline(args.jsonfile, task)
    model = prepare_model(args, cfg, task).to(device)
    logging.info("Finetune stage...")
    val_acc, train_acc = run_epochs(args, model, loaders, device, csv_log, lr=args.lr, lr_mask=args.lr_mask,
                                    decay_lr=True)
    if args.pruning_ratio_to_acc_record_file:
        update_json_record(args.pruning_ratio_to_acc_record_file, "0.0", round(val_acc, 4))
    return model, val_acc, finetune_decision(args, model, val_acc, train_acc, baseline)


def prune(args, cfg, task, device, loaders, csv_log):
    if not args.pruning_ratio_to_acc_record_file:
        raise UserError("--mode prune needs --pruning_ratio_to_acc_record_file (the record.txt of the task).")
    baseline = read_baseline(args.jsonfile, task)
    record = read_json_record(args.pruning_ratio_to_acc_record_file)
    model = prepare_model_for_pruning(args, cfg, task).to(device)
    at_max_width = args.network_width_multiplier >= args.max_allowed_network_width_multiplier
    if at_max_width and float(record.get("0.0", 1.0)) < baseline:
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
    pruner = GradualPruner(model, initial=args.initial_sparsity, target=args.target_sparsity, begin=0,
                           end=min(args.pruning_interval, args.epochs) * steps, frequency=args.pruning_frequency)
    val_acc, _ = run_epochs(args, model, loaders, device, csv_log, lr=args.lr, lr_mask=0.0, decay_lr=False,
                            pruner=pruner)
    update_json_record(args.pruning_ratio_to_acc_record_file, str(args.target_sparsity), round(val_acc, 4))
    if val_acc < baseline:
        logging.info(f"Pruning to {args.target_sparsity} left accuracy {val_acc:.4f} under the baseline "
                     f"{baseline:.4f}; the pruning loop stops here.")
        return model, val_acc, ExitStatus.PRUNE_FAILED
    return model, val_acc, ExitStatus.DONE


def prepare_model_for_pruning(args, cfg, task):
    folder = Path(args.load_folder)
    if args.initial_sparsity != 0:
        folder = folder / str(args.initial_sparsity)
    model, _ = load_model(folder_checkpoint(folder), expect_arch=args.arch, expect_config=cfg.name)
    if task.name not in model.task_names or model.task_names[-1] != task.name:
        raise UserError(f"The checkpoint in {folder} was not trained last on task {task.name}; "
                        f"only the newest task of a checkpoint can be pruned.")
    model.set_active_task(task.name)
    return model


def inference(args, cfg, task, device, loaders):
    source = Path(args.load_checkpoint) if args.load_checkpoint else folder_checkpoint(args.load_folder or args.save_folder)
    model, _ = load_model(source, expect_arch=args.arch, expect_config=cfg.name)
    if task.name not in model.task_names:
        raise UserError(f"{source} holds no task {task.name}; it holds {', '.join(model.task_names)}.")
    view = model.task_view(task.name).to(device)
    loss, acc = evaluate(view, loaders[1], device)
    model.set_active_task(task.name)
    logging.info(validate_line(1, loss, acc, model.stats()))
    _, test_acc = evaluate(view, loaders[2], device)
    logging.info(f"Test accuracy of {task.name}: {test_acc:.4f}")
    return ExitStatus.DONE


# ---------------------------------------------------------------- main

def output_checkpoint(args):
    folder = Path(args.save_folder)
    if args.mode == "prune":
        folder = folder / str(args.target_sparsity)
    return folder / f"checkpoint-{args.epochs}.pth.tar"


def finished_status(args, checkpoint):
    """The stored exit status when this run already finished (so a re-run resumes), else None."""
    if args.force or not checkpoint.exists():
        return None
    payload = load_checkpoint(checkpoint)
    saved_width = payload["model"]["width_mult"]
    if args.mode == "finetune" and saved_width > args.network_width_multiplier:
        return ExitStatus.GROW  # an earlier run already grew past this width: fast-forward the bash loop
    if saved_width == args.network_width_multiplier:
        return ExitStatus(payload.get("status", 0))
    return None


def main():
    args = get_args_parser().parse_args()
    cfg = get_config(args.dataset_config)
    task = resolve_task(cfg, args.dataset, args)
    log_path = Path(args.log_path) if args.log_path else Path(args.save_folder).parent / "train.log"
    setup_logging(log_path)
    checkpoint = output_checkpoint(args)
    if args.mode != "inference":
        status = finished_status(args, checkpoint)
        if status is not None:
            logging.info(f"{checkpoint} is already done (exit status {int(status)}); pass --force to redo it.")
            return status
    seed_everything(args.seed)
    device = resolve_device(args.device)
    loaders = task_loaders(cfg, task, batch_size=args.batch_size, val_batch_size=args.val_batch_size,
                           val_fraction=args.val_fraction, seed=args.seed, device=device)
    if args.mode == "inference":
        return inference(args, cfg, task, device, loaders)

    stage = f"{args.mode}@{args.network_width_multiplier}" if args.mode == "finetune" else f"prune{args.target_sparsity}"
    csv_log = TrainCsv(log_path.with_suffix(".csv"), stage=stage)
    step = finetune if args.mode == "finetune" else prune
    model, val_acc, status = step(args, cfg, task, device, loaders, csv_log)
    if val_acc is not None:
        _, test_acc = evaluate(model, loaders[2], device)
        save_run(checkpoint, model.cpu(), cfg, epoch=args.epochs, accuracy=val_acc, test_accuracy=test_acc,
                 status=status, args=vars(args))
    if status != ExitStatus.DONE:
        print(STATUS_SENTENCES[status].format(task=task.name))
    return status


STATUS_SENTENCES = {
    ExitStatus.GROW: "Exit 2: {task} stayed under its baseline at this width; the script retries with a wider network.",
    ExitStatus.NO_CAPACITY: "Exit 5: {task} owns no free weights (it reuses earlier tasks' weights only), so there "
                            "is nothing to prune; pruning is skipped.",
    ExitStatus.PRUNE_FAILED: "Exit 6: this pruning stage of {task} missed its accuracy goal; the pruning loop stops "
                             "here and step 2-2 chooses among the stages that passed.",
}


if __name__ == "__main__":
    run_main(main)
