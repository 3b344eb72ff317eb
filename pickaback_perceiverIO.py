"""Step 3-1: pick a backbone for each target by comparing decision patterns (ModelDiff).

    python pickaback_perceiverIO.py --dataset_config demo --target_id all

For each target, every other task's model (by default the one the target would receive: its step-2-2
chosen checkpoint; `--compare baseline`: its step-1 model) is compared with the target's baseline on
the same profiling inputs (drawn from the target's own training data, improved by the mutation
search), a candidate of the target's modality through its own input adapter, one of the other
modality through the target's (packnet_models_pickaback/compare.py); the candidate with the smallest
distance between decision distance vectors is selected (`--select dissimilar` takes the largest, as
the original code did). Writes, under paths.output_root(--seed):
* pickaback_<cfg>_result.csv: target_id,task_id -- one row per target, the selected backbone;
* pickaback_<cfg>_table.csv: target_id,task_id,ddv_cos,ddv_euc -- every pair's distances;
* pickaback_<cfg>_table.json: the table's provenance sidecar, {"<target id>,<candidate id>": {"settings":
  {...}, "inputs": {"candidate <id>": <sha>, "target <id>": <sha>}}} (utils/provenance.py): the arguments
  that shape a distance (every one but --target_id, --candidate_ids, --candidates, --select and how to
  run: --device, --force), --val_fraction resolved to the fraction used, and the fingerprints of the two
  checkpoints compared.
A target's rows (and its result row) are saved as soon as it is done, so a stopped run keeps the targets
it finished. A re-run reuses a target's saved distances only when the table holds every pair of its pool
and each pair's provenance is the one the run would record now; otherwise it recomputes them and says
why in one line (e.g. "max_iterations changed (100 -> 50)", "its input 'candidate 4' changed").
--force recomputes; --select only re-ranks the saved distances.
"""
import csv

import torch
from tqdm import tqdm

from packnet_models_pickaback.compare import (ADAPTERS, COMPARED, candidate_checkpoint, comparison_view,
                                              load_candidate_model, load_task_model)
from utils import paths
from utils.data import TaskLoader, load_split, train_val_split
from utils.cli import ArgumentParser, fraction, non_negative_int, positive_even_int, positive_float, seed_int
from utils.dataset_config import CONFIG_NAMES, get_config
from utils.errors import UserError, run_main
from utils.provenance import fingerprint, settings_of, why_stale
from utils.records import locked, read_json_record, write_csv_atomic, write_json_atomic
from utils.train import resolve_device, seed_everything
from utils_pickaback.modeldiff import (model_distance, normalised_image_range, rank_candidates,
                                       search_profiling_inputs, search_single_moves)

TABLE_FIELDS = ["target_id", "task_id", "ddv_cos", "ddv_euc"]


def get_args_parser():
    p = ArgumentParser(description="Select a backbone for each target with ModelDiff.")
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
    p.add_argument("--compare", default="received", choices=COMPARED,
                   help="received: each candidate as the target would receive it (its step-2-2 chosen "
                        "checkpoint); baseline: its step-1 model")
    p.add_argument("--candidate_adapter", default="own", choices=ADAPTERS,
                   help="own: a candidate of the target's modality reads the probes through its own input "
                        "adapter (the other modality through the target's); target: every candidate through "
                        "the target's")
    p.add_argument("--ddv_similarity", default="cosine", choices=["cosine", "centred"],
                   help="cosine of the two decision distance vectors (ModelDiff), or centred first (Pearson)")
    p.add_argument("--probe_seed", type=seed_int, default=None,
                   help="seed of the profiling inputs and their search (default: --seed); the run's outputs "
                        "stay those of --seed")
    p.add_argument("--n_inputs", type=positive_even_int, default=100)
    p.add_argument("--epsilon", type=positive_float, default=0.1)
    p.add_argument("--max_iterations", type=non_negative_int, default=100)
    p.add_argument("--val_fraction", type=fraction, default=None,
                   help="as in step 1 (default: the config's): profiling inputs come from the train part only")
    p.add_argument("--seed", type=seed_int, default=paths.DEFAULT_SEED)
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


def probe_seed(args):
    return args.seed if args.probe_seed is None else args.probe_seed


def profiling_val_fraction(cfg, args):
    return cfg.val_fraction if args.val_fraction is None else args.val_fraction


def profiling_seeds(cfg, task, n, args, device):
    """n inputs drawn (seeded) from the train part of `task`, as the model sees them."""
    train, _ = train_val_split(load_split(cfg, task, "train"), profiling_val_fraction(cfg, args), args.seed)
    if len(train) < 2:
        raise UserError(f"Task {task.name} has fewer than 2 training samples to profile with.")
    picked = torch.randperm(len(train), generator=torch.Generator().manual_seed(probe_seed(args)))[:n]
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
    view_c = comparison_view(models[("candidate", candidate.name)], candidate, target_model, target,
                             args.candidate_adapter)
    seeds = pair_seeds(cfg, target, candidate, args, device, cache)
    search = dict(epsilon=args.epsilon, max_iterations=args.max_iterations,
                  generator=torch.Generator().manual_seed(probe_seed(args)), progress=False)
    if target.modality == "image":
        search["valid_range"] = tuple(bound.to(device) for bound in normalised_image_range(target.mean, target.std))
    else:
        search["vocab_size"] = cfg.vocab_size
    search_inputs = search_profiling_inputs if args.search == "batched" else search_single_moves
    return model_distance(view_t, view_c, search_inputs(view_t, view_c, seeds, **search),
                          centred=args.ddv_similarity == "centred")


def target_distances(cfg, target, pool, args, device, models, cache, fingerprints):
    """({candidate id: {"cos", "euc"}}, {candidate id: provenance}): the saved distances when every pair of
    the pool is saved with the provenance this run would record (unless --force), else ModelDiff's.

    The selection itself is always re-ranked, so changing --select needs no recomputation.
    """
    wanted = {c.task_id: pair_provenance(cfg, target, c, args, fingerprints) for c in pool}
    if not args.force:
        saved, reason = saved_distances(cfg, target, pool, wanted, args.seed)
        if saved is not None:
            print(f"Distances of target {target.task_id} already computed with these settings and models; "
                  f"pass --force to recompute them.")
            return saved, wanted
        if reason:
            print(f"Distances of target {target.task_id} recomputed: {reason}")
    if ("target", target.name) not in models:
        models[("target", target.name)] = load_task_model(cfg, target, args.arch, args.seed).to(device)
    for task in pool:
        if ("candidate", task.name) not in models:
            models[("candidate", task.name)] = load_candidate_model(cfg, task, args.arch, args.seed,
                                                                    args.compare).to(device)
    bar = tqdm(pool, desc=f"target {target.task_id} ({target.name})", dynamic_ncols=True)
    target_model = models[("target", target.name)]
    distances = {c.task_id: compare(cfg, target, c, target_model, models, args, device, cache) for c in bar}
    return distances, wanted


# ---------------------------------------------------------------------------------------------------
# saved distances and their provenance

# Arguments that choose which pairs are compared or how the distances are ranked, not what a distance is.
NOT_DISTANCE_SETTINGS = ("target_id", "candidate_ids", "candidates", "select")


def distance_settings(cfg, args):
    """The arguments that shape a pair's distances, --val_fraction resolved to the fraction used."""
    settings = settings_of(args, val_fraction=profiling_val_fraction(cfg, args), probe_seed=probe_seed(args))
    return {k: v for k, v in settings.items() if k not in NOT_DISTANCE_SETTINGS}


def pair_provenance(cfg, target, candidate, args, fingerprints):
    """utils.provenance's record of one pair: the settings, and the fingerprints of the two checkpoints compared."""
    def checkpoint_fingerprint(path):
        if path not in fingerprints:
            fingerprints[path] = fingerprint(path)
        return fingerprints[path]
    target_file = paths.folder_checkpoint(paths.baseline_dir(args.arch, cfg.name, target.name, args.seed))
    candidate_file = candidate_checkpoint(cfg, candidate, args.arch, args.seed, args.compare)
    inputs = {f"target {target.task_id}": checkpoint_fingerprint(target_file),
              f"candidate {candidate.task_id}": checkpoint_fingerprint(candidate_file)}
    return {"settings": distance_settings(cfg, args), "inputs": dict(sorted(inputs.items()))}


def provenance_json(cfg_name, seed):
    """The table's sidecar: "<target id>,<candidate id>" -> the provenance of that row's distances."""
    return paths.pickaback_table_csv(cfg_name, seed).with_suffix(".json")


def saved_distances(cfg, target, pool, wanted, seed):
    """({candidate id: {"cos", "euc"}}, None) when the table holds every pair of the target's pool with the
    provenance `wanted` ({candidate id: provenance}); else (None, why not in one line, or None when
    nothing of the target is saved)."""
    table = {(row[0], row[1]): row for row in read_rows(paths.pickaback_table_csv(cfg.name, seed)) if row}
    t = str(target.task_id)
    if not any(key[0] == t for key in table):
        return None, None
    record = read_json_record(provenance_json(cfg.name, seed))
    for candidate in pool:
        c = str(candidate.task_id)
        if (t, c) not in table:
            return None, f"no saved distances for candidate {c}"
        reason = why_stale(record.get(f"{t},{c}"), wanted[candidate.task_id])
        if reason:
            return None, reason
    return {c.task_id: {"cos": float(table[(t, str(c.task_id))][2]), "euc": float(table[(t, str(c.task_id))][3])}
            for c in pool}, None


def read_rows(path):
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.reader(f))[1:]


def save_target(cfg, seed, target_id, selected, distances, provenances):
    """Replace one target's rows in the table, its pairs' provenance and its row of the result CSV.

    Other targets' rows are kept (one result row per target). Every write is atomic, and the target's old
    provenance is dropped before its new rows go in and the new provenance is added after, so a run killed
    in between leaves rows without provenance (recomputed next time), never rows with another run's.
    """
    t = str(target_id)
    table_path, result_path = paths.pickaback_table_csv(cfg.name, seed), paths.pickaback_result_csv(cfg.name, seed)
    record_path = provenance_json(cfg.name, seed)
    with locked(table_path):
        record = {k: v for k, v in read_json_record(record_path).items() if k.split(",")[0] != t}
        write_json_atomic(record_path, record)
        pairs = [r for r in read_rows(table_path) if r and r[0] != t]
        pairs += [[t, str(c), f"{d['cos']:.8f}", f"{d['euc']:.8f}"] for c, d in distances.items()]
        write_csv_atomic(table_path, TABLE_FIELDS, sorted(pairs, key=lambda r: (int(r[0]), int(r[1]))))
        record.update({f"{t},{c}": provenances[c] for c in distances})
        write_json_atomic(record_path, dict(sorted(record.items(), key=lambda kv: tuple(map(int, kv[0].split(","))))))
        results = [r for r in read_rows(result_path) if r and r[0] != t] + [[t, str(selected)]]
        write_csv_atomic(result_path, ["target_id", "task_id"], sorted(results, key=lambda r: int(r[0])))


def main():
    args = get_args_parser().parse_args()
    cfg = get_config(args.dataset_config)
    seed_everything(args.seed)
    device = resolve_device(args.device)
    targets = select_tasks(cfg, args.target_id, args.arch)
    peers = select_tasks(cfg, args.candidate_ids, args.arch)
    models, cache, fingerprints = {}, {}, {}
    for target in targets:
        pool = candidates_for(peers, target, args.candidates)
        if not pool:
            raise UserError(f"Target {target.name} has no candidate backbone under --candidates {args.candidates}.")
        pair_distances, provenances = target_distances(cfg, target, pool, args, device, models, cache, fingerprints)
        distances = {}
        for candidate in pool:
            d = pair_distances[candidate.task_id]
            print(f"DDV cos-cos [{candidate.task_id} => {target.task_id}] {d['cos']:.5f}")
            print(f"DDV euc-cos [{candidate.task_id} => {target.task_id}] {d['euc']:.5f}")
            distances[candidate.task_id] = d["euc"]
        selected = rank_candidates(distances, args.select)[0]
        related = cfg.related.get(target.name)
        note = "" if not related else f"  (designed related task: {cfg.task(related).task_id})"
        print(f"Selected backbone for target {target.task_id} = (euc) {selected}{note}")
        # saved now, not at the end: a run stopped at a later target keeps this one
        save_target(cfg, args.seed, target.task_id, selected, pair_distances, provenances)
    print(f"Wrote {paths.pickaback_result_csv(cfg.name, args.seed)}, {paths.pickaback_table_csv(cfg.name, args.seed)} "
          f"and {provenance_json(cfg.name, args.seed)}")
    return 0


if __name__ == "__main__":
    run_main(main)
