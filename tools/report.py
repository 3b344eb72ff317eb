"""Report of a pipeline run: figures and one Markdown file of the numbers behind them; over seeds, one more.

    python -m tools.report [cfg] [--arch perceiver_io] [--seed 2 | --seeds 1 2 3] [--summary]

Writes logs_<arch>/report_<cfg>/ (similarity, pruning, accuracy and transfer-control figures, report.md);
with several seeds also logs_<arch>/report_<cfg>_seeds/report.md, each figure as a mean with its 95% interval.
`--summary` prints the quickstart's closing tables instead, and exits 1 if a backbone changed.
Reads only the files the steps write (no checkpoint, no torch), so it runs on partial results, and names
the split of every number: targets and the control are test accuracies, the pruning records validation
accuracies. The files and what each shows: docs/pipeline.md, "The report".
"""
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window: the report runs on headless machines

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from utils import paths  # noqa: E402
from utils.cli import ArgumentParser, add_arch_arg, seed_int  # noqa: E402
from utils.dataset_config import get_config  # noqa: E402
from utils.errors import UserError, run_main  # noqa: E402
from utils.provenance import started_from_what_is_there_now  # noqa: E402
from utils.results import (CL_FIELDS, read_baselines, read_chosen, read_cl_table, read_compared_as,  # noqa: E402
                           read_outcome, read_prune_record, read_results, read_table,
                           same_to_the_record)
from utils.text_tables import aligned_table, figure, markdown_table, targets_named  # noqa: E402
from utils_pickaback.ranking import (DEFAULT_RANKING, SCORES, another_arch_sentences,  # noqa: E402
                                     hub_correction_sentence, hub_corrected_targets, picked_for_most,
                                     picked_for_most_sentence, picks_of_arch, read_rankings, recorded_scores)
from utils_pickaback.selection_quality import (CONTROL_HEADER, compared_candidates,  # noqa: E402
                                               control_rows, control_sentences, designed_related_pick, hub_traits,
                                               hub_traits_sentence, interval95, mean_of, selection_figures)

SHORT_MODALITY = {"image": "img", "text": "txt"}
FIGURES = ("similarity.png", "pruning.png", "accuracy.png", "transfer.png")
DPI = 110
# The PNG writer's only metadata is the software version; dropping it keeps the bytes identical
# across matplotlib patch releases as well as across runs.
PNG_METADATA = {"Software": None}


def get_args_parser():
    p = ArgumentParser(description="Plot and tabulate the results of a pipeline run.")
    p.add_argument("config", nargs="?", default="demo", help="dataset config name")
    add_arch_arg(p)
    runs = p.add_mutually_exclusive_group()
    runs.add_argument("--seed", type=seed_int, default=paths.DEFAULT_SEED, help="the pipeline run (its seed) to report")
    runs.add_argument("--seeds", type=seed_int, nargs="+",
                      help="several runs: each one's report, and one over them (mean ± 95%% interval over seeds)")
    p.add_argument("--summary", action="store_true",
                   help="print the closing tables of a finished run (exit 1 if a backbone changed); no files written")
    return p


# ------------------------------------------------------------------------------------- the run's data
@dataclass
class PipelineOutputs:
    """What one seed's pipeline run has written so far, as the report reads it."""
    cfg: object
    arch: str
    baselines: dict = field(default_factory=dict)        # task name -> validation accuracy
    records: dict = field(default_factory=dict)          # task name -> {ratio: accuracy}
    chosen: dict = field(default_factory=dict)           # task name -> chosen.json
    selections: dict = field(default_factory=dict)       # target id -> backbone id
    scores: dict = field(default_factory=dict)           # (target id, candidate id) -> its ranking value
    score: str | None = None                             # the score every target was ranked by (None: mixed)
    hub_corrected: list = field(default_factory=list)    # targets whose scores step 3-1 corrected for a hub
    compared_as: dict = field(default_factory=dict)      # (target id, candidate id) -> how step 3-1 compared it
    results: dict = field(default_factory=dict)          # target id -> its row of results_<cfg>.csv
    outdated: dict = field(default_factory=dict)         # target id -> why its results row was left out
    other_arch: list = field(default_factory=list)       # targets whose step 3-1 pick another arch made
    rules: dict = field(default_factory=dict)            # target id -> (score, select) step 3-1 ranked it by
    transfer: tuple = ((), {})                           # the control's (TargetFigures list, summary)
    cl_table: list = field(default_factory=list)         # rows of cl_<cfg>.csv (tools/continual.py)

    def is_empty(self):
        return not (self.baselines or self.records or self.chosen or self.selections or self.scores
                    or self.results)


def load_run(cfg, arch, seed=paths.DEFAULT_SEED):
    run = PipelineOutputs(cfg, arch)
    run.transfer = selection_figures(cfg, arch, seed)
    run.baselines = read_baselines(paths.baseline_acc_file(arch, cfg.name, seed))
    for task in cfg.tasks:
        prune_dir = paths.prune_dir(arch, cfg.name, task.name, seed)
        record = read_prune_record(prune_dir / "record.txt")
        if record:
            run.records[task.name] = record
        chosen = read_chosen(prune_dir / paths.CHOSEN_FILE)
        if chosen:
            run.chosen[task.name] = chosen
    # step 3-1's files are one per config: picks (and their distances) another arch's step 3-1 made are left out
    rankings = read_rankings(paths.pickaback_result_csv(cfg.name, seed))
    run.selections, run.other_arch = picks_of_arch(paths.pickaback_result_csv(cfg.name, seed), arch)
    run.rules = {t: (rankings.get(t, DEFAULT_RANKING)["score"], rankings.get(t, DEFAULT_RANKING)["select"])
                 for t in run.selections}
    run.scores, run.score = ranked_scores(paths.pickaback_table_csv(cfg.name, seed), rankings, run.other_arch)
    run.hub_corrected = [t for t in hub_corrected_targets(rankings) if t not in run.other_arch]
    run.compared_as = {pair: how for pair, how in read_compared_as(paths.pickaback_table_csv(cfg.name, seed)).items()
                       if pair[0] not in run.other_arch}
    run.cl_table = read_cl_table(paths.cl_table_csv(cfg.name, seed))
    results = read_results(paths.results_csv(cfg.name, seed), arch)
    run.outdated = outdated_results(cfg, arch, seed, results, run.selections)
    run.results = {target_id: row for target_id, row in results.items()
                   if target_id in run.selections and target_id not in run.outdated}
    return run


def outdated_results(cfg, arch, seed, results, picks):
    """{target id: why} of the rows of results_<cfg>.csv (`results`) that no longer describe the runs there: rows
    of another backbone than step 3-1's pick now (`picks`; step 3-1 re-run since), written for another list of the
    config's tasks (the ids name other tasks now), before step 1 or step 3-2 trained the target again (their
    accuracies are not those of the runs there now), or of a run on a backbone trained again since."""
    names = {task.task_id: task.name for task in cfg.tasks}
    baselines = read_baselines(paths.baseline_acc_file(arch, cfg.name, seed))
    test_file = paths.baseline_test_acc_file(arch, cfg.name, seed)
    test_baselines = read_baselines(test_file) if test_file.is_file() else {}
    why = {}
    for target_id, row in results.items():
        scratch = (baselines.get(row["target_name"]), test_baselines.get(row["target_name"]))
        if picks.get(target_id, row["backbone_id"]) != row["backbone_id"]:
            why[target_id] = "written for another pick of step 3-1 than its pick now"
        elif (names.get(target_id), names.get(row["backbone_id"])) != (row["target_name"], row["backbone_name"]):
            why[target_id] = "written for another list of the config's tasks"
        elif not same_figure(scratch[0], row["scratch_val_acc"]):
            why[target_id] = "written before step 1 trained the target again"
        elif not same_figure(scratch[1], row["scratch_test_acc"]):
            why[target_id] = f"written with another scratch test accuracy than {test_file.name} holds now"
        else:
            folder = paths.target_dir(arch, cfg.name, row["backbone_name"], row["target_name"], seed) / "scratch"
            outcome = read_outcome(folder) or {}
            if not (same_figure(outcome.get("val_accuracy"), row["on_backbone_val_acc"])
                    and same_figure(outcome.get("test_accuracy"), row["on_backbone_test_acc"])):
                why[target_id] = "written before step 3-2 trained the target again"
            elif not started_from_what_is_there_now(outcome, paths.output_root()):
                why[target_id] = "of a run whose start, step 4's file, changed or is gone since"
    return why


def same_figure(now, recorded):
    """Whether an accuracy there now and one a results row recorded agree to the row's 4 decimals; a figure missing
    on either side (not recorded, or its run's file gone) cannot be told apart."""
    return now is None or recorded is None or same_to_the_record(now, recorded)


def mixed_rules_sentences(run):
    """One sentence when step 3-1 ranked the targets by different scores or rules (re-runs of some targets with
    another SCORE or SELECT): the report's figures pool them."""
    targets_of = {}
    for target, rule in sorted(run.rules.items()):
        targets_of.setdefault(rule, []).append(str(target))
    if len(targets_of) < 2:
        return []
    rules = "; ".join(f"{score} {select} for targets {', '.join(targets)}"
                      for (score, select), targets in sorted(targets_of.items()))
    return [f"Step 3-1 ranked these targets by different rules ({rules}): the figures below pool them."]


def left_out_sentences(run):
    """Why some of step 3-1's picks or results rows are not in the report, and whether its targets were ranked
    alike."""
    return (another_arch_sentences(run.cfg.name, run.arch, run.other_arch) + outdated_sentences(run.cfg, run.outdated)
            + mixed_rules_sentences(run))


def outdated_sentences(cfg, outdated):
    """One sentence per reason a results row was left out (outdated_results')."""
    targets_of = {}
    for target_id, why in sorted(outdated.items()):
        targets_of.setdefault(why, []).append(str(target_id))
    return [f"Left out of the results: the row{'s' if len(targets) > 1 else ''} of {targets_named(targets)} of "
            f"results_{cfg.name}.csv, {why}; run bash run_pickaback/transfer_kv.sh {cfg.name}, then "
            f"w_backbone.sh {cfg.name}, to write it again (they redo only what changed, and put back a damaged "
            f"outcome.json from its checkpoint)."
            for why, targets in targets_of.items()]


def ranked_scores(table, rankings, left_out=()):
    """({(target id, candidate id): the ranking value (smaller ranks first) of the score its target was ranked
    by}, over the pairs each target but `left_out` was ranked among; the name of that score, None when targets
    differ)."""
    ranked = recorded_scores(table, {t for t, _ in read_table(table)} - set(left_out), rankings)
    names = {rankings.get(t, DEFAULT_RANKING)["score"] for t in ranked}
    return ({(t, c): v for t, (values, _) in ranked.items() for c, v in values.items()},
            names.pop() if len(names) == 1 else None)


# ---------------------------------------------------------------------------------- table builders
def short(task):
    """`3 img`: how a task is named on an axis."""
    return f"{task.task_id} {SHORT_MODALITY.get(task.modality, task.modality)}"


def related_verdict(run, target, backbone):
    """'yes' / 'no' / 'n/a ...': did the selection pick the task the config designed as related?"""
    candidates = compared_candidates(run.cfg, run.scores, target.task_id)
    picked = designed_related_pick(run.cfg, target.task_id, backbone.task_id, candidates)
    if picked is None:
        return "n/a" if target.name not in run.cfg.related else "n/a (not a candidate)"
    return "yes" if picked else "no"


def result_figures(result):
    """A target's figures from its row of results_<cfg>.csv ({}: step 3-2 has not run), under a target row's keys."""
    width = result.get("final_width")
    return {"scratch": result.get("scratch_test_acc"), "accuracy": result.get("on_backbone_test_acc"),
            "gain": result.get("forward_transfer_test"), "untrained": result.get("on_untrained_test_acc"),
            "knowledge": result.get("knowledge_transfer_test"), "backward": result.get("backward_transfer_test"),
            "identical": result.get("backbone_outputs_identical"), "regret": result.get("regret_test"),
            "width": width, "mpl": None if width is None else math.sqrt(width),   # the validate line's mpl
            "shared_ratio": result.get("shared_ratio")}


def target_rows(run):
    """One dict per target of step 3-1, with its test-accuracy results when step 3-2 has run (None otherwise)."""
    rows = []
    for target_id, backbone_id in sorted(run.selections.items()):
        target, backbone = run.cfg.task(target_id), run.cfg.task(backbone_id)
        rows.append({"target": target, "backbone": backbone, **result_figures(run.results.get(target_id, {})),
                     "related": related_verdict(run, target, backbone),
                     "candidates": len(compared_candidates(run.cfg, run.scores, target_id)),
                     "compared_as": run.compared_as.get((target_id, backbone_id), "-")})
    return rows


# One rendering of each column of a target row, for report.md's table and the console summary alike
TARGET_CELLS = {
    "target": lambda r: f"{r['target'].task_id} {r['target'].name}",
    "modality": lambda r: r["target"].modality,
    "scratch": lambda r: figure(r["scratch"]),
    "backbone": lambda r: f"{r['backbone'].task_id} {r['backbone'].name}",
    "backbone modality": lambda r: r["backbone"].modality,
    "compared as": lambda r: r["compared_as"],
    "related": lambda r: r["related"],
    "on backbone": lambda r: figure(r["accuracy"]),
    "on untrained": lambda r: figure(r["untrained"]),
    "forward transfer": lambda r: figure(r["gain"], "+.4f"),
    "knowledge transfer": lambda r: figure(r["knowledge"], "+.4f"),
    "backward transfer": lambda r: figure(r["backward"], "+.4f"),
    "width": lambda r: figure(r["width"], "g"),
    "final mpl": lambda r: figure(r["mpl"], ".4g"),
    "shared": lambda r: figure(r["shared_ratio"], ".3f"),
}
REPORT_COLUMNS = ("target", "modality", "scratch", "backbone", "backbone modality", "compared as", "related",
                  "on backbone", "on untrained", "forward transfer", "knowledge transfer", "backward transfer",
                  "final mpl", "shared")
SUMMARY_COLUMNS = ("target", "modality", "scratch", "backbone", "backbone modality", "related", "on backbone",
                   "on untrained", "forward transfer", "knowledge transfer", "width", "shared")


def target_cells(row, columns):
    """{column: its cell} of a target row."""
    return {column: TARGET_CELLS[column](row) for column in columns}


def task_rows(run):
    """One dict per task with any step 1 / 2 output: baseline, unpruned accuracy, chosen ratio."""
    picked_by = {}
    for target_id, backbone_id in sorted(run.selections.items()):
        picked_by.setdefault(backbone_id, []).append(target_id)
    rows = []
    for task in run.cfg.tasks:
        record, chosen = run.records.get(task.name, {}), run.chosen.get(task.name)
        if task.name not in run.baselines and not record and chosen is None:
            continue
        rows.append({
            "task": task, "baseline": run.baselines.get(task.name), "unpruned": record.get(0.0),
            "ratio": None if chosen is None else float(chosen["ratio"]),
            "ratio_acc": None if chosen is None else float(chosen["accuracy"]),
            "picked_by": picked_by.get(task.task_id, []),
        })
    return rows


def mean_over_targets(rows, key):
    """(mean of a target-row figure over the targets that have it, how many)."""
    values = [row[key] for row in rows if row[key] is not None]
    return mean_of(values), len(values)


def related_summary(rows):
    """(hits, judged targets, chance per target) over the targets whose designed related task was a candidate."""
    judged = [row for row in rows if row["related"] in ("yes", "no")]
    hits = sum(row["related"] == "yes" for row in judged)
    chances = sorted({1 / row["candidates"] for row in judged})
    return hits, len(judged), chances


def plural(n, word):
    return f"{n} {word}" + ("" if n == 1 else "s")


def step_status(run):
    """One sentence per pipeline step: how far it got, or that it has not run."""
    n_tasks, n_sel = run.cfg.num_tasks, len(run.selections)
    done = [
        ("1", run.baselines, f"baselines of {len(run.baselines)} of {n_tasks} tasks", "no baseline accuracies"),
        ("2-1", run.records, f"pruning records of {len(run.records)} of {n_tasks} tasks", "no pruning records"),
        ("2-2", run.chosen, f"chosen pruning ratios of {len(run.chosen)} of {n_tasks} tasks",
         "no chosen pruning ratio"),
        ("3-1", run.selections, f"backbones selected for {plural(n_sel, 'target')}", "no backbone selection"),
        ("3-2", run.results, f"results of {len(run.results)} of {plural(n_sel, 'target')}",
         f"no target results in results_{run.cfg.name}.csv (tools/results_table.py writes it after step 3-2)"),
    ]
    return [f"step {step}: {found}" if data else f"step {step} has not run: {missing}"
            for step, data, found, missing in done]


# ------------------------------------------------------------------------------------------- plots
def save(fig, path):
    fig.savefig(path, dpi=DPI, metadata=PNG_METADATA)
    plt.close(fig)


def plot_grid(run, values, path, *, cmap, colorbar_label, title, low_is_dark, oracle=None, crossed=()):
    """Heat-map of `values` ((target id, candidate id) -> number), targets x candidates; the selected
    backbone boxed red, the designed related task dotted orange, the `oracle` (target id -> id) starred,
    the `crossed` pairs (compared through the target's adapter) marked x."""
    cfg = run.cfg
    targets = [cfg.task(t) for t in sorted({t for t, _ in values})]
    candidates = [cfg.task(c) for c in sorted({c for _, c in values})]
    row_of = {t.task_id: i for i, t in enumerate(targets)}
    col_of = {c.task_id: j for j, c in enumerate(candidates)}
    grid = np.full((len(targets), len(candidates)), np.nan)
    for (t, c), value in values.items():
        grid[row_of[t], col_of[c]] = value

    fig, ax = plt.subplots(figsize=(max(5.5, 2.8 + 0.55 * len(candidates)), max(3.6, 1.9 + 0.45 * len(targets))),
                           layout="constrained")
    cmap = plt.get_cmap(cmap).with_extremes(bad="#e6e6e6")  # light grey: pairs never compared or run
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, aspect="auto")
    fig.colorbar(image, ax=ax, label=colorbar_label)
    if len(candidates) <= 14:  # numbers stay legible up to the demo's 12 tasks
        low, high = np.nanmin(grid), np.nanmax(grid)
        for (i, j), value in np.ndenumerate(grid):
            if not np.isnan(value):
                share = (value - low) / (high - low) if high > low else 0.0
                dark = share < 0.5 if low_is_dark else share >= 0.5
                ax.text(j, i, f"{value:.2g}", ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")
    for target in targets:
        related = cfg.related.get(target.name)
        if related is not None and cfg.task(related).task_id in col_of:
            ax.add_patch(Rectangle((col_of[cfg.task(related).task_id] - 0.34, row_of[target.task_id] - 0.34),
                                   0.68, 0.68, fill=False, edgecolor="tab:orange", linewidth=1.6, linestyle="--",
                                   label="designed related task"))
    for target_id, backbone_id in run.selections.items():
        if target_id in row_of and backbone_id in col_of:
            ax.add_patch(Rectangle((col_of[backbone_id] - 0.47, row_of[target_id] - 0.47), 0.94, 0.94, fill=False,
                                   edgecolor="red", linewidth=2.2, label="selected backbone"))
    for target_id, backbone_id in crossed:
        if target_id in row_of and backbone_id in col_of:
            ax.plot(col_of[backbone_id] - 0.33, row_of[target_id] - 0.3, marker="x", color="tab:purple",
                    markersize=6, linestyle="none", label="compared through the target's adapter")
    for target_id, backbone_id in (oracle or {}).items():
        if target_id in row_of and backbone_id in col_of:
            ax.plot(col_of[backbone_id] + 0.33, row_of[target_id] - 0.3, marker="*", color="gold",
                    markeredgecolor="black", markersize=9, linestyle="none", label="best backbone (oracle)")
    ax.set_xticks(range(len(candidates)), [short(c) for c in candidates], rotation=90)
    ax.set_yticks(range(len(targets)), [short(t) for t in targets])
    ax.set_xlabel("candidate backbone (task id, modality)")
    ax.set_ylabel("target (task id, modality)")
    ax.set_title(title)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(sorted(zip(labels, handles), key=lambda pair: pair[0] != "selected backbone"))
    if unique:
        fig.legend(unique.values(), unique.keys(), loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    save(fig, path)


def plot_similarity(run, path):
    """Every pair's value of the score step 3-1 ranked by, turned so that smaller ranks first (LEEP, LogME and
    CKA negated): dark = ranks first, so the selected backbone should sit on a dark cell."""
    dissimilar = picks_dissimilar(run)
    if run.score is None:
        label = "each target's score (smaller = more similar)"
    else:
        column, larger_is_better = SCORES[run.score]
        label = f"{'-' if larger_is_better else ''}{column} (smaller = more similar)"
    if dissimilar:
        label += "; dissimilar: the largest is picked"
    if run.hub_corrected:
        label += f"; targets {', '.join(map(str, run.hub_corrected))} hub-corrected"
    plot_grid(run, run.scores, path, cmap="Blues" if dissimilar else "Blues_r", colorbar_label=label,
              title=f"Step 3-1's ranking ({run.score or 'mixed'}), config {run.cfg.name}", low_is_dark=not dissimilar,
              crossed=[pair for pair, how in run.compared_as.items() if how == "target adapter"])


def picks_dissimilar(run):
    """Whether step 3-1 ranked every target by the dissimilar rule (the largest distance first)."""
    return bool(run.rules) and {select for _, select in run.rules.values()} == {"dissimilar"}


def ranking_words(run):
    """How step 3-1 ranked the targets, for report.md's first lines."""
    if not run.rules:
        return "no target yet"
    if run.score is None or len({select for _, select in run.rules.values()}) > 1:
        return "by scores or rules that differ between targets (below)"
    column, larger_is_better = SCORES[run.score]
    dissimilar = picks_dissimilar(run)
    first = "largest" if larger_is_better != dissimilar else "smallest"
    return f"by {run.score} ({column}), {'dissimilar' if dissimilar else 'similar'}: the {first} value first"


def plot_transfer(run, path):
    """The transfer control's test accuracy of every target on every candidate: dark = the backbone helps."""
    figures, _ = run.transfer
    values = {(f.target_id, c): acc for f in figures for c, acc in f.candidate_accuracies.items()}
    plot_grid(run, values, path, cmap="Greens", colorbar_label="test accuracy on the backbone",
              title=f"Transfer control, config {run.cfg.name}", low_is_dark=False,
              oracle={f.target_id: f.oracle for f in figures})


def plot_pruning(run, path):
    """Small multiples: validation accuracy vs pruning ratio per task, its baseline, the chosen ratio."""
    tasks = [t for t in run.cfg.tasks if t.name in run.records]
    ncols = min(4, len(tasks))
    nrows = -(-len(tasks) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(max(3.1 * ncols, 6.5), 2.5 * nrows), sharex=True, squeeze=False)
    for ax, task in zip(axes.flat, tasks):
        record = run.records[task.name]
        ax.plot(list(record), list(record.values()), marker="o", markersize=3.5, color="tab:blue",
                label="accuracy after pruning")
        if task.name in run.baselines:
            ax.axhline(run.baselines[task.name], color="grey", linestyle="--", linewidth=1, label="baseline (scratch)")
        chosen = run.chosen.get(task.name)
        if chosen is not None:
            ax.plot([float(chosen["ratio"])], [float(chosen["accuracy"])], marker="*", markersize=13,
                    color="tab:red", linestyle="none", label="chosen ratio")
        ax.set_title(f"{task.task_id} {task.name} ({SHORT_MODALITY.get(task.modality, task.modality)})", fontsize=9)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    for ax in axes.flat[len(tasks):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("val. accuracy", fontsize=8)
    for ax in axes.flat[max(0, len(tasks) - ncols):len(tasks)]:  # the lowest axes of each column
        ax.set_xlabel("pruning ratio", fontsize=8)
        ax.xaxis.set_tick_params(labelbottom=True)
    legend = {}     # each label once, in the order the axes first show it
    for ax in axes.flat[:len(tasks)]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    fig.legend(legend.values(), legend.keys(), loc="lower center", ncol=len(legend), fontsize=8, frameon=False)
    fig.suptitle(f"Pruning the backbone tasks, config {run.cfg.name}", fontsize=11)
    fig.tight_layout(rect=(0, 0.3 / fig.get_figheight(), 1, 1))  # room for the legend below
    save(fig, path)


def plot_accuracy(rows, cfg_name, path):
    """Grouped bars per target, test accuracy: trained alone from scratch vs trained on its selected backbone."""
    rows = [row for row in rows if row["accuracy"] is not None]
    x = np.arange(len(rows))
    width = 0.38
    fig, ax = plt.subplots(figsize=(max(4.5, 1.0 + 0.9 * len(rows)), 3.8))
    scratch = [np.nan if row["scratch"] is None else row["scratch"] for row in rows]
    on_backbone = [row["accuracy"] for row in rows]
    bars = ax.bar(x - width / 2, scratch, width, color="#9e9e9e", label="scratch (baseline)")
    ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    bars = ax.bar(x + width / 2, on_backbone, width, color="tab:blue", label="on selected backbone")
    ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    ax.set_xticks(x, [f"{short(row['target'])}\non {short(row['backbone'])}" for row in rows], fontsize=8)
    ax.set_xlabel("target, on its selected backbone (task id, modality)", fontsize=9)
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.12)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", ncol=2, fontsize=8, frameon=False)
    ax.set_title(f"Targets: scratch vs selected backbone, config {cfg_name}", fontsize=10)
    fig.tight_layout()
    save(fig, path)


# ------------------------------------------------------------------------------------------ report.md
def target_table(rows):
    return markdown_table(REPORT_COLUMNS, [list(target_cells(r, REPORT_COLUMNS).values()) for r in rows])


def ratio_cell(ratio):
    if ratio is None:
        return "-"
    return "0 (unpruned)" if ratio == 0 else format(ratio, "g")


def task_table(rows):
    header = ["task", "modality", "baseline val acc", "unpruned val acc", "chosen ratio", "val acc at chosen ratio",
              "selected by targets"]
    return markdown_table(header, [
        [f"{r['task'].task_id} {r['task'].name}", r["task"].modality, figure(r["baseline"]), figure(r["unpruned"]),
         ratio_cell(r["ratio"]), figure(r["ratio_acc"]), " ".join(map(str, r["picked_by"])) or "-"]
        for r in rows])


def summary_lines(rows, related):
    """The headline sentences: mean forward and backward transfer, designed-related hits against chance."""
    lines = []
    gain, n = mean_over_targets(rows, "gain")
    if gain is not None:
        lines.append(f"Mean forward transfer (test accuracy on the backbone - scratch): {figure(gain, '+.4f')} "
                     f"(over {n} targets).")
    lines += knowledge_sentences([row["knowledge"] for row in rows], [row["gain"] for row in rows])
    backward, n = mean_over_targets(rows, "backward")
    if backward is not None:
        kept = sum(bool(row["identical"]) for row in rows)
        lines.append(f"Mean backward transfer (the backbone's test accuracy after - before its targets): "
                     f"{figure(backward, '+.4f')} (over {n} targets; the backbone's outputs bit-identical for {kept}).")
    hits, judged, chances = related_summary(rows)
    if judged:
        chance = " or ".join(f"1/{round(1 / c)} = {c:.3f}" for c in chances)
        lines.append(f"Selected the designed related task for {hits} of {judged} targets "
                     f"(chance: {chance} per target).")
    elif rows:
        why = "no designed related task was a candidate" if related else "the config documents no related tasks"
        lines.append(f"Selected the designed related task: n/a ({why}).")
    return lines


def shared_pick_sentences(cfg, selections, baselines):
    """A sentence for each backbone picked for most of a modality's targets: the control, not the pick, says whether
    it is their best or a hub; and what it shares with the hubs measured (hub_traits, `baselines` step 1's
    validation accuracies)."""
    sentences = []
    for shared in picked_for_most(cfg, selections):
        traits = hub_traits_sentence(hub_traits(cfg, shared, baselines))
        sentences.append(picked_for_most_sentence(cfg, shared) + ": one backbone close to most targets may be a hub "
                         "rather than the best for each; the transfer control tells (bash "
                         "run_pickaback/transfer_matrix.sh)." + (" " + traits if traits else ""))
    return sentences


def hub_correction_sentences(hub_corrected):
    """Which targets step 3-1 ranked again because one candidate was the nearest of most of their modality."""
    return [f"Step 3-1 found one candidate nearest to most targets of a modality and "
            f"{hub_correction_sentence(hub_corrected)}."] if hub_corrected else []


def knowledge_sentences(knowledge, forward):
    """The mean knowledge transfer (on the backbone - on its untrained twin, 95% interval over targets) beside the
    part of the forward transfer the recipe alone gives (on the untrained twin - scratch), and one plain sentence
    when the knowledge cannot be told from zero, or is below it: then the run does not show the selection adding
    to the recipe."""
    pairs = [(f, k) for f, k in zip(forward, knowledge) if f is not None and k is not None]
    mean, half = interval95([k for _, k in pairs])
    if mean is None:
        return []
    shown = (figure(mean, "+.4f") + " (one target: no interval)" if half is None
             else f"{figure(mean, '+.4f')} ± {half:.4f} (95% interval over {len(pairs)} targets)")
    forward_mean, recipe = mean_of([f for f, _ in pairs]), mean_of([f - k for f, k in pairs])
    lines = [f"Mean knowledge transfer (test accuracy on the backbone - on its untrained twin): {shown}; of the mean "
             f"forward transfer {figure(forward_mean, '+.4f')}, the recipe alone (on the untrained twin - scratch) "
             f"gives {figure(recipe, '+.4f')}."]
    if half is not None and mean + half < 0:
        lines.append("The selected backbones cost their targets accuracy against their untrained twins (the interval "
                     "lies below 0): in this run the selection did worse than the training recipe alone.")
    elif half is not None and mean - half <= 0:
        lines.append("The selected backbones' knowledge cannot be told from zero over these targets (its interval "
                     "includes 0): this run does not show the selection adding anything beyond the training recipe.")
    return lines


def comparison_line(run):
    """How step 3-1 compared the cross-modal pairs: on paired probes, or through the target's adapter."""
    counts = {how: sum(v == how for v in run.compared_as.values()) for how in ("paired probes", "target adapter")}
    if not any(counts.values()):
        return []
    return [f"Cross-modal candidates: {counts['paired probes']} pairs compared on paired probes (each model reads "
            f"the same samples in its own modality), {counts['target adapter']} through the target's input adapter "
            f"(marked x in similarity.png)."]


def selection_section(run):
    """The control's per-target table and overall figures (utils_pickaback/selection_quality.py)."""
    figures, summary = run.transfer
    return [markdown_table(CONTROL_HEADER, control_rows(run.cfg, figures)), ""] + control_sentences(run.cfg, summary)


def test_split_note(cfg):
    """How the test split stands to the decisions (growing, pruning, step 2-2, the ranking's probes)."""
    if cfg.val_share() > 0:
        return "the test split took no part in any decision"
    return ("the config's val_fraction is 0, so the test split is also the validation split every decision read, "
            "as in the original: these are not held-out figures")


def build_markdown(run, t_rows, k_rows, written, skipped):
    out = [f"# Pipeline report: config `{run.cfg.name}`, arch `{run.arch}`", "",
           f"Targets, their backbones and the transfer control: test accuracies ({test_split_note(run.cfg)}). "
           "Backbone tasks and their pruning: validation accuracies (what steps 2-1 and 2-2 decided by). "
           f"Accuracies are fractions; step 3-1 ranked {ranking_words(run)}.",
           "", "## Steps", ""]
    out += [f"- {sentence}" for sentence in step_status(run) + left_out_sentences(run)]
    out += [f"- {name} skipped ({reason})" for name, reason in skipped]
    out += ["", "## Targets (steps 3-1, 3-2; test accuracy)", ""]
    if t_rows:
        out += [target_table(t_rows), ""] + summary_lines(t_rows, run.cfg.related) \
            + hub_correction_sentences(run.hub_corrected) \
            + shared_pick_sentences(run.cfg, run.selections, run.baselines) + comparison_line(run)
    else:
        out.append("step 3-1 has not run: no backbone selection.")
    out += ["", "## Selection quality (the transfer control, test accuracy)", ""]
    out += selection_section(run) if run.transfer[0] else [
        "The transfer control has not run (bash run_pickaback/transfer_matrix.sh): no regret to report."]
    if run.cl_table:
        out += ["", "## Among the continual-learning methods (python -m tools.continual table; test accuracy)", "",
                markdown_table(CL_FIELDS, [[row[key] for key in CL_FIELDS] for row in run.cl_table])]
    out += ["", "## Backbone tasks (steps 1, 2-1, 2-2; validation accuracy)", ""]
    out.append(task_table(k_rows) if k_rows else "steps 1, 2-1 and 2-2 have not run: no baselines or pruning records.")
    if written:
        out += ["", "## Figures", ""] + [f"![{Path(name).stem}]({name})" for name in written]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------- the report folder
def write_figures(run, t_rows, folder):
    """Draw each figure whose data exists; (written names, [(skipped name, reason)])."""
    plans = [
        ("similarity.png", bool(run.scores), "step 3-1 has not run",
         lambda p: plot_similarity(run, p)),
        ("pruning.png", bool(run.records), "step 2-1 has not run",
         lambda p: plot_pruning(run, p)),
        ("accuracy.png", any(r["accuracy"] is not None for r in t_rows), "no target results",
         lambda p: plot_accuracy(t_rows, run.cfg.name, p)),
        ("transfer.png", bool(run.transfer[0]), "the transfer control has not run",
         lambda p: plot_transfer(run, p)),
    ]
    written, skipped = [], []
    for name, ready, reason, draw in plans:
        target = folder / name
        if ready:
            draw(target)
            written.append(name)
        else:
            target.unlink(missing_ok=True)  # a figure from an earlier run would contradict report.md
            skipped.append((name, reason))
    return written, skipped


def write_report(cfg, arch, seed=paths.DEFAULT_SEED):
    """Write the report folder; (folder, target rows, written figures, skipped figures, run)."""
    run = load_run(cfg, arch, seed)
    if run.is_empty():
        raise UserError(f"No pipeline results for config '{cfg.name}' (arch {arch}) under "
                        f"{paths.output_root(seed)}; run the pipeline first (bash run_pickaback/quickstart.sh).")
    folder = paths.report_dir(arch, cfg.name, seed)
    folder.mkdir(parents=True, exist_ok=True)
    t_rows, k_rows = target_rows(run), task_rows(run)
    written, skipped = write_figures(run, t_rows, folder)
    (folder / "report.md").write_text(build_markdown(run, t_rows, k_rows, written, skipped), encoding="utf-8")
    return folder, run, t_rows, written, skipped


# ------------------------------------------------------------------------------------ several seeds
# The headline figures, each a mean over one seed's targets: (target-row key, what it is, number format).
SEED_FIGURES = (
    ("gain", "forward transfer (accuracy on the backbone - scratch)", "+.4f"),
    ("knowledge", "knowledge transfer (accuracy on the backbone - on its untrained twin)", "+.4f"),
    ("accuracy", "accuracy on the selected backbone", ".4f"),
    ("scratch", "accuracy trained alone from scratch", ".4f"),
    ("backward", "backward transfer (the backbone's accuracy after - before its targets)", "+.4f"),
    ("regret", "regret against the transfer control", ".4f"),
)
RELATED_FIGURE = ("related", "designed related task picked (share of targets)", ".3f")
# Every figure is a fraction (an accuracy, a share, a regret) or, for these, a difference of two fractions: the
# range a figure's interval is held to (with two or three seeds, a Student-t interval runs far outside it).
DIFFERENCES = frozenset({"gain", "knowledge", "backward"})


def has_figure(key):
    """Whether a target row has the headline figure `key`."""
    if key == "related":
        return lambda row: row["related"] in ("yes", "no")
    return lambda row: row[key] is not None


def seed_figures(rows_by_seed):
    """({seed: its headline figures}, {figure key: (the targets it is over, the targets left out)}): each seed's
    figure is the mean over the targets that every seed with that figure has it for, so that seeds whose runs
    reached different targets are compared on the same ones (None where a seed has no data)."""
    figures, coverage = {seed: {} for seed in rows_by_seed}, {}
    for key in [key for key, _, _ in SEED_FIGURES] + ["related"]:
        with_it = [{row["target"].task_id for row in rows if has_figure(key)(row)} for rows in rows_by_seed.values()]
        with_it = [targets for targets in with_it if targets]
        shared = set.intersection(*with_it) if with_it else set()
        coverage[key] = (shared, set().union(*with_it) - shared)
        for seed, rows in rows_by_seed.items():
            rows = [row for row in rows if row["target"].task_id in shared]
            hits, judged, _ = related_summary(rows)
            figures[seed][key] = (hits / judged if judged else None) if key == "related" \
                else mean_over_targets(rows, key)[0]
    return figures, coverage


def coverage_sentences(cfg, coverage):
    """One sentence per set of targets some seeds' figures leave out (seed_figures' `coverage`)."""
    labels = {key: label for key, label, _ in SEED_FIGURES + (RELATED_FIGURE,)}
    left_out = {}
    for key, (shared, out) in coverage.items():
        if out and (key != "related" or cfg.related):
            left_out.setdefault((tuple(sorted(shared)), tuple(sorted(out))), []).append(labels[key])
    return [f"The seeds' runs reached different targets: {'; '.join(names)} over the targets every seed with it "
            f"has ({', '.join(map(str, shared)) or 'none'}), leaving out {', '.join(map(str, out))}."
            for (shared, out), names in left_out.items()]


# The settings a step 3-2 run has of its own seed; every other setting is the recipe the seeds' runs share.
PER_SEED_SETTINGS = frozenset({"seed", "training_seed", "baseline_accuracy", "network_width_multiplier"})


def differing_settings(cfg, arch, rows_by_seed):
    """{setting: {seed: value}} of the settings but PER_SEED_SETTINGS in which the seeds' step 3-2 runs of one
    target differ (their outcome.json; a run of an older version records none and is not compared)."""
    by_target = {}
    for seed, rows in rows_by_seed.items():
        for row in rows:
            folder = paths.target_dir(arch, cfg.name, row["backbone"].name, row["target"].name, seed) / "scratch"
            settings = (read_outcome(folder) or {}).get("settings")
            if isinstance(settings, dict):
                by_target.setdefault(row["target"].task_id, {})[seed] = settings
    differ = {}
    for per_seed in by_target.values():
        for key in set().union(*per_seed.values()) - PER_SEED_SETTINGS:
            values = {seed: json.dumps(settings.get(key), sort_keys=True) for seed, settings in per_seed.items()}
            if len(set(values.values())) > 1:
                differ.setdefault(key, {}).update(values)
    return differ


def mixed_settings_sentences(differ):
    """One sentence naming the settings the seeds' runs differ in (differing_settings'), or none."""
    if not differ:
        return []
    named = "; ".join(f"{key} ({', '.join(f'seed {seed}: {value}' for seed, value in sorted(values.items()))})"
                      for key, values in sorted(differ.items()))
    return [f"The seeds' runs were trained with different settings, so each mean mixes runs of other recipes: "
            f"{named}."]


def mean_interval(values, spec, key):
    """`mean ± half-width` of the 95% Student-t interval over the values present, or `mean (low to high)` when that
    interval leaves the range figure `key` can take (DIFFERENCES) and is cut to it; one value has no interval."""
    mean, half = interval95(values)
    if mean is None:
        return "-"
    if half is None:
        return f"{figure(mean, spec)} (one seed: no interval)"
    low, high = (-1.0, 1.0) if key in DIFFERENCES else (0.0, 1.0)
    if mean - half < low or mean + half > high:
        return f"{figure(mean, spec)} ({figure(max(low, mean - half), spec)} to {figure(min(high, mean + half), spec)})"
    return f"{figure(mean, spec)} ± {half:.4f}"


def headline_figures(cfg, figures_by_seed):
    """([(key, label, values per seed, format)] of the figures some seed has, labels of those no seed has)."""
    figures = SEED_FIGURES + ((RELATED_FIGURE,) if cfg.related else ())
    present, absent = [], []
    for key, label, spec in figures:
        values = [f[key] for f in figures_by_seed.values()]
        if any(v is not None for v in values):
            present.append((key, label, values, spec))
        else:
            absent.append(label)
    return present, absent


def absent_sentence(absent):
    return f"Not measured in any seed: {'; '.join(absent)}."


def headline_section(cfg, figures_by_seed, notes):
    """The headline figures' table, then `notes`, the sentences about it (headline_notes')."""
    present, _ = headline_figures(cfg, figures_by_seed)
    rows = [[label, mean_interval(values, spec, key), sum(v is not None for v in values),
             " / ".join(figure(v, spec) for v in values)] for key, label, values, spec in present]
    seeds = ", ".join(map(str, figures_by_seed))
    table = markdown_table(["figure", "mean ± 95% interval", "seeds", f"per seed ({seeds})"], rows)
    return [table, ""] + [line for note in notes for line in (note, "")]


def headline_notes(cfg, figures_by_seed, coverage, differ):
    """Sentences naming the settings the seeds' runs differ in, the targets left out and the figures no seed has."""
    _, absent = headline_figures(cfg, figures_by_seed)
    return (mixed_settings_sentences(differ) + coverage_sentences(cfg, coverage)
            + ([absent_sentence(absent)] if absent else []))


def targets_across_seeds_table(rows_by_seed):
    """Per target: its backbone in each seed, and each figure as the mean ± interval over the seeds that have it."""
    by_target = {}
    for seed, rows in rows_by_seed.items():
        for row in rows:
            by_target.setdefault(row["target"].task_id, {})[seed] = row
    columns = (("scratch", ".4f"), ("accuracy", ".4f"), ("gain", "+.4f"), ("knowledge", "+.4f"), ("backward", "+.4f"),
               ("regret", ".4f"))
    table = []
    for target_id, per_seed in sorted(by_target.items()):
        target = next(iter(per_seed.values()))["target"]
        picks = " / ".join(str(per_seed[s]["backbone"].task_id) if s in per_seed else "-" for s in rows_by_seed)
        table.append([f"{target_id} {target.name}", picks,
                      *[mean_interval([row[key] for row in per_seed.values()], spec, key) for key, spec in columns],
                      sum(row["accuracy"] is not None for row in per_seed.values())])
    return markdown_table(["target", f"backbone per seed ({' / '.join(map(str, rows_by_seed))})", "scratch test acc",
                     "test acc on backbone", "forward transfer", "knowledge transfer", "backward transfer", "regret",
                     "seeds with results"], table)


def seeds_markdown(cfg, arch, rows_by_seed, figures_by_seed, notes):
    folder = paths.seeds_report_dir(arch, cfg.name)
    links = ", ".join(f"[seed {seed}]({os.path.relpath(paths.report_dir(arch, cfg.name, seed) / 'report.md', folder)})"
                      for seed in rows_by_seed)
    out = [f"# Pipeline report over seeds {', '.join(map(str, rows_by_seed))}: config `{cfg.name}`, arch `{arch}`", "",
           "Every figure is the mean over seeds ± the half-width of its 95% Student-t interval, "
           "t(0.975, n-1) · s / √n over the n seeds that have the figure, or, where that interval leaves the range "
           "the figure can take (0 to 1 for an accuracy, a share or a regret, -1 to 1 for a transfer), the mean "
           "(the interval's ends cut to that range); a figure only one seed has gets no "
           f"interval. Test accuracies (fractions): {test_split_note(cfg)}. Regret exists "
           "for the seeds where the transfer control ran (bash run_pickaback/transfer_matrix.sh). "
           f"Each seed's own report: {links}.",
           "", "## Headline figures (test accuracy; each seed's figure is the mean over the targets the seeds share)",
           "",
           *headline_section(cfg, figures_by_seed, notes),
           "## Targets across seeds (test accuracy)", "", targets_across_seeds_table(rows_by_seed)]
    return "\n".join(out) + "\n"


def write_seeds_report(cfg, arch, rows_by_seed):
    """Write report_<cfg>_seeds/report.md from each seed's target rows; (folder, headline sentences)."""
    figures_by_seed, coverage = seed_figures(rows_by_seed)
    notes = headline_notes(cfg, figures_by_seed, coverage, differing_settings(cfg, arch, rows_by_seed))
    folder = paths.seeds_report_dir(arch, cfg.name)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.md").write_text(seeds_markdown(cfg, arch, rows_by_seed, figures_by_seed, notes),
                                      encoding="utf-8")
    present, _ = headline_figures(cfg, figures_by_seed)
    return folder, [f"{label}: {mean_interval(values, spec, key)}" for key, label, values, spec in present] + notes


# ------------------------------------------------------------------------------- the console summary
def finished_results(cfg, arch, seed):
    """The rows of results_<cfg>.csv of a finished run that still describe its runs, after a sentence naming those
    left out; UserError naming the tool that writes them when no row is left."""
    path = paths.results_csv(cfg.name, seed)
    results = read_results(path, arch)
    outdated = outdated_results(cfg, arch, seed, results, picks_of_arch(paths.pickaback_result_csv(cfg.name, seed),
                                                                        arch)[0])
    for line in outdated_sentences(cfg, outdated):
        print(line)
    results = {target_id: row for target_id, row in results.items() if target_id not in outdated}
    if not results:
        what = "no rows that describe the runs there now" if outdated else "no results"
        raise UserError(f"{path} has {what} of arch {arch}; run .venv/bin/python -m tools.results_table "
                        f"{cfg.name} --arch {arch} --seed {seed} first (run_pickaback/quickstart.sh runs it).")
    return results


def summary_target_rows(cfg, results):
    """The target rows of results_<cfg>.csv's rows, its designed-related verdict as results_table judged it."""
    return [{"target": cfg.task(t), "backbone": cfg.task(r["backbone_id"]), **result_figures(r),
             "related": {None: "n/a", True: "yes", False: "no"}[r["picked_related"]]}
            for t, r in sorted(results.items())]


def summary_backbone_rows(results):
    """One row per (backbone, target) pair, by backbone then target: a backbone serving several targets has a
    row for each, every cell one value, so the columns stay aligned."""
    return [{"backbone": f"{r['backbone_id']} {r['backbone_name']}", "target": str(r["target_id"]),
             "before": figure(r["backbone_before_test_acc"]), "after": figure(r["backbone_after_test_acc"]),
             "backward transfer": figure(r["backward_transfer_test"], "+.4f"),
             "outputs": "bit-identical" if r["backbone_outputs_identical"] else "CHANGED"}
            for r in sorted(results.values(), key=lambda r: (r["backbone_id"], r["target_id"]))]


def print_columns(rows):
    """Dicts of one set of keys as aligned columns under those keys."""
    if rows:
        print(aligned_table(list(rows[0]), [list(row.values()) for row in rows]))


def print_summary(cfg, arch, seed):
    """The closing tables of one finished run; 1 if a backbone's outputs changed, else 0."""
    results = finished_results(cfg, arch, seed)
    print("\nTargets (test accuracy; scratch = the target trained alone from scratch, on untrained = on the "
          "backbone's untrained twin; forward transfer = on backbone - scratch, knowledge transfer = on backbone - "
          "on untrained)")
    print_columns([target_cells(r, SUMMARY_COLUMNS) for r in summary_target_rows(cfg, results)])
    for line in knowledge_sentences([r["knowledge_transfer_test"] for r in results.values()],
                                    [r["forward_transfer_test"] for r in results.values()]):
        print(line)
    judged = [r["picked_related"] for r in results.values() if r["picked_related"] is not None]
    if judged:
        print(f"Selected the designed related task for {sum(judged)} of {len(judged)} targets.")
    baselines = read_baselines(paths.baseline_acc_file(arch, cfg.name, seed))
    rankings = read_rankings(paths.pickaback_result_csv(cfg.name, seed))
    for line in (hub_correction_sentences([t for t in hub_corrected_targets(rankings) if t in results])
                 + shared_pick_sentences(cfg, {t: r["backbone_id"] for t, r in results.items()}, baselines)):
        print(line)
    backbones = summary_backbone_rows(results)
    print("\nBackbones before and after their targets trained on them (test accuracy; backward transfer = "
          "after - before)")
    print_columns(backbones)
    if any(row["outputs"] == "CHANGED" for row in backbones):
        print("A backbone's outputs changed after a target trained on it: CPG's guarantee is broken.", file=sys.stderr)
        return 1
    return 0


# --------------------------------------------------------------------------------------------- main
def print_report(folder, run, t_rows, written, skipped):
    print(f"Report written to {folder}")
    for sentence in step_status(run) + left_out_sentences(run):
        print(f"  {sentence}")
    for line in (summary_lines(t_rows, run.cfg.related) + hub_correction_sentences(run.hub_corrected)
                 + shared_pick_sentences(run.cfg, run.selections, run.baselines)):
        print(f"  {line}")
    if run.transfer[0]:
        for line in selection_section(run)[2:]:
            print(f"  {line}")
    print(f"  figures: {', '.join(written) or 'none'}" + (f" (skipped: {', '.join(n for n, _ in skipped)})"
                                                           if skipped else ""))


def main(args):
    cfg = get_config(args.config)
    seeds = list(dict.fromkeys(args.seeds or [args.seed]))
    if args.summary:
        return max(print_summary(cfg, args.arch, seed) for seed in seeds)
    rows_by_seed = {}
    for seed in seeds:
        folder, run, rows_by_seed[seed], written, skipped = write_report(cfg, args.arch, seed)
        print_report(folder, run, rows_by_seed[seed], written, skipped)
    if len(seeds) > 1:
        folder, lines = write_seeds_report(cfg, args.arch, rows_by_seed)
        print(f"Report over seeds {', '.join(map(str, seeds))} (test accuracy, mean ± 95% interval over seeds) "
              f"written to {folder}")
        for line in lines:
            print(f"  {line}")
    elif args.seeds and len(args.seeds) > 1:    # one seed named more than once (one alone: that seed's report)
        print(f"No report over seeds: --seeds named one seed ({seeds[0]}); a report over seeds takes two or more "
              f"different seeds.")
    return 0


if __name__ == "__main__":
    run_main(main, get_args_parser)
