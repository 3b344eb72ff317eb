"""Selection quality of step 3-1's settings and scores, every one judged by the same transfer control.

    python -m tools.bench.variants [cfg] [--seed 2] [--variants default original ...] [--base_args "..."]

The control's runs do not depend on the selection, so one control judges any selector: each variant is step
3-1 run again (with --force) with other settings, into a scratch output root that links to the run's checkpoints
and writes its own table; each score of its table (ModelDiff's two distances, LogME, LEEP, CKA) then makes a
selection, judged like `python -m tools.transfer_control quality`. Prints one row per (variant, score): mean and
worst regret, oracle and designed-related picks, mean rank, Spearman, step 3-1's wall time; then how often the
pick agrees across the probe seeds measured (`default` and `probe_seed_*`). Any other setting of step 3-1 is
measured around the default with --base_args, e.g. `--base_args "--ddv_outputs logits" --variants default
probe_seed_1 probe_seed_3`. Needs a pipeline run and its transfer control.
"""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tools.bench.harness import add_run_arguments, emit, timed
from utils import paths
from utils.cli import ArgumentParser
from utils.dataset_config import get_config
from utils.errors import UserError, run_main
from utils.results import read_selections
from utils.text_tables import figure
from utils_pickaback.ranking import SCORES
from utils_pickaback.selection_quality import selection_figures

# variant -> step 3-1's arguments beyond the defaults (200 probes as drawn, DDVs of every pair of the features)
VARIANTS = {
    "default": [],
    "original": ["--ddv_outputs", "logits", "--ddv_pairs", "halves", "--max_iterations", "100", "--n_inputs", "100"],
    "n_inputs_400": ["--n_inputs", "400"],
    "probe_seed_1": ["--probe_seed", "1"],
    "probe_seed_3": ["--probe_seed", "3"],
}


def get_args_parser():
    p = add_run_arguments(ArgumentParser(description="Regret of step 3-1's variants and scores against one transfer control."))
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    p.add_argument("--base_args", default="", help="step 3-1 arguments put before every variant's own")
    return p


def run_variant(cfg, args, extra, work: Path) -> Path:
    """Step 3-1 with `extra` arguments on the run's tasks (each target the others' candidate, as find_backbone.sh
    with TASKS), into an output root under `work` whose checkpoints and logs link to the run's; its table."""
    run_root = paths.output_root(args.seed)
    root = work / run_root.relative_to(paths.output_root())
    root.mkdir(parents=True, exist_ok=True)
    for name in (f"checkpoints_{args.arch}", f"logs_{args.arch}"):   # only read by step 3-1
        (root / name).symlink_to(run_root / name, target_is_directory=True)
    config = str(Path(args.config).resolve()) if args.config.endswith((".toml", ".json")) else args.config
    tasks = [str(t) for t in sorted(read_selections(paths.pickaback_result_csv(cfg.name, args.seed)))]
    command = [sys.executable, str(paths.REPO_ROOT / "pickaback_perceiverIO.py"), "--arch", args.arch,
               "--dataset_config", config, "--seed", str(args.seed), "--device", args.device, "--force",
               "--target_id", *tasks, "--candidate_ids", *tasks, *extra]
    proc = subprocess.run(command, cwd=paths.REPO_ROOT, capture_output=True, text=True,
                          env={**os.environ, "MMPAB_OUTPUT_ROOT": str(work)})
    if proc.returncode != 0:
        raise UserError(f"step 3-1 with {' '.join(extra) or 'its defaults'} failed: "
                        f"{(proc.stderr or proc.stdout).strip().splitlines()[-1]}")
    return root / paths.pickaback_table_csv(cfg.name).name


def measure(cfg, args, extra, work: Path):
    """({score: summary + picks} of one variant, step 3-1's wall time)."""
    seconds, table = timed(run_variant, cfg, args, extra, work)
    results = {}
    for score in SCORES:
        figures, summary = selection_figures(cfg, args.arch, args.seed, args.split, score=score, table=table)
        results[score] = {**summary, "picks": {f.target_id: f.selected for f in figures}}
    return results, seconds


def agreement(picks_by_seed):
    """(share of targets whose pick is the same under every probe seed, mean pairwise agreement)."""
    seeds = list(picks_by_seed.values())
    targets = set.intersection(*(set(p) for p in seeds))
    if not targets or len(seeds) < 2:
        return None, None
    all_agree = sum(len({p[t] for p in seeds}) == 1 for t in targets) / len(targets)
    pairs = [(a, b) for i, a in enumerate(seeds) for b in seeds[i + 1:]]
    return all_agree, sum(sum(a[t] == b[t] for t in targets) / len(targets) for a, b in pairs) / len(pairs)


def main(args):
    cfg = get_config(args.config)
    if not paths.transfer_csv(cfg.name, args.seed).exists():
        raise UserError(f"{paths.transfer_csv(cfg.name, args.seed)} is missing; run "
                        f"run_pickaback/transfer_matrix.sh {cfg.name} first.")
    rows, seconds = {}, {}
    with tempfile.TemporaryDirectory(prefix="selection_variants_") as work:
        for variant in args.variants:
            extra = args.base_args.split() + VARIANTS[variant]
            print(f"step 3-1 variant {variant}: {' '.join(extra) or '(defaults)'}", flush=True)
            rows[variant], seconds[variant] = measure(cfg, args, extra, Path(work) / variant)
    print(f"\nSelection quality on '{cfg.name}' ({args.split} accuracy), one transfer control for every row")
    print(f"{'variant':<16} {'score':<13} {'regret':>7} {'worst':>6} {'oracle':>6} {'related':>7} {'rank':>5} "
          f"{'rho':>6} {'time':>6}")
    for variant, by_score in rows.items():
        for score, s in by_score.items():
            related = f"{s['related_picks']}/{s['related_targets']}" if s["related_targets"] else "-"
            print(f"{variant:<16} {score:<13} {figure(s['mean_regret']):>7} {figure(s['max_regret']):>6} "
                  f"{s['oracle_picks']:>3}/{s['targets']:<2} {related:>7} {figure(s['mean_rank'], '.1f'):>5} "
                  f"{figure(s['spearman'], '.2f'):>6} {seconds[variant]:>5.0f}s")
    seeds = [v for v in rows if v == "default" or v.startswith("probe_seed_")]
    stability = None
    if len(seeds) > 1:
        stability = {score: {**dict(zip(("all_agree", "pairwise"), agreement({v: rows[v][score]["picks"] for v in seeds}))),
                             "mean_regret": sum(rows[v][score]["mean_regret"] for v in seeds) / len(seeds)}
                     for score in SCORES}
        print(f"\nacross probe seeds ({', '.join(seeds)}), pick agreement and mean regret: " + "; ".join(
            f"{score} {figure(a['all_agree'], '.2f')} all agree, {figure(a['pairwise'], '.2f')} pairwise, "
            f"regret {figure(a['mean_regret'])}" for score, a in stability.items()))
    return emit({"config": cfg.name, "split": args.split, "seed": args.seed, "base_args": args.base_args,
                 "variants": {v: {"args": VARIANTS[v], "seconds": round(seconds[v], 1), "scores": by_score}
                              for v, by_score in rows.items()},
                 "probe_seed_agreement": stability})


if __name__ == "__main__":
    run_main(main, get_args_parser)
