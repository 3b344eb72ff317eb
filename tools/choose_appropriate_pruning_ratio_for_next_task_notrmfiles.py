"""Step 2-2: choose the largest pruning ratio whose accuracy still reaches the baseline.

The chosen stage's checkpoint is copied into `gradual_prune/` and named in `gradual_prune/chosen.json`,
which is what step 3-2 loads: no guessing by "the highest epoch number in the folder".
Falls back to the unpruned model (`scratch/`) when no ratio qualifies. A re-run whose choice is already
installed writes nothing (not even its log line). Imports no torch: it only reads JSON and copies files.
"""
import shutil
from pathlib import Path

from utils.cli import ArgumentParser, fraction
from utils.baseline import reaches_baseline, tolerance
from utils.errors import UserError, run_main
from utils.logs import console_info, setup_logging
from utils.paths import CHOSEN_FILE, folder_checkpoint
from utils.provenance import fingerprint
from utils.records import atomic_file, write_json_atomic
from utils.results import (decided_against_another_baseline, read_baselines, read_chosen, read_outcome,
                           read_prune_record)


def get_args_parser():
    p = ArgumentParser(description="Choose the pruning ratio of a task's backbone model.")
    p.add_argument("--pruning_ratio_to_acc_record_file", required=True, help="<task dir>/gradual_prune/record.txt")
    p.add_argument("--baseline_acc_file", required=True, help="logs_<arch>/baseline_<cfg>_acc.txt")
    p.add_argument("--dataset", required=True, help="task name (key of the baseline file)")
    p.add_argument("--allow_acc_loss", type=fraction, default=None,
                   help="accuracy a ratio may lose below the baseline (the same rule as step 2-1's pruning loop); "
                        "default: one standard error of the baseline on the task's validation samples; 0.001 is the "
                        "original's rule")
    p.add_argument("--log_path", help="train.log of the task")
    return p


def choose_ratio(record, baseline, tolerance):
    """The largest ratio (as a number) that reaches the baseline, or None for the unpruned model."""
    ratios = sorted((float(key), acc) for key, acc in record.items() if float(key) > 0)
    for ratio, acc in reversed(ratios):
        if reaches_baseline(acc, baseline, tolerance):
            return ratio
    return None


def choice_record(prune_dir, source, ratio, accuracy):
    """What chosen.json says of a choice: the checkpoint is `source`'s copy in gradual_prune/."""
    return {"ratio": ratio, "accuracy": accuracy, "checkpoint": source.name,
            "source": str(source.relative_to(prune_dir.parent))}


def already_installed(prune_dir, source, ratio, accuracy):
    """True when chosen.json records this very choice and its copy of `source` is still the same file."""
    installed = prune_dir / source.name
    return (read_chosen(prune_dir / CHOSEN_FILE) == choice_record(prune_dir, source, ratio, accuracy)
            and installed.is_file() and fingerprint(installed) == fingerprint(source))


def install_chosen(prune_dir, source, ratio, accuracy):
    """Copy `source` into gradual_prune/ (atomically) and record the choice, removing an earlier, different
    choice and the key/value transfers (step 4) made from it: they would hand targets a stale backbone."""
    chosen_json = prune_dir / CHOSEN_FILE
    earlier = read_chosen(chosen_json)
    if earlier is not None:
        previous = prune_dir / earlier["checkpoint"]
        if previous.exists() and fingerprint(previous) != fingerprint(source):
            for stale in prune_dir.glob(previous.name.replace(".pth.tar", "_kv_transfer_*.pth.tar")):
                stale.unlink()
        if previous.name != source.name:
            previous.unlink(missing_ok=True)
    target = prune_dir / source.name
    with open(source, "rb") as src, atomic_file(target, "wb") as dst:
        shutil.copyfileobj(src, dst)
    write_json_atomic(chosen_json, choice_record(prune_dir, source, ratio, accuracy))
    return target


def tolerance_of_step_2_1(prune_dir, baseline, allow_acc_loss, task_name):
    """The tolerance step 2-1 decided by (its finetune's outcome.json: the validation samples, and the tolerance
    itself), as step 2-2 must choose with it: under a looser one (another ALLOW_ACC_LOSS) it would install a stage
    step 2-1's pruning loop judged a miss and stopped at. One UserError sentence when `allow_acc_loss` gives
    another."""
    finetune = read_outcome(prune_dir.parent / "scratch") or {}     # {}: a run of an older version
    wanted = tolerance(baseline, finetune.get("val_samples"), allow_acc_loss)
    decided = finetune.get("tolerance")
    if isinstance(decided, (int, float)) and abs(decided - wanted) > 1e-9:
        # the default tolerance follows the baseline: after step 1 re-ran, that is the cause to name
        refuse_a_stage_of_another_baseline(prune_dir.parent / "scratch", task_name, baseline)
        raise UserError(f"Step 2-1 of {task_name} decided with a tolerance of {decided:.4f} below its baseline and "
                        f"step 2-2 would choose with {wanted:.4f}, so it could install a stage step 2-1 judged a "
                        f"miss; run both with the same ALLOW_ACC_LOSS (unset: one standard error).")
    return wanted


def refuse_a_stage_of_another_baseline(folder, task_name, baseline):
    """A stage of step 2-1 decided against an earlier step-1 baseline (step 1 re-run since, step 2-1 not) is of the
    old model: installing it would hand targets a backbone step 1 no longer stands behind."""
    outcome = read_outcome(folder)
    if decided_against_another_baseline(outcome, baseline):
        raise UserError(f"Step 2-1's run {folder} of {task_name} was decided against step 1's earlier "
                        f"baseline ({outcome['baseline']:.4f}; now {baseline:.4f}); re-run "
                        f"run_pickaback/wo_backbone.sh for it first.")


def main(args):
    baselines = read_baselines(args.baseline_acc_file)
    if args.dataset not in baselines:
        raise UserError(f"{args.baseline_acc_file} has no baseline for {args.dataset}; "
                        f"run run_pickaback/baseline.sh first.")
    record = read_prune_record(args.pruning_ratio_to_acc_record_file)
    if 0.0 not in record:
        raise UserError(f"{args.pruning_ratio_to_acc_record_file} has no unpruned accuracy (key \"0.0\"); "
                        f"run run_pickaback/wo_backbone.sh for {args.dataset} first.")
    prune_dir = Path(args.pruning_ratio_to_acc_record_file).parent
    baseline = baselines[args.dataset]
    ratio = choose_ratio(record, baseline, tolerance_of_step_2_1(prune_dir, baseline, args.allow_acc_loss,
                                                                 args.dataset))
    scratch = ratio is None
    if scratch:
        source, ratio = folder_checkpoint(prune_dir.parent / "scratch"), 0.0
    else:
        source = folder_checkpoint(prune_dir / str(ratio))
    refuse_a_stage_of_another_baseline(source.parent, args.dataset, baseline)
    unchanged = already_installed(prune_dir, source, ratio, record[ratio])
    setup_logging(None if unchanged else args.log_path)   # nothing to do writes nothing, not even train.log
    if scratch:
        console_info("We select scratch")
    if unchanged:
        console_info(f"We choose pruning ratio {ratio} (already installed, kept)")
        return 0
    install_chosen(prune_dir, source, ratio, record[ratio])
    console_info(f"We choose pruning ratio {ratio}")
    return 0


if __name__ == "__main__":
    run_main(main, get_args_parser)
