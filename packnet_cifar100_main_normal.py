"""Step 1: train one task from scratch and record its accuracy (the baseline every later step compares to).

    python packnet_cifar100_main_normal.py --arch perceiver_io --dataset_config demo --dataset 1
"""
import logging
import time
from pathlib import Path

from tqdm import tqdm

from packnet_models.baseline import build_baseline
from utils import paths
from utils.data import task_loaders
from utils.checkpoint import NOT_MADE, save_model, why_redo
from utils.cli import ArgumentParser, add_common_args, resolve_task
from utils.dataset_config import get_config
from utils.errors import UserError, run_main
from utils.logs import TrainCsv, setup_logging, train_line, validate_line
from utils.provenance import provenance, settings_of
from utils.records import read_json_record, update_json_record
from utils.train import build_optimizers, evaluate, resolve_device, seed_everything, set_lr, step_decay_factor, train_one_epoch


def get_args_parser():
    p = ArgumentParser(description="Train task(s) from scratch (baseline).")
    add_common_args(p)
    p.add_argument("--dataset", required=True, nargs="+",
                   help="task name(s) or 1-based id(s); several are trained one after the other")
    p.add_argument("--mode", default="finetune", choices=["finetune"])
    p.add_argument("--save_folder", help="default: checkpoints_<arch>/baseline_scratch/<arch>/<cfg>/<task>")
    p.add_argument("--logfile", help="baseline accuracy JSON; default: logs_<arch>/baseline_<cfg>_acc.txt")
    return p


def remove_stale_checkpoints(folder, keep):
    """A baseline folder keeps one checkpoint, so later steps never have to guess which one is current."""
    for old in folder.glob("checkpoint-*.pth.tar"):
        if old != keep:
            old.unlink()


def run_provenance(args, cfg, task):
    """What shapes this task's baseline: the settings (one task, the config's validation share resolved)."""
    val_fraction = cfg.val_fraction if args.val_fraction is None else args.val_fraction
    return provenance(settings_of(args, dataset=task.name, val_fraction=val_fraction), inputs={})


def why_retrain(checkpoint, logfile, task, wanted):
    """None when this task's baseline is done with the same settings, else the reason to train it."""
    if task.name not in read_json_record(logfile):
        return NOT_MADE
    return why_redo(checkpoint, wanted)


def train(args, cfg, task, model, device, save_folder):
    train_loader, val_loader, test_loader = task_loaders(
        cfg, task, batch_size=args.batch_size, val_batch_size=args.val_batch_size,
        val_fraction=args.val_fraction, seed=args.seed, device=device)
    optimizer, _ = build_optimizers(model, args.lr, 0.0, args.weight_decay, args.optimizer)
    csv_log = TrainCsv(save_folder / "train.csv", stage="baseline")
    val_acc = 0.0
    for epoch in tqdm(range(args.epochs), desc=f"baseline {task.name}", dynamic_ncols=True):
        lr = args.lr * step_decay_factor(epoch, args.epochs)
        set_lr(optimizer, lr)
        train_loss, train_acc = train_one_epoch(model, train_loader, optimizer, device, epoch + 1,
                                                weight_decay=args.weight_decay)
        val_loss, val_acc = evaluate(model, val_loader, device)
        stats = model.stats()
        logging.info(train_line(epoch + 1, train_loss, train_acc, lr, stats["sparsity"], stats["mpl"]))
        logging.info(validate_line(epoch + 1, val_loss, val_acc, stats))
        csv_log.append(epoch, val_acc, train_acc)
    _, test_acc = evaluate(model, test_loader, device)
    return val_acc, train_acc, test_acc


def run_task(args, cfg, task):
    """Train and record one task; returns its summary row."""
    save_folder = (Path(args.save_folder) if args.save_folder
                   else paths.baseline_dir(args.arch, cfg.name, task.name, args.seed))
    logfile = Path(args.logfile) if args.logfile else paths.baseline_acc_file(args.arch, cfg.name, args.seed)
    test_logfile = (logfile.with_name(logfile.name.replace("_acc", "_test_acc")) if args.logfile
                    else paths.baseline_test_acc_file(args.arch, cfg.name, args.seed))
    checkpoint = paths.checkpoint_file(save_folder, args.epochs)
    wanted = run_provenance(args, cfg, task)
    reason = "--force" if args.force else why_retrain(checkpoint, logfile, task, wanted)
    if reason is None:
        print(f"Baseline of {task.name} already done ({checkpoint}); pass --force to retrain.")
        return task, read_json_record(logfile)[task.name], read_json_record(test_logfile).get(task.name, "-"), "skipped"

    setup_logging(save_folder / "train.log")
    if reason != NOT_MADE:
        logging.info(f"Retraining the baseline of {task.name}: {reason}.")
    seed_everything(args.seed)
    device = resolve_device(args.device)
    model = build_baseline(args.arch, args.profile, cfg, task).to(device)
    started = time.time()
    val_acc, train_acc, test_acc = train(args, cfg, task, model, device, save_folder)
    save_model(checkpoint, model.cpu(), cfg.name, epoch=args.epochs, accuracy=val_acc, train_accuracy=train_acc,
               test_accuracy=test_acc, args=settings_of(args), provenance=wanted)
    remove_stale_checkpoints(save_folder, keep=checkpoint)
    update_json_record(logfile, task.name, f"{val_acc:.4f}")
    update_json_record(test_logfile, task.name, f"{test_acc:.4f}")
    seconds = time.time() - started
    logging.info(f"Baseline {task.name}: val accuracy {val_acc:.4f}, test accuracy {test_acc:.4f} "
                 f"({seconds:.0f}s), saved {checkpoint}")
    return task, f"{val_acc:.4f}", f"{test_acc:.4f}", f"{seconds:.0f}s"


def print_summary(rows):
    print(f"\n{'id':>3}  {'task':<32} {'modality':<8} {'val acc':>8} {'test acc':>8}  time")
    for task, val_acc, test_acc, took in rows:
        print(f"{task.task_id:>3}  {task.name:<32} {task.modality:<8} {val_acc:>8} {test_acc:>8}  {took}")


def main():
    args = get_args_parser().parse_args()
    cfg = get_config(args.dataset_config)
    tasks = [resolve_task(cfg, key, args) for key in args.dataset]
    if len(tasks) > 1 and args.save_folder:
        raise UserError("--save_folder names one task's folder; give one --dataset with it, or leave it out.")
    rows = [run_task(args, cfg, task) for task in tasks]
    print_summary(rows)
    return 0


if __name__ == "__main__":
    run_main(main)
