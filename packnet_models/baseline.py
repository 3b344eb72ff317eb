"""Step 1's model: a single-task model trained from scratch (by CPG's finetune stage), in the project's format.

It is the same `CPGModel` every step uses (defined once in `models/`), holding one task that owns
every weight, so a baseline checkpoint can be compared (step 3-1) or transferred (step 4) directly.
"""
from models.cpg import CPGModel
from utils.checkpoint import load_model
from utils.errors import UserError
from utils.paths import folder_checkpoint


def build_baseline(arch, profile, cfg, task):
    model = CPGModel.create(arch, profile)
    model.add_task(task, cfg)
    return model


def load_baseline(folder, cfg, task, arch=None):
    """The saved baseline of `task`, validated against the config (refused with one sentence otherwise)."""
    path = folder_checkpoint(folder)   # step 1 keeps exactly one checkpoint per task
    model, payload = load_model(path, expect_arch=arch, expect_config=cfg)
    if model.task_names != [task.name]:
        raise UserError(f"{path} is the baseline of {', '.join(model.task_names)}, not of {task.name}.")
    return model, payload
