"""Step 3-1's models: saved checkpoints rebuilt read-only, as plain callables for ModelDiff.

The target is its own step-1 baseline. A candidate is, by default, the model the target would
receive (its step-2-2 chosen checkpoint), or its step-1 baseline (`--compare baseline`, as the original). A
candidate of the target's modality is seen as it is, through its own input adapter (as Pick-a-back
compares models). One of the other modality reads, where the config pairs the target's samples with
samples of that modality (an image and its caption), the paired samples through its own adapter; without
a pairing it has no adapter for the target's inputs and is seen through the target's (its key/value
input projection and, for text, its embeddings): the model the target would get after step 4.
"""
import torch

from models.cpg import CPGModel
from packnet_models.baseline import load_baseline
from utils import paths
from utils.checkpoint import load_model
from utils.errors import UserError

COMPARED = ("received", "baseline")
CROSS_MODAL = ("paired", "target_adapter")


def load_task_model(cfg, task, arch, seed=paths.DEFAULT_SEED):
    """The baseline of `task` (the run of `seed`) as a CPGModel (validated against the config and the task)."""
    model, _ = load_baseline(paths.baseline_dir(arch, cfg.name, task.name, seed), cfg, task, arch=arch)
    return model


def load_candidate_model(cfg, task, arch, seed, compared):
    if compared == "baseline":
        return load_task_model(cfg, task, arch, seed)
    path = paths.candidate_checkpoint(arch, cfg.name, task.name, seed, compared)
    model, _ = load_model(path, expect_arch=arch, expect_config=cfg)
    if model.task_names[-1] != task.name:
        raise UserError(f"{path} is not a backbone checkpoint of {task.name} (it was replaced); re-run step 2-2 "
                        f"(run_pickaback/select_pruning_ratio_of_backbone.sh {cfg.name}) to install it again.")
    return model


UNTRAINED_SEED = 0     # every untrained twin of one shape is the same network, so it is one floor for all of them


def untrained_twin(candidate_model, task, cfg):
    """The candidate's architecture, profile and width with fresh weights, holding its task: the floor step 3-1
    measures a candidate's similarity against (a model that learned little, seen through the target's own adapter,
    can look like the target as much as a network that learned nothing)."""
    torch.manual_seed(UNTRAINED_SEED)
    twin = CPGModel.create(candidate_model.arch, candidate_model.profile, candidate_model.width_mult)
    twin.add_task(task, cfg)
    return twin.to(next(candidate_model.parameters()).device)


def compared_as(candidate_task, target_task, paired):
    """How step 3-1 sees a candidate: "own adapter" (the target's modality: the target's probes through its own
    adapter), else "paired probes" (reading the paired samples through its own adapter) or "target adapter"
    (the target's probes through the target's adapter)."""
    if candidate_task.modality == target_task.modality:
        return "own adapter"
    return "paired probes" if paired else "target adapter"


@torch.no_grad()
def logits_and_features(view, inputs):
    """(logits, the features its head reads) of a task view on `inputs`, both float32."""
    captured = []
    head = view.body.heads[view.task]
    handle = head.register_forward_pre_hook(lambda module, args: captured.append(args[0]))
    try:
        logits = view(inputs)
    finally:
        handle.remove()
    return logits.float(), captured[0].float()


def comparison_view(candidate_model, candidate_task, target_view, how="own adapter"):
    """A frozen eval-mode callable: the candidate's body and head, behind the input adapter of `target_view`
    (the target's task_view, built once per target and shared read-only) when `how` (compared_as) is
    "target adapter", else behind its own."""
    view = candidate_model.task_view(candidate_task.name)
    has_adapter = "adapters" in view.body.task_modules(candidate_task.name)
    if has_adapter and how == "target adapter":
        view.body.adapters[candidate_task.name] = target_view.body.adapters[target_view.task]
        view.modality = target_view.modality
    return view
