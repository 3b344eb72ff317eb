"""Selection quality of step 3-1's variants and scores, every one judged by the same transfer control.

    .venv/bin/python -m tools.bench_selection_variants [cfg] [--seed 2] [--variants default original search ...]

The control's runs do not depend on the selection, so one control judges any selector: each variant is
step 3-1 run again (with --force) with other settings, into a scratch output root that links to the run's
checkpoints and writes its own table; each of its tables' scores (ModelDiff's distance, LogME, LEEP, CKA)
then makes a selection, judged against the control like tools/bench_selection.py. Prints one row per
(variant, score): mean regret, worst regret, oracle and designed-related picks, mean rank, Spearman, and
step 3-1's wall time; then how often the pick agrees across the probe seeds measured (the `probe_seed_*`
variants and `default`); the last line is the same as JSON. Needs a pipeline run and its transfer control.
"""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tools.bench_selection import add_run_arguments
from utils import paths
from utils.cli import ArgumentParser
from utils.dataset_config import REPO_ROOT, get_config
from utils.errors import UserError, run_main
from utils.results import read_selections
from utils_pickaback.ranking import SCORES
from utils_pickaback.selection_quality import selection_figures

# variant -> step 3-1's arguments beyond the defaults (200 probes as drawn, DDVs of every pair of the features)
VARIANTS = {
    "default": [],
    "original": ["--ddv_outputs", "logits", "--ddv_pairs", "halves", "--max_iterations", "100", "--n_inputs", "100"],
    "logits_halves_search": ["--ddv_outputs", "logits", "--ddv_pairs", "halves", "--max_iterations", "100"],
    "logits": ["--ddv_outputs", "logits"],
    "halves": ["--ddv_pairs", "halves"],
    "search": ["--max_iterations", "100"],
    "centred": ["--ddv_similarity", "centred"],
    "n_inputs_100": ["--n_inputs", "100"],
    "n_inputs_400": ["--n_inputs", "400"],
    "paired": ["--cross_modal_probes", "paired"],
    "target_adapter": ["--candidate_adapter", "target"],
    "baseline_models": ["--compare", "baseline"],
    "same_modality": ["--candidates", "same-modality"],
    "probe_seed_1": ["--probe_seed", "1"],
    "probe_seed_3": ["--probe_seed", "3"],
}


def get_args_parser():
    p = add_run_arguments(ArgumentParser(
        description="Regret of step 3-1's variants and scores against one transfer control."))
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    p.add_argument("--base_args", default="",
                   help="step 3-1 arguments put before every variant's own, to measure the variants around "
                        "another setting (e.g. \"--n_inputs 100\")")
    return p


def scratch_root(run_root: Path, scratch: Path, arch) -> Path:
    """An output root whose checkpoints and logs are the run's (linked, only read by step 3-1)."""
    scratch.mkdir(parents=True, exist_ok=True)
    for name in (f"checkpoints_{arch}", f"logs_{arch}"):
        (scratch / name).symlink_to(run_root / name, target_is_directory=True)
    return scratch


def config_argument(config):
    """The config as a step run from the repository root reads it: a config file's path made absolute."""
    return str(Path(config).resolve()) if config.endswith((".toml", ".json")) else config


def run_variant(cfg, args, extra, root: Path) -> float:
    """Step 3-1 with `extra` arguments into output root `root`, on the tasks of the run (its targets, each the
    others' candidate, as run_pickaback/find_backbone.sh with TASKS); its wall time in seconds."""
    tasks = [str(t) for t in sorted(read_selections(paths.pickaback_result_csv(cfg.name, args.seed)))]
    command = [sys.executable, str(REPO_ROOT / "pickaback_perceiverIO.py"), "--arch", args.arch,
               "--dataset_config", config_argument(args.config), "--seed", str(args.seed), "--device", args.device, "--force",
               "--target_id", *tasks, "--candidate_ids", *tasks, *extra]
    started = time.time()
    proc = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True,
                          env={**os.environ, "MMPAB_OUTPUT_ROOT": str(root)})
    if proc.returncode != 0:
        raise UserError(f"step 3-1 with {' '.join(extra) or 'its defaults'} failed: "
                        f"{(proc.stderr or proc.stdout).strip().splitlines()[-1]}")
    return time.time() - started


def measure(cfg, args, variant, work: Path):
    """{score: summary + picks} of one variant, and step 3-1's wall time."""
    seed_dir = paths.output_root(args.seed).relative_to(paths.output_root())
    root = scratch_root(paths.output_root(args.seed), work / variant / seed_dir, args.arch)
    seconds = run_variant(cfg, args, args.base_args.split() + VARIANTS[variant], work / variant)
    table = root / paths.pickaback_table_csv(cfg.name).name
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
    pairwise = sum(sum(a[t] == b[t] for t in targets) / len(targets) for a, b in pairs) / len(pairs)
    return all_agree, pairwise


def fmt(value, digits=3):
    return "-" if value is None else f"{value:.{digits}f}"


def main(args):
    cfg = get_config(args.config)
    if not paths.transfer_csv(cfg.name, args.seed).exists():
        raise UserError(f"{paths.transfer_csv(cfg.name, args.seed)} is missing; run "
                        f"run_pickaback/transfer_matrix.sh {cfg.name} first.")
    rows, seconds = {}, {}
    with tempfile.TemporaryDirectory(prefix="selection_variants_") as work:
        for variant in args.variants:
            shown = " ".join(args.base_args.split() + VARIANTS[variant]) or "(defaults)"
            print(f"step 3-1 variant {variant}: {shown}", flush=True)
            rows[variant], seconds[variant] = measure(cfg, args, variant, Path(work))
    print(f"\nSelection quality on '{cfg.name}' ({args.split} accuracy), one transfer control for every row")
    print(f"{'variant':<16} {'score':<10} {'regret':>7} {'worst':>6} {'oracle':>6} {'related':>7} {'rank':>5} "
          f"{'rho':>6} {'time':>6}")
    for variant, by_score in rows.items():
        for score, s in by_score.items():
            related = f"{s['related_picks']}/{s['related_targets']}" if s["related_targets"] else "-"
            print(f"{variant:<16} {score:<10} {fmt(s['mean_regret']):>7} {fmt(s['max_regret']):>6} "
                  f"{s['oracle_picks']:>3}/{s['targets']:<2} {related:>7} {fmt(s['mean_rank'], 1):>5} "
                  f"{fmt(s['spearman'], 2):>6} {seconds[variant]:>5.0f}s")
    seeds = [v for v in rows if v == "default" or v.startswith("probe_seed_")]
    stability = None
    if len(seeds) > 1:
        stability = {score: {**dict(zip(("all_agree", "pairwise"), agreement({v: rows[v][score]["picks"] for v in seeds}))),
                             "mean_regret": sum(rows[v][score]["mean_regret"] for v in seeds) / len(seeds)}
                     for score in SCORES}
        print(f"\nacross probe seeds ({', '.join(seeds)}), pick agreement and mean regret: " + "; ".join(
            f"{score} {fmt(a['all_agree'], 2)} all agree, {fmt(a['pairwise'], 2)} pairwise, "
            f"regret {fmt(a['mean_regret'])}" for score, a in stability.items()))
    print(json.dumps({"config": cfg.name, "split": args.split, "seed": args.seed, "base_args": args.base_args, "variants": {
        v: {"args": VARIANTS[v], "seconds": round(seconds[v], 1), "scores": by_score} for v, by_score in rows.items()},
        "probe_seed_agreement": stability}))
    return 0


if __name__ == "__main__":
    run_main(main, get_args_parser)
