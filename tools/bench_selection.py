"""How good step 3-1's selection is, from the transfer control's runs (reads files only, trains nothing).

    .venv/bin/python -m tools.bench_selection [cfg] [--seed 2] [--split test] [--score S [--table T]]

Needs a pipeline run and the transfer control (run_pickaback/transfer_matrix.sh). Prints, per
target: scratch (step 1), capacity-matched scratch, the untrained backbone, the selected backbone,
the oracle (best candidate), the mean over candidates (a random pick), regret and rank; then the
overall figures (utils_pickaback/selection_quality.py says what each one is). The last line is the
same as one JSON object. Accuracies are test accuracies by default: the test split took no part in
any decision, so it judges the selection without the selection's own noise. `--score` judges the
selection another score of step 3-1's table would make (LogME, LEEP, CKA beside ModelDiff), `--table` a
table of a step 3-1 run with other settings: one control judges every variant.
"""
import json
from pathlib import Path

from utils import paths
from utils.cli import ArgumentParser, seed_int
from utils.dataset_config import CONFIG_HELP, get_config
from utils.errors import UserError, run_main
from utils_pickaback.ranking import SCORES
from utils_pickaback.selection_quality import figures_as_rows, selection_figures, spread_sentence


def add_run_arguments(p):
    """The pipeline run and the accuracies that judge its selection (shared with bench_selection_variants)."""
    p.add_argument("config", nargs="?", default="demo", help=f"dataset config: {CONFIG_HELP}")
    p.add_argument("--arch", default="perceiver_io", choices=["perceiver_io", "lenet5"])
    p.add_argument("--seed", type=seed_int, default=paths.DEFAULT_SEED, help="the pipeline run (its seed)")
    p.add_argument("--split", default="test", choices=["test", "val"], help="which accuracy judges the selection")
    return p


def get_args_parser():
    p = add_run_arguments(ArgumentParser(
        description="Selection quality (regret, rank, correlation) from the transfer control."))
    p.add_argument("--select", choices=["similar", "dissimilar"],
                   help="the rule that signs the selector's score (default: the one step 3-1 recorded ranking each "
                        "target by; with --score, similar)")
    p.add_argument("--score", choices=list(SCORES),
                   help="judge the selection this score of step 3-1's table makes (default: step 3-1's own "
                        "selection, its result CSV, by the score it recorded ranking each target by)")
    p.add_argument("--table", type=Path,
                   help="with --score: a table of another step 3-1 run of the same models (e.g. other settings)")
    return p


def fmt(value, digits=3):
    return "-" if value is None else f"{value:.{digits}f}"


def print_report(cfg, figures, summary, split):
    print(f"Selection quality on '{cfg.name}' ({split} accuracy; oracle = the best candidate backbone, "
          f"random = the mean over candidates)")
    print(f"{'target':<24} {'scratch':>7} {'scr@w':>7} {'untr.':>7} {'sel':>4} {'acc':>6} {'oracle':>6} "
          f"{'acc':>6} {'random':>6} {'regret':>6} {'rank':>5} {'rho':>6} {'rel':>4}")
    for f in figures:
        name = f"{f.target_id} {cfg.task(f.target_id).name}"[:24]
        related = "-" if f.picked_related is None else ("yes" if f.picked_related else "no")
        print(f"{name:<24} {fmt(f.scratch):>7} {fmt(f.matched_scratch):>7} {fmt(f.untrained):>7} {f.selected:>4} "
              f"{fmt(f.selected_acc):>6} {f.oracle:>6} {fmt(f.oracle_acc):>6} {fmt(f.random_acc):>6} "
              f"{fmt(f.regret):>6} {f.rank:>2}/{f.n_candidates:<2} {fmt(f.spearman, 2):>6} {related:>4}")
    s = summary

    def gain(key):
        g = s[key]
        return f"{fmt(g['mean'])} ± {fmt(g['ci95'])}" if g["mean"] is not None else "-"
    print(f"\nmean regret {fmt(s['mean_regret'])} (worst {fmt(s['max_regret'])}); oracle picked for "
          f"{s['oracle_picks']} of {s['targets']}; mean rank {fmt(s['mean_rank'], 1)} of "
          f"{fmt(s['mean_candidates'], 1)} (a random pick: {fmt((s['mean_candidates'] or 0) / 2 + 0.5, 1)})")
    print(f"gain of the selection (95% interval over targets): over a random pick {gain('gain_over_random')}, "
          f"over capacity-matched scratch {gain('gain_over_matched_scratch')}, over the untrained backbone "
          f"{gain('gain_over_untrained')}, over scratch {gain('gain_over_scratch')}")
    print(f"selector score vs transfer accuracy per target: Spearman {fmt(s['spearman'], 2)}, "
          f"weighted Kendall tau {fmt(s['weighted_tau'], 2)}")
    if s["related_targets"]:
        print(f"designed related task picked for {s['related_picks']} of {s['related_targets']} targets")
    print(spread_sentence(s["seed_spread"]))


def main(args):
    cfg = get_config(args.config)
    if args.table is not None and args.score is None:
        raise UserError("--table needs --score: the score of that table that makes the selection.")
    if args.table is not None and not args.table.is_file():
        raise UserError(f"--table {args.table} is not a file.")
    figures, summary = selection_figures(cfg, args.arch, args.seed, args.split, args.select, args.score, args.table)
    if not figures:
        raise UserError(f"{paths.transfer_csv(cfg.name, args.seed)} is missing or holds no run of a selected "
                        f"backbone; run run_pickaback/transfer_matrix.sh {cfg.name} first.")
    print_report(cfg, figures, summary, args.split)
    print(json.dumps({"config": cfg.name, "split": args.split, "seed": args.seed, "score": args.score or "step 3-1",
                      "table": str(args.table or paths.pickaback_table_csv(cfg.name, args.seed)), **summary,
                      "per_target": figures_as_rows(figures)}))
    return 0


if __name__ == "__main__":
    run_main(main, get_args_parser)
