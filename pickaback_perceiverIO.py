"""Step 3-1: pick a backbone for each target by comparing decision patterns (ModelDiff).

    python pickaback_perceiverIO.py --dataset_config demo --target_id all

Every other task's model (its step-2-2 chosen checkpoint: what the target would receive) is compared with the
target's step-1 model on probes drawn from the target's training data (packnet_models_pickaback/compare.py); a
candidate of the other modality reads them through the target's adapter, or the paired samples of its own
modality (--cross_modal_probes paired). Each model's decision distance vector holds the distances between its
outputs on pairs of probes; the candidate whose vector is closest to the target's (ddv_euc) is selected, or the
one --score ranks first (LogME, LEEP, CKA: utils_pickaback/transferability.py; the untrained floor).
Writes pickaback_<cfg>_result.csv / .json and every pair's row of pickaback_<cfg>_table.csv (its provenance in
pickaback_<cfg>_table.json) target by target, so a stopped run keeps what it finished; a re-run reuses a target's
rows only when each pair's provenance is unchanged, and says why otherwise. The files, the cost and the choices
that differ from the original ModelDiff: docs/pipeline.md, "Step 3-1".
"""
from dataclasses import dataclass

import torch
from tqdm import tqdm

from packnet_models_pickaback.compare import (COMPARED, CROSS_MODAL, compared_as,
                                              comparison_view, load_candidate_model, load_task_model,
                                              logits_and_features, untrained_twin)
from utils import paths
from utils.data import TaskData, TaskLoader, data_fingerprint, load_paired_split, load_split, split_indices
from utils.cli import (ArgumentParser, add_arch_arg, arch_reads, fraction, non_negative_int, positive_even_int,
                       positive_float, seed_int)
from utils.dataset_config import CONFIG_HELP, get_config
from utils.errors import UserError, run_main
from utils.provenance import settings_of, why_stale
from utils.records import locked, read_json_record, write_csv_atomic, write_json_atomic
from utils.results import read_selections, read_table
from utils.train import resolve_device, seed_everything
from utils_pickaback.modeldiff import PAIRINGS, logits_distance, normalised_image_range, search_single_moves
from utils_pickaback.ranking import (DEFAULT_SCORE, SCORES, corrected_for_hubs, hub_correction_sentence, hub_groups,
                                    pair_inputs, picked_for_most_sentence, plain_scores, rank_candidates, rankings_json,
                                    read_rankings)
from utils_pickaback.transferability import leep, linear_cka, logme

DDV_OUTPUTS = ("logits", "features")   # in logits_and_features' order
TABLE_FIELDS = ["target_id", "task_id", "ddv_cos", "ddv_euc", "compared_as", "logme", "leep", "cka",
                "ddv_euc_untrained", "ddv_euc_over_untrained"]


def get_args_parser():
    p = ArgumentParser(description="Select a backbone for each target with ModelDiff.")
    add_arch_arg(p)
    p.add_argument("--dataset_config", default="demo", help=f"dataset config: {CONFIG_HELP}")
    p.add_argument("--target_id", nargs="+", default=["all"], help="target ids or names, or 'all'")
    p.add_argument("--select", default="similar", choices=["similar", "dissimilar"],
                   help="similar: smallest distance (default); dissimilar: largest, as the original code")
    p.add_argument("--candidates", default="all", choices=["all", "same-modality"])
    p.add_argument("--candidate_ids", nargs="+", default=["all"],
                   help="the peers whose models may be picked (ids or names), or 'all'")
    p.add_argument("--profile_source", default="target", choices=["target", "both"],
                   help="profiling inputs from the target's training data only, or half from the candidate's "
                        "(the original; same-modality candidates only)")
    p.add_argument("--compare", default="received", choices=COMPARED,
                   help="received: each candidate as the target would receive it (its step-2-2 chosen "
                        "checkpoint); baseline: its step-1 model, as the original compared")
    p.add_argument("--cross_modal_probes", default="target_adapter", choices=CROSS_MODAL,
                   help="target_adapter: a candidate of the other modality reads the target's probes through the "
                        "target's adapter; paired: where the config pairs the target with a task of that modality, "
                        "it reads the paired samples through its own adapter (no mutation search: a move in one "
                        "modality has no counterpart in the other). Not the default: the transfer control found the "
                        "paired task picked for every paired target, and it transferred worse (docs/results.md)")
    p.add_argument("--score", default=DEFAULT_SCORE, choices=list(SCORES),
                   help=f"what ranks the candidates (default {DEFAULT_SCORE}): modeldiff (distance of the decision "
                        "distance vectors of Euclidean distances, smallest first, as the original), modeldiff_cos (of "
                        "cosine distances), "
                        "or logme / leep (the candidate's features / outputs on the target's labelled "
                        "probes) / cka (linear CKA of the two models' features on the probes), largest first, or "
                        "modeldiff_untrained (modeldiff minus the distance of the candidate's untrained twin); "
                        "every score is computed and saved in the table whichever ranks. LogME is the evidence with "
                        "every eigenvalue of F'F, as the authors' D x D branch; their default code drops the zero "
                        "ones when features outnumber probes, so its figures are larger there (docs/decisions.md)")
    p.add_argument("--hubs", default="correct", choices=["correct", "keep"],
                   help="correct (default): where one candidate is picked for more than half of a modality's targets "
                        "(at least 3), rank that modality's targets again with each candidate's closeness to "
                        "targets in general subtracted (CSLS); keep: the picks as ranked (docs/pipeline.md)")
    p.add_argument("--ddv_pairs", default="all", choices=list(PAIRINGS),
                   help="the input pairs a decision distance vector holds: all, every pair of the probes (n(n - 1)/2 "
                        "distances from the same forward passes); halves, (k, k + n/2) as the original ModelDiff")
    p.add_argument("--ddv_outputs", default="features", choices=DDV_OUTPUTS,
                   help="what a decision distance vector measures distances between: the features each model's "
                        "head reads (class-agnostic: a candidate's head knows only its own task's classes), or its "
                        "logits (the original ModelDiff)")
    p.add_argument("--probe_seed", type=seed_int, default=None,
                   help="seed of the profiling inputs and their search (default: --seed); the run's outputs "
                        "stay those of --seed")
    p.add_argument("--n_inputs", type=positive_even_int, default=200,
                   help="profiling inputs per target (the original's 100)")
    p.add_argument("--epsilon", type=positive_float, default=0.1)
    p.add_argument("--max_iterations", type=non_negative_int, default=0,
                   help="steps of the mutation search per pair (the original's 100); 0: the probes as drawn")
    p.add_argument("--val_fraction", type=fraction, default=None,
                   help="as in step 1 (default: the config's): profiling inputs come from the train part only")
    p.add_argument("--seed", type=seed_int, default=paths.DEFAULT_SEED)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--force", action="store_true", help="redo targets whose selection is already saved")
    p.add_argument("--verbose", action="store_true", help="print every candidate's distances (the original's lines)")
    return p


def select_tasks(cfg, keys, arch):
    """The tasks named by `keys` (ids or names, or 'all': every task `arch` can read)."""
    usable = [t for t in cfg.tasks if arch_reads(arch, t)]
    if keys == ["all"]:
        return usable
    tasks = [cfg.task(k) for k in keys]
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


@dataclass
class Probes:
    """A task's profiling samples as its model reads them, their labels and, where the config pairs the
    task with one of the other modality, the same samples in that modality (else None)."""
    inputs: torch.Tensor
    labels: torch.Tensor
    paired: torch.Tensor | None


def drawn_probes(cfg, task, n, args, device) -> Probes:
    """n samples drawn (seeded) from the train part of `task` (and of its paired task, the same samples)."""
    paired = task.name in cfg.paired and args.cross_modal_probes == "paired"
    data, partner_data = load_paired_split(cfg, task, "train") if paired else (load_split(cfg, task, "train"), None)
    train, _ = split_indices(data.labels, cfg.val_share(args.val_fraction), args.seed)
    if len(train) < 2:
        raise UserError(f"Task {task.name} has fewer than 2 training samples to profile with.")
    picked = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(probe_seed(args)))[:n]]
    inputs, labels = as_model_inputs(cfg, task, data.subset(picked), device, args.seed)
    if partner_data is None:
        return Probes(inputs, labels, None)
    partner_inputs, _ = as_model_inputs(cfg, cfg.task(cfg.paired[task.name]), partner_data.subset(picked), device,
                                        args.seed)
    return Probes(inputs, labels, partner_inputs)


def as_model_inputs(cfg, task, data: TaskData, device, seed):
    """(inputs, labels) of `data` as `task`'s model reads them (normalised, no augmentation), in one batch."""
    loader = TaskLoader(data, task, cfg, len(data), shuffle=False, augment=False, device=device, seed=seed)
    return next(iter(loader))


def target_probes(cfg, target, candidate, args, device, cache):
    """(the target's labelled probes, the candidate's half or None): with --profile_source both and a candidate
    of the target's modality, the profiling inputs are half candidate + half target (the label-aware scores
    always read the target's own half); otherwise they are the target's probes alone."""
    def drawn(task, n):
        if (task.name, n) not in cache:
            cache[(task.name, n)] = drawn_probes(cfg, task, n, args, device)
        return cache[(task.name, n)]
    if args.profile_source == "both" and candidate.modality == target.modality:
        half = args.n_inputs // 2
        own, theirs = drawn(target, half), drawn(candidate, half)
        if own.inputs.shape[1:] == theirs.inputs.shape[1:]:
            return own, theirs.inputs
    return drawn(target, args.n_inputs), None


class TargetOutputs:
    """The target's task view, built once per target, and its (logits, features) on each of its probe sets,
    each computed once: the target is not run again for every candidate."""

    def __init__(self, view):
        self.view = view
        self._outputs = {}

    def on(self, probes: Probes):
        # keyed by size: two probe sets of a target of one size are the same samples (one seeded draw)
        if len(probes.labels) not in self._outputs:
            self._outputs[len(probes.labels)] = logits_and_features(self.view, probes.inputs)
        return self._outputs[len(probes.labels)]


def compare(cfg, target, candidate, target_outputs, models, args, device, cache):
    """Step 3-1's record of one pair (compare_models'), with ddv_euc_untrained, the distance of the candidate's
    untrained twin compared the same way, and ddv_euc_over_untrained = ddv_euc - that floor: below 0, the candidate
    is more like the target than a network of its kind that learned nothing (score modeldiff_untrained)."""
    record = compare_models(cfg, target, candidate, target_outputs, models, args, device, cache)
    model = models[("candidate", candidate.name)]
    # twins of one shape are one seeded network, so candidates of one modality, width and class count share a floor
    own_probes = args.profile_source == "both" and candidate.modality == target.modality   # half its own inputs
    key = ("untrained floor", target.name, record["compared_as"], candidate.modality, model.width_mult,
           model.profile, candidate.num_classes, candidate.name if own_probes else None)
    if key not in cache:
        if ("untrained", candidate.name) not in models:
            models[("untrained", candidate.name)] = untrained_twin(model, candidate, cfg)
        twin = {("candidate", candidate.name): models[("untrained", candidate.name)]}
        cache[key] = compare_models(cfg, target, candidate, target_outputs, twin, args, device, cache)["ddv_euc"]
    return {**record, "ddv_euc_untrained": cache[key], "ddv_euc_over_untrained": record["ddv_euc"] - cache[key]}


def compare_models(cfg, target, candidate, target_outputs, models, args, device, cache):
    """One pair's ModelDiff distances, how the candidate was compared, and the scores reported beside ModelDiff
    (NaN where a score is undefined, e.g. a model whose features never vary).

    Without the mutation search the candidate is run once, on the target's probes (or their paired samples),
    and those outputs give both its distances and its scores; the search (per pair) runs both models more.
    """
    probes, theirs = target_probes(cfg, target, candidate, args, device, cache)
    how = compared_as(candidate, target, probes.paired is not None)
    view_t = target_outputs.view
    view_c = comparison_view(models[("candidate", candidate.name)], candidate, view_t, how)
    logits_t, features_t = target_outputs.on(probes)
    logits_c, features_c = logits_and_features(view_c, probes.paired if how == "paired probes" else probes.inputs)
    if how != "paired probes" and (args.max_iterations > 0 or theirs is not None):
        start_inputs = probes.inputs if theirs is None else torch.cat([theirs, probes.inputs])
        searched = searched_inputs(cfg, target, view_t, view_c, start_inputs, args, device)
        profiled_t, profiled_c = logits_and_features(view_t, searched), logits_and_features(view_c, searched)
    else:   # the probes are the profiling inputs
        profiled_t, profiled_c = (logits_t, features_t), (logits_c, features_c)
    which = DDV_OUTPUTS.index(args.ddv_outputs)
    distances = logits_distance(profiled_t[which], profiled_c[which], pairs=args.ddv_pairs)
    return {"ddv_cos": distances["cos"], "ddv_euc": distances["euc"], "compared_as": how,
            **label_scores(features_t, logits_c, features_c, probes.labels)}


def searched_inputs(cfg, target, view_t, view_c, start_inputs, args, device):
    """The mutation search's profiling inputs for one pair (its start inputs themselves at --max_iterations 0)."""
    if args.max_iterations == 0:
        return start_inputs
    search = dict(epsilon=args.epsilon, max_iterations=args.max_iterations,
                  generator=torch.Generator().manual_seed(probe_seed(args)), progress=False)
    if target.modality == "image":
        search["valid_range"] = tuple(bound.to(device) for bound in normalised_image_range(target.mean, target.std))
    else:
        search["vocab_size"] = cfg.vocab_size
    return search_single_moves(view_t, view_c, start_inputs, **search)


def label_scores(features_t, logits_c, features_c, labels):
    """LogME and LEEP of the candidate on the target's labelled probes, linear CKA of the two models' features."""
    scores = {"logme": lambda: logme(features_c, labels), "leep": lambda: leep(logits_c.softmax(dim=1), labels),
              "cka": lambda: linear_cka(features_t, features_c)}
    return {name: undefined_as_nan(score) for name, score in scores.items()}


def undefined_as_nan(score):
    try:
        return score()
    except UserError:   # e.g. features that never vary: no information, ranked last
        return float("nan")


def target_distances(cfg, target, pool, args, device, models, cache, fingerprints):
    """({candidate id: compare()'s record}, {candidate id: provenance}): the saved records when every pair of
    the pool is saved with the provenance this run would record (unless --force), else computed now.

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
    bar = tqdm(pool, desc=f"target {target.task_id} ({target.name})", leave=False, dynamic_ncols=True,
               disable=None)   # a bar on a terminal only; the target's one line follows
    target_outputs = TargetOutputs(models[("target", target.name)].task_view(target.name))
    records = {c.task_id: compare(cfg, target, c, target_outputs, models, args, device, cache) for c in bar}
    return records, wanted


# ---------------------------------------------------------------------------------------------------
# saved distances and their provenance

# Arguments that choose which pairs are compared or how the distances are ranked, not what a distance is.
NOT_DISTANCE_SETTINGS = ("target_id", "candidate_ids", "candidates", "select", "score", "hubs")


def distance_settings(cfg, args):
    """The arguments that shape a pair's distances, --val_fraction resolved to the fraction used and the config
    recorded by its provenance_id (a config file's values, not its path)."""
    settings = settings_of(args, val_fraction=cfg.val_share(args.val_fraction), probe_seed=probe_seed(args),
                           dataset_config=cfg.provenance_id)
    return {k: v for k, v in settings.items() if k not in NOT_DISTANCE_SETTINGS}


def pair_provenance(cfg, target, candidate, args, fingerprints):
    """utils.provenance's record of one pair: the settings, and the fingerprints of the two checkpoints compared and
    of the two tasks' data, which the probes are drawn from (`fingerprints`: each computed once)."""
    inputs = pair_inputs(cfg, args.arch, args.seed, target, candidate, args.compare, fingerprints)
    for role, task in (("target", target), ("candidate", candidate)):
        if ("data", task.name) not in fingerprints:
            fingerprints[("data", task.name)] = data_fingerprint(cfg, task)
        inputs[f"{role} {task.task_id} data"] = fingerprints[("data", task.name)]
    return {"settings": distance_settings(cfg, args), "inputs": dict(sorted(inputs.items()))}


def saved_distances(cfg, target, pool, wanted, seed):
    """({candidate id: record}, None) when the table holds every pair of the target's pool with the
    provenance `wanted` ({candidate id: provenance}); else (None, why not in one line, or None when
    nothing of the target is saved). A record is compare()'s: the table's fields but the two ids."""
    table = read_table(paths.pickaback_table_csv(cfg.name, seed))
    t = target.task_id
    if not any(key[0] == t for key in table):
        return None, None
    record = read_json_record(paths.pickaback_table_json(cfg.name, seed))
    for candidate in pool:
        c = candidate.task_id
        if (t, c) not in table:
            return None, f"no saved distances for candidate {c}"
        if any(not table[(t, c)].get(field) for field in TABLE_FIELDS):   # absent, or blank in an old row
            return None, "the table was saved without the columns " + ", ".join(TABLE_FIELDS[4:])
        reason = why_stale(record.get(f"{t},{c}"), wanted[c])
        if reason:
            return None, reason
    return {c.task_id: pair_record(table[(t, c.task_id)]) for c in pool}, None


def pair_record(row):
    """A table row (strings) as compare()'s record: the row's fields but the ids, numbers as floats."""
    return {k: v if k == "compared_as" else float(v) for k, v in row.items() if k in TABLE_FIELDS[2:]}


def table_row(target_id, candidate_id, record):
    return {"target_id": str(target_id), "task_id": str(candidate_id),
            **{k: v if k == "compared_as" else f"{v:.8f}" for k, v in record.items()}}


def save_target(cfg, seed, target_id, records, provenances, ranking):
    """Save one target's table rows against the candidates of `records` with their provenance, and `ranking` (the
    score, rule and candidates it is ranked by) in the result CSV's sidecar; its pick is saved with every target's by
    save_selections. Other targets' rows, and the target's rows against candidates outside this run's pool (a
    narrower re-run: each pair's provenance is its own), are kept; a file whose contents would not change is not
    rewritten. All under the table's lock, as step 3-1's jobs (one per target) save at once."""
    table_path, result_path = paths.pickaback_table_csv(cfg.name, seed), paths.pickaback_result_csv(cfg.name, seed)
    with locked(table_path):
        save_distances(table_path, paths.pickaback_table_json(cfg.name, seed), target_id, records, provenances)
        saved = read_json_record(rankings_json(result_path))
        write_if_changed(rankings_json(result_path), {**saved, str(target_id): ranking}, saved)


def save_distances(table_path, record_path, target_id, records, provenances):
    """Replace the target's rows of the pairs in `records` and their provenance, unless they are saved as they are.

    Every write is atomic, and the replaced pairs' old provenance is dropped before their new rows go in and the
    new provenance is added after, so a run killed in between leaves rows without provenance (recomputed next
    time), never rows with another run's."""
    table, record = read_table(table_path), read_json_record(record_path)
    rows = {(target_id, c): table_row(target_id, c, r) for c, r in records.items()}
    pairs = {f"{target_id},{c}": provenances[c] for c in records}
    if all(table.get(k) == row for k, row in rows.items()) and all(record.get(k) == p for k, p in pairs.items()):
        return      # reused distances: nothing to write
    kept = {k: v for k, v in record.items() if k not in pairs}
    write_json_atomic(record_path, kept)
    table.update(rows)
    ordered = [table[pair] for pair in sorted(table)]
    write_csv_atomic(table_path, TABLE_FIELDS, [[row.get(f, "") for f in TABLE_FIELDS] for row in ordered])
    record = {**kept, **pairs}
    write_json_atomic(record_path, dict(sorted(record.items(), key=lambda kv: tuple(map(int, kv[0].split(","))))))


def save_selections(cfg, seed, correct_hubs=True):
    """Rank every target with a ranking record (this run's and earlier runs') by its recorded score, rule and
    candidates, with the hubs corrected (ranking.hub_groups) unless `correct_hubs` is False, and save each pick in the
    result CSV (a target's row without a record, from before step 3-1 recorded them, is kept) and each correction in
    its record. ({target id: pick}, [(the hub as ranked, the targets corrected together)])."""
    table_path, result_path = paths.pickaback_table_csv(cfg.name, seed), paths.pickaback_result_csv(cfg.name, seed)
    with locked(table_path):
        saved = read_json_record(rankings_json(result_path))
        rankings = read_rankings(result_path)
        plain = plain_scores(table_path, rankings, rankings)
        groups = hub_groups(cfg, plain) if correct_hubs else []
        ranked = corrected_for_hubs(plain, [group for _, group in groups])
        picks = {t: rank_candidates(values, rule)[0] for t, (values, rule) in ranked.items() if values}
        in_group = {t: group for _, group in groups for t in group}
        rankings = {t: {**r, "hubs": in_group.get(t)} for t, r in rankings.items()}
        results = read_selections(result_path)
        if {**results, **picks} != results:
            write_csv_atomic(result_path, ["target_id", "task_id"], sorted({**results, **picks}.items()))
        records = {str(t): {k: v for k, v in r.items() if k != "hubs" or v} for t, r in rankings.items()}
        write_if_changed(rankings_json(result_path), records, saved)
    return picks, groups


def write_if_changed(path, record, saved):
    """Write the JSON `record` (keys: target ids) in id order unless it equals `saved`, the file's contents."""
    if record != saved:
        write_json_atomic(path, dict(sorted(record.items(), key=lambda kv: kv[0].zfill(12))))


def main(args):
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
        records, provenances = target_distances(cfg, target, pool, args, device, models, cache, fingerprints)
        if args.verbose:    # the original's lines; the table CSV holds every pair's distances either way
            for candidate in pool:
                r = records[candidate.task_id]
                print(f"DDV cos-cos [{candidate.task_id} => {target.task_id}] {r['ddv_cos']:.5f}")
                print(f"DDV euc-cos [{candidate.task_id} => {target.task_id}] {r['ddv_euc']:.5f}")
        # saved now, not at the end: a run stopped at a later target keeps this one's distances
        save_target(cfg, args.seed, target.task_id, records, provenances,
                    ranking={"score": args.score, "select": args.select, "candidates": sorted(records),
                             "arch": args.arch})
    picks, groups = save_selections(cfg, args.seed, correct_hubs=args.hubs == "correct")
    label = {"modeldiff": "euc", "modeldiff_cos": "cos"}.get(args.score, args.score)
    for target in targets:
        related = cfg.related.get(target.name)
        note = "" if not related else f"  (designed related task: {cfg.task(related).task_id})"
        print(f"Selected backbone for target {target.task_id} = ({label}) {picks[target.task_id]}{note}")
    for shared, group in groups:
        print(f"{picked_for_most_sentence(cfg, shared)}: a candidate close to most targets is more often a hub than "
              f"the best for each (docs/transfer-control.md), so step 3-1 {hub_correction_sentence(group)}; "
              f"--hubs keep keeps the picks as ranked.")
    result_path = paths.pickaback_result_csv(cfg.name, args.seed)
    print(f"Saved {result_path} (how each target was ranked: {rankings_json(result_path)}), "
          f"{paths.pickaback_table_csv(cfg.name, args.seed)} and {paths.pickaback_table_json(cfg.name, args.seed)}")
    return 0


if __name__ == "__main__":
    run_main(main, get_args_parser)
