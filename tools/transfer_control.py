"""The transfer control's bookkeeping for run_pickaback/transfer_matrix.sh, and its verdict (torch-free).

    python -m tools.transfer_control plan demo --targets 1 2 7 --backbones all     # one line per target
    python -m tools.transfer_control width <run folder>                              # its final width
    python -m tools.transfer_control collect demo                                    # writes the CSV
    python -m tools.transfer_control quality demo [--score S [--table T]]            # how good the selection is
    python -m tools.transfer_control quality emoji wordnet digits                    # each, then pooled

`plan` lists per target its selected backbone, then the other candidates to train it on (`all`, `related`,
`random:K`). `collect` writes pickaback_<cfg>_transfer.csv from the runs' outcome.json files, one row per
run and training seed, leaving out (and naming) a run whose starting checkpoint changed after it ran or
whose grow loop stopped early. `quality` reads that CSV (trains nothing) and prints per target and overall
the baselines, the oracle, a random pick, regret and rank (utils_pickaback/selection_quality.py), JSON on
the last line; `--score` / `--table` judge another score or another step 3-1 run by the same control.
"""
import json
import random
from dataclasses import asdict
from pathlib import Path

from utils import paths
from utils.cli import ArgumentParser, add_arch_arg, positive_float, seed_int
from utils.dataset_config import CONFIG_HELP, get_config
from utils.errors import ExitStatus, UserError, run_main
from utils.provenance import same_recipe, started_from_what_is_there_now
from utils.records import locked, write_csv_atomic
from utils.results import (OUTCOME_FILE, decided_against_another_baseline, read_baselines, read_outcome,
                           read_selections)
from utils_pickaback.ranking import SCORES
from utils.text_tables import aligned_table, figure
from utils_pickaback.selection_quality import (CONTROL_HEADER, TRANSFER_FIELDS, UNTRAINED,
                                               backbone_label, control_rows, control_sentences, gain_text,
                                               pooled_summary, selection_figures, twin_label)



def get_args_parser():
    p = ArgumentParser(description="Plan and collect the transfer control's runs.")
    sub = p.add_subparsers(dest="command", required=True)
    plan = sub.add_parser("plan", help="print each target's backbones: the selected one first")
    plan.add_argument("config", help=f"dataset config: {CONFIG_HELP}")
    plan.add_argument("--targets", nargs="+", required=True, help="target ids (their peers are the candidates)")
    plan.add_argument("--backbones", default="all", help="all | related | random:K")
    plan.add_argument("--only", nargs="+", help="plan these of the targets only (ids or names)")
    plan.add_argument("--max_width", type=positive_float, default=2.0,
                      help="the control's widest network (MAX_WIDTH): a selected pair's step-3-2 run grown under "
                           "another limit is refused, as the control would train it again in its place")
    plan.add_argument("--replace_step_3_2", action="store_true",
                      help="let the control train those runs again in their place (in a copy of the outputs)")
    width = sub.add_parser("width", help="print the final width of a finished run")
    width.add_argument("folder", help="a run folder (holding scratch/outcome.json)")
    collect = sub.add_parser("collect", help="write pickaback_<cfg>_transfer.csv from the finished runs")
    collect.add_argument("config", help=f"dataset config: {CONFIG_HELP}")
    quality = sub.add_parser("quality", help="regret, rank and correlation of step 3-1's selection")
    quality.add_argument("config", nargs="+", help=f"dataset config: {CONFIG_HELP}; several: each judged, then "
                                                   "all their targets pooled")
    quality.add_argument("--split", default="test", choices=["test", "val"], help="which accuracy judges the selection")
    quality.add_argument("--select", choices=["similar", "dissimilar"],
                         help="with --score: which end of the score is picked (default similar); without --score the "
                              "picks and their rule are step 3-1's own")
    quality.add_argument("--score", choices=list(SCORES),
                         help="judge the selection this score of step 3-1's table makes (default: step 3-1's own "
                              "selection, its result CSV, by the score it recorded ranking each target by)")
    quality.add_argument("--table", type=Path,
                         help="with --score: a table of another step 3-1 run of the same models (e.g. other settings)")
    for command in (plan, collect, quality):
        add_arch_arg(command)
        command.add_argument("--seed", type=seed_int, default=paths.DEFAULT_SEED)
    return p


def control_backbones(cfg, target_id, selected, peers, rule, seed):
    """The backbones the control trains `target_id` on, the selected one first."""
    others = [p for p in peers if p not in (target_id, selected)]
    if rule == "all":
        return [selected, *others]
    if rule == "related":
        related = cfg.related.get(cfg.task(target_id).name)
        related_id = cfg.task(related).task_id if related else None
        return [selected, *([related_id] if related_id in others else [])]
    if rule.startswith("random:") and rule[7:].isdigit():
        drawn = random.Random(seed * 10007 + target_id).sample(others, min(int(rule[7:]), len(others)))
        return [selected, *sorted(drawn)]
    raise UserError(f"CONTROL_BACKBONES must be all, related or random:K (K a whole number), got {rule!r}.")


def plan(args):
    cfg = get_config(args.config)
    peers = [cfg.task(t).task_id for t in args.targets]
    selections = read_selections(paths.pickaback_result_csv(cfg.name, args.seed))
    planned = peers if args.only is None else [cfg.task(t).task_id for t in args.only]
    for target_id in planned:
        if target_id not in peers:
            raise UserError(f"Target {target_id} of CONTROL_TARGETS is not one of the tasks run "
                            f"({' '.join(map(str, peers))}).")
        if target_id not in selections:
            raise UserError(f"Target {target_id} has no selected backbone in "
                            f"{paths.pickaback_result_csv(cfg.name, args.seed)}; run run_pickaback/find_backbone.sh first.")
        if not args.replace_step_3_2:
            refuse_to_replace_step_3_2(cfg, target_id, selections[target_id], args)
        chosen = control_backbones(cfg, target_id, selections[target_id], peers, args.backbones, args.seed)
        print(target_id, *chosen)


def refuse_to_replace_step_3_2(cfg, target_id, selected, args):
    """The control's run of the selected pair is step 3-2's own; under another MAX_WIDTH its settings differ, so
    the control would train it again in the same folder and the pipeline's result would be gone."""
    target, backbone = cfg.task(target_id).name, cfg.task(selected).name
    outcome = read_run_outcome(paths.target_dir(args.arch, cfg.name, backbone, target, args.seed))
    grown_to = (outcome or {}).get("max_width")     # (outcomes before 2026-12-04 do not say)
    # (a run that reached its baseline at width 1.0 would only be decided again, but that rewrites step 3-2's
    # checkpoint and outcome in place with the control's limit: refused too)
    if isinstance(grown_to, (int, float)) and grown_to != args.max_width:
        raise UserError(f"Step 3-2 trained target {target_id} ({target}) on backbone {selected} with MAX_WIDTH="
                        f"{grown_to:g}, and the control at MAX_WIDTH={args.max_width:g} would train that run again "
                        f"in its place: run the control with MAX_WIDTH={grown_to:g}, or in a copy of the outputs "
                        f"with REPLACE_STEP_3_2=1 (docs/transfer-control.md).")


def read_run_outcome(folder):
    """The outcome.json of a run folder's finetune (in its scratch/), validated; None when it has not finished."""
    return read_outcome(Path(folder) / "scratch")


def asked_to_grow(outcome):
    """True when the run's last attempt exited 2 (under its baseline: retry wider) and no wider attempt followed:
    the grow loop was stopped, since at its largest width step 3-2 ends with 0. Older outcomes without a
    status count as finished."""
    return outcome.get("status", ExitStatus.DONE) == ExitStatus.GROW


def width(args):
    outcome = read_run_outcome(args.folder)
    if outcome is None:
        raise UserError(f"{args.folder} holds no finished run ({OUTCOME_FILE} is missing).")
    if asked_to_grow(outcome):
        raise UserError(f"{args.folder} holds no finished run: its last attempt, at width {outcome['width']:g}, "
                        f"asked to grow (exit 2) and the grow loop stopped there; run it again.")
    print(f"{outcome['width']:g}")


def collect(args):
    cfg = get_config(args.config)
    root = paths.targets_root(args.arch, cfg.name, args.seed)
    rows, stale, unfinished, orphans = [], [], [], []
    baselines = read_baselines(paths.baseline_acc_file(args.arch, cfg.name, args.seed))
    selections = read_selections(paths.pickaback_result_csv(cfg.name, args.seed))
    for task in cfg.tasks:
        finished = {}      # (label, training seed) -> (run folder, outcome)
        for folder in sorted(root.glob(f"*/{task.name}")):
            label = backbone_label(cfg, folder.parent.name)
            if label is None:
                continue
            for training_seed, run in {args.seed: folder, **paths.repeat_dirs(folder)}.items():
                outcome = read_run_outcome(run)
                if outcome is None:
                    continue
                if asked_to_grow(outcome):
                    unfinished.append(run)
                elif not started_from_what_is_there_now(outcome, paths.output_root()) or \
                        decided_against_another_baseline(outcome, baselines.get(task.name)):
                    stale.append(run)
                else:
                    finished[label, training_seed] = run, outcome
        stale += runs_of_another_recipe(finished, selections.get(task.task_id), args.seed)
        twins_of = twin_labels(finished)
        for (label, training_seed), (run, outcome) in finished.items():
            if label == UNTRAINED:
                label = twins_of.get(training_seed)
                if label is None:
                    orphans.append(run)
                    continue
            rows.append([task.task_id, label, f"{outcome['width']:g}", f"{outcome['val_accuracy']:.4f}",
                         f"{outcome['test_accuracy']:.4f}", training_seed])
    rows.sort(key=lambda r: (r[0], isinstance(r[1], str), str(r[1]).zfill(6), r[5]))
    out = paths.transfer_csv(cfg.name, args.seed)
    with locked(out):
        write_csv_atomic(out, TRANSFER_FIELDS, rows)
    print(f"Wrote {out} ({len(rows)} runs).")
    if unfinished:
        print(f"Left out {len(unfinished)} runs whose grow loop stopped before they finished (their last attempt "
              f"asked for a wider network); the control finishes them when it runs their targets again: "
              f"{named_runs(unfinished, root)}")
    if orphans:
        print(f"Left out {len(orphans)} runs on an untrained twin whose backbone has no run of the target here (the "
              f"twin of an earlier pick); the control trains the twin of the current pick when it runs their targets "
              f"again: {named_runs(orphans, root)}")
    if stale:
        print(f"Left out {len(stale)} runs whose starting checkpoint or their target's step-1 baseline changed after "
              f"they ran (a backbone or the target trained again), or trained with other settings than step 3-2's "
              f"run of their target's selected backbone; the control redoes them when their targets and backbones "
              f"are among TASKS: {named_runs(stale, root)}")


def runs_of_another_recipe(finished, selected, seed):
    """Remove from `finished` (one target's runs, (label, training seed) -> (run folder, outcome)) and return the run
    folders trained with other settings than step 3-2's run on the `selected` backbone (an earlier EPOCHS or LR):
    one control compares runs of one recipe."""
    reference = finished.get((selected, seed))
    if reference is None:
        return []
    other = [key for key, (_, outcome) in finished.items()
             if not same_recipe(outcome.get("settings"), reference[1].get("settings"))]
    return [finished.pop(key)[0] for key in other]


def twin_labels(finished):
    """{training seed: the control's label of the target's untrained-twin run}: the twin of the backbone whose run
    started from the same checkpoint (the twin re-initialises the very file its backbone's run starts from).
    `finished`: (label, training seed) -> (run folder, outcome) of one target."""
    backbone_of = {(seed, outcome["start"]["path"]): label for (label, seed), (_, outcome) in finished.items()
                   if isinstance(label, int) and outcome.get("start")}
    return {seed: twin_label(backbone_of[seed, outcome["start"]["path"]])
            for (label, seed), (_, outcome) in finished.items()
            if label == UNTRAINED and outcome.get("start") and (seed, outcome["start"]["path"]) in backbone_of}


def named_runs(runs, root):
    """The first five run folders, relative to the targets' root, for a message."""
    return ", ".join(str(run.relative_to(root)) for run in runs[:5]) + (", ..." if len(runs) > 5 else "")


def quality(args):
    if args.table is not None and args.score is None:
        raise UserError("--table needs --score: the score of that table that makes the selection.")
    if args.select is not None and args.score is None:
        raise UserError("--select needs --score: without it, quality judges step 3-1's own picks, made by the rule "
                        "step 3-1 recorded.")
    if args.table is not None and not args.table.is_file():
        raise UserError(f"--table {args.table} is not a file.")
    if args.table is not None and len(args.config) > 1:
        raise UserError("--table is another step 3-1 table of one config's models: give one config with it.")
    judged = {}
    for cfg in map(get_config, dict.fromkeys(args.config)):
        figures, summary = selection_figures(cfg, args.arch, args.seed, args.split, args.select, args.score, args.table)
        if not figures:
            raise UserError(f"{paths.transfer_csv(cfg.name, args.seed)} is missing or holds no run of a selected "
                            f"backbone; run run_pickaback/transfer_matrix.sh {cfg.name} first.")
        print_quality(cfg, figures, summary, args.split)
        judged[cfg.name] = figures, {**summary, "per_target": [asdict(f) for f in figures]}
    header = {"split": args.split, "seed": args.seed, "score": args.score or "step 3-1"}
    if len(judged) == 1:
        (name, (_, summary)), = judged.items()
        table = args.table or paths.pickaback_table_csv(name, args.seed)
        print(json.dumps({"config": name, **header, "table": str(table), **summary}))
        return
    pooled = pooled_summary(list(judged.values()))
    print()
    print(pooled_sentence(list(judged), pooled))
    print(json.dumps({"configs": list(judged), **header, "pooled": pooled,
                      "per_config": {name: summary for name, (_, summary) in judged.items()}}))


def pooled_sentence(names, pooled):
    """One sentence of the figures pooled over the targets of several configs."""
    def gain(key):
        return gain_text(pooled[key])
    floor = "" if pooled["noise_regret"] is None else f" (the controls' noise alone: {pooled['noise_regret']:.4f})"
    return (f"Pooled over {', '.join(names)} ({pooled['targets']} targets): mean regret {figure(pooled['mean_regret'])}"
            f"{floor}; "
            f"gain of the selection (95% interval over targets) over a random pick {gain('gain_over_random')}, over "
            f"the untrained backbone {gain('gain_over_untrained')}, over scratch {gain('gain_over_scratch')}"
            + ("" if pooled["held_out_oracle"] is None else
               f"; the candidate best at one training seed over a random pick at another {gain('held_out_oracle')}")
            + ".")


def print_quality(cfg, figures, summary, split):
    print(f"Selection quality on '{cfg.name}' ({split} accuracy; oracle = the best candidate backbone, "
          f"random pick = the mean over candidates)")
    print(aligned_table(CONTROL_HEADER, control_rows(cfg, figures)))
    print()
    for line in control_sentences(cfg, summary):
        print(line)


def main(args):
    {"plan": plan, "width": width, "collect": collect, "quality": quality}[args.command](args)
    return 0


if __name__ == "__main__":
    run_main(main, get_args_parser)
