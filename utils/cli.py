"""Command-line pieces shared by the training entry points (steps 1, 2-1, 3-2)."""
from utils.dataset_config import CONFIG_NAMES
from utils.errors import UserError


def add_common_args(p):
    p.add_argument("--arch", default="perceiver_io", choices=["perceiver_io", "lenet5"])
    p.add_argument("--profile", default="demo", choices=["demo", "paper"], help="model size")
    p.add_argument("--dataset_config", default="demo", help=f"one of {', '.join(CONFIG_NAMES)}")
    p.add_argument("--num_classes", type=int, default=-1, help="-1: from the dataset config")
    p.add_argument("--modality", choices=["image", "text"], help="checked against the config")
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--val_batch_size", type=int, default=100)
    p.add_argument("--weight_decay", type=float, default=4e-5)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--val_fraction", type=float, default=None,
                   help="validation split carved from train for decisions (default: the config's, 0.1 "
                        "for real data); 0 = use test (the original)")
    p.add_argument("--seed", type=int, default=2)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--force", action="store_true", help="redo work whose result exists")
    return p


def resolve_task(cfg, key, args):
    """The TaskSpec named by `key` (name or 1-based id), checked against --num_classes/--modality/--arch."""
    task = cfg.task(int(key) if str(key).isdigit() else key)
    if args.num_classes not in (-1, task.num_classes):
        raise UserError(f"--num_classes {args.num_classes} contradicts the config: task {task.name} "
                        f"has {task.num_classes} classes (pass -1 to take it from the config).")
    if args.modality and args.modality != task.modality:
        raise UserError(f"--modality {args.modality} contradicts the config: task {task.name} is a "
                        f"{task.modality} task.")
    if args.arch == "lenet5" and task.modality != "image":
        raise UserError(f"lenet5 reads images only, and task {task.name} is a text task; use --arch perceiver_io.")
    return task
