"""Report of a pipeline run: three figures and one Markdown file of the numbers behind them.

    python tools/report.py [cfg] [--arch perceiver_io]

Writes logs_<arch>/report_<cfg>/:
  similarity.png  model distance (ddv_euc) of every target x candidate pair, selected backbones marked
  pruning.png     accuracy vs pruning ratio of every backbone task, its baseline and the chosen ratio
  accuracy.png    per target: trained alone from scratch vs trained on its selected backbone
  transfer.png    the transfer control: test accuracy of every target on every candidate backbone,
                  selected and best (oracle) marked (when run_pickaback/transfer_matrix.sh has run)
  report.md       the same numbers as tables, the mean gain over scratch, how often the designed
                  related task was selected, and the selection's regret against the control

Every accuracy is a validation accuracy (the one every pipeline decision uses), except the transfer
control's, which are test accuracies (tools/bench_selection.py says why). Reads only the
files the steps write (no checkpoint, no torch), so it runs on partial results: a step that has not
run is said in report.md and its figure is skipped.
"""
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window: the report runs on headless machines

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from utils import paths  # noqa: E402
from utils.cli import ArgumentParser, seed_int  # noqa: E402
from utils.dataset_config import get_config  # noqa: E402
from utils.errors import UserError, run_main  # noqa: E402
from utils.records import read_json_record  # noqa: E402
from utils.results import as_float, read_baselines, read_compared_as, read_distances, read_selections  # noqa: E402
from utils_pickaback.selection_quality import selection_figures  # noqa: E402

VALIDATE_MARK = "In validate()-> Val Ep."
SHORT_MODALITY = {"image": "img", "text": "txt"}
FIGURES = ("similarity.png", "pruning.png", "accuracy.png", "transfer.png")
DPI = 110
# The PNG writer's only metadata is the software version; dropping it keeps the bytes identical
# across matplotlib patch releases as well as across runs.
PNG_METADATA = {"Software": None}


def get_args_parser():
    p = ArgumentParser(description="Plot and tabulate the results of a pipeline run.")
    p.add_argument("config", nargs="?", default="demo", help="dataset config name")
    p.add_argument("--arch", default="perceiver_io", choices=["perceiver_io", "lenet5"])
    p.add_argument("--seed", type=seed_int, default=paths.DEFAULT_SEED, help="the pipeline run (its seed) to report")
    return p


# ------------------------------------------------------------------------------------------ readers
def read_prune_record(path):
    """Step 2-1: pruning ratio -> validation accuracy, sorted by ratio; {} when not written yet."""
    return dict(sorted((as_float(ratio, path), as_float(acc, path)) for ratio, acc in read_json_record(path).items()))


def read_chosen(path):
    """Step 2-2: {"ratio", "accuracy", ...} as numbers, or None when no ratio was chosen yet."""
    chosen = read_json_record(path)
    if not chosen:
        return None
    return {"ratio": as_float(chosen.get("ratio"), path), "accuracy": as_float(chosen.get("accuracy"), path)}


def parse_validate_line(line):
    """The numbers of one `In validate()-> Val Ep.` line: accuracy (fraction), mpl, shared_ratio (or None)."""
    def number(key):
        found = re.search(rf"(?<![\w]){key}: ([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)", line)
        return float(found.group(1)) if found else None
    accuracy = number("accuracy")
    return {"accuracy": None if accuracy is None else accuracy / 100, "mpl": number("mpl"),
            "shared_ratio": number("shared_ratio")}


def read_last_validation(log_path):
    """The last validation line of a train.log, parsed; None when the log or the line is missing."""
    log_path = Path(log_path)
    if not log_path.exists():
        return None
    lines = [line for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines()
             if VALIDATE_MARK in line]
    return parse_validate_line(lines[-1]) if lines else None


def read_target_result(folder):
    """Step 3-2 of one target on one backbone; None when it has not finished a validation yet.

    The accuracy is record.txt's "0.0" (the last, widest run's final validation, 4 decimals) when
    written, else the log line's (2 decimals of a percent).
    """
    result = read_last_validation(Path(folder) / "train.log")
    if result is None:
        return None
    final = read_json_record(Path(folder) / "gradual_prune" / "record.txt").get("0.0")
    if final is not None:
        result["accuracy"] = float(final)
    return result


# ------------------------------------------------------------------------------------- the run's data
@dataclass
class Run:
    cfg: object
    arch: str
    baselines: dict = field(default_factory=dict)        # task name -> accuracy
    records: dict = field(default_factory=dict)          # task name -> {ratio: accuracy}
    chosen: dict = field(default_factory=dict)           # task name -> chosen.json
    selections: dict = field(default_factory=dict)       # target id -> backbone id
    distances: dict = field(default_factory=dict)        # (target id, candidate id) -> ddv_euc
    compared_as: dict = field(default_factory=dict)      # (target id, candidate id) -> how step 3-1 compared it
    targets: dict = field(default_factory=dict)          # target id -> read_target_result()
    transfer: tuple = ((), {})                           # the control's (TargetFigures list, summary)

    def is_empty(self):
        return not (self.baselines or self.records or self.chosen or self.selections or self.distances)


def load_run(cfg, arch, seed=paths.DEFAULT_SEED):
    run = Run(cfg, arch)
    run.transfer = selection_figures(cfg, arch, seed)
    run.baselines = read_baselines(paths.baseline_acc_file(arch, cfg.name, seed))
    for task in cfg.tasks:
        prune_dir = paths.backbone_dir(arch, cfg.name, task.name, seed) / "gradual_prune"
        record = read_prune_record(prune_dir / "record.txt")
        if record:
            run.records[task.name] = record
        chosen = read_chosen(prune_dir / paths.CHOSEN_FILE)
        if chosen:
            run.chosen[task.name] = chosen
    run.selections = read_selections(paths.pickaback_result_csv(cfg.name, seed))
    run.distances = read_distances(paths.pickaback_table_csv(cfg.name, seed))
    run.compared_as = read_compared_as(paths.pickaback_table_csv(cfg.name, seed))
    for target_id, backbone_id in run.selections.items():
        target, backbone = cfg.task(target_id), cfg.task(backbone_id)
        result = read_target_result(paths.target_dir(arch, cfg.name, backbone.name, target.name, seed))
        if result is not None:
            run.targets[target_id] = result
    return run


# ---------------------------------------------------------------------------------- table builders
def short(task):
    """`3 img`: how a task is named on an axis."""
    return f"{task.task_id} {SHORT_MODALITY.get(task.modality, task.modality)}"


def fmt(value, spec=".4f"):
    return "-" if value is None else format(value, spec)


def candidates_of(run, target_id):
    """The task ids step 3-1 compared with this target (all other tasks when the table is missing)."""
    compared = sorted(c for t, c in run.distances if t == target_id)
    return compared or [t.task_id for t in run.cfg.tasks if t.task_id != target_id]


def related_verdict(run, target, backbone):
    """'yes' / 'no' / 'n/a ...': did the selection pick the task the config designed as related?"""
    related = run.cfg.related.get(target.name)
    if related is None:
        return "n/a"
    if run.cfg.task(related).task_id not in candidates_of(run, target.task_id):
        return "n/a (not a candidate)"
    return "yes" if related == backbone.name else "no"


def target_rows(run):
    """One dict per target of step 3-1, with step 3-2's numbers when it has run (None otherwise)."""
    rows = []
    for target_id, backbone_id in sorted(run.selections.items()):
        target, backbone = run.cfg.task(target_id), run.cfg.task(backbone_id)
        result = run.targets.get(target_id, {})
        baseline, accuracy = run.baselines.get(target.name), result.get("accuracy")
        rows.append({
            "target": target, "backbone": backbone, "baseline": baseline, "accuracy": accuracy,
            "gain": None if baseline is None or accuracy is None else accuracy - baseline,
            "related": related_verdict(run, target, backbone), "mpl": result.get("mpl"),
            "shared_ratio": result.get("shared_ratio"),
            "candidates": len(candidates_of(run, target_id)),
            "compared_as": run.compared_as.get((target_id, backbone_id), "-"),
        })
    return rows


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


def mean_gain(rows):
    gains = [row["gain"] for row in rows if row["gain"] is not None]
    return (sum(gains) / len(gains), len(gains)) if gains else (None, 0)


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
        ("3-2", run.targets, f"results of {len(run.targets)} of {plural(n_sel, 'target')}", "no target results"),
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
    """ddv_euc of every pair: dark = close, so the selected backbone should sit on a dark cell."""
    plot_grid(run, run.distances, path, cmap="Blues_r", colorbar_label="ddv_euc (smaller = more similar)",
              title=f"Model distance, config {run.cfg.name}", low_is_dark=True,
              crossed=[pair for pair, how in run.compared_as.items() if how == "target adapter"])


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
    handles, labels = [], []
    for ax in axes.flat[:len(tasks)]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.suptitle(f"Pruning the backbone tasks, config {run.cfg.name}", fontsize=11)
    fig.tight_layout(rect=(0, 0.3 / fig.get_figheight(), 1, 1))  # room for the legend below
    save(fig, path)


def plot_accuracy(rows, cfg_name, path):
    """Grouped bars per target: trained alone from scratch vs trained on its selected backbone."""
    rows = [row for row in rows if row["accuracy"] is not None]
    x = np.arange(len(rows))
    width = 0.38
    fig, ax = plt.subplots(figsize=(max(4.5, 1.0 + 0.9 * len(rows)), 3.8))
    scratch = [np.nan if row["baseline"] is None else row["baseline"] for row in rows]
    on_backbone = [row["accuracy"] for row in rows]
    bars = ax.bar(x - width / 2, scratch, width, color="#9e9e9e", label="scratch (baseline)")
    ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    bars = ax.bar(x + width / 2, on_backbone, width, color="tab:blue", label="on selected backbone")
    ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    ax.set_xticks(x, [f"{short(row['target'])}\non {short(row['backbone'])}" for row in rows], fontsize=8)
    ax.set_xlabel("target, on its selected backbone (task id, modality)", fontsize=9)
    ax.set_ylabel("validation accuracy")
    ax.set_ylim(0, 1.12)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", ncol=2, fontsize=8, frameon=False)
    ax.set_title(f"Targets: scratch vs selected backbone, config {cfg_name}", fontsize=10)
    fig.tight_layout()
    save(fig, path)


# ------------------------------------------------------------------------------------------ report.md
def md_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def target_table(rows):
    header = ["target", "modality", "baseline acc", "selected backbone", "backbone modality", "compared as",
              "designed related", "acc on backbone", "gain", "final mpl", "shared ratio"]
    return md_table(header, [
        [f"{r['target'].task_id} {r['target'].name}", r["target"].modality, fmt(r["baseline"]),
         f"{r['backbone'].task_id} {r['backbone'].name}", r["backbone"].modality, r["compared_as"], r["related"],
         fmt(r["accuracy"]), fmt(r["gain"], "+.4f"), fmt(r["mpl"], ".4g"), fmt(r["shared_ratio"], ".3f")]
        for r in rows])


def ratio_cell(ratio):
    if ratio is None:
        return "-"
    return "0 (unpruned)" if ratio == 0 else format(ratio, "g")


def task_table(rows):
    header = ["task", "modality", "baseline acc", "unpruned acc", "chosen ratio", "acc at chosen ratio",
              "selected by targets"]
    return md_table(header, [
        [f"{r['task'].task_id} {r['task'].name}", r["task"].modality, fmt(r["baseline"]), fmt(r["unpruned"]),
         ratio_cell(r["ratio"]), fmt(r["ratio_acc"]), " ".join(map(str, r["picked_by"])) or "-"]
        for r in rows])


def summary_lines(rows, related):
    """The headline sentences: mean gain over scratch and designed-related hits against chance."""
    lines = []
    gain, n = mean_gain(rows)
    if gain is not None:
        lines.append(f"Mean gain over scratch: {gain:+.4f} (over {n} targets).")
    hits, judged, chances = related_summary(rows)
    if judged:
        chance = " or ".join(f"1/{round(1 / c)} = {c:.3f}" for c in chances)
        lines.append(f"Selected the designed related task for {hits} of {judged} targets "
                     f"(chance: {chance} per target).")
    elif rows:
        why = "no designed related task was a candidate" if related else "the config documents no related tasks"
        lines.append(f"Selected the designed related task: n/a ({why}).")
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
    """The control's per-target table and headline figures (utils_pickaback/selection_quality.py)."""
    figures, summary = run.transfer

    def named(task_id):
        return f"{task_id} {run.cfg.task(task_id).name}"
    rows = [[named(f.target_id), fmt(f.scratch), fmt(f.matched_scratch), fmt(f.untrained),
             named(f.selected), fmt(f.selected_acc), named(f.oracle), fmt(f.oracle_acc),
             fmt(f.random_acc), fmt(f.regret), f"{f.rank}/{f.n_candidates}", fmt(f.spearman, "+.2f")]
            for f in figures]
    table = md_table(["target", "scratch", "scratch at its width", "untrained backbone", "selected", "acc",
                      "oracle", "acc", "random pick", "regret", "rank", "Spearman"], rows)

    def gain(key):
        g = summary[key]
        return "n/a" if g["mean"] is None else f"{g['mean']:+.4f} ± {fmt(g['ci95'])}"
    lines = [f"Mean regret {summary['mean_regret']:.4f} (worst {summary['max_regret']:.4f}); the oracle was "
             f"picked for {summary['oracle_picks']} of {summary['targets']} targets; mean rank "
             f"{summary['mean_rank']:.1f} of {summary['mean_candidates']:.1f}.",
             f"Gain of the selection (95% interval over targets): over a random pick {gain('gain_over_random')}, "
             f"over capacity-matched scratch {gain('gain_over_matched_scratch')}, over the untrained backbone "
             f"{gain('gain_over_untrained')}.",
             f"Selector score vs transfer accuracy, mean per target: Spearman {fmt(summary['spearman'], '+.2f')}, "
             f"weighted Kendall tau {fmt(summary['weighted_tau'], '+.2f')}."]
    return [table, ""] + lines


def build_markdown(run, t_rows, k_rows, written, skipped):
    out = [f"# Pipeline report: config `{run.cfg.name}`, arch `{run.arch}`", "",
           "All accuracies are validation accuracies (fractions); distances are ddv_euc (smaller = more similar).",
           "", "## Steps", ""]
    out += [f"- {sentence}" for sentence in step_status(run)]
    out += [f"- {name} skipped ({reason})" for name, reason in skipped]
    out += ["", "## Targets (steps 3-1, 3-2)", ""]
    if t_rows:
        out += [target_table(t_rows), ""] + summary_lines(t_rows, run.cfg.related) + comparison_line(run)
    else:
        out.append("step 3-1 has not run: no backbone selection.")
    out += ["", "## Selection quality (the transfer control, test accuracy)", ""]
    out += selection_section(run) if run.transfer[0] else [
        "The transfer control has not run (bash run_pickaback/transfer_matrix.sh): no regret to report."]
    out += ["", "## Backbone tasks (steps 1, 2-1, 2-2)", ""]
    out.append(task_table(k_rows) if k_rows else "steps 1, 2-1 and 2-2 have not run: no baselines or pruning records.")
    if written:
        out += ["", "## Figures", ""] + [f"![{Path(name).stem}]({name})" for name in written]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------- main
def write_figures(run, t_rows, folder):
    """Draw each figure whose data exists; (written names, [(skipped name, reason)])."""
    plans = [
        ("similarity.png", bool(run.distances), "step 3-1 has not run",
         lambda p: plot_similarity(run, p)),
        ("pruning.png", bool(run.records), "step 2-1 has not run",
         lambda p: plot_pruning(run, p)),
        ("accuracy.png", any(r["accuracy"] is not None for r in t_rows), "step 3-2 has not run",
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
    folder = paths.logs_dir(arch, seed) / f"report_{cfg.name}"
    folder.mkdir(parents=True, exist_ok=True)
    t_rows, k_rows = target_rows(run), task_rows(run)
    written, skipped = write_figures(run, t_rows, folder)
    (folder / "report.md").write_text(build_markdown(run, t_rows, k_rows, written, skipped), encoding="utf-8")
    return folder, run, t_rows, written, skipped


def main():
    args = get_args_parser().parse_args()
    folder, run, t_rows, written, skipped = write_report(get_config(args.config), args.arch, args.seed)
    print(f"Report written to {folder}")
    for sentence in step_status(run):
        print(f"  {sentence}")
    for line in summary_lines(t_rows, run.cfg.related):
        print(f"  {line}")
    if run.transfer[0]:
        for line in selection_section(run)[2:]:
            print(f"  {line}")
    print(f"  figures: {', '.join(written) or 'none'}" + (f" (skipped: {', '.join(n for n, _ in skipped)})"
                                                           if skipped else ""))
    return 0


if __name__ == "__main__":
    run_main(main)
