"""Map a config's task ids to names and modalities, and tell the bash scripts where outputs are (utils/paths.py).

    python -m tools.task_info demo 3                    # -> patterns_clean
    python -m tools.task_info demo 7 --field modality   # -> text
    python -m tools.task_info demo --list               # -> 1 2 ... 12, one per line
    python -m tools.task_info demo --list --modality image
    python -m tools.task_info demo --list 3 shapes_clean 03    # -> 3 1: the tasks named, as ids, each once
    python -m tools.task_info demo 7 --transfer_on 5    # -> step 4's checkpoint of target 7 on backbone 5
    python -m tools.task_info data/mydata/dataset.toml --config_name   # -> mydata (what output paths use)
    python -m tools.task_info demo --path baseline_acc_file             # -> <output root>/logs_perceiver_io/...
    python -m tools.task_info demo 7 --path target_dir --backbone shapes_notes   # -> step 3-2's folder of the pair
    python -m tools.task_info demo 7 --path target_dir --backbone shapes_notes --training_seed 3   # its repeat
    python -m tools.task_info demo --selections        # -> "<target id> <backbone id>" per line of step 3-1's picks
    python -m tools.task_info demo --selections 1 7    # -> the picks of targets 1 and 7 only
"""
from utils.cli import ArgumentParser, arch_reads, seed_int
from utils.dataset_config import CONFIG_HELP, MODALITIES, get_config
from utils.errors import UserError, run_main
from utils import paths
from utils.results import STEP_3_1
from utils_pickaback.ranking import picks_for, refuse_outdated_picks

FIELDS = ("name", "modality", "num_classes", "task_id", "related")
# --path: each kind from the arguments (arch, task, backbone, seed) and the config, as utils/paths.py lays it out
PATHS = {
    "logs_dir": lambda a, cfg: paths.logs_dir(a.arch, a.seed),
    "baseline_acc_file": lambda a, cfg: paths.baseline_acc_file(a.arch, cfg.name, a.seed),
    "baseline_dir": lambda a, cfg: paths.baseline_dir(a.arch, cfg.name, cfg.task(a.task).name, a.seed),
    "backbones_root": lambda a, cfg: paths.backbones_root(a.arch, cfg.name, a.seed),
    "backbone_dir": lambda a, cfg: paths.backbone_dir(a.arch, cfg.name, cfg.task(a.task).name, a.seed),
    "targets_root": lambda a, cfg: paths.targets_root(a.arch, cfg.name, a.seed),
    "sequences_root": lambda a, cfg: paths.sequences_root(a.arch, cfg.name, a.seed),
    "target_dir": lambda a, cfg: target_run_dir(a, cfg),
    "pickaback_result_csv": lambda a, cfg: paths.pickaback_result_csv(cfg.name, a.seed),
}
NEEDS_TASK = ("baseline_dir", "backbone_dir", "target_dir")


def target_run_dir(args, cfg):
    folder = paths.target_dir(args.arch, cfg.name, args.backbone, cfg.task(args.task).name, args.seed)
    return folder if args.training_seed is None else paths.repeat_dir(folder, args.training_seed)


def get_args_parser():
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help=f"dataset config: {CONFIG_HELP}")
    parser.add_argument("task", nargs="?", help="1-based task id or task name")
    parser.add_argument("--field", choices=FIELDS, default="name")
    parser.add_argument("--config_name", action="store_true",
                        help="print the config's name, which output paths use (a config file's `name`, not its path)")
    parser.add_argument("--list", nargs="*", metavar="TASK",
                        help="print every task id (or those of the TASKs given: ids or names, each once), one per line")
    parser.add_argument("--modality", choices=MODALITIES, help="with --list: only tasks of this modality")
    parser.add_argument("--transfer_on", metavar="BACKBONE",
                        help="print the key/value transfer checkpoint step 4 wrote for this target on that backbone")
    parser.add_argument("--path", choices=list(PATHS),
                        help="print this output path (backbone_dir, target_dir: of the task given)")
    parser.add_argument("--backbone", help="with --path target_dir: the backbone folder's name (a task name, "
                                           "scratch@<width> or untrained)")
    parser.add_argument("--training_seed", type=seed_int,
                        help="with --path target_dir: the folder of that run trained again with this seed (the "
                             "transfer control's CONTROL_SEEDS)")
    parser.add_argument("--selections", nargs="*", metavar="TARGET",
                        help="print step 3-1's picks of these targets (ids or names; none given: of every target), "
                             "'<target id> <backbone id>' per line")
    parser.add_argument("--arch", default="perceiver_io", help="with --transfer_on, --path, --selections")
    parser.add_argument("--seed", type=seed_int, default=paths.DEFAULT_SEED, help="with --transfer_on, --path, "
                                                                                  "--selections")
    return parser


def main(args):
    cfg = get_config(args.config)
    if args.config_name:
        print(cfg.name)
        return 0
    if args.path:
        if args.path in NEEDS_TASK and args.task is None:
            raise UserError(f"--path {args.path} needs a task id or name.")
        if args.path == "target_dir" and not args.backbone:
            raise UserError("--path target_dir needs --backbone.")
        print(PATHS[args.path](args, cfg))
        return 0
    if args.selections is not None:
        wanted = [cfg.task(key) for key in args.selections] if args.selections else cfg.tasks
        targets = {task.task_id for task in wanted if arch_reads(args.arch, task)}
        result_csv = paths.pickaback_result_csv(cfg.name, args.seed)
        selections = picks_for(result_csv, args.arch, targets)
        unpicked = sorted(targets - set(selections)) if args.selections else []
        if unpicked:        # targets named (step 3-2's TASKS) that step 3-1 has not picked for: said, not skipped
            raise UserError(f"No backbone for target {', '.join(map(str, unpicked))} in {result_csv}; run "
                            f"{STEP_3_1} for it first, or leave it out of TASKS.")
        refuse_outdated_picks(cfg, args.arch, args.seed, selections)
        print("\n".join(f"{target} {backbone}" for target, backbone in sorted(selections.items())))
        return 0
    if args.list is not None:
        tasks = [cfg.task(key) for key in args.list] if args.list else cfg.tasks
        ids = dict.fromkeys(task.task_id for task in tasks if args.modality in (None, task.modality))
        print("\n".join(map(str, ids)))
        return 0
    if args.task is None:
        raise UserError("Give a task id or name, or --list.")
    task = cfg.task(args.task)
    if args.transfer_on:
        print(transfer_checkpoint(cfg, task, cfg.task(args.transfer_on), args.arch, args.seed))
        return 0
    print(cfg.related.get(task.name, "") if args.field == "related" else getattr(task, args.field))
    return 0


def transfer_checkpoint(cfg, target, backbone, arch, seed):
    """Step 4's output for `target` beside `backbone`'s chosen checkpoint (named by step 2-2's chosen.json)."""
    chosen = paths.chosen_backbone(arch, cfg.name, backbone.name, seed)
    path = paths.kv_transfer_checkpoint(chosen, target.task_id)
    if not path.is_file():
        raise UserError(f"No key/value transfer of target {target.task_id} onto {chosen}; "
                        f"run run_pickaback/transfer_kv.sh {cfg.name} first.")
    return path


if __name__ == "__main__":
    run_main(main, get_args_parser)
