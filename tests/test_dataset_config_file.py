"""A dataset described by a config file (.toml / .json), no code edited: parsing, discovery by name, one-sentence
errors, provenance that follows the file's contents, and the bash pipeline run on such a dataset."""
import codecs
import copy
import csv
import dataclasses
import json
import re
import shutil
import subprocess

import pytest

from tests.conftest import MYDATA_TASKS, ok, python
from utils import dataset_config
from utils.data import load_split
from utils.dataset_config import REPO_ROOT, get_config
from utils.errors import UserError


def config_table(cfg, image_root, text_root) -> dict:
    """`cfg`'s content as a config file's keys, with these roots (relative to the file)."""
    tasks = []
    for task in cfg.tasks:
        entry = {"name": task.name, "modality": task.modality, "num_classes": task.num_classes,
                 "mean": list(task.mean), "std": list(task.std)}
        entry.update({key: partners[task.name] for key, partners in (("related", cfg.related), ("paired", cfg.paired))
                      if task.name in partners})
        tasks.append(entry)
    return {"image_root": image_root, "text_root": text_root, "image_size": cfg.image_size,
            "train_augment": cfg.train_augment, "text_encoding": cfg.text_encoding, "vocab_size": cfg.vocab_size,
            "max_text_length": cfg.max_text_length, "val_fraction": cfg.val_fraction,
            "prepare_command": cfg.prepare_command, "tasks": tasks}


def toml_text(table) -> str:
    """A config table as TOML: the top-level keys, then one [[tasks]] table per task. JSON writes the
    strings, numbers and lists of numbers used here as TOML does."""
    lines = [f"{key} = {json.dumps(value)}" for key, value in table.items() if key != "tasks" or not value]
    for task in table.get("tasks", []):
        lines += ["", "[[tasks]]"] + [f"{key} = {json.dumps(value)}" for key, value in task.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def demo_beside(tmp_path, small_demo_root):
    """tmp_path with data/ -> the small demo data, for config files that point at it."""
    (tmp_path / "data").symlink_to(small_demo_root, target_is_directory=True)
    return tmp_path


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_a_file_with_the_demo_entrys_content_is_the_demo_config(demo_beside, small_demo_root, suffix):
    builtin = get_config("demo", data_root_dir=small_demo_root)
    table = config_table(builtin, "data/demo/images", "data/demo/text")
    path = demo_beside / f"demo_copy{suffix}"
    path.write_text(toml_text(table) if suffix == ".toml" else json.dumps(table))
    cfg = get_config(str(path))
    assert cfg.name == "demo_copy"                                          # the file's stem
    assert cfg.image_root == demo_beside / "data/demo/images" and cfg.text_root == demo_beside / "data/demo/text"
    assert cfg.source_fingerprint and cfg.provenance_id == f"demo_copy@{cfg.source_fingerprint}"
    same_but_origin = dataclasses.replace(cfg, name="demo", image_root=builtin.image_root,
                                          text_root=builtin.text_root, source_fingerprint="")
    for field in dataclasses.fields(builtin):
        assert getattr(same_but_origin, field.name) == getattr(builtin, field.name), field.name
    for task_id in (1, 7):                                                  # reads the same data
        assert load_split(cfg, cfg.task(task_id), "test").labels.tolist() == \
            load_split(builtin, builtin.task(task_id), "test").labels.tolist()


def write_dataset(root, name, text, file_name="dataset.toml"):
    (root / name).mkdir(parents=True, exist_ok=True)
    (root / name / file_name).write_text(text)
    return root / name / file_name


MINIMAL = "image_size = 8\n\n[[tasks]]\nname = 'a'\nmodality = 'image'\nnum_classes = 2\n"


def test_a_name_finds_data_root_name_dataset_toml_and_builtins_win(tmp_path):
    write_dataset(tmp_path, "mine", MINIMAL)
    cfg = get_config("mine", data_root_dir=tmp_path)
    assert cfg.name == "mine" and cfg.image_root == tmp_path / "mine" / "images"   # the folder's name, roots
    assert cfg.task(1).mean == (0.485, 0.456, 0.406) and cfg.val_fraction == 0.1   # the defaults
    write_dataset(tmp_path, "other", json.dumps({"name": "renamed", "image_size": 8, "tasks": [
        {"name": "a", "modality": "image", "num_classes": 2}]}), "dataset.json")
    assert get_config("other", data_root_dir=tmp_path).name == "renamed"
    write_dataset(tmp_path, "demo", MINIMAL)
    assert get_config("demo", data_root_dir=tmp_path).num_tasks == 12 and get_config("demo").source_fingerprint == ""


def test_a_name_with_both_a_toml_and_a_json_file_is_one_sentence(tmp_path):
    """Which of the two describes the data is unknown (before, the TOML file was read without a word)."""
    write_dataset(tmp_path, "mine", MINIMAL)
    write_dataset(tmp_path, "mine", json.dumps({"image_size": 8, "tasks": [
        {"name": "b", "modality": "image", "num_classes": 2}]}), "dataset.json")
    with pytest.raises(UserError) as err:
        get_config("mine", data_root_dir=tmp_path)
    assert_one_sentence(str(err.value), "holds both dataset.toml and dataset.json", str(tmp_path / "mine"))
    assert get_config(str(tmp_path / "mine" / "dataset.json")).task(1).name == "b"


def test_a_name_taken_from_the_folder_or_file_is_judged_as_that(tmp_path):
    """A file without key 'name' is named after its folder (or itself): an unfit folder name is said as one, and an
    upper-case suffix is a config file's suffix too."""
    path = write_dataset(tmp_path, "my photos", MINIMAL)
    with pytest.raises(UserError) as err:
        get_config(str(path))
    assert_one_sentence(str(err.value), "key 'name' is unset, so the config takes its folder's name, 'my photos', "
                                        "which is not a valid config name; set 'name'", str(path))
    path.write_text("name = 'photos'\n" + MINIMAL)
    assert get_config(str(path)).name == "photos"
    upper = write_dataset(tmp_path, "x", json.dumps({"image_size": 8, "tasks": [
        {"name": "c", "modality": "image", "num_classes": 2}]}), "Mine.JSON")
    assert get_config(str(upper)).name == "Mine" and get_config(str(upper)).task(1).name == "c"


def test_an_unknown_name_says_what_works(tmp_path):
    write_dataset(tmp_path, "mine", MINIMAL)
    with pytest.raises(UserError) as err:
        get_config("imagenet", data_root_dir=tmp_path)
    message = str(err.value)
    assert "valid configs are: demo, cifar100, cub, digits, emoji, fashion, oxford, wordnet, mine;" in message
    assert ".toml or .json" in message and str(tmp_path / "<name>" / "dataset.toml") in message


def test_the_readme_names_every_built_in_config_as_winning_over_a_folder():
    readme = (REPO_ROOT / "data" / "readme.md").read_text()
    listed = re.search(r"when it is not a built-in config's\s+\((.*?) win\)", readme).group(1)
    assert set(re.findall(r"`(\w+)`", listed)) == set(dataset_config.CONFIG_NAMES)


def test_the_readme_example_is_a_working_config(tmp_path, small_demo_root):
    readme = (REPO_ROOT / "data" / "readme.md").read_text()
    section = readme[readme.index("## Your own data: a config file"):]
    example = re.search(r"```toml\n(.*?)```", section, re.S).group(1)
    (tmp_path / "demo").symlink_to(small_demo_root / "demo", target_is_directory=True)
    write_dataset(tmp_path, "shapes", example)
    cfg = get_config("shapes", data_root_dir=tmp_path)
    assert [(t.name, t.modality) for t in cfg.tasks] == [("shapes_clean", "image"), ("shapes_noisy", "image"),
                                                         ("shapes_captions", "text"), ("shapes_notes", "text")]
    assert cfg.related["shapes_captions"] == "shapes_notes"
    assert cfg.paired == {"shapes_clean": "shapes_captions", "shapes_captions": "shapes_clean",
                          "shapes_noisy": "shapes_notes", "shapes_notes": "shapes_noisy"}
    for task in cfg.tasks:
        assert len(load_split(cfg, task, "train")) > 0


# ---------------------------------------------------------------- one sentence naming the key and the file

VALID = {"image_size": 8, "tasks": [
    {"name": "a", "modality": "image", "num_classes": 2, "related": "b", "paired": "t"},
    {"name": "b", "modality": "image", "num_classes": 2},
    {"name": "t", "modality": "text", "num_classes": 2}]}


def changed(change):
    table = copy.deepcopy(VALID)
    change(table)
    return table


def task(i, **keys):
    return lambda table: table["tasks"][i].update(keys)


BROKEN = {   # case -> (the config table, the key the sentence names, words it says)
    "missing_tasks": (changed(lambda t: t.pop("tasks")), "tasks", "missing"),
    "empty_task_list": (changed(lambda t: t.update(tasks=[])), "tasks", "non-empty list of tables"),
    "task_without_num_classes": (changed(lambda t: t["tasks"][1].pop("num_classes")), "num_classes", "task 2"),
    "image_size_missing": (changed(lambda t: t.pop("image_size")), "image_size", "image tasks"),
    "typo_at_the_top": (changed(lambda t: t.update(image_sise=8)), "image_sise", "did you mean 'image_size'"),
    "typo_in_a_task": (changed(task(2, num_clases=2)), "num_clases", "did you mean 'num_classes'"),
    "wrong_type": (changed(lambda t: t.update(image_size="32")), "image_size", "whole number"),
    "mean_of_two_numbers": (changed(task(0, mean=[0.5, 0.5])), "mean", "three numbers"),
    "boolean_count": (changed(task(0, num_classes=True)), "num_classes", "whole number"),
    "modality": (changed(task(2, modality="audio")), "modality", "'image' or 'text'"),
    "related_unknown": (changed(task(1, related="zz")), "related", "not a task of this file"),
    "related_to_itself": (changed(task(1, related="b")), "related", "names the task itself"),
    "paired_unknown": (changed(task(2, paired="zz")), "paired", "not a task of this file"),
    "paired_same_modality": (changed(task(0, paired="b")), "paired", "another image task"),
    "paired_twice": (changed(task(1, paired="t")), "paired", "already paired with 'a'"),
    "duplicate_names": (changed(task(1, name="a")), "name", "repeats the name of task 1"),
    "val_fraction_1": (changed(lambda t: t.update(val_fraction=1.0)), "val_fraction", "up to (not including) 1"),
    "val_fraction_negative": (changed(lambda t: t.update(val_fraction=-0.1)), "val_fraction", "from 0"),
    "train_augment": (changed(lambda t: t.update(train_augment="flip")), "train_augment", "'crop_flip' or"),
    "text_encoding": (changed(lambda t: t.update(text_encoding="bpe")), "text_encoding", "'hashed_words' or"),
    "bytes_vocabulary": (changed(lambda t: t.update(text_encoding="bytes", vocab_size=256)), "vocab_size", "257"),
    "built_in_name": (changed(lambda t: t.update(name="demo")), "name", "built-in"),
    "name_unfit_for_paths": (changed(lambda t: t.update(name="my data")), "name", "letters, digits"),
    "name_of_dots": (changed(lambda t: t.update(name="..")), "name", "not start with '.'"),
    "name_of_a_flag": (changed(lambda t: t.update(name="-x")), "name", "not start with '.' or '-'"),
    # config mine's test accuracies are kept in baseline_mine_test_acc.txt, config mine_test's baselines' file
    "name_ending_in_test": (changed(lambda t: t.update(name="mine_test")), "name", "must not end in '_test'"),
    # a task's name is a folder of every output path and a key of the model's per-task modules
    "task_name_with_a_dot": (changed(task(0, name="captions.v2")), "name", "task 1 ('captions.v2') must hold only"),
    "task_name_up_a_folder": (changed(task(0, name="../b")), "name", "letters, digits, '_' and '-'"),
    "task_name_of_dots": (changed(task(0, name="..")), "name", "letters, digits, '_' and '-'"),
    "task_name_with_a_slash": (changed(task(0, name="x/y")), "name", "letters, digits, '_' and '-'"),
    "task_name_absolute": (changed(task(0, name="/tmp/x")), "name", "letters, digits, '_' and '-'"),
    "task_name_of_a_flag": (changed(task(0, name="--help")), "name", "not start with '-'"),
    "task_name_of_digits": (changed(task(0, name="2")), "name", "must not be digits only"),
    # step 3-2's runs on backbone <task> and on the untrained twin would share one folder
    "task_named_as_the_untrained_folder": (changed(task(0, name="untrained")), "name", "must not be 'untrained'"),
    "std_zero": (changed(lambda t: t.update(std=[0, 0, 0])), "std", "greater than 0"),
    "task_std_negative": (changed(task(1, std=[0.2, -0.2, 0.2])), "std", "task 2 ('b') must be three finite"),
    "max_text_length_huge": (changed(lambda t: t.update(max_text_length=10 ** 9)), "max_text_length", "to 4096"),
    "vocab_size_huge": (changed(lambda t: t.update(vocab_size=2 ** 40)), "vocab_size", "to 1048576"),
    "image_patch_zero": (changed(lambda t: t.update(image_patch=0)), "image_patch", "from 1 to image_size (8)"),
    "image_patch_above_image_size": (changed(lambda t: t.update(image_patch=9)), "image_patch", "not 9"),
    "image_patch_without_images": (changed(lambda t: t.update(image_patch=4, tasks=t["tasks"][2:])
                                           or t.pop("image_size")), "image_patch", "no task is an image task"),
    "image_patch_with_image_size_but_no_images": (changed(lambda t: t.update(image_patch=4, tasks=t["tasks"][2:])),
                                                  "image_patch", "no task is an image task"),
}


def assert_one_sentence(message, *parts):
    assert "\n" not in message and message.endswith(".") and not re.search(r"\.\s+[A-Z]", message), message
    for part in parts:
        assert part in message, (part, message)


@pytest.mark.parametrize("case", BROKEN)
@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_a_wrong_file_is_one_sentence_naming_the_key_and_the_file(tmp_path, case, suffix):
    table, key, words = BROKEN[case]
    path = tmp_path / f"cfg{suffix}"
    path.write_text(toml_text(table) if suffix == ".toml" else json.dumps(table))
    with pytest.raises(UserError) as err:
        get_config(str(path))
    assert_one_sentence(str(err.value), f"'{key}'", str(path), words)


def test_image_patch_is_read_and_unset_leaves_the_profiles(tmp_path):
    assert get_config(str(write_dataset(tmp_path, "unset", MINIMAL))).image_patch is None
    assert get_config(str(write_dataset(tmp_path, "set", "image_patch = 4\n" + MINIMAL))).image_patch == 4


@pytest.mark.parametrize("suffix, text, words", [
    (".toml", "image_size = 8\ntasks = [\n", "is not valid TOML"),
    (".toml", "image_size = = 8\n", "(at line 1, column"),
    (".json", '{"image_size": 8,\n "tasks": [}', "line 2 column"),
    (".json", "[1, 2]", "must hold an object of keys"),
])
def test_a_malformed_file_is_one_sentence_with_the_parsers_line(tmp_path, suffix, text, words):
    path = tmp_path / f"cfg{suffix}"
    path.write_text(text)
    with pytest.raises(UserError) as err:
        get_config(str(path))
    assert_one_sentence(str(err.value), str(path), words)


def test_a_byte_order_mark_is_skipped(tmp_path):
    path = tmp_path / "cfg.toml"
    path.write_bytes(codecs.BOM_UTF8 + MINIMAL.encode("utf-8"))
    assert get_config(str(path)).task(1).name == "a"


@pytest.mark.parametrize("change, key", [
    (lambda cfg: dict(tasks=(dataclasses.replace(cfg.tasks[0], name="../shapes_noisy"),) + cfg.tasks[1:]), "name"),
    (lambda cfg: dict(tasks=(dataclasses.replace(cfg.tasks[0], std=(0.0, 0.0, 0.0)),) + cfg.tasks[1:]), "std"),
    (lambda cfg: dict(tasks=(dataclasses.replace(cfg.tasks[0], std=(0.25, 0.25)),) + cfg.tasks[1:]), "std"),
    (lambda cfg: dict(max_text_length=10 ** 6), "max_text_length"),
])
def test_a_built_in_config_is_held_to_the_checks_of_a_file(monkeypatch, change, key):
    """One check for both kinds of config: an entry added to _BUILDERS with a bad value is refused as a file is."""
    build = dataset_config._BUILDERS["demo"]
    monkeypatch.setitem(dataset_config._BUILDERS, "demo",
                        lambda root: dataclasses.replace(build(root), **change(build(root))))
    with pytest.raises(UserError) as err:
        get_config("demo")
    assert_one_sentence(str(err.value), "built-in config 'demo'", f"'{key}'")


def test_a_missing_file_is_one_sentence(tmp_path):
    with pytest.raises(UserError) as err:
        get_config(str(tmp_path / "nowhere.toml"))
    assert_one_sentence(str(err.value), "Cannot read", "nowhere.toml")


# ---------------------------------------------------------------- provenance: the file's values, not its path

def recorded_configs(cfg_path, tmp_path, monkeypatch):
    """The dataset_config each entry point records for this config file (steps 1, 2-1/3-2 and 3-1)."""
    import CPG_MM_main_normal
    import packnet_cifar100_main_normal
    import pickaback_perceiverIO
    monkeypatch.setenv("MMPAB_OUTPUT_ROOT", str(tmp_path / "out"))    # no step 1 output to reuse
    monkeypatch.setattr(CPG_MM_main_normal, "data_fingerprint", lambda cfg, task: "no data")    # the config has none
    cfg = get_config(cfg_path)
    jsonfile = tmp_path / "baseline.json"
    jsonfile.write_text(json.dumps({"a": "0.5"}))
    step1 = packnet_cifar100_main_normal.get_args_parser().parse_args(
        ["--dataset", "a", "--dataset_config", cfg_path])
    cpg = CPG_MM_main_normal.get_args_parser().parse_args(
        ["--dataset", "a", "--dataset_config", cfg_path, "--mode", "finetune", "--save_folder", str(tmp_path),
         "--jsonfile", str(jsonfile)])
    select = pickaback_perceiverIO.get_args_parser().parse_args(["--dataset_config", cfg_path])
    step1_stage = packnet_cifar100_main_normal.step_1_stage_args(step1, cfg, cfg.task("a"))
    return (CPG_MM_main_normal.plan_run(step1_stage, cfg, cfg.task("a"), True).provenance["settings"]["dataset_config"],
            CPG_MM_main_normal.plan_run(cpg, cfg, cfg.task("a"), False).provenance["settings"]["dataset_config"],
            pickaback_perceiverIO.distance_settings(cfg, select)["dataset_config"])


def test_outputs_record_the_files_values_so_an_edit_of_a_value_redoes_the_work(tmp_path, monkeypatch):
    path = write_dataset(tmp_path, "mine", MINIMAL)
    monkeypatch.chdir(tmp_path)
    by_path = recorded_configs(str(path), tmp_path, monkeypatch)
    assert len(set(by_path)) == 1 and by_path[0].startswith("mine@")
    assert recorded_configs("mine/dataset.toml", tmp_path, monkeypatch) == by_path    # another path, same file
    path.write_text("# my photos\n" + MINIMAL.replace("= 2", "= 2   # two classes").replace("\n\n", "\n"))
    assert recorded_configs(str(path), tmp_path, monkeypatch) == by_path    # comments and layout are not values
    path.write_text("prepare_command = 'make photos'\n" + MINIMAL)
    assert recorded_configs(str(path), tmp_path, monkeypatch) == by_path    # nor the command that makes the data
    as_json = write_dataset(tmp_path, "mine", json.dumps({"tasks": [{"num_classes": 2, "modality": "image",
                                                                     "name": "a"}], "image_size": 8}), "other.json")
    assert recorded_configs(str(as_json), tmp_path, monkeypatch)[0] == "other@" + by_path[0].split("@")[1]
    path.write_text(MINIMAL.replace("num_classes = 2", "num_classes = 3"))
    edited = recorded_configs(str(path), tmp_path, monkeypatch)
    assert edited[0] != by_path[0] and len(set(edited)) == 1
    assert get_config("demo").provenance_id == "demo"            # the demo, built in code, records its name


def test_a_shipped_config_file_is_recorded_by_its_contents_too(tmp_path, monkeypatch):
    shipped = get_config("cifar100").provenance_id
    assert shipped.startswith("cifar100@")
    copy_of_file = tmp_path / "cifar100.toml"
    copy_of_file.write_text(dataset_config.BUILT_IN_FILES["cifar100"].read_text().replace("0.1", "0.2", 1))
    monkeypatch.setitem(dataset_config.BUILT_IN_FILES, "cifar100", copy_of_file)
    edited = get_config("cifar100")
    assert edited.name == "cifar100" and edited.provenance_id not in (shipped, "cifar100")


# ---------------------------------------------------------------- the whole pipeline on a config-file dataset

def test_the_pipeline_runs_on_a_dataset_described_only_by_a_config_file(config_file_pipeline):
    out, env = config_file_pipeline["out"], config_file_pipeline["env"]
    with open(out / "pickaback_mydata_result.csv", newline="") as f:
        picks = {int(t): int(c) for t, c in list(csv.reader(f))[1:]}
    assert picks == {1: 3, 3: 1}
    targets = out / "checkpoints_perceiver_io" / "CPG_fromsingle_scratch_woexp_target" / "perceiver_io" / "mydata"
    for target, backbone in picks.items():
        log = targets / MYDATA_TASKS[backbone - 1] / MYDATA_TASKS[target - 1] / "train.log"
        assert "In validate()-> Val Ep." in log.read_text()
    # the same dataset by its name, under the data root
    assert ok(python("-m", "tools.task_info", "mydata", "--config_name", env=env)).stdout.strip() == "mydata"
    assert ok(python("-m", "tools.task_info", "mydata", "--list", env=env)).stdout.split() == ["1", "2", "3", "4"]


def test_a_stage_refuses_a_step_1_baseline_of_an_earlier_version_of_the_config(config_file_pipeline, tmp_path):
    """A validation share edited after step 1: the baseline was measured on other validation samples."""
    out, root = tmp_path / "out", tmp_path / "root"
    shutil.copytree(config_file_pipeline["out"], out)
    shutil.copytree(config_file_pipeline["root"], root)
    toml = root / "mydata" / "dataset.toml"
    toml.write_text(toml.read_text().replace("val_fraction = 0.2", "val_fraction = 0.3"))
    env = dict(config_file_pipeline["env"], MMPAB_OUTPUT_ROOT=str(out), MMPAB_DATA_ROOT=str(root), TASKS="1")
    result = subprocess.run(["bash", str(REPO_ROOT / "run_pickaback" / "wo_backbone.sh"), "mydata/dataset.toml"],
                            cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert "baseline_scratch" in result.stderr and "another version of dataset config 'mydata'" in result.stderr
