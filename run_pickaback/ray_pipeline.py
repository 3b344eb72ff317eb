"""The whole pipeline as a DAG of per-task jobs on Ray, each job a step of the bash scripts for one task.

    .venv/bin/python run_pickaback/ray_pipeline.py [cfg] [--num_cpus N] [--cpus_per_job 1] [--gpus_per_job 0]
    .venv/bin/python run_pickaback/ray_pipeline.py [cfg] --address <head node's address>    # an existing cluster

Per task t: steps 1 -> 2-1 -> 2-2 (`TASKS=t JOBS=1 bash run_pickaback/<step>.sh cfg`); step 3-1 of target t
once t's step 1 and every peer's step 2-2 are done; step 3-1 of every target at once (the picks, made together);
then step 4 and step 3-2 of each target; tools/results_table.py once every target is trained. So every step has
one definition, the bash scripts'. Settings are the scripts' environment variables, passed to every job with
MMPAB_OUTPUT_ROOT and MMPAB_DATA_ROOT (on a cluster, those folders and this repository must be shared by the
nodes at the same paths); finished work is skipped as by the bash steps. A failed job stops the jobs that need
it, every other branch runs to its end, and the launcher exits 1 naming every failed job; logs and jobs.json are
under logs_<arch>/ray_<cfg>/ in the output root (docs/ray.md).
"""
import os
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

import ray  # noqa: E402

from utils import paths  # noqa: E402
from utils.cli import ArgumentParser, non_negative_float, positive_float, positive_int  # noqa: E402
from utils.errors import UserError, run_main  # noqa: E402
from utils.ray_jobs import Job, failure_sentence, run_dag  # noqa: E402
from utils.step_settings import resolved_settings  # noqa: E402
from utils_pickaback.ranking import picks_for  # noqa: E402

STEP_SCRIPTS = {"1": "baseline", "2-1": "wo_backbone", "2-2": "select_pruning_ratio_of_backbone", "4": "transfer_kv"}

# Every bash snippet below starts as a step script does, so the jobs resolve the settings as the scripts do.
COMMON = 'source run_pickaback/common.sh "$1"\n'

# Step 3-2 of target $2 on backbone $3 (and its untrained twin): the function w_backbone.sh runs for each pair.
# Not w_backbone.sh itself, which ends with tools/results_table.py: run beside other targets' training, that would
# read their unfinished folders.
TRAIN_ON_BACKBONE = COMMON + 'target_on_backbone "$2" "$3"\n'

RESULTS_TABLE = COMMON + '"$PY" -m tools.results_table "$CFG" --arch "$ARCH" --seed "$SEED"\n'


def get_args_parser():
    p = ArgumentParser(description="Run the pipeline as a DAG of per-task jobs on Ray (local, or a cluster).")
    p.add_argument("config", nargs="?", default="demo", help="dataset config, as for the bash steps")
    p.add_argument("--address", help="an existing Ray cluster's address (default: start a local Ray)")
    p.add_argument("--num_cpus", type=positive_int, default=None,
                   help="CPUs of the local Ray (default: every core); not with --address")
    p.add_argument("--cpus_per_job", type=positive_float, default=1.0,
                   help="CPUs each job reserves; its OMP_NUM_THREADS is their whole number (at least 1)")
    p.add_argument("--gpus_per_job", type=non_negative_float, default=0.0,
                   help="GPUs each job reserves (a fraction shares a GPU)")
    return p


class RayRun:
    """The pipeline run: its config as the scripts take it, the settings common.sh resolves from it, and the
    environment every job gets."""

    def __init__(self, config, env):
        # a config file's relative path is the caller's (the jobs run in the repository), as in common.sh
        self.cfg = str(Path(config).resolve()) if config.endswith((".toml", ".json")) else config
        self.cfg_name, seed, self.arch, tasks = resolved_settings(self.cfg, "$CFG_NAME", "$SEED", "$ARCH",
                                                                  "$(task_ids)")
        self.seed = int(seed)
        self.tasks = tasks.split()
        self.logs = paths.logs_dir(self.arch, self.seed) / f"ray_{self.cfg_name}"
        self.env = env

    def bash(self, script, *args):
        """The command running `script` with this run's config as $1 and `args` after it."""
        return ["bash", "-c", script, "ray_pipeline", self.cfg, *args]

    def job(self, name, command, needs=(), env=None):
        return Job(name, command, self.logs / f"{name.replace(' ', '_')}.log", tuple(needs),
                   {**self.env, **(env or {})})

    def step_of_task(self, step, task, needs=()):
        """A step script narrowed to one task."""
        script = f'bash run_pickaback/{STEP_SCRIPTS[step]}.sh "$1"'
        return self.job(f"step {step} task {task}", lambda: self.bash(script), needs, {"TASKS": task, "JOBS": "1"})

    def find_backbone(self, target):
        """Step 3-1 of `target`: every other task of the run is a candidate, so it waits for their step 2-2."""
        peers = [f"step 2-2 task {p}" for p in self.tasks if p != target]
        return self.job(f"step 3-1 target {target}", lambda: self.bash('bash run_pickaback/find_backbone.sh "$1"'),
                        [f"step 1 task {target}", *peers], {"TARGETS": target, "TASKS": " ".join(self.tasks)})

    def pick_backbones(self):
        """Step 3-1 over every target once each one's distances are saved (they are reused): the picks are made
        together, as a hub is one candidate picked for many targets (utils_pickaback/ranking.py, hub_groups)."""
        return self.job("step 3-1 picks", lambda: self.bash('bash run_pickaback/find_backbone.sh "$1"'),
                        [f"step 3-1 target {t}" for t in self.tasks], {"TASKS": " ".join(self.tasks)})

    def train_on_backbone(self, target):
        """Step 3-2 of `target` on the backbone step 3-1 picked (read from its CSV when the job starts)."""
        return self.job(f"step 3-2 target {target}",
                        lambda: self.bash(TRAIN_ON_BACKBONE, target, self.backbone_of(target)),
                        [f"step 4 task {target}"])

    def backbone_of(self, target):
        picks = picks_for(paths.pickaback_result_csv(self.cfg_name, self.seed), self.arch, {int(target)})
        if int(target) not in picks:
            raise UserError(f"Step 3-1 wrote no backbone for target {target}.")
        return str(picks[int(target)])

    def results_table(self):
        return self.job("results table", lambda: self.bash(RESULTS_TABLE),
                        [f"step 3-2 target {t}" for t in self.tasks])


def pipeline_jobs(run):
    """Every job of the run, each after the jobs it needs."""
    jobs = []
    for t in run.tasks:
        jobs += [run.step_of_task("1", t), run.step_of_task("2-1", t, [f"step 1 task {t}"]),
                 run.step_of_task("2-2", t, [f"step 2-1 task {t}"])]
    jobs += [run.find_backbone(t) for t in run.tasks] + [run.pick_backbones()]
    for t in run.tasks:
        jobs += [run.step_of_task("4", t, ["step 3-1 picks"]), run.train_on_backbone(t)]
    return jobs + [run.results_table()]


def pipeline_variables():
    """The driver's values of the variables the steps read (every ${NAME:-...} of the bash scripts, and the
    MMPAB_* roots of the Python steps), for jobs on any node; TASKS and JOBS are set per job."""
    scripts = " ".join(p.read_text() for p in (paths.REPO_ROOT / "run_pickaback").glob("*.sh"))
    names = set(re.findall(r"\$\{([A-Z_]+):-", scripts)) - {"TASKS", "JOBS"}
    return {k: v for k, v in os.environ.items() if k in names or k.startswith("MMPAB_")}


def start_ray(args):
    # nothing sent out (Ray's usage statistics), no dashboard, no logs streamed back: each job has its log file
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(address=args.address, num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False,
             logging_level="WARNING")


def main():
    args = get_args_parser().parse_args()
    if args.address and args.num_cpus:
        raise UserError("--num_cpus sizes a local Ray; with --address the cluster has its own CPUs.")
    run = RayRun(args.config, {**pipeline_variables(), "OMP_NUM_THREADS": str(max(1, int(args.cpus_per_job)))})
    start_ray(args)
    jobs = pipeline_jobs(run)
    started = time.time()
    outcomes = run_dag(jobs, paths.REPO_ROOT, run.logs / "jobs.json", args.cpus_per_job, args.gpus_per_job)
    failed = failure_sentence(outcomes)
    if failed:
        print(failed, file=sys.stderr)
        return 1
    print(f"Pipeline finished in {time.time() - started:.0f} s: {len(jobs)} jobs on Ray; "
          f"results in {paths.results_csv(run.cfg_name, run.seed)}.")
    return 0


if __name__ == "__main__":
    run_main(main)
