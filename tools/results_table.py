"""Write results_<cfg>.csv of a finished pipeline run: one row per target, under the field's names.

    python -m tools.results_table [cfg] [--arch perceiver_io] [--seed 2]

For each target that step 3-2 trained on its selected backbone: forward transfer (on backbone - scratch),
knowledge transfer (on backbone - on its untrained twin), backward transfer (the backbone task inside the
target's final checkpoint - inside its own chosen checkpoint, 0 by construction in CPG and measured here,
with whether the logits agree bit for bit), regret where the transfer control ran, the final width and
shared ratio. Every accuracy on the validation split (`_val_`, what decisions used) and the test split
(`_test_`, what to report), rounded to 4 decimals as every record of the pipeline, the transfers being
differences of the rounded numbers so the file adds up. Columns: docs/pipeline.md, "Results";
utils.results.read_results reads it.
"""
import torch

from utils import paths
from utils.checkpoint import load_checkpoint, load_model
from utils.cli import ArgumentParser, add_arch_arg, arch_reads, seed_int
from utils.data import task_loaders
from utils.dataset_config import get_config
from utils.errors import UserError, run_main
from utils.provenance import DECISION_SETTINGS, RUN_OWN_SETTINGS, same_recipe, started_from_what_is_there_now
from utils.records import write_csv_atomic
from utils.results import RESULT_FIELDS, RESULTS_TABLE, read_baselines, read_csv_rows, read_distances, read_outcome
from utils.text_tables import targets_named
from utils_pickaback.ranking import another_arch_sentences, picks_of_arch, ranked_pairs, read_rankings
from utils_pickaback.selection_quality import (UNTRAINED, compared_candidates, designed_related_pick,
                                               outdated_control_sentences, selection_figures)

SPLITS = ("val", "test")


def rounded(value):
    return None if value is None else round(value, 4)


def difference(a, b):
    return None if a is None or b is None else round(a - b, 4)


class TaskEvaluator:
    """Evaluates a task of any checkpoint on its validation and test splits, each task's data loaded once."""

    def __init__(self, cfg, seed):
        self.cfg, self.seed, self.loaders = cfg, seed, {}

    @torch.no_grad()
    def outputs(self, model, task, val_fraction):
        """{split: (accuracy, logits)} of `task`'s view of `model` (at the task's own width, as CPG evaluates it),
        the validation split carved by the pipeline's seed and `val_fraction`, as the run that made it did."""
        key = (task.name, val_fraction)
        if key not in self.loaders:
            _, val, test = task_loaders(self.cfg, task, seed=self.seed, val_fraction=val_fraction)
            self.loaders[key] = {"val": val, "test": test}
        view = model.task_view(task.name)
        return {split: accuracy_and_logits(view, loader) for split, loader in self.loaders[key].items()}


def accuracy_and_logits(view, loader):
    logits, labels = zip(*[(view(x), y) for x, y in loader])
    logits, labels = torch.cat(logits), torch.cat(labels)
    return (logits.argmax(1) == labels).sum().item() / len(labels), logits


def recorded_val_fraction(payload):
    """The validation share a checkpoint's run decided by (its provenance); None (the config's) when unrecorded."""
    return (settings(payload) or {}).get("val_fraction")


def backbone_before(cfg, arch, backbone, seed, evaluator):
    """(the backbone task's outputs in the checkpoint its targets started from (step 2-2's choice), the validation
    share its run used)."""
    chosen = paths.chosen_backbone(arch, cfg.name, backbone.name, seed)
    model, payload = load_model(chosen, expect_arch=arch, expect_config=cfg)
    val_fraction = recorded_val_fraction(payload)
    return evaluator.outputs(model, backbone, val_fraction), val_fraction


def settings(payload):
    return payload.get("provenance", {}).get("settings")


def started_from(payload):
    """The fingerprint of the checkpoint a run started from (step 4's file of its target and backbone)."""
    return payload.get("provenance", {}).get("inputs", {}).get("start")


def untrained_result(cfg, arch, seed, target, on_backbone):
    """{split: accuracy} of the target trained on its backbone's untrained twin (step 3-2's second run), when that
    run started from the same checkpoint as `on_backbone` (the run on the backbone's payload) with the same recipe;
    else None (not run, a run on an earlier selection's backbone, or of other settings: UNTRAINED=0 after a
    change)."""
    folder = paths.target_dir(arch, cfg.name, UNTRAINED, target.name, seed) / "scratch"
    if started_from(on_backbone) is None or not folder.is_dir():
        return None
    _, payload = load_model(paths.folder_checkpoint(folder), expect_arch=arch, expect_config=cfg)
    if started_from(payload) != started_from(on_backbone) or not same_recipe(settings(payload), settings(on_backbone)):
        return None
    return {"val": rounded(payload["accuracy"]), "test": rounded(payload["test_accuracy"])}


def refuse_a_run_of_another_baseline(checkpoint, payload, target, baseline):
    """Step 3-2's run decided by an earlier step-1 baseline of its target (step 1 re-run since, step 3-2 not) would
    stand beside the new scratch accuracy in one row: refused, naming what to re-run."""
    recorded = (settings(payload) or {}).get("baseline_accuracy")
    if recorded is not None and baseline is not None and recorded != baseline:
        raise UserError(f"{checkpoint} was trained against step 1's earlier baseline of {target.name} ({recorded:.4f}; "
                        f"now {baseline:.4f}); re-run run_pickaback/transfer_kv.sh and run_pickaback/w_backbone.sh "
                        f"for it first.")


def recipe_differences(cfg, arch, seed, target, payload):
    """{setting: (step 1's value, step 3-2's)} of the training settings (not those a run of a target has of its own,
    nor the decisions after its finetune) in which the target's step-1 run and its step 3-2 run (`payload`) differ
    (another EPOCHS for one of them), so that forward transfer sets more than a backbone against none; {} when step
    1's model is not there."""
    if not paths.baseline_dir(arch, cfg.name, target.name, seed).is_dir():
        return {}
    step_1 = (load_checkpoint(paths.baseline_checkpoint(arch, cfg.name, target.name, seed)).get("provenance")
              or {}).get("settings", {})
    step_3_2 = settings(payload) or {}
    ignore = RUN_OWN_SETTINGS | DECISION_SETTINGS
    return {key: (step_1[key], step_3_2[key]) for key in sorted(step_1.keys() & step_3_2.keys())
            if key not in ignore and step_1[key] != step_3_2[key]}


def other_recipe_sentence(rows):
    """One sentence naming the targets whose forward transfer compares two recipes (rows' "recipe_differences")."""
    differ = {row["target_id"]: row["recipe_differences"] for row in rows if row["recipe_differences"]}
    if not differ:
        return []
    targets_of = {}
    for target, differences in differ.items():
        for key, (a, b) in differences.items():
            targets_of.setdefault(f"{key} (step 1: {a}, step 3-2: {b})", []).append(target)
    # a difference not every one of these targets has names its own, so no value is read as another target's
    settings_named = [text if targets == list(differ) else f"{text} for {targets_named(targets)}"
                      for text, targets in sorted(targets_of.items())]
    return [f"Step 3-2 trained {targets_named(list(differ))} with other settings than step 1 did: "
            f"{'; '.join(settings_named)}; their forward transfer compares two recipes, not a backbone against "
            f"none."]


def target_result(cfg, arch, seed, target, backbone, before, evaluator, baseline):
    """The measured columns of one target: its accuracy on the backbone, width, shared ratio, the backbone after
    (on the same samples as `before`, (outputs, validation share)); `baseline`: step 1's validation accuracy now."""
    before, val_fraction = before
    folder = paths.target_dir(arch, cfg.name, backbone.name, target.name, seed) / "scratch"
    checkpoint = paths.folder_checkpoint(folder)
    model, payload = load_model(checkpoint, expect_arch=arch, expect_config=cfg)
    refuse_a_run_of_another_baseline(checkpoint, payload, target, baseline)
    after = evaluator.outputs(model, backbone, val_fraction)
    model.set_active_task(target.name)
    result = {"final_width": model.tasks[target.name].width_mult,
              "shared_ratio": rounded(model.stats()["shared_ratio"]),
              "on_backbone_val_acc": rounded(payload["accuracy"]),
              "on_backbone_test_acc": rounded(payload["test_accuracy"]),
              "backbone_outputs_identical": all(torch.equal(before[s][1], after[s][1]) for s in SPLITS),
              "recipe_differences": recipe_differences(cfg, arch, seed, target, payload)}
    untrained = untrained_result(cfg, arch, seed, target, payload) or {}
    for split in SPLITS:
        result[f"on_untrained_{split}_acc"] = untrained.get(split)
        result[f"knowledge_transfer_{split}"] = difference(result[f"on_backbone_{split}_acc"], untrained.get(split))
        result[f"backbone_before_{split}_acc"] = rounded(before[split][0])
        result[f"backbone_after_{split}_acc"] = rounded(after[split][0])
        result[f"backward_transfer_{split}"] = difference(result[f"backbone_after_{split}_acc"],
                                                          result[f"backbone_before_{split}_acc"])
    return result


def result_rows(cfg, arch, seed=paths.DEFAULT_SEED):
    """(rows of results_<cfg>.csv as dicts, ids of the selected targets `arch` reads that step 3-2 has not trained
    on their backbone as it is now: not yet, or before the backbone was trained again)."""
    result_csv = paths.pickaback_result_csv(cfg.name, seed)
    readable = {task.task_id for task in cfg.tasks if arch_reads(arch, task)}
    # another arch's picks: left out (and said, with the control's sentences, by main), not every row refused
    picks, other_arch = picks_of_arch(result_csv, arch)
    selections = {target: backbone for target, backbone in picks.items() if target in readable}
    if not selections:
        raise UserError(" ".join([f"{result_csv} holds no selection {arch} reads; run the pipeline "
                                  f"(run_pickaback/quickstart.sh) first.",
                                  *another_arch_sentences(cfg.name, arch, other_arch)]))
    scratch = {"val": read_baselines(paths.baseline_acc_file(arch, cfg.name, seed)),
               "test": read_baselines(paths.baseline_test_acc_file(arch, cfg.name, seed))}
    regret = {split: {f.target_id: f.regret for f in selection_figures(cfg, arch, seed, split=split)[0]}
              for split in SPLITS}
    distances = ranked_pairs(read_distances(paths.pickaback_table_csv(cfg.name, seed)),
                             read_rankings(paths.pickaback_result_csv(cfg.name, seed)))   # the pool it ranked
    evaluator, befores, rows, missing = TaskEvaluator(cfg, seed), {}, [], []
    for target_id, backbone_id in sorted(selections.items()):
        target, backbone = cfg.task(target_id), cfg.task(backbone_id)
        run = paths.target_dir(arch, cfg.name, backbone.name, target.name, seed) / "scratch"
        if not run.is_dir() or not started_from_what_is_there_now(read_outcome(run) or {}, paths.output_root()):
            missing.append(target_id)      # not trained yet, or trained on its backbone before it was trained again
            continue
        if backbone.name not in befores:
            befores[backbone.name] = backbone_before(cfg, arch, backbone, seed, evaluator)
        row = {"seed": seed, "arch": arch, "target_id": target_id, "target_name": target.name,
               "target_modality": target.modality, "backbone_id": backbone_id, "backbone_name": backbone.name,
               "backbone_modality": backbone.modality,
               "picked_related": designed_related_pick(cfg, target_id, backbone_id,
                                                       compared_candidates(cfg, distances, target_id))}
        row.update(target_result(cfg, arch, seed, target, backbone, befores[backbone.name], evaluator,
                                 scratch["val"].get(target.name)))
        for split in SPLITS:
            row[f"scratch_{split}_acc"] = rounded(scratch[split].get(target.name))
            row[f"forward_transfer_{split}"] = difference(row[f"on_backbone_{split}_acc"], row[f"scratch_{split}_acc"])
            row[f"regret_{split}"] = rounded(regret[split].get(target_id))
        rows.append(row)
    return rows, missing


def cell(value):
    """A CSV cell: empty where a figure does not apply (no control run, no related task, no baseline)."""
    if value is None:
        return ""
    return f"{value + 0.0:g}" if isinstance(value, float) else str(value)   # + 0.0: a -0.0 difference reads "0"


def write_results(cfg, arch, seed=paths.DEFAULT_SEED):
    """Write `arch`'s rows of results_<cfg>.csv (one per target, replacing its earlier ones; another arch's rows
    are kept as they are); (path, rows, missing)."""
    rows, missing = result_rows(cfg, arch, seed)
    path = paths.results_csv(cfg.name, seed)
    others = [[row[key] for key in RESULT_FIELDS] for row in read_csv_rows(path, RESULT_FIELDS, RESULTS_TABLE)
              if row["arch"] != arch]
    write_csv_atomic(path, RESULT_FIELDS, others + [[cell(row[key]) for key in RESULT_FIELDS] for row in rows])
    return path, rows, missing


def get_args_parser():
    p = ArgumentParser(description="Write results_<cfg>.csv: per target, forward and backward transfer, regret.")
    p.add_argument("config", nargs="?", default="demo", help="dataset config name")
    add_arch_arg(p)
    p.add_argument("--seed", type=seed_int, default=paths.DEFAULT_SEED,
                   help="the pipeline's seed (which run's outputs, and the validation split)")
    return p


def main(args):
    cfg = get_config(args.config)
    path, rows, missing = write_results(cfg, args.arch, args.seed)
    print(f"Wrote {path} ({len(rows)} targets).")
    if missing:
        print(f"Step 3-2 has not trained targets {' '.join(map(str, missing))} on their backbone as it is now (not "
              f"yet, or before the backbone was trained again): they have no row; run_pickaback/w_backbone.sh trains "
              f"them.")
    for line in other_recipe_sentence(rows):
        print(line)
    for line in outdated_control_sentences(selection_figures(cfg, args.arch, args.seed)[1]):
        print(f"{line} Their regret is left empty.")
    return 0


if __name__ == "__main__":
    run_main(main, get_args_parser)
