"""Pick-a-back among the continual-learning methods: a sequence's accuracy matrix, and one table of the methods.

    python -m tools.continual evaluate demo --sequence <folder> --tasks 1 2 3 --after 2 --model <folder> \
        --trained_in <folder>...
    python -m tools.continual table demo [--seeds 2 3]

R[i][j] is task j's test accuracy after the i-th task of a sequence is learned; R[i][i + 1] is the next task's
before it is learned (its fresh head on the model so far) and b[j] a fresh model's: Lopez-Paz & Ranzato (2017),
    ACC = mean_j R[T][j],  BWT = mean_{j<T} (R[T][j] - R[j][j]),  FWT = mean_{j>1} (R[j-1][j] - b[j]).
Pick-a-back's model of a target holds two tasks, its backbone (learned first, alone: step 2-1) and the target,
so each target is a sequence of two; its row is the mean over targets. docs/continual.md says more.
"""
import copy
from pathlib import Path

import torch

from models.cpg import CPGModel
from utils import paths
from utils.checkpoint import load_model
from utils.cli import ArgumentParser, add_arch_arg, seed_int
from utils.data import task_loaders
from utils.dataset_config import get_config
from utils.errors import UserError, run_main
from utils.logs import training_seconds
from utils.provenance import fingerprint
from utils.records import read_json_record, write_csv_atomic, write_json_atomic
from utils.results import CL_FIELDS, read_baselines, read_outcome, read_results
from utils.text_tables import aligned_table, figure
from utils.train import evaluate
from utils_pickaback.ranking import another_arch_sentences, picks_of_arch
from utils_pickaback.selection_quality import interval95, mean_of, selection_figures

SEQUENCE_METHODS = ("cpg", "packnet")


class Evaluator:
    """Test accuracy of any task of any model, each task's test split loaded once."""

    def __init__(self, cfg, arch, profile, seed):
        self.cfg, self.arch, self.profile, self.seed, self.loaders = cfg, arch, profile, seed, {}

    def accuracy(self, model, task):
        if task.name not in self.loaders:
            self.loaders[task.name] = task_loaders(self.cfg, task, seed=self.seed)[2]
        return round(evaluate(model.task_view(task.name), self.loaders[task.name], torch.device("cpu"))[1], 4)

    def before_learning(self, model, task):
        """`task`'s accuracy on `model` before it is learned: added to a copy (seeded fresh head), untrained."""
        if task.name not in model.task_names:
            model = copy.deepcopy(model)
            torch.manual_seed(self.seed)
            model.add_task(task, self.cfg)
        return self.accuracy(model, task)

    def at_random_init(self, task):
        """b[j]: a fresh model's accuracy on `task`."""
        torch.manual_seed(self.seed)
        return self.before_learning(CPGModel.create(self.arch, self.profile), task)


def stored_parameters(model):
    """Every weight the model stores but its binary piggyback masks: the body at its width, each task's head,
    input adapter and private norms and biases."""
    masks = {id(p) for m in model.masks.values() for p in m.piggymasks.values()}
    return sum(p.numel() for p in model.parameters() if id(p) not in masks)


def evaluate_step(args):
    """Write row `--after` of the sequence's accuracy matrix (kept when its checkpoint is unchanged)."""
    cfg = get_config(args.dataset_config)
    tasks = [cfg.task(key) for key in args.tasks]
    after = cfg.task(args.after)
    position = [t.name for t in tasks].index(after.name)
    matrix_file = paths.accuracy_matrix_file(args.sequence)
    matrix = read_json_record(matrix_file) if matrix_file.is_file() else {}
    if matrix.get("tasks") != [t.name for t in tasks]:
        matrix = {"tasks": [t.name for t in tasks], "rows": {}}
    checkpoint = Path(args.model) if Path(args.model).is_file() else paths.folder_checkpoint(args.model)
    made = fingerprint(checkpoint)
    row = matrix["rows"].get(after.name)
    if row is not None and row["fingerprint"] == made:
        print(f"R after {after.name}: unchanged, kept.")
        return 0
    model, _ = load_model(checkpoint, expect_arch=args.arch, expect_config=cfg)
    evaluator = Evaluator(cfg, args.arch, model.profile, args.seed)
    accuracies = {t.name: evaluator.accuracy(model, t) for t in tasks[:position + 1]}
    if position + 1 < len(tasks):
        accuracies[tasks[position + 1].name] = evaluator.before_learning(model, tasks[position + 1])
    for later in tasks[position + 1:]:     # learned on the model this row replaces: to be learned again
        matrix["rows"].pop(later.name, None)
    matrix["rows"][after.name] = {"checkpoint": paths.within_output_root(checkpoint), "fingerprint": made,
                                  "width": model.width_mult, "parameters": stored_parameters(model),
                                  "trained_in": [paths.within_output_root(f) for f in args.trained_in], "test_acc": accuracies}
    if "random_init" not in matrix:
        matrix["random_init"] = {t.name: evaluator.at_random_init(t) for t in tasks}
    write_json_atomic(matrix_file, matrix)
    print(f"R after {after.name}: " + ", ".join(f"{name} {acc:.4f}" for name, acc in accuracies.items()))
    return 0


# ---------------------------------------------------------------- the figures of a matrix

def cl_figures(R, b):
    """ACC, BWT, FWT of an accuracy matrix R[i][j] (lists, T x T, None where not measured) and b[j]."""
    T = len(R)
    acc = sum(R[T - 1]) / T
    bwt = sum(R[T - 1][j] - R[j][j] for j in range(T - 1)) / (T - 1) if T > 1 else 0.0
    fwt = sum(R[j - 1][j] - b[j] for j in range(1, T)) / (T - 1) if T > 1 else None
    return acc, bwt, fwt


def matrix_of(record):
    """(R, b, task names) of a complete accuracy-matrix record."""
    names = record["tasks"]
    R = [[record["rows"][names[i]]["test_acc"].get(names[j]) for j in range(len(names))] for i in range(len(names))]
    return R, [record["random_init"][n] for n in names], names


def sequence_row(folder, scratch):
    """One seed's figures of a sequence folder; None (and why, on the console) while it has not learned every task."""
    record = read_json_record(paths.accuracy_matrix_file(folder))
    missing = [name for name in record["tasks"] if name not in record["rows"]]
    if missing:
        print(f"Left out {folder.name}: it has not learned {', '.join(missing)} yet (run "
              f"run_pickaback/learn_in_sequence.sh to finish it).")
        return None
    R, b, names = matrix_of(record)
    acc, bwt, fwt = cl_figures(R, b)
    last = record["rows"][names[-1]]
    trained_in = {f for row in record["rows"].values() for f in row["trained_in"]}
    return {"acc": acc, "bwt": bwt, "fwt": fwt, "tasks": len(names), "task_names": frozenset(names),
            "learned_vs_scratch": mean_of([R[i][i] - scratch[n] for i, n in enumerate(names) if n in scratch]),
            "models": 1, "width": last["width"], "parameters": last["parameters"],
            "train_seconds": sum(training_seconds(paths.output_root() / f / "train.csv") for f in trained_in)}


# ---------------------------------------------------------------- Pick-a-back: one sequence of two per target

def pair_row(cfg, arch, seed, evaluator, target, backbone, run_folder):
    """The two-task sequence (backbone, target) of one step-3-2 or control run, as sequence_row's figures."""
    outcome = read_outcome(run_folder / "scratch")
    start_file = paths.output_root() / outcome["start"]["path"] if outcome and outcome.get("start") else None
    if start_file is not None and not start_file.is_file():
        raise UserError(f"The run {run_folder} started from {start_file}, which is gone (its backbone was trained "
                        f"again since); train it again first (run_pickaback/w_backbone.sh for a selected pair, "
                        f"run_pickaback/transfer_matrix.sh for the control's).")
    chosen, _ = load_model(paths.chosen_backbone(arch, cfg.name, backbone.name, seed), expect_arch=arch,
                           expect_config=cfg)
    final, _ = load_model(paths.folder_checkpoint(run_folder / "scratch"), expect_arch=arch, expect_config=cfg)
    start = chosen if start_file is None else load_model(start_file, expect_arch=arch, expect_config=cfg)[0]
    R = [[evaluator.accuracy(chosen, backbone), evaluator.before_learning(start, target)],
         [evaluator.accuracy(final, backbone), evaluator.accuracy(final, target)]]
    acc, bwt, fwt = cl_figures(R, [None, evaluator.at_random_init(target)])
    return {"acc": acc, "bwt": bwt, "fwt": fwt, "learned": R[1][1], "width": final.width_mult,
            "parameters": stored_parameters(final), "train_seconds": training_seconds(run_folder / "train.csv")}


def pickaback_rows(cfg, arch, seed, evaluator, scratch):
    """{method: figures} of the selected backbones, and of the control's oracle and random picks where it ran."""
    selections, other_arch = picks_of_arch(paths.pickaback_result_csv(cfg.name, seed), arch)
    trained = read_results(paths.results_csv(cfg.name, seed), arch)
    if not trained:
        return {}
    for sentence in another_arch_sentences(cfg.name, arch, other_arch):
        print(sentence)
    everyone = sum(training_seconds(folder / "train.csv") for task in cfg.tasks
                   for folder in (paths.baseline_dir(arch, cfg.name, task.name, seed),
                                  paths.backbone_dir(arch, cfg.name, task.name, seed)))   # steps 1 and 2-1

    def runs_of(target_id, backbone_ids):
        target = cfg.task(target_id)
        return [pair_row(cfg, arch, seed, evaluator, target, cfg.task(b),
                         paths.target_dir(arch, cfg.name, cfg.task(b).name, target.name, seed)) for b in backbone_ids]

    def row_of(runs_by_target):   # target id -> its runs (a random pick: every candidate's, averaged)
        per_target = [{k: mean_of([r[k] for r in runs]) for k in runs[0]} | {"target": cfg.task(target_id).name}
                      for target_id, runs in runs_by_target.items()]
        return {"acc": mean_of([r["acc"] for r in per_target]), "bwt": mean_of([r["bwt"] for r in per_target]),
                "fwt": mean_of([r["fwt"] for r in per_target]), "tasks": len(per_target),
                "task_names": frozenset(r["target"] for r in per_target),
                "learned_vs_scratch": mean_of([r["learned"] - scratch[r["target"]] for r in per_target
                                               if r["target"] in scratch]),
                "models": len(per_target), "width": max(r["width"] for r in per_target),
                "parameters": round(sum(r["parameters"] for r in per_target)),
                "train_seconds": everyone + sum(r["train_seconds"] for r in per_target)}

    # a row of results_<cfg>.csv of an earlier pick (step 3-1 re-run since) describes another backbone: left out
    current = {t: runs_of(t, [row["backbone_id"]]) for t, row in trained.items()
               if selections.get(t) == row["backbone_id"]}
    rows = {"pickaback": row_of(current)} if current else {}
    controlled = selection_figures(cfg, arch, seed)[0]
    if controlled:
        every_candidate = {f.target_id: runs_of(f.target_id, list(f.candidate_accuracies)) for f in controlled}
        rows["pickaback_oracle"] = row_of(best_runs(every_candidate))
        rows["pickaback_random"] = row_of(every_candidate)
    return rows


def best_runs(runs_by_target):
    """Per target, the run of its candidate learned best in this seed's runs, the runs the table scores (the control's
    oracle is the best by the mean over its training seeds, and this seed's run of it may score under the pick's)."""
    return {target: [max(runs, key=lambda run: run["learned"])] for target, runs in runs_by_target.items()}


def scratch_row(cfg, arch, seed, scratch):
    """Every task alone (step 1): T one-task models."""
    models = [load_model(paths.baseline_checkpoint(arch, cfg.name, n, seed), expect_arch=arch)[0] for n in scratch]
    return {"acc": mean_of(list(scratch.values())), "bwt": None, "fwt": None, "tasks": len(scratch),
            "task_names": frozenset(scratch),
            "learned_vs_scratch": 0.0, "models": len(models), "width": 1.0,
            "parameters": sum(stored_parameters(m) for m in models),
            "train_seconds": sum(training_seconds(paths.baseline_dir(arch, cfg.name, n, seed) / "train.csv")
                                 for n in scratch)}


def seed_rows(cfg, arch, seed):
    """{method: figures} of one seed's run: what of it exists."""
    scratch_file = paths.baseline_test_acc_file(arch, cfg.name, seed)
    if not scratch_file.is_file():
        raise UserError(f"{scratch_file} does not exist; run run_pickaback/baseline.sh {cfg.name} first.")
    scratch = read_baselines(scratch_file)
    rows = {"scratch": scratch_row(cfg, arch, seed, scratch)}
    for method in SEQUENCE_METHODS:
        folders = [f for f in sorted(paths.sequences_root(arch, cfg.name, seed).glob(f"{method}_*"))
                   if paths.accuracy_matrix_file(f).is_file()]
        for folder in folders:     # several orders of the tasks: each its own row, named by its order
            order = f" {folder.name.split('_', 1)[1]}" if len(folders) > 1 else ""
            row = sequence_row(folder, scratch)
            if row is not None:
                rows[f"{method}_sequence{order}"] = row
    profile = load_model(paths.baseline_checkpoint(arch, cfg.name, next(iter(scratch)), seed))[0].profile
    rows.update(pickaback_rows(cfg, arch, seed, Evaluator(cfg, arch, profile, seed), scratch))
    return rows


def table(args):
    cfg = get_config(args.dataset_config)
    by_seed = {seed: seed_rows(cfg, args.arch, seed) for seed in args.seeds}
    methods = [m for m in by_seed[args.seeds[0]]
               if ran_at_every_seed(m, by_seed) and same_tasks_at_every_seed(m, by_seed)]
    out = []
    for method in methods:
        runs = [rows[method] for rows in by_seed.values()]
        line = {"method": method, "seeds": " ".join(map(str, args.seeds)), "tasks": runs[0]["tasks"]}
        for key in ("acc", "bwt", "fwt"):
            line[key], line[f"{key}_ci95"] = interval95([r[key] for r in runs])
        for key in ("learned_vs_scratch", "width", "train_seconds"):
            line[key] = mean_of([r[key] for r in runs])
        for key in ("models", "parameters"):
            line[key] = round(mean_of([r[key] for r in runs]))
        out.append(line)
    path = paths.cl_table_csv(cfg.name, args.seeds[0])
    write_csv_atomic(path, CL_FIELDS, [[cell(line[k]) for k in CL_FIELDS] for line in out])
    print(format_table(out))
    print(f"Wrote {path}.")
    return 0


def ran_at_every_seed(method, by_seed):
    """Whether `method` has runs at every seed; if not, says so (e.g. a transfer control run at one seed only)."""
    missing = [seed for seed, rows in by_seed.items() if method not in rows]
    if missing:
        print(f"Left out {method}: it has no runs at seed{'s' if len(missing) > 1 else ''} "
              f"{', '.join(map(str, missing))}.")
    return not missing


def same_tasks_at_every_seed(method, by_seed):
    """Whether `method`'s runs at the seeds cover the same tasks (targets); if not, says so: a mean over seeds of
    figures over different tasks would mix what is compared."""
    covered = {seed: rows[method]["task_names"] for seed, rows in by_seed.items()}
    if len(set(covered.values())) == 1:
        return True
    print(f"Left out {method}: its runs cover other tasks at different seeds ("
          + "; ".join(f"seed {seed}: {', '.join(sorted(names))}" for seed, names in covered.items())
          + "); run the same TASKS at every seed to average them.")
    return False


def cell(value):
    if value is None:
        return ""
    return figure(value) if isinstance(value, float) else str(value)


def format_table(lines):
    """The CL table as aligned text: mean (± 95% interval over seeds when several ran)."""
    def signed(line, key):
        value, half = line[key], line.get(f"{key}_ci95")
        return "" if value is None else figure(value, "+.4f") + (f" ± {half:.4f}" if half is not None else "")
    header = ["method", "tasks", "ACC", "BWT", "FWT", "learned - scratch", "models", "width", "parameters",
              "training (s)"]
    body = [[ln["method"], str(ln["tasks"]), f"{ln['acc']:.4f}" + (f" ± {ln['acc_ci95']:.4f}" if ln["acc_ci95"]
                                                                  is not None else ""),
             signed(ln, "bwt"), signed(ln, "fwt"), signed(ln, "learned_vs_scratch"), f"{ln['models']:g}",
             f"{ln['width']:g}", f"{ln['parameters']:,.0f}", f"{ln['train_seconds']:.0f}"] for ln in lines]
    return aligned_table(header, body)


def get_args_parser():
    p = ArgumentParser(description="The continual-learning figures: a sequence's accuracy matrix, the CL table.")
    sub = p.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("evaluate", help="write one row of a sequence's accuracy matrix (learn_in_sequence.sh)")
    ev.add_argument("dataset_config")
    ev.add_argument("--sequence", required=True, help="the sequence's folder")
    ev.add_argument("--tasks", nargs="+", required=True, help="the sequence's task ids or names, in order")
    ev.add_argument("--after", required=True, help="the task just learned")
    ev.add_argument("--model", required=True, help="the sequence's model after it: a checkpoint, or the folder "
                                                   "holding it (step 2-2's choice, or its one checkpoint)")
    ev.add_argument("--trained_in", nargs="+", required=True,
                    help="the folders whose train.csv hold the epochs that made it (their times are summed)")
    tb = sub.add_parser("table", help="print the CL table and write cl_<cfg>.csv")
    tb.add_argument("dataset_config", nargs="?", default="demo")
    tb.add_argument("--seeds", type=seed_int, nargs="+", default=[paths.DEFAULT_SEED])
    for parser in (ev, tb):
        add_arch_arg(parser)
    ev.add_argument("--seed", type=seed_int, default=paths.DEFAULT_SEED)
    return p


def main(args):
    return evaluate_step(args) if args.command == "evaluate" else table(args)


if __name__ == "__main__":
    run_main(main, get_args_parser)
