"""Step 3-1's models: saved baselines rebuilt read-only, as plain callables for ModelDiff.

For Perceiver IO a candidate is seen through the *target's* input adapter (its key/value input
projection and, for text, its embeddings): that is the model the target would get after step 4,
and it is what lets a text target rank image backbones and vice versa.
"""
from packnet_models.baseline import load_baseline
from utils import paths


def load_task_model(cfg, task, arch, seed=paths.DEFAULT_SEED):
    """The baseline of `task` (the run of `seed`) as a CPGModel (validated against the config and the task)."""
    model, _ = load_baseline(paths.baseline_dir(arch, cfg.name, task.name, seed), cfg, task, arch=arch)
    return model


def comparison_view(candidate_model, candidate_task, target_model, target_task):
    """A frozen eval-mode callable: the candidate's body and head behind the target's input adapter."""
    view = candidate_model.task_view(candidate_task.name)
    if "adapters" in view.body.task_modules(candidate_task.name):
        target_view = target_model.task_view(target_task.name)
        view.body.adapters[candidate_task.name] = target_view.body.adapters[target_task.name]
        view.modality = target_task.modality
    return view
