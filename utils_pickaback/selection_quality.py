"""How good a backbone selection is, judged by the transfer control rather than by a designed relation.

From the control's runs (every target on every candidate, capacity-matched scratch, the untrained backbone)
and step 3-1's distances:
* per target: the selected backbone's accuracy, the oracle (best candidate), the mean over candidates (a
  random pick), regret = oracle - selected, the pick's rank (1 = best), and Spearman's rho and weighted
  Kendall tau between the selector's score and transfer accuracy (as LEEP and LogME are judged);
* overall: mean regret and rank, the selection's gain over a random pick, over capacity-matched scratch and
  over the untrained backbone, each with a 95% Student-t interval over targets, the mean correlations, and
  how often the designed related task was picked;
* with repeats at other training seeds (CONTROL_SEEDS), accuracies are means over seeds, and the spread
  between seeds says how small a difference the control resolves.
Reads only the files the steps write (no torch).
"""
import math
from dataclasses import dataclass

import numpy as np

from utils import paths
from utils.paths import UNTRAINED
from utils.provenance import same_recipe
from utils.results import (read_baselines, read_chosen, read_csv_rows, read_distances, read_outcome,
                           same_to_the_record)
from utils.text_tables import figure, targets_named
from utils_pickaback.ranking import (SCORES, another_arch_sentences, picked_for_most, picked_for_most_sentence,
                                    picks_of_arch, rank_candidates, ranking_values, read_rankings, recorded_scores)

TRANSFER_FIELDS = ["target_id", "backbone", "width", "val_accuracy", "test_accuracy", "seed"]
SCRATCH_PREFIX = "scratch@"


def twin_label(backbone_id):
    """The control's label of a run on the untrained twin of backbone `backbone_id`."""
    return f"{UNTRAINED}@{backbone_id}"


@dataclass
class TargetFigures:
    target_id: int
    selected: int
    oracle: int
    selected_acc: float
    oracle_acc: float
    random_acc: float          # mean over the candidates: the expected accuracy of a random pick
    regret: float
    rank: int                  # 1 + number of candidates strictly better than the selected one
    n_candidates: int
    scratch: float | None       # step 1's accuracy (trained alone at width 1.0)
    matched_scratch: float | None   # from scratch at the width the selected-backbone run ended at
    untrained: float | None     # on an untrained backbone of the selected one's structure
    spearman: float | None      # rho(selector score, accuracy) over the candidates
    weighted_tau: float | None
    free_spearman: float | None  # rho(the candidate's free share: its pruning ratio, step 2-2's, accuracy)
    related: int | None         # the config's designed related task, if any
    picked_related: bool | None
    candidate_accuracies: dict  # candidate id -> accuracy on it


def compared_candidates(cfg, distances, target_id):
    """The task ids step 3-1 compared with a target (its table's pairs; every other task when there is no table)."""
    compared = sorted(c for t, c in distances if t == target_id)
    return compared or [t.task_id for t in cfg.tasks if t.task_id != target_id]


def designed_related_pick(cfg, target_id, selected, candidates):
    """Did the selection pick the task the config designed as related to the target? None when the config
    designs none or it was not among the `candidates`: then there was no right answer to miss."""
    related = cfg.related.get(cfg.task(target_id).name)
    if related is None or cfg.task(related).task_id not in candidates:
        return None
    return cfg.task(related).task_id == selected


def read_transfer_csv(path):
    """The control's runs as dicts of TRANSFER_FIELDS (empty when the file does not exist)."""
    return read_csv_rows(path, TRANSFER_FIELDS, "run_pickaback/transfer_matrix.sh")


def runs_by_target(rows, split):
    """{target id: {backbone label: {training seed: accuracy}}}; a label is a task id (int), 'untrained' or
    'scratch@<w>'."""
    table = {}
    for row in rows:
        label = int(row["backbone"]) if row["backbone"].isdigit() else row["backbone"]
        runs = table.setdefault(int(row["target_id"]), {}).setdefault(label, {})
        runs[int(row["seed"])] = float(row[f"{split}_accuracy"])
    return table


def anchored_runs(runs, widths, target_id, anchor):
    """A target's control runs (label -> accuracy) with only the controls trained for `anchor`, the backbone step 3-2
    and the control trained the target on: its untrained twin (under UNTRAINED) and scratch at the width that run
    ended at (`widths`: (target id, label) -> the width column). The controls of another, earlier pick are left
    out: they measure another structure and capacity."""
    kept = {label: acc for label, acc in runs.items() if isinstance(label, int)}
    if twin_label(anchor) in runs:
        kept[UNTRAINED] = runs[twin_label(anchor)]
    matched = f"{SCRATCH_PREFIX}{widths.get((target_id, str(anchor)))}"
    if matched in runs:
        kept[matched] = runs[matched]
    return kept


def accuracies_by_target(table):
    """{target id: {backbone label: accuracy}} of runs_by_target's `table`, the mean over the run's training seeds
    (CONTROL_SEEDS)."""
    return {target: {label: float(np.mean(list(accs.values()))) for label, accs in runs.items()}
            for target, runs in table.items()}


def seed_spread(table):
    """How far one run's accuracy moves with its training seed: {"runs": runs trained with 2 or more seeds,
    "seeds": the most seeds of one run, "sd": the root mean square over those runs of the standard deviation
    between seeds} (sd None without such runs). A difference between two backbones well under ~2 sd of a
    single run is one the control does not resolve. `table`: runs_by_target's."""
    return spread_of(runs for target_runs in table.values() for runs in target_runs.values())


def spread_of(runs):
    """seed_spread of some runs ({training seed: accuracy} each)."""
    repeated = [list(accs.values()) for accs in runs if len(accs) > 1]
    if not repeated:
        return {"runs": 0, "seeds": 1, "sd": None}
    sd = math.sqrt(float(np.mean([np.var(accs, ddof=1) for accs in repeated])))
    return {"runs": len(repeated), "seeds": max(len(accs) for accs in repeated), "sd": sd}


def expected_best_of(k):
    """E[max of k independent standard normals] (0 for k = 1): how far above their mean the best of k equally good
    candidates lands by noise alone, in standard deviations."""
    if k <= 1:
        return 0.0
    from scipy import stats
    x = np.linspace(-12.0, 12.0, 48001)
    return float(np.trapezoid(x * k * stats.norm.pdf(x) * stats.norm.cdf(x) ** (k - 1), x))


def noise_regret(table, figures):
    """The mean regret any pick would show if every candidate of a target were equally good: per target, the sd of a
    run's mean over its seeds (seed_spread of that target's runs: a target every candidate learns perfectly has
    none) times expected_best_of(its candidates), averaged over the targets with repeated runs; None without any.
    A regret near it neither shows the selection missing a better backbone nor finding one. `table`:
    runs_by_target's."""
    floors = []
    for f in figures:
        spread = spread_of(accs for label, accs in table.get(f.target_id, {}).items() if isinstance(label, int))
        if spread["sd"] is not None:
            floors.append(spread["sd"] / math.sqrt(spread["seeds"]) * expected_best_of(f.n_candidates))
    return mean_of(floors)


def held_out_oracle(table, figures):
    """How much a candidate's advantage reproduces: per target, the candidate best at one training seed, judged at
    another, minus the mean over candidates there (every ordered pair of seeds all its candidates share, averaged);
    {"mean", "ci95", "targets": {target id: gain}} over the targets with 2 or more such seeds, else None. The
    most a selector can be shown to gain over a random pick by this control; near 0, nothing is there to find.
    `table`: runs_by_target's."""
    gains = {}
    for f in figures:
        runs = {c: table.get(f.target_id, {}).get(c, {}) for c in f.candidate_accuracies}
        seeds = sorted(set.intersection(*(set(r) for r in runs.values()))) if runs else []
        draws = [runs[max(runs, key=lambda c: runs[c][a])][b] - float(np.mean([r[b] for r in runs.values()]))
                 for a in seeds for b in seeds if a != b]
        if draws:
            gains[f.target_id] = float(np.mean(draws))
    if not gains:
        return None
    mean, half = interval95(list(gains.values()))
    return {"mean": mean, "ci95": half, "targets": gains}


def noise_sentences(summary):
    """The regret noise alone gives (noise_regret) and the held-out oracle in words, each where measured."""
    regret, spread, held_out = summary["noise_regret"], summary["seed_spread"], summary["held_out_oracle"]
    lines = []
    if regret is not None:
        lines.append(f"If every candidate were equally good, the control's own noise (each target's spread between "
                     f"up to {spread['seeds']} seeds) would give any pick a mean regret of about {regret:.4f}: a "
                     f"regret near it shows neither a better backbone missed nor one found.")
    if held_out is not None:
        lines.append(f"The candidate best at one training seed gains {gain_text(held_out)} over a random pick at "
                     f"another (95% interval over {len(held_out['targets'])} targets): how far the candidates differ "
                     f"reproducibly; an interval around 0 means this control shows no backbone worth finding.")
    return lines


def correlation(scores, accuracies):
    """(Spearman rho, weighted Kendall tau) of two equal-length sequences; None where undefined."""
    if len(scores) < 3 or len(set(scores)) < 2 or len(set(accuracies)) < 2:
        return None, None
    from scipy import stats     # imported here: a second of start-up the control's plan, width and collect need not pay
    rho = stats.spearmanr(scores, accuracies).statistic
    tau = stats.weightedtau(scores, accuracies).statistic
    return (None if math.isnan(rho) else float(rho)), (None if math.isnan(tau) else float(tau))


def spread_sentence(spread):
    """seed_spread in words."""
    if not spread["runs"]:
        return ("One training seed per run: the control's own noise is not measured, so neither is how much of the "
                "regret it alone gives any pick (CONTROL_SEEDS=\"3\" repeats every run with another seed).")
    return (f"Accuracies are means over up to {spread['seeds']} training seeds; between seeds one run's accuracy "
            f"moves by sd {spread['sd']:.4f} ({spread['runs']} runs repeated).")


CONTROL_HEADER = ("target", "scratch", "scratch at its width", "untrained backbone", "selected", "acc", "oracle",
                  "acc", "random pick", "regret", "rank", "Spearman", "designed related")


def control_rows(cfg, figures):
    """The control's per-target table as text cells under CONTROL_HEADER (the report's and the console's)."""
    def named(task_id):
        return f"{task_id} {cfg.task(task_id).name}"
    related = {None: "-", True: "yes", False: "no"}
    return [[named(f.target_id), figure(f.scratch), figure(f.matched_scratch), figure(f.untrained),
             named(f.selected), figure(f.selected_acc), named(f.oracle), figure(f.oracle_acc), figure(f.random_acc),
             figure(f.regret), f"{f.rank}/{f.n_candidates}", figure(f.spearman, "+.2f"), related[f.picked_related]]
            for f in figures]


def gain_text(gain):
    """A summary's gain ({"mean", "ci95"}) as '+0.0123 ± 0.0045', or 'n/a'."""
    return "n/a" if gain["mean"] is None else f"{gain['mean']:+.4f} ± {figure(gain['ci95'])}"


def control_sentences(cfg, summary):
    """The control's overall figures in sentences (the report's and the console's)."""
    s = summary

    def gain(key):
        return gain_text(s[key])
    random_rank = None if s["mean_candidates"] is None else s["mean_candidates"] / 2 + 0.5
    lines = [f"Mean regret {figure(s['mean_regret'])} (worst {figure(s['max_regret'])}); the oracle was picked for "
             f"{s['oracle_picks']} of {s['targets']} targets; mean rank {figure(s['mean_rank'], '.1f')} of "
             f"{figure(s['mean_candidates'], '.1f')} (a random pick: {figure(random_rank, '.1f')}).",
             f"Gain of the selection (95% interval over targets): over a random pick {gain('gain_over_random')}, "
             f"over capacity-matched scratch {gain('gain_over_matched_scratch')}, over the untrained backbone "
             f"{gain('gain_over_untrained')}, over scratch {gain('gain_over_scratch')}.",
             f"Selector score vs transfer accuracy, mean per target: Spearman {figure(s['spearman'], '+.2f')}, "
             f"weighted Kendall tau {figure(s['weighted_tau'], '+.2f')}; the candidate's free share (its pruning "
             f"ratio) vs transfer accuracy: Spearman {figure(s['free_spearman'], '+.2f')}."]
    lines += [f"The gain over {what} leaves out {targets_named(s[key]['without'])}, with no such run."
              for key, what in (("gain_over_untrained", "the untrained backbone"),
                                ("gain_over_matched_scratch", "capacity-matched scratch"))
              if 0 < len(s[key].get("without", [])) < s["targets"]]
    if s["related_targets"]:
        lines.append(f"The designed related task was picked for {s['related_picks']} of {s['related_targets']} "
                     f"targets.")
    others = s.get("untrained_of_another_pick")
    if others:
        lines.append(f"For {len(others)} of {s['targets']} targets ({', '.join(map(str, others))}) this score picks "
                     "another backbone than step 3-1 did; their untrained backbone is step 3-1's pick's twin, so "
                     "the gain over it there compares different structures.")
    return (outdated_control_sentences(s) + lines + [hub_sentence(cfg, hub) for hub in s["hubs"]]
            + [spread_sentence(s["seed_spread"])] + noise_sentences(s))


def outdated_control_sentences(summary):
    """What the control's figures leave out, and why: targets whose pick another arch made, outdated controls."""
    other = summary.get("picked_by_another_arch") or {}
    left_out = another_arch_sentences(other.get("config"), other.get("arch"), other.get("targets"))
    outdated = summary.get("outdated_control")
    if outdated:
        left_out.append(f"The transfer control of {targets_named(outdated)} holds runs trained again since it "
                        f"was collected, or with other settings than step 3-2's run of the selected backbone, so it is "
                        f"left out of these figures; bash run_pickaback/transfer_matrix.sh brings it up to date "
                        f"(reusing its runs that still hold).")
    return left_out


# outcome.json records accuracies to 4 decimals, so two means of rounded accuracies this close may be the same count of
# correct samples: they tie
ROUNDING = 1e-4 + 1e-9


def target_figures(target_id, selected, runs, distances, *, scratch=None, related=None, rule="similar",
                   free_shares=None):
    """Figures of one target; `runs` maps backbone labels to accuracies, `distances` candidate ids to
    step 3-1's distance. The candidates are the task ids the control trained the target on, so a selector
    that ranked fewer (e.g. the same modality only) is judged against the best of all of them; the
    correlation is over those it ranked, and the designed related task counts where it was one of them. None
    when the selected backbone has no run or is the only
    candidate that has one (step 3-2's run alone, the control not yet run for the target): there is
    nothing to compare it with."""
    candidates = sorted(c for c in runs if isinstance(c, int))
    if selected not in candidates or len(candidates) < 2:
        return None
    accs = {c: runs[c] for c in candidates}
    oracle = max(candidates, key=lambda c: (accs[c], c == selected))
    if accs[oracle] - accs[selected] <= ROUNDING:      # a tie with the selection is no regret
        oracle = selected
    sign = -1.0 if rule == "similar" else 1.0
    ranked = [c for c in candidates if c in distances]
    rho, tau = correlation([sign * distances[c] for c in ranked], [accs[c] for c in ranked])
    shared = [c for c in candidates if c in (free_shares or {})]
    free_rho, _ = correlation([free_shares[c] for c in shared], [accs[c] for c in shared])
    matched = [v for k, v in runs.items() if isinstance(k, str) and k.startswith(SCRATCH_PREFIX)]
    return TargetFigures(
        target_id=target_id, selected=selected, oracle=oracle, selected_acc=accs[selected],
        oracle_acc=accs[oracle], random_acc=float(np.mean(list(accs.values()))),
        regret=accs[oracle] - accs[selected], rank=1 + sum(a - accs[selected] > ROUNDING for a in accs.values()),
        n_candidates=len(candidates), scratch=scratch, matched_scratch=matched[0] if matched else None,
        untrained=runs.get(UNTRAINED), spearman=rho, weighted_tau=tau, free_spearman=free_rho, related=related,
        picked_related=selected == related if related in distances else None, candidate_accuracies=accs)


def interval95(values):
    """(mean, half-width of the 95% Student-t interval) over `values`; half-width None for fewer than 2."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, None
    from scipy import stats     # imported here, as in correlation
    half = float(stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / math.sqrt(len(values)))
    return mean, half


def mean_of(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def summarise(figures):
    """Overall figures over targets (dict of plain values, for JSON)."""
    def gain(attr):     # with the targets it cannot be measured on (no such run), so that figures say so
        mean, half = interval95([f.selected_acc - getattr(f, attr) for f in figures
                                 if getattr(f, attr) is not None])
        return {"mean": mean, "ci95": half, "without": [f.target_id for f in figures if getattr(f, attr) is None]}
    related = [f for f in figures if f.picked_related is not None]
    return {
        "targets": len(figures),
        "mean_regret": mean_of([f.regret for f in figures]),
        "max_regret": max((f.regret for f in figures), default=None),
        "mean_rank": mean_of([f.rank for f in figures]),
        "mean_candidates": mean_of([f.n_candidates for f in figures]),
        "gain_over_random": gain("random_acc"),
        "gain_over_matched_scratch": gain("matched_scratch"),
        "gain_over_untrained": gain("untrained"),
        "gain_over_scratch": gain("scratch"),
        "oracle_picks": sum(f.regret == 0 for f in figures),
        "spearman": mean_of([f.spearman for f in figures]),
        "weighted_tau": mean_of([f.weighted_tau for f in figures]),
        "free_spearman": mean_of([f.free_spearman for f in figures]),
        "related_picks": sum(bool(f.picked_related) for f in related),
        "related_targets": len(related),
    }


def pooled_summary(judged):
    """summarise over the targets of several configs' [(figures, summary)], with their noise floors (weighted by
    targets; None unless every config has one) and held-out oracles pooled."""
    pooled = summarise([figure for figures, _ in judged for figure in figures])
    floors = [(summary["noise_regret"], summary["targets"]) for _, summary in judged]
    pooled["noise_regret"] = (None if any(floor is None for floor, _ in floors)
                              else sum(floor * n for floor, n in floors) / sum(n for _, n in floors))
    held_out = [gain for _, summary in judged if summary["held_out_oracle"]
                for gain in summary["held_out_oracle"]["targets"].values()]
    mean, half = interval95(held_out)
    pooled["held_out_oracle"] = {"mean": mean, "ci95": half, "targets": len(held_out)} if held_out else None
    return pooled


def hub_traits(cfg, shared, baselines):
    """What a backbone picked for most of a modality's targets (picked_for_most's `shared`) has in common with the
    hubs measured on real data (docs/transfer-control.md): it is of the other modality, so it read the targets'
    probes through their own adapters, or it learned its own task less than most of the other tasks did
    (`baselines`: task name -> step 1's validation accuracy). Empty when neither."""
    backbone = cfg.task(shared["backbone"])
    traits = []
    if backbone.modality != shared["modality"]:
        article = "an" if backbone.modality[0] in "aeiou" else "a"
        traits.append(f"it is {article} {backbone.modality} model, compared through the targets' own adapters")
    own = baselines.get(backbone.name)
    others = [acc for name, acc in baselines.items() if name != backbone.name]
    below = 0 if own is None else sum(own < acc for acc in others)
    if 2 * below > len(others):
        traits.append(f"its own task's validation accuracy ({own:.3f}) is below {below} of the other "
                      f"{len(others)} tasks'")
    return traits


def hub_traits_sentence(traits):
    """'' or one sentence naming the traits (hub_traits')."""
    if not traits:
        return ""
    return (f"Like the hubs measured on real data (docs/transfer-control.md), {', and '.join(traits)}; there, "
            f"such candidates looked close to targets they helped no more than the others did.")


def hub_figures(cfg, figures, baselines):
    """picked_for_most over the control's targets, with how many of each backbone's targets the control shows it
    is the best for, their mean regret, and its hub_traits."""
    by_target = {f.target_id: f for f in figures}
    return [{**shared, "best_for": sum(by_target[t].regret == 0 for t in shared["targets"]),
             "mean_regret": mean_of([by_target[t].regret for t in shared["targets"]]),
             "traits": hub_traits(cfg, shared, baselines)}
            for shared in picked_for_most(cfg, {f.target_id: f.selected for f in figures})]


def hub_sentence(cfg, hub):
    picked = picked_for_most_sentence(cfg, hub)
    if hub["best_for"] == len(hub["targets"]):
        return picked + "; the control shows it is the best backbone for each of them."
    traits = hub_traits_sentence(hub["traits"])
    return (picked + f"; the control shows it is the best for {hub['best_for']} of them (mean regret over them "
            f"{hub['mean_regret']:.4f}): a hub, close to every target rather than the best for each."
            + (" " + traits if traits else ""))


def backbone_label(cfg, folder_name):
    """A run folder's backbone column: the task id, 'untrained' or 'scratch@<width>'; None if not a control run."""
    if folder_name == UNTRAINED or folder_name.startswith(SCRATCH_PREFIX):
        return folder_name
    names = {task.name: task.task_id for task in cfg.tasks}
    return names.get(folder_name)


def control_run_folder(cfg, arch, seed, target, label, training_seed):
    """The folder of the control's run `label` (a task id, 'scratch@<w>' or 'untrained@<b>', as its CSV names it) of
    `target`, at `training_seed` (the pipeline's `seed`: the run itself; another: its repeat)."""
    name = cfg.task(int(label)).name if label.isdigit() else UNTRAINED if label.startswith(f"{UNTRAINED}@") else label
    folder = paths.target_dir(arch, cfg.name, name, target.name, seed)
    return folder if training_seed == seed else paths.repeat_dir(folder, training_seed)


def outdated_controls(cfg, arch, seed, rows, picks):
    """The targets whose control (`rows`, the transfer CSV's) no longer stands: a row whose run has been trained
    again since (its outcome.json now says other accuracies: step 3-2's own run of the pick, or the untrained twin),
    or a run trained with other settings than step 3-2's run of the target's pick (`picks`) now. A run whose folder
    is not there (a CSV copied elsewhere to be read) is judged as it is."""
    rows_of = {}
    for row in rows:
        rows_of.setdefault(int(row["target_id"]), []).append(row)
    outdated = []
    for target_id, target_rows in sorted(rows_of.items()):
        target = cfg.task(target_id)
        pick = picks.get(target_id)
        reference = pick and read_outcome(paths.target_dir(arch, cfg.name, cfg.task(pick).name, target.name, seed)
                                          / "scratch")
        for row in target_rows:
            folder = control_run_folder(cfg, arch, seed, target, row["backbone"], int(row["seed"]))
            outcome = read_outcome(folder / "scratch")
            if outcome is None:
                continue
            trained_again = not all(same_to_the_record(row[key], outcome[key])
                                    for key in ("width", "val_accuracy", "test_accuracy"))
            if trained_again or (reference and not same_recipe(outcome.get("settings"), reference.get("settings"))):
                outdated.append(target_id)
                break
    return outdated


def selection_figures(cfg, arch, seed=paths.DEFAULT_SEED, split="test", rule=None, score=None, table=None):
    """([TargetFigures] of every target the control ran on its selected backbone, summary) of a pipeline run.

    By default the selection is step 3-1's (its result CSV), and each target's selector score and rule are
    those step 3-1 ranked it by (recorded beside the result CSV; ModelDiff and "similar" for a run from before the
    record), over the candidates it ranked; `rule` overrides the recorded rule. With `score` (a name of
    ranking.SCORES) the selection is re-made from step 3-1's table (or `table`, a table of another step 3-1 run
    of the same models) by that score and `rule` (default "similar"): the control judges any selector whose
    scores the table holds, without training again.
    """
    pipeline_picks, other_arch = picks_of_arch(paths.pickaback_result_csv(cfg.name, seed), arch)   # step 3-2's
    rows = read_transfer_csv(paths.transfer_csv(cfg.name, seed))
    outdated = outdated_controls(cfg, arch, seed, rows, pipeline_picks)
    rows = [row for row in rows if int(row["target_id"]) not in outdated]
    control = runs_by_target(rows, split)
    runs = accuracies_by_target(control)
    widths = {(int(row["target_id"]), row["backbone"]): row["width"] for row in rows if int(row["seed"]) == seed}
    table = paths.pickaback_table_csv(cfg.name, seed) if table is None else table
    result_csv = paths.pickaback_result_csv(cfg.name, seed)
    if score is None:
        selections = pipeline_picks
        ranked = recorded_scores(table, selections, read_rankings(result_csv), rule)
    else:
        values = ranking_values(read_distances(table, SCORES[score][0]), score)
        ranked = {t: ({c: v for (tt, c), v in values.items() if tt == t}, rule or "similar")
                  for t in sorted({t for t, _ in values})}
        selections = {t: rank_candidates(candidates, how)[0] for t, (candidates, how) in ranked.items()}
    baseline_file = (paths.baseline_test_acc_file if split == "test" else paths.baseline_acc_file)(arch, cfg.name, seed)
    scratch = read_baselines(baseline_file)
    validation = scratch if split == "val" else read_baselines(paths.baseline_acc_file(arch, cfg.name, seed))
    free_shares = {task.task_id: chosen["ratio"] for task in cfg.tasks
                   if (chosen := read_chosen(paths.prune_dir(arch, cfg.name, task.name, seed) / paths.CHOSEN_FILE))}
    figures = []
    for target_id, selected in sorted(selections.items()):
        target = cfg.task(target_id)
        related = cfg.related.get(target.name)
        values, target_rule = ranked[target_id]
        anchor = pipeline_picks.get(target_id, selected)
        figure = target_figures(target_id, selected, anchored_runs(runs.get(target_id, {}), widths, target_id, anchor),
                                values,
                                scratch=scratch.get(target.name), rule=target_rule, free_shares=free_shares,
                                related=cfg.task(related).task_id if related else None)
        if figure is not None:
            figures.append(figure)
    twin_of_another = [f.target_id for f in figures if pipeline_picks.get(f.target_id, f.selected) != f.selected]
    return figures, {**summarise(figures), "seed_spread": seed_spread(control),
                     "noise_regret": noise_regret(control, figures),
                     "held_out_oracle": held_out_oracle(control, figures),
                     "hubs": hub_figures(cfg, figures, validation),
                     "untrained_of_another_pick": twin_of_another, "outdated_control": outdated,
                     "picked_by_another_arch": {"config": cfg.name, "arch": arch, "targets": other_arch}}
