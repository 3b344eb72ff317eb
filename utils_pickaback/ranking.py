"""How step 3-1 ranks candidates by a score of its table, torch-free: step 3-1, the report and the selection
benchmark rank the same way.

ModelDiff's score is a distance (smaller = more alike); the scores reported beside it (LogME, LEEP, linear
CKA) are larger-is-better. `ranking_values` turns any of them into a value where smaller ranks first under
the "similar" rule, so one rule serves every score. Where one candidate ranks first for most of a modality's
targets (a hub), step 3-1 ranks those targets again by `hub_corrected` values. Step 3-1 records, per target, the
score, rule and any hub correction its selection was ranked by beside its result CSV, so the figures judge a
selection by the values that made it.
"""
import math
from pathlib import Path

from utils import paths
from utils.cli import ARCHS
from utils.dataset_config import MODALITIES
from utils.errors import UserError
from utils.provenance import fingerprint
from utils.records import read_json_record
from utils.results import STEP_3_1, read_distances, read_selections, require_selections
from utils.text_tables import targets_named

SELECT_RULES = ("similar", "dissimilar")
# score name -> (its column in pickaback_<cfg>_table.csv, whether larger values are better). ModelDiff ranks by the
# distance of the DDVs of Euclidean distances, as the original ("euc-cos"); modeldiff_cos by that of the DDVs of
# cosine distances, which the original printed beside it ("cos-cos").
# modeldiff_untrained ranks by ModelDiff's distance minus that of the candidate's untrained twin (step 3-1's floor).
SCORES = {"modeldiff": ("ddv_euc", False), "modeldiff_cos": ("ddv_cos", False), "logme": ("logme", True),
          "leep": ("leep", True), "cka": ("cka", True), "modeldiff_untrained": ("ddv_euc_over_untrained", False)}
# What step 3-1 ranks by unless told otherwise: the paper's ModelDiff. LEEP was measured as the default and not
# adopted: it made a cross-modal hub on emoji (docs/decisions.md).
DEFAULT_SCORE = "modeldiff"


def ranking_values(scores, score):
    """{candidate: value, smaller = more similar} from {candidate: the score's own value}."""
    if score not in SCORES:
        raise UserError(f"unknown score {score!r}; choose one of {', '.join(SCORES)}.")
    larger_is_better = SCORES[score][1]
    return {c: -v if larger_is_better else v for c, v in scores.items()}


def rank_candidates(distances, select="similar"):
    """Candidates ordered best first: "similar" = smallest value first, "dissimilar" = largest first.

    "dissimilar" is what the original code does (argmax of a distance). Ties keep the dict's order;
    NaN values always go last.
    """
    if select not in SELECT_RULES:
        raise UserError(f"unknown selection rule {select!r}; choose one of {', '.join(SELECT_RULES)}.")
    numbers = [(name, float(value)) for name, value in distances.items()]
    valid = [(name, value) for name, value in numbers if value == value]
    invalid = [name for name, value in numbers if value != value]
    ordered = sorted(valid, key=lambda item: item[1], reverse=(select == "dissimilar"))
    return [name for name, _ in ordered] + invalid


# How a target without a record was ranked: step 3-1's defaults before it recorded them, over every pair of its table.
# "hubs": the targets whose values were corrected together for hubness (hub_corrected), or None.
DEFAULT_RANKING = {"score": "modeldiff", "select": "similar", "candidates": None, "hubs": None, "arch": None}
# A hub is looked for only in a modality of at least this many targets: two agreeing picks are no evidence of one.
HUB_MIN_TARGETS = 3
# How many of its nearest targets measure how close a candidate is to targets in general (CSLS's K).
HUB_NEIGHBOURS = 3


def rankings_json(result_csv):
    """The result CSV's sidecar: "<target id>" -> {"score", "select", "candidates"}, how that target's row was
    ranked (per target: a target can be re-run with other settings, or against a narrower pool)."""
    return Path(result_csv).with_suffix(".json")


def read_rankings(result_csv):
    """{target id: its ranking record} of the result CSV's sidecar ({} when there is none: an older run)."""
    path = rankings_json(result_csv)
    rankings = {}
    for key, ranking in read_json_record(path).items():
        if not (key.isdigit() and isinstance(ranking, dict) and ranking.get("score") in SCORES
                and ranking.get("select") in SELECT_RULES and isinstance(ranking.get("hubs") or [], list)
                and ranking.get("arch") in (None, *ARCHS)):
            raise UserError(f"{path} holds no score and rule for target {key!r}; delete it and re-run "
                            f"{STEP_3_1} (it re-ranks the saved distances).")
        rankings[int(key)] = {**DEFAULT_RANKING, **ranking}
    return rankings


def picks_for(result_csv, arch, targets):
    """Step 3-1's picks of those of `targets` that have one ({target id: backbone id}), for `arch`'s steps 4 and 3-2.
    The result CSV is one per config, as in the original, so the arch whose step 3-1 ran last holds it: a pick
    ranked with another arch's models is one UserError sentence, not that arch's backbone trained on silently."""
    picks = {t: b for t, b in require_selections(result_csv).items() if t in targets}
    rankings = read_rankings(result_csv)
    other = ranked_for_another_arch(rankings, picks, arch)
    if other:
        archs = " and ".join(sorted({rankings[t]["arch"] for t in other}))
        raise UserError(f"{result_csv} holds {archs}'s picks for targets {' '.join(map(str, other))}, not {arch}'s: "
                        f"run step 3-1 ({STEP_3_1}) with ARCH={arch} first.")
    return picks


def picks_of_arch(result_csv, arch):
    """({target id: backbone id} of step 3-1's picks made with `arch`'s models, [the targets whose pick another arch's
    models made]): the result file is one per config, as in the original ({} when it is not there yet)."""
    picks = read_selections(result_csv)
    other = ranked_for_another_arch(read_rankings(result_csv), picks, arch)
    return {target: backbone for target, backbone in picks.items() if target not in other}, other


def another_arch_sentences(cfg_name, arch, targets):
    """The sentence that says `targets` are left out of figures of `arch`'s runs: their pick in step 3-1's result file
    (one per config) was made with another arch's models since."""
    if not targets:
        return []
    return [f"Left out: {targets_named(targets)}, whose pick in pickaback_{cfg_name}_result.csv step 3-1 made with "
            f"another arch's models since; run step 3-1 (run_pickaback/find_backbone.sh) with ARCH={arch} to pick "
            f"again."]


def ranked_for_another_arch(rankings, targets, arch):
    """Those of `targets` whose pick step 3-1 made with another arch's models (`rankings`: read_rankings'), sorted;
    a pick of a version that did not record its arch counts as `arch`'s."""
    return sorted(t for t in targets if rankings.get(t, DEFAULT_RANKING)["arch"] not in (None, arch))


def pair_inputs(cfg, arch, seed, target, candidate, compared, fingerprints):
    """The inputs of a pair's distances as step 3-1 records them: the fingerprints of the target's step-1 checkpoint
    and of the candidate's compared one (`fingerprints`: path -> fingerprint, so each file is read once)."""
    files = {f"target {target.task_id}": paths.baseline_checkpoint(arch, cfg.name, target.name, seed),
             f"candidate {candidate.task_id}": paths.candidate_checkpoint(arch, cfg.name, candidate.name, seed,
                                                                          compared)}
    for path in files.values():
        if path not in fingerprints:
            fingerprints[path] = fingerprint(path)
    return {name: fingerprints[path] for name, path in sorted(files.items())}


def refuse_outdated_picks(cfg, arch, seed, picks):
    """One UserError sentence when step 3-1 made a pick of `picks` ({target id: backbone id}) by comparing a model
    that has been trained again since (the target's step 1, the backbone's step 1 or 2-2): that pick may no longer
    hold. A pick without a saved provenance (written by hand, or by an older version) is taken as it is."""
    saved, fingerprints = read_json_record(paths.pickaback_table_json(cfg.name, seed)), {}
    for target_id, backbone_id in sorted(picks.items()):
        record = saved.get(f"{target_id},{backbone_id}")
        if not isinstance(record, dict) or not isinstance(record.get("inputs"), dict):
            continue
        compared = record.get("settings", {}).get("compare", "received")
        now = pair_inputs(cfg, arch, seed, cfg.task(target_id), cfg.task(backbone_id), compared, fingerprints)
        changed = [name for name, value in now.items() if record["inputs"].get(name) != value]
        if changed:
            raise UserError(f"Step 3-1 picked backbone {backbone_id} for target {target_id} by comparing an earlier "
                            f"model of {' and '.join(changed)}, changed since; run step 3-1 ({STEP_3_1}) "
                            f"for target {target_id} again first.")


def ranked_pairs(values, rankings):
    """The pairs of `values` ({(target id, candidate id): value}) each target was ranked over: its recorded
    candidates (its table may hold rows of a wider earlier pool), every pair of a target without a record."""
    def ranked(target, candidate):
        pool = rankings.get(target, DEFAULT_RANKING)["candidates"]
        return pool is None or candidate in pool
    return {pair: value for pair, value in values.items() if ranked(*pair)}


def recorded_scores(table, targets, rankings, rule=None):
    """{target id: ({candidate id: value, smaller = more similar}, rule)}: each of `targets`' candidates by the score,
    rule and hub correction step 3-1 recorded for it (`rankings`, read_rankings'), `rule` overriding the rule."""
    groups = {tuple(rankings[t]["hubs"]) for t in targets if rankings.get(t, DEFAULT_RANKING)["hubs"]}
    ranked = corrected_for_hubs(plain_scores(table, set(targets).union(*groups), rankings, rule), groups)
    return {t: ranked[t] for t in targets}


def plain_scores(table, targets, rankings, rule=None):
    """recorded_scores without the hub correction."""
    columns, ranked = {}, {}
    for target_id in targets:
        ranking = rankings.get(target_id, DEFAULT_RANKING)
        score = ranking["score"]
        if score not in columns:   # each score's column read once
            columns[score] = ranked_pairs(ranking_values(read_distances(table, SCORES[score][0]), score), rankings)
        ranked[target_id] = ({c: v for (t, c), v in columns[score].items() if t == target_id},
                             rule or ranking["select"])
    return ranked


def corrected_for_hubs(ranked, groups):
    """`ranked` (plain_scores') with the values of each group of targets hub_corrected together."""
    ranked = dict(ranked)
    for group in groups:
        corrected = hub_corrected({(t, c): v for t in group for c, v in ranked[t][0].items()})
        ranked.update({t: ({c: v for (tt, c), v in corrected.items() if tt == t}, ranked[t][1]) for t in group})
    return ranked


def hub_corrected_targets(rankings):
    """The targets whose ranking record says step 3-1 corrected them for a hub, in id order."""
    return sorted(t for t, ranking in rankings.items() if ranking.get("hubs"))


def hub_correction_sentence(targets):
    """What step 3-1 did to `targets`, as the end of a sentence whose subject is step 3-1."""
    return (f"ranked targets {', '.join(map(str, targets))} again with each candidate's closeness to targets in "
            f"general subtracted (a hub correction; docs/pipeline.md, step 3-1)")


def hub_corrected(values, k=HUB_NEIGHBOURS):
    """{(target id, candidate id): value, smaller ranks first} of several targets, corrected for hubness as
    nearest-neighbour search corrects it (CSLS, Conneau et al. 2018): each target's values are standardised over its
    candidates (a target's distances are measured on its own probes, on a scale of their own), then each candidate's
    mean over its k nearest targets is subtracted, so a candidate close to every target loses that head start."""
    standardised = {}
    for target in {t for t, _ in values}:
        own = {c: v for (t, c), v in values.items() if t == target}
        numbers = [v for v in own.values() if not math.isnan(v)]
        mean = sum(numbers) / len(numbers) if numbers else 0.0
        sd = math.sqrt(sum((v - mean) ** 2 for v in numbers) / (len(numbers) - 1)) if len(numbers) > 1 else 0.0
        standardised.update({(target, c): (v - mean) / (sd or 1.0) for c, v in own.items()})
    nearest = {}
    for candidate in {c for _, c in values}:
        closest = sorted(v for (_, c), v in standardised.items() if c == candidate and not math.isnan(v))[:k]
        nearest[candidate] = sum(closest) / len(closest) if closest else 0.0
    return {(t, c): v - nearest[c] for (t, c), v in standardised.items()}


def picked_for_most(cfg, selections):
    """[{"backbone", "modality", "targets", "of"}] for each backbone picked for more than half of one modality's
    targets, where it has at least HUB_MIN_TARGETS (`selections`: {target id: backbone id}): what a hub looks like,
    one candidate close to every target (one or two targets sharing a pick say nothing of the kind)."""
    shared = []
    for modality in MODALITIES:
        targets = sorted(t for t in selections if cfg.task(t).modality == modality)
        if len(targets) < HUB_MIN_TARGETS:
            continue
        for backbone in sorted({selections[t] for t in targets}):
            group = [t for t in targets if selections[t] == backbone]
            if 2 * len(group) > len(targets):
                shared.append({"backbone": backbone, "modality": modality, "targets": group, "of": len(targets)})
    return shared


def picked_for_most_sentence(cfg, shared):
    return (f"Backbone {shared['backbone']} ({cfg.task(shared['backbone']).name}) was picked for "
            f"{len(shared['targets'])} of {shared['of']} {shared['modality']} targets "
            f"({', '.join(map(str, shared['targets']))})")


def hub_groups(cfg, ranked):
    """[(the hub's picked_for_most record, the targets to correct together)] of `ranked` (plain_scores'): for each
    modality where one candidate is the first of more than half of its targets, that modality's targets ranked
    "similar" (a hub is the candidate closest to many)."""
    picks = {t: rank_candidates(values, rule)[0] for t, (values, rule) in ranked.items() if values}
    groups = []
    for shared in picked_for_most(cfg, picks):
        group = sorted(t for t in picks if cfg.task(t).modality == shared["modality"] and ranked[t][1] == "similar")
        if len(group) > 1:
            groups.append((shared, group))
    return groups
