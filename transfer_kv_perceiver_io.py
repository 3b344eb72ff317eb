"""Step 4: hand each target's key/value input projection to its selected backbone.

    python transfer_kv_perceiver_io.py --dataset_config demo

For every row (target_id, task_id) of pickaback_<cfg>_result.csv: load the backbone task's chosen
checkpoint (step 2-2), register the target as a new task in it and install the target's input
adapter (its key/value input projection and, for text, its token and position embeddings) from the
target's baseline as that task's private adapter. Saved beside the chosen checkpoint as
checkpoint-<E>_kv_transfer_<target_id>.pth.tar; the backbone's own checkpoint is never written. Nothing
else is copied: the target's head starts fresh and its body weights are the free weights it claims.
A re-run keeps a transfer whose inputs (the two checkpoints) and seed are unchanged.
"""
from pathlib import Path

from packnet_models_pickaback.compare import load_task_model
from utils import paths
from utils.checkpoint import load_model, save_model, why_redo
from utils.cli import ArgumentParser, seed_int
from utils.dataset_config import CONFIG_HELP, get_config
from utils.errors import UserError, run_main
from utils.provenance import provenance
from utils.results import STEP_3_1
from utils.train import seed_everything
from utils_pickaback.ranking import picks_for, refuse_outdated_picks


def get_args_parser():
    p = ArgumentParser(description="Install each target's key/value projection into its backbone.")
    p.add_argument("--arch", default="perceiver_io", choices=["perceiver_io"])
    p.add_argument("--dataset_config", default="demo", help=f"dataset config: {CONFIG_HELP}")
    p.add_argument("--csv_path", help="default: pickaback_<cfg>_result.csv")
    p.add_argument("--target_id", nargs="+", default=["all"], help="targets to transfer, or 'all'")
    p.add_argument("--pairs", nargs="+", metavar="TARGET:BACKBONE",
                   help="transfer these (target id:backbone id) pairs instead of the result file's "
                        "(the transfer control trains every target on every candidate)")
    p.add_argument("--seed", type=seed_int, default=paths.DEFAULT_SEED,
                   help="the run's seed: where its outputs are (seed<S>/ unless 2) and the target's fresh head")
    p.add_argument("--force", action="store_true", help="redo transfers whose inputs are unchanged")
    return p


def parse_pairs(items):
    """[(target id, backbone id)] from "target:backbone" items."""
    pairs = [item.split(":") for item in items]
    if not all(len(p) == 2 and p[0].isdigit() and p[1].isdigit() for p in pairs):
        raise UserError(f"--pairs takes target:backbone task ids, e.g. 2:5; got {' '.join(items)}.")
    return [(int(t), int(b)) for t, b in pairs]


def transfer_provenance(cfg, arch, target, backbone, seed, chosen):
    target_baseline = paths.baseline_checkpoint(arch, cfg.name, target.name, seed)
    settings = {"arch": arch, "dataset_config": cfg.provenance_id, "target": target.name, "backbone": backbone.name,
                "seed": seed}
    return provenance(settings, {"backbone": chosen, "target baseline": target_baseline})


def transfer(cfg, arch, target, backbone, seed, force=False, picked=False):
    """Write the backbone's chosen checkpoint + the target task with its own adapter; returns (path, what was done).
    `picked`: the pair is step 3-1's pick, which must have compared the models there now."""
    chosen = paths.chosen_backbone(arch, cfg.name, backbone.name, seed)
    out = paths.kv_transfer_checkpoint(chosen, target.task_id)
    wanted = transfer_provenance(cfg, arch, target, backbone, seed, chosen)
    reason = "--force" if force else why_redo(out, wanted)
    if reason is None:
        return out, "unchanged, kept"
    model, payload = load_model(chosen, expect_arch=arch, expect_config=cfg)
    if model.task_names[-1] != backbone.name:
        raise UserError(f"{chosen} is not a backbone checkpoint of {backbone.name} (it was replaced); re-run step "
                        f"2-2 (run_pickaback/select_pruning_ratio_of_backbone.sh {cfg.name}) to install it again.")
    if target.name in model.task_names:
        raise UserError(f"{chosen} already holds task {target.name}; it cannot be its own backbone.")
    target_model = load_task_model(cfg, target, arch, seed)
    if picked:      # after the loads above, so that a damaged file is named as damaged, not as changed
        refuse_outdated_picks(cfg, arch, seed, {target.task_id: backbone.task_id})
    seed_everything(seed)   # the target's new head: the same checkpoint on every run, in any order
    model.add_task(target, cfg)
    model.install_adapter(target.name, target_model, target.name)
    save_model(out, model, cfg.name, epoch=payload.get("epoch", 0), source=chosen.name,
               backbone=backbone.name, target=target.name, provenance=wanted)
    return out, f"written ({reason})"


def main(args):
    cfg = get_config(args.dataset_config)
    csv_path = Path(args.csv_path) if args.csv_path else paths.pickaback_result_csv(cfg.name, args.seed)
    wanted = None if args.target_id == ["all"] else {cfg.task(k).task_id for k in args.target_id}
    targets = wanted if wanted is not None else {task.task_id for task in cfg.tasks}
    pairs = parse_pairs(args.pairs) if args.pairs else sorted(picks_for(csv_path, args.arch, targets).items())
    pairs = [(target_id, task_id) for target_id, task_id in pairs if wanted is None or target_id in wanted]
    unpicked = sorted((wanted or set()) - {target_id for target_id, _ in pairs})
    if unpicked:
        raise UserError(f"No backbone for target {', '.join(map(str, unpicked))} in "
                        f"{'--pairs' if args.pairs else csv_path}; run {STEP_3_1} for it first, or leave it out of "
                        f"--target_id.")
    for target_id, task_id in pairs:
        target, backbone = cfg.task(target_id), cfg.task(task_id)
        out, done = transfer(cfg, args.arch, target, backbone, args.seed, args.force, picked=not args.pairs)
        print(f"Target {target_id} ({target.name}, {target.modality}) -> backbone {task_id} "
              f"({backbone.name}, {backbone.modality}): {out} {done}")
    return 0


if __name__ == "__main__":
    run_main(main, get_args_parser)
