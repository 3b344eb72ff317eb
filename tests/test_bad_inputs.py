"""A corpus of bad inputs and faults a user can cause, each tried on a finished pipeline (the session's reduced
demo run, copied): every one ends in one sentence and a non-zero exit, or in a correct result; none prints a
traceback; and every finished output is byte-identical afterwards (the logs, appended to by design, and lock
files aside). A fault planted in an output (a side file made malformed) is restored after its case."""
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from conftest import python, sha256
from utils import paths
from utils.dataset_config import DEMO_TASKS
from utils.results import read_selections

ROOT = Path(__file__).resolve().parent.parent
ARCH, CFG = "perceiver_io", "demo"
NOT_OUTPUTS = (".log", ".lock")        # appended to, or taken, by any run: not results


@dataclass
class Fault:
    name: str
    command: list                  # ["step", <script>, <cfg>] for run_pickaback/<script>.sh, else python's arguments
    env: dict = field(default_factory=dict)
    plant: Callable | None = None  # (world) -> the output files it changed (restored after the case)
    correct: Callable | None = None   # (world, completed process) -> None: a correct result is expected (exit 0)
    words: str = ""                # a word the sentence must contain
    changes: tuple = ()            # outputs the case changes on purpose (their paths under the output root)


@dataclass
class World:
    out: Path          # the finished outputs (a copy)
    data: Path         # the demo data root the pipeline ran on (read-only)
    tmp: Path          # this case's scratch folder

    def backbone(self, task):
        return self.out / paths.backbone_dir(ARCH, CFG, task).relative_to(paths.output_root())

    def baseline_file(self):
        return self.out / paths.baseline_acc_file(ARCH, CFG).relative_to(paths.output_root())

    def root_file(self, name):
        return self.out / name

    def data_copy(self):
        copy = self.tmp / "data"
        if not copy.exists():
            shutil.copytree(self.data, copy)
        return copy


# ---------------------------------------------------------------------------------------------- planting
def write(path, text):
    def plant(world):
        target = path(world)
        target.write_text(text, encoding="utf-8")
        return [target]
    return plant


def rewrite(path, change):
    def plant(world):
        target = path(world)
        target.write_text(change(target.read_text(encoding="utf-8")), encoding="utf-8")
        return [target]
    return plant


def chosen_json(world):
    """Step 2-2's choice of the backbone step 3-1 picked for target 1 (the one step 4 reads for it)."""
    picked = read_selections(world.root_file(paths.pickaback_result_csv(CFG).name))[1]
    return world.backbone(DEMO_TASKS[picked - 1][0]) / "gradual_prune" / paths.CHOSEN_FILE


def chosen_checkpoint(world):
    return chosen_json(world).parent / json.loads(chosen_json(world).read_text())["checkpoint"]


def record_txt(world):
    return world.backbone("shapes_clean") / "gradual_prune" / "record.txt"


def truncate(path):
    def plant(world):
        target = path(world)
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
        return [target]
    return plant


class Payload:
    """A pickle that would create a file if it were ever unpickled without weights_only."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def pickled_payload(world):
    import torch
    target = chosen_checkpoint(world)
    torch.save({"model": Payload(world.tmp / "payload_ran")}, target)
    return [target]


def config_file(world, **changes):
    """A dataset.toml of the demo's data under another name (no finished outputs of it exist), with `changes`."""
    fields = {"name": "mydemo", "image_root": str(world.data / "demo" / "images"),
              "text_root": str(world.data / "demo" / "text"), "image_size": 16, "max_text_length": 16,
              "vocab_size": 1024, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], **changes.pop("top", {})}
    task = {"name": "shapes_clean", "modality": "image", "num_classes": 5, **changes}
    lines = [f"{key} = {json.dumps(value)}" for key, value in fields.items()]
    lines += ["", "[[tasks]]", *[f"{key} = {json.dumps(value)}" for key, value in task.items()]]
    path = world.tmp / "dataset.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def data_fault(change):
    """The demo data copied and changed by `change(data root copy)`; the steps read the copy."""
    def plant(world):
        change(world.data_copy())
        return []
    return plant


def demo_task(root, split, task):
    kind = "images" if task in ("shapes_clean", "shapes_noisy") else "text"
    return root / "demo" / kind / split / task


def remove_class_from_test(root):
    shutil.rmtree(demo_task(root, "test", "shapes_clean") / "circle")


def add_class_to_both_splits(root):
    for split in ("train", "test"):
        folder = demo_task(root, split, "shapes_clean")
        shutil.copytree(folder / "circle", folder / "zigzag")


def empty_a_class(root):
    for file in (demo_task(root, "train", "shapes_clean") / "circle").iterdir():
        file.unlink()


def garble_an_image(root):
    first = sorted((demo_task(root, "train", "shapes_clean") / "circle").iterdir())[0]
    first.write_bytes(b"not an image at all")


def non_utf8_caption(root):
    first_class = sorted(demo_task(root, "train", "shapes_captions").iterdir())[0]
    sorted(first_class.iterdir())[0].write_bytes(b"\xff\xfe caption \x80")


# ------------------------------------------------------------------------------------------- the corpus
def step(script, cfg=CFG):
    return ["step", script, cfg]


def unchanged_selection(world, proc):
    assert "already computed" in proc.stdout


ONE_TASK = {"PROFILE": "demo", "TASKS": "1"}     # a config file's one task, on the CPU-sized model
FAULTS = [
    # environment variables, checked before any work
    Fault("JOBS=0", step("baseline"), env={"JOBS": "0"}, words="JOBS"),
    Fault("JOBS=abc", step("baseline"), env={"JOBS": "abc"}, words="JOBS"),
    Fault("FORCE=yes", step("baseline"), env={"FORCE": "yes"}, words="FORCE"),
    Fault("PRUNE_STAGES decreasing", step("wo_backbone"), env={"PRUNE_STAGES": "0.9 0.3"}, words="PRUNE_STAGES"),
    Fault("ALLOW_ACC_LOSS=5", step("wo_backbone"), env={"ALLOW_ACC_LOSS": "5"}, words="ALLOW_ACC_LOSS"),
    Fault("EPOCHS=0", step("baseline"), env={"EPOCHS": "0"}, words="EPOCHS"),
    Fault("SEED=-1", step("baseline"), env={"SEED": "-1"}, words="SEED"),
    Fault("MAX_WIDTH=abc", step("w_backbone"), env={"MAX_WIDTH": "abc"}, words="MAX_WIDTH"),
    Fault("DEVICE=gpu", step("baseline"), env={"DEVICE": "gpu"}, words="DEVICE"),
    Fault("ARCH=resnet", step("baseline"), env={"ARCH": "resnet"}, words="ARCH"),
    Fault("output root is a file", step("baseline"), env={"MMPAB_OUTPUT_ROOT": "{tmp}/a_file"},
          plant=lambda world: (world.tmp / "a_file").write_text("x") and [], words="MMPAB_OUTPUT_ROOT"),
    Fault("unknown config", step("baseline", "nosuch"), words="nosuch"),
    Fault("unknown task", step("baseline"), env={"TASKS": "99"}, words="99"),
    Fault("data root missing", step("baseline", "cifar100"),   # (the demo's would be generated there)
          env={"MMPAB_DATA_ROOT": "{tmp}/nowhere", "PROFILE": "demo"}, words="cifar100"),
    # side files made malformed
    Fault("record.txt junk key", step("select_pruning_ratio_of_backbone"),
          plant=write(record_txt, '{"0.0": 0.5, "abc": 0.5}'), words="record.txt"),
    Fault("record.txt string value", step("select_pruning_ratio_of_backbone"),
          plant=write(record_txt, '{"0.0": "high"}'), words="record.txt"),
    Fault("record.txt not JSON", step("select_pruning_ratio_of_backbone"),
          plant=write(record_txt, '{"0.0": 0.5'), words="record.txt"),
    Fault("chosen.json truncated", step("transfer_kv"), env={"TASKS": "1 2"},
          plant=rewrite(chosen_json, lambda text: text[: len(text) // 2]), words="chosen.json"),
    Fault("chosen.json names a missing checkpoint", step("transfer_kv"), env={"TASKS": "1 2"},
          plant=rewrite(chosen_json, lambda text: text.replace("checkpoint-", "checkpoint-9")), words="checkpoint"),
    Fault("baseline accuracy not a number", step("select_pruning_ratio_of_backbone"),
          plant=rewrite(World.baseline_file, lambda text: text.replace('"shapes_clean": "', '"shapes_clean": "x')),
          words="baseline"),
    Fault("baseline file not JSON", step("baseline"), plant=write(World.baseline_file, "{"), words="baseline"),
    Fault("outcome.json without its keys", [sys.executable, "-m", "tools.transfer_control", "collect", CFG],
          plant=write(lambda w: next(w.out.rglob("CPG_fromsingle_scratch_woexp_target/**/outcome.json")), "{}"),
          words="outcome.json"),
    Fault("step 3-1's table with a repeated header", step("find_backbone"),
          plant=rewrite(lambda world: world.root_file("pickaback_demo_table.csv"),
                        lambda text: text + text.splitlines()[0] + "\n"), words="pickaback_demo_table.csv"),
    Fault("step 3-1's result names task 99", step("transfer_kv"),
          plant=rewrite(lambda world: world.root_file("pickaback_demo_result.csv"),
                        lambda text: re.sub(r"\n7,\d+", "\n7,99", text)), words="99"),
    Fault("results CSV malformed", [sys.executable, "-m", "tools.report", CFG, "--summary"],
          plant=write(lambda world: world.root_file("results_demo.csv"), "target_id,what\n1,2\n"),
          words="results_demo.csv"),
    # checkpoints a peer hands over
    Fault("chosen checkpoint truncated", step("transfer_kv"), env={"TASKS": "1 2"},
          plant=truncate(chosen_checkpoint), words="checkpoint"),
    Fault("chosen checkpoint carries a pickle payload", step("transfer_kv"), env={"TASKS": "1 2"},
          plant=pickled_payload, words="checkpoint"),
    # dataset configs
    Fault("config std 0", step("baseline", "{tmp}/dataset.toml"), env=ONE_TASK,
          plant=lambda world: config_file(world, top={"std": [0, 0, 0]}) and [], words="std"),
    Fault("config task name with a dot", step("baseline", "{tmp}/dataset.toml"), env=ONE_TASK,
          plant=lambda world: config_file(world, name="captions.v2") and [], words="captions.v2"),
    Fault("config task name with ../", step("baseline", "{tmp}/dataset.toml"), env=ONE_TASK,
          plant=lambda world: config_file(world, name="../shapes_clean") and [], words="../shapes_clean"),
    Fault("config huge max_text_length", step("baseline", "{tmp}/dataset.toml"), env=ONE_TASK,
          plant=lambda world: config_file(world, top={"max_text_length": 10 ** 9}) and [], words="max_text_length"),
    Fault("config num_classes larger than the class folders", step("baseline", "{tmp}/dataset.toml"), env=ONE_TASK,
          plant=lambda world: config_file(world, num_classes=6) and [], words="6"),
    # data
    Fault("class folder in train only", step("baseline"), env={"TASKS": "1", "MMPAB_DATA_ROOT": "{tmp}/data"},
          plant=data_fault(remove_class_from_test), words="circle"),
    Fault("more class folders than num_classes", step("baseline"),
          env={"TASKS": "1", "MMPAB_DATA_ROOT": "{tmp}/data"}, plant=data_fault(add_class_to_both_splits)),
    Fault("empty class folder", step("baseline"), env={"TASKS": "1", "MMPAB_DATA_ROOT": "{tmp}/data"},
          plant=data_fault(empty_a_class), words="circle"),
    Fault("unreadable image", step("baseline"), env={"TASKS": "1", "MMPAB_DATA_ROOT": "{tmp}/data"},
          plant=data_fault(garble_an_image), words="image"),
    Fault("caption not UTF-8", step("baseline"), env={"TASKS": "7", "MMPAB_DATA_ROOT": "{tmp}/data"},
          plant=data_fault(non_utf8_caption), words="UTF-8"),
    # command lines
    Fault("mistyped flag", [sys.executable, "packnet_cifar100_main_normal.py", "--dataset", "1", "--epohcs", "3"],
          words="--epohcs"),
    Fault("prune without its record", [sys.executable, "CPG_MM_main_normal.py", "--dataset", "1", "--mode",
                                       "prune", "--save_folder", "{tmp}/x", "--target_sparsity", "0.5"]),
    Fault("step 3-1 for an unknown target", [sys.executable, "pickaback_perceiverIO.py", "--target_id", "99"],
          words="99"),
    # what must simply work
    Fault("step 3-1 narrowed to two tasks", step("find_backbone"), env={"TASKS": "7 8"},
          correct=unchanged_selection,        # the table keeps every pair; the picks are those among 7 and 8
          changes=("pickaback_demo_result.csv", "pickaback_demo_result.json")),
    Fault("step 2-2 again", step("select_pruning_ratio_of_backbone"),
          correct=lambda world, proc: None),
    Fault("the summary", [sys.executable, "-m", "tools.report", CFG, "--summary"],
          correct=lambda world, proc: None),
    Fault("config with a byte order mark", [sys.executable, "-m", "tools.task_info", "{tmp}/dataset.toml", "--list"],
          plant=lambda world: config_file(world).write_bytes(b"\xef\xbb\xbf" + config_file(world).read_bytes())
          and [], correct=lambda world, proc: None),
]


# ------------------------------------------------------------------------------------------ the harness
@pytest.fixture(scope="module")
def finished(pipeline, tmp_path_factory):
    """(a copy of the finished pipeline to plant faults in, another to restore them from, its outputs' hashes)."""
    corpus = tmp_path_factory.mktemp("corpus")
    for name in ("out", "pristine"):
        shutil.copytree(pipeline["out"], corpus / name)
    return corpus / "out", corpus / "pristine", output_hashes(corpus / "out")


def output_hashes(out):
    return {path: sha256(path) for path in out.rglob("*") if path.is_file() and path.suffix not in NOT_OUTPUTS}


def command_of(fault, tmp):
    if fault.command[0] == "step":
        return ["bash", str(ROOT / "run_pickaback" / f"{fault.command[1]}.sh"), fault.command[2].format(tmp=tmp)]
    return [part.format(tmp=tmp) for part in fault.command]


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_a_bad_input_is_one_sentence_or_a_correct_result_and_damages_nothing(fault, finished, pipeline,
                                                                            small_demo_root, tmp_path):
    out, pristine, before = finished
    world = World(out, small_demo_root, tmp_path)
    planted = []
    try:
        planted = fault.plant(world) if fault.plant else []
        env = {**pipeline["env"], "MMPAB_OUTPUT_ROOT": str(out), "TQDM_DISABLE": "1",
               **{key: value.format(tmp=tmp_path) for key, value in fault.env.items()}}
        command = command_of(fault, tmp_path)
        proc = (python(*command[1:], env=env) if command[0] == sys.executable else
                subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300))
        said = proc.stdout + proc.stderr
        assert "Traceback" not in said, said[-3000:]
        if fault.correct is not None:
            assert proc.returncode == 0, said[-3000:]
            fault.correct(world, proc)
        else:
            errors = [line for line in proc.stderr.splitlines() if line.strip()]
            assert proc.returncode not in (0, 2, 5, 6), said[-3000:]
            assert 1 <= len(errors) <= 2, proc.stderr          # the sentence (and the step's line naming it)
            assert fault.words in proc.stderr, proc.stderr
        assert not (tmp_path / "payload_ran").exists()
        after = output_hashes(out)
        meant = set(planted) | {out / name for name in fault.changes}
        changed = sorted(str(p.relative_to(out)) for p, h in before.items() if p not in meant and after.get(p) != h)
        assert changed == [], changed
    finally:
        reset(out, pristine, before)


def reset(out, pristine, before):
    """The outputs as the pipeline left them (planted faults, and whatever a failed case changed), for the next case."""
    after = output_hashes(out)
    for path, digest in before.items():
        if after.get(path) != digest:
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(pristine / path.relative_to(out), path)
    for path in set(after) - set(before):
        path.unlink()
