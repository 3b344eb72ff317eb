"""Step 3-1: pick a backbone for each target by comparing decision patterns (ModelDiff).

    python pickaback_perceiverIO.py --dataset_config demo --target_id all

For each target, every other task's baseline is compared with the target's baseline on the same
profiling inputs (drawn from the target's own training data, improved by the mutation search); the
candidate with the smallest distance between decision distance vectors is selected (`--select
dissimilar` takes the largest, as the original code did). Writes pickaback_<cfg>_result.csv (one row
per target) and pickaback_<cfg>_table.csv (every pair's distances).
"""
import argparse
import csv
import os
import tempfile

import torch
from tqdm import tqdm

from packnet_models_pickaback.compare import comparison_view, load_task_model
from utils import paths
from utils.data import TaskLoader, load_split, train_val_split
from utils.dataset_config import CONFIG_NAMES, get_config
from utils.errors import UserError, run_main
from utils.train import resolve_device, seed_everything
from utils_pickaback.modeldiff import (model_distance, normalised_image_range, rank_candidates,
                                       search_profiling_inputs, search_single_moves)

TABLE_FIELDS = ["target_id", "task_id", "ddv_cos", "ddv_euc"]


def get_args_parser():
    p = argparse.ArgumentParser(description="Select a backbone for each target with ModelDiff.")
    p.add_argument("--arch", default="perceiver_io", choices=["perceiver_io", "lenet5"])
    p.add_argument("--dataset_config", default="demo", help=f"one of {', '.join(CONFIG_NAMES)}")
    p.add_argument("--target_id", nargs="+", default=["all"], help="target ids or names, or 'all'")
    p.add_argument("--select", default="similar", choices=["similar", "dissimilar"],
                   help="similar: smallest distance (default); dissimilar: largest, as the original code")
    p.add_argument("--candidates", default="all", choices=["all", "same-modality"])
    p.add_argument("--candidate_ids", nargs="+", default=["all"],
                   help="the peers whose models may be picked (ids or names), or 'all'")
    p.add_argument("--profile_source", default="target", choices=["target", "both"],
                   help="profiling inputs from the target's training data only, or half from the candidate's "
                        "(the original; same-modality candidates only)")
    p.add_argument("--search", default="single", choices=["single", "batched"],
                   help="single: the original's search (one move per iteration), computed incrementally; "
                        "batched: every input moved at each iteration (far more moves per second)")
    p.add_argument("--n_inputs", type=int, default=100)
    p.add_argument("--epsilon", type=float, default=0.1)
    p.add_argument("--max_iterations", type=int, default=100)
    p.add_argument("--val_fraction", type=float, default=None,
                   help="as in step 1 (default: the config's): profiling inputs come from the train part only")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--force", action="store_true", help="redo targets whose selection is already saved")
    return p


def select_tasks(cfg, keys, arch):
    """The tasks named by `keys` (ids or names, or 'all': every task `arch` can read)."""
    usable = [t for t in cfg.tasks if arch != "lenet5" or t.modality == "image"]
    if keys == ["all"]:
        return usable
    tasks = [cfg.task(int(k) if k.isdigit() else k) for k in keys]
    for task in tasks:
        if task not in usable:
            raise UserError(f"{arch} has no model of the {task.modality} task {task.name}.")
    return tasks


def candidates_for(peers, target, rule):
    pool = [t for t in peers if t.name != target.name]
    if rule == "same-modality":
        pool = [t for t in pool if t.modality == target.modality]
    return pool


def profiling_seeds(cfg, task, n, args, device):
    """n inputs drawn (seeded) from the train part of `task`, as the model sees them."""
    val_fraction = cfg.val_fraction if args.val_fraction is None else args.val_fraction
    train, _ = train_val_split(load_split(cfg, task, "train"), val_fraction, args.seed)
    if len(train) < 2:
        raise UserError(f"Task {task.name} has fewer than 2 training samples to profile with.")
    picked = torch.randperm(len(train), generator=torch.Generator().manual_seed(args.seed))[:n]
    loader = TaskLoader(train.subset(picked), task, cfg, len(picked), shuffle=False, augment=False,
                        device=device, seed=args.seed)
    inputs, _ = next(iter(loader))
    return inputs


def pair_seeds(cfg, target, candidate, args, device, cache):
    """The target's seeds, or (--profile_source both, same modality) half candidate + half target."""
    def seeds(task, n):
        if (task.name, n) not in cache:
            cache[(task.name, n)] = profiling_seeds(cfg, task, n, args, device)
        return cache[(task.name, n)]
    if args.profile_source == "both" and candidate.modality == target.modality:
        half = args.n_inputs // 2
        own, theirs = seeds(target, half), seeds(candidate, half)
        if own.shape[1:] == theirs.shape[1:]:
            return torch.cat([theirs, own])
    return seeds(target, args.n_inputs)


def compare(cfg, target, candidate, target_model, models, args, device, cache):
    view_t = target_model.task_view(target.name)
    view_c = comparison_view(models[candidate.name], candidate, target_model, target)
    seeds = pair_seeds(cfg, target, candidate, args, device, cache)
    search = dict(epsilon=args.epsilon, max_iterations=args.max_iterations,
                  generator=torch.Generator().manual_seed(args.seed), progress=False)
    if target.modality == "image":
        search["valid_range"] = tuple(bound.to(device) for bound in normalised_image_range(target.mean, target.std))
    else:
        search["vocab_size"] = cfg.vocab_size
    search_inputs = search_profiling_inputs if args.search == "batched" else search_single_moves
    return model_distance(view_t, view_c, search_inputs(view_t, view_c, seeds, **search))


def target_distances(cfg, target, pool, args, device, models, cache):
    """{candidate id: {"cos", "euc"}}: from the table when already computed (unless --force), else ModelDiff.

    The selection itself is always re-ranked, so changing --select needs no recomputation.
    """
    saved = None if args.force else saved_distances(cfg, target, pool)
    if saved is not None:
        print(f"Distances of target {target.task_id} already computed; pass --force to recompute them.")
        return saved
    for task in [target, *pool]:
        if task.name not in models:
            models[task.name] = load_task_model(cfg, task, args.arch).to(device)
    bar = tqdm(pool, desc=f"target {target.task_id} ({target.name})", dynamic_ncols=True)
    return {c.task_id: compare(cfg, target, c, models[target.name], models, args, device, cache) for c in bar}


def write_csv_atomic(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    os.replace(tmp, path)


def read_rows(path):
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.reader(f))[1:]


def saved_distances(cfg, target, pool):
    """{candidate id: (cos, euc)} from the table when it holds every pair of the target's pool, else None."""
    rows = {(row[0], row[1]): row for row in read_rows(paths.pickaback_table_csv(cfg.name)) if row}
    keys = [(str(target.task_id), str(c.task_id)) for c in pool]
    if not all(key in rows for key in keys):
        return None
    return {int(c): {"cos": float(rows[(t, c)][2]), "euc": float(rows[(t, c)][3])} for t, c in keys}


def save_results(cfg, selections, table):
    """Replace the rows of the targets just run; keep other targets' rows (one row per target)."""
    done = {str(t) for t in selections}
    result_path, table_path = paths.pickaback_result_csv(cfg.name), paths.pickaback_table_csv(cfg.name)
    results = [r for r in read_rows(result_path) if r and r[0] not in done]
    results += [[t, i] for t, i in selections.items()]
    pairs = [r for r in read_rows(table_path) if r and r[0] not in done] + table
    write_csv_atomic(result_path, ["target_id", "task_id"], sorted(results, key=lambda r: int(r[0])))
    write_csv_atomic(table_path, TABLE_FIELDS, sorted(pairs, key=lambda r: (int(r[0]), int(r[1]))))
    return result_path, table_path


def main():
    args = get_args_parser().parse_args()
    if args.n_inputs < 2 or args.n_inputs % 2:
        raise UserError("--n_inputs must be an even number of at least 2 (inputs are paired k, k + n/2).")
    cfg = get_config(args.dataset_config)
    seed_everything(args.seed)
    device = resolve_device(args.device)
    targets = select_tasks(cfg, args.target_id, args.arch)
    peers = select_tasks(cfg, args.candidate_ids, args.arch)
    models, cache = {}, {}
    selections, table = {}, []
    for target in targets:
        pool = candidates_for(peers, target, args.candidates)
        if not pool:
            raise UserError(f"Target {target.name} has no candidate backbone under --candidates {args.candidates}.")
        pair_distances = target_distances(cfg, target, pool, args, device, models, cache)
        distances = {}
        for candidate in pool:
            d = pair_distances[candidate.task_id]
            print(f"DDV cos-cos [{candidate.task_id} => {target.task_id}] {d['cos']:.5f}")
            print(f"DDV euc-cos [{candidate.task_id} => {target.task_id}] {d['euc']:.5f}")
            distances[candidate.task_id] = d["euc"]
            table.append([target.task_id, candidate.task_id, f"{d['cos']:.8f}", f"{d['euc']:.8f}"])
        selected = rank_candidates(distances, args.select)[0]
        selections[target.task_id] = selected
        related = cfg.related.get(target.name)
        note = "" if not related else f"  (designed related task: {cfg.task(related).task_id})"
        print(f"Selected backbone for target {target.task_id} = (euc) {selected}{note}")
    result_path, table_path = save_results(cfg, selections, table)
    print(f"Wrote {result_path} and {table_path}")
    return 0


if __name__ == "__main__":
    run_main(main)
