"""Dataset configs, text encoding, both loader paths and the bad-input messages."""
import dataclasses
import os
import re
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import SMALL_TEST_PER_CLASS, SMALL_TRAIN_PER_CLASS, python
from utils.data import load_split, random_crop_flip, read_image, split_indices, task_loaders
from utils.dataset_config import CONFIG_NAMES, DATA_ROOT_ENV, DEMO_CLASSES, DEMO_TASKS, get_config
from utils import paths
from utils.errors import UserError
from utils.text import encode_batch, encode_text

REPO = Path(__file__).resolve().parent.parent
NUM_CLASSES = 5


# --------------------------------------------------------------------------- configs

def test_every_config_builds_with_explicit_modalities():
    assert sorted(CONFIG_NAMES) == ["cifar100", "cub", "demo", "digits", "emoji", "fashion", "oxford", "wordnet"]
    for name in CONFIG_NAMES:
        cfg = get_config(name)
        assert [t.task_id for t in cfg.tasks] == list(range(1, cfg.num_tasks + 1))
        assert all(t.modality in ("image", "text") for t in cfg.tasks)
        for task, partner in cfg.paired.items():     # pairs: the other modality, both ways
            assert cfg.paired[partner] == task and cfg.task(task).modality != cfg.task(partner).modality


def test_config_shapes_match_the_original():
    cifar = get_config("cifar100")
    assert cifar.num_tasks == 20 and cifar.task(1).name == "aquatic_mammals"
    assert cifar.task(14).name == "non-insect_invertebrates" and cifar.task(20).name == "vehicles_2"
    assert cifar.task("fish").std == (0.2857, 0.2574, 0.2705) and cifar.train_augment == "crop_flip"   # per superclass
    oxford, cub = get_config("oxford"), get_config("cub")
    assert [t.modality for t in oxford.tasks] == ["image"] * 6 + ["text"] * 6
    assert oxford.task(12).name == "group12" and oxford.task(1).num_classes == 4
    assert cub.num_tasks == 56 and cub.task(28).modality == "image" and cub.task(29).modality == "text"
    assert cub.image_size == 224 and oxford.image_size == 64


def test_demo_related_pairs_share_classes_and_modality():
    cfg = get_config("demo")
    assert len(cfg.related) == 12
    families = {name: (modality, family) for name, modality, family, _ in DEMO_TASKS}
    for task, other in cfg.related.items():
        assert other != task and cfg.related[other] == task
        assert families[task] == families[other]
    assert cfg.related["shapes_clean"] == "shapes_noisy"
    assert cfg.related["colours_notes"] == "colours_captions"
    assert [t.modality for t in cfg.tasks] == ["image"] * 6 + ["text"] * 6


def test_data_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path))
    assert get_config("demo").image_root == tmp_path / "demo" / "images"
    assert get_config("cifar100").image_root == tmp_path / "cifar100_org"
    assert get_config("emoji").text_root == tmp_path / "emoji" / "text"    # a shipped file's roots: the data root's
    monkeypatch.delenv(DATA_ROOT_ENV)
    assert get_config("demo").image_root == REPO / "data" / "demo" / "images"


def test_task_lookup_by_id_name_and_digit_string():
    cfg = get_config("demo")
    assert cfg.task(3) == cfg.task("3") == cfg.task("patterns_clean")
    assert cfg.task(3).task_id == 3


def test_unknown_task_and_config_list_the_valid_ones():
    with pytest.raises(UserError, match="valid tasks are: 1=shapes_clean.*12=colours_notes"):
        get_config("demo").task(13)
    with pytest.raises(UserError, match="valid tasks are"):
        get_config("demo").task("nope")
    with pytest.raises(UserError, match="valid configs are: demo, cifar100, cub, digits, emoji, fashion, oxford, wordnet"):
        get_config("imagenet")


# --------------------------------------------------------------------------- text

def test_hashed_words_are_crc32_of_lowercased_words():
    cfg = get_config("demo")
    ids = encode_text("Red  CIRCLE, red!", cfg)
    expected = [1 + zlib.crc32(w.encode()) % (cfg.vocab_size - 1) for w in ("red", "circle", "red")]
    assert ids == expected and ids[0] == ids[2] and all(0 < i < cfg.vocab_size for i in ids)


def test_bytes_encoding_and_truncation():
    from dataclasses import replace
    cfg = replace(get_config("demo"), text_encoding="bytes", vocab_size=257, max_text_length=4)
    assert encode_text("aé", cfg) == [ord("a") + 1, 0xC3 + 1, 0xA9 + 1]
    assert encode_text("abcdefgh", cfg) == [98, 99, 100, 101]
    batch = encode_batch(["ab", "abcdefgh"], cfg)
    assert batch.dtype == torch.int64 and batch.tolist() == [[98, 99, 0, 0], [98, 99, 100, 101]]


def test_text_encoding_is_stable_across_processes():
    code = "from utils.dataset_config import get_config; from utils.text import encode_text; " \
           "print(encode_text('a small ring', get_config('demo')))"
    runs = {subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                           env={"PYTHONHASHSEED": str(seed)}).stdout for seed in (1, 2)}
    assert len(runs) == 1 and runs.pop().startswith("[")


# --------------------------------------------------------------------------- loading

def test_load_split_image(demo_cfg):
    data = load_split(demo_cfg, demo_cfg.task(1), "train")
    assert data.inputs.dtype == torch.uint8 and data.inputs.shape == (5 * SMALL_TRAIN_PER_CLASS, 3, 32, 32)
    assert data.labels.dtype == torch.int64 and data.labels.tolist() == sorted(data.labels.tolist())
    assert set(data.labels.tolist()) == set(range(NUM_CLASSES))
    assert data.classes == list(DEMO_CLASSES["shapes"]) and data.modality == "image"
    assert data.inputs.float().std() > 10     # real pictures, not an empty buffer


def test_load_split_text(demo_cfg):
    data = load_split(demo_cfg, demo_cfg.task("colours_notes"), "test")
    assert data.inputs.dtype == torch.int64 and data.inputs.shape == (5 * SMALL_TEST_PER_CLASS, 32)
    assert data.inputs.min() >= 0 and data.inputs.max() < demo_cfg.vocab_size
    assert (data.inputs[:, 0] != 0).all()     # every caption has at least one token
    assert data.classes == list(DEMO_CLASSES["colours"]) and data.modality == "text"


def test_split_indices_is_seeded_and_stratified():
    labels = torch.arange(100) % 5
    train_a, val_a = split_indices(labels, 0.2, seed=0)
    train_b, val_b = split_indices(labels, 0.2, seed=0)
    _, val_c = split_indices(labels, 0.2, seed=1)
    assert torch.equal(val_a, val_b) and torch.equal(train_a, train_b)
    assert not torch.equal(val_a, val_c)
    assert len(val_a) == 20 and torch.bincount(labels[val_a]).tolist() == [4] * 5
    assert set(train_a.tolist()).isdisjoint(val_a.tolist())
    assert len(train_a) + len(val_a) == 100
    train_idx, val_idx = split_indices(labels, 0.0, seed=0)
    assert len(val_idx) == 0 and len(train_idx) == 100


def _collect(loader):
    xs, ys = zip(*loader)
    return torch.cat(xs), torch.cat(ys)


@pytest.mark.parametrize("in_memory", [True, False])
def test_image_loaders_batches(demo_cfg, in_memory):
    task = demo_cfg.task(2)
    train, val, test = task_loaders(demo_cfg, task, batch_size=8, val_batch_size=7, val_fraction=0.2,
                                    in_memory=in_memory)
    x, y = next(iter(train))
    assert x.dtype == torch.float32 and x.shape == (8, 3, 32, 32) and y.dtype == torch.int64
    assert len(train) == 5 and len(val) == 2 and len(test) == 3    # 40 train, 10 val, 20 test
    vx, vy = _collect(val)
    assert vx.shape == (10, 3, 32, 32) and torch.bincount(vy).tolist() == [2] * 5
    tx, ty = _collect(test)
    assert tx.shape == (20, 3, 32, 32) and ty.min() == 0 and ty.max() == NUM_CLASSES - 1
    assert abs(tx.mean().item()) < 3 and tx.abs().max() < 5     # normalised, not raw 0..255


def test_both_paths_give_the_same_evaluation_batches(demo_cfg):
    task = demo_cfg.task("patterns_noisy")
    memory = task_loaders(demo_cfg, task, val_fraction=0.2, seed=3, in_memory=True)
    folder = task_loaders(demo_cfg, task, val_fraction=0.2, seed=3, in_memory=False)
    for fast, slow in zip(memory[1:], folder[1:]):
        (fx, fy), (sx, sy) = _collect(fast), _collect(slow)
        assert torch.equal(fy, sy) and torch.allclose(fx, sx)


def test_train_order_is_seeded(demo_cfg):
    task = demo_cfg.task(1)
    labels = lambda seed: _collect(task_loaders(demo_cfg, task, batch_size=8, seed=seed)[0])[1]  # noqa: E731
    assert torch.equal(labels(0), labels(0)) and not torch.equal(labels(0), labels(1))
    train = task_loaders(demo_cfg, task, batch_size=8, seed=0)[0]
    first, second = _collect(train)[1], _collect(train)[1]
    assert not torch.equal(first, second)      # a new order every epoch


def test_a_training_seed_changes_the_order_but_not_the_split_seed_s_validation_samples(demo_cfg):
    task = demo_cfg.task(7)
    loaders = lambda seed, split_seed: task_loaders(demo_cfg, task, batch_size=8, seed=seed,  # noqa: E731
                                                    split_seed=split_seed)
    (train_a, val_a, _), (train_b, val_b, _) = loaders(2, None), loaders(5, 2)
    assert torch.equal(_collect(val_a)[0], _collect(val_b)[0])
    assert not torch.equal(_collect(train_a)[1], _collect(train_b)[1])
    assert not torch.equal(_collect(val_a)[0], _collect(loaders(5, None)[1])[0])


@pytest.mark.parametrize("in_memory", [True, False])
def test_train_augment_none_never_flips(demo_cfg, in_memory):
    """The same train images whatever the seed under "none", mirrored by some seeds under "resize_flip"."""
    def mirrored_signatures(augment, seed):
        cfg = dataclasses.replace(demo_cfg, train_augment=augment)
        x, _ = _collect(task_loaders(cfg, cfg.task(1), seed=seed, split_seed=0, in_memory=in_memory)[0])
        weights = torch.arange(x.shape[-1], dtype=torch.float32)   # a flip changes this weighted sum
        return torch.sort((x * weights).sum(dim=(1, 2, 3))).values
    assert torch.allclose(mirrored_signatures("none", 0), mirrored_signatures("none", 1))
    assert not torch.allclose(mirrored_signatures("resize_flip", 0), mirrored_signatures("resize_flip", 1))


def test_val_fraction_zero_means_val_is_test(demo_cfg):
    train, val, test = task_loaders(demo_cfg, demo_cfg.task(7), val_fraction=0.0)
    assert val is test and sum(len(y) for _, y in train) == 5 * SMALL_TRAIN_PER_CLASS
    x, _ = next(iter(train))
    assert x.dtype == torch.int64 and x.shape[1] == demo_cfg.max_text_length


def test_random_crop_flip_shifts_and_mirrors():
    image = torch.arange(2 * 3 * 6 * 6, dtype=torch.int64).view(2, 3, 6, 6).to(torch.uint8)
    generator = torch.Generator().manual_seed(0)
    flipped = random_crop_flip(image.repeat(50, 1, 1, 1), generator, crop=False)
    originals = image.repeat(50, 1, 1, 1)
    is_flip = (flipped == originals.flip(3)).flatten(1).all(1)
    assert ((flipped == originals).flatten(1).all(1) | is_flip).all() and 10 < is_flip.sum() < 90
    ones = torch.ones(200, 3, 8, 8, dtype=torch.uint8)
    cropped = random_crop_flip(ones, generator, crop=True)
    assert cropped.shape == ones.shape
    kept = cropped.flatten(1).float().mean(1)
    assert (kept == 1).any() and (kept < 1).any() and (kept >= 0.25).all()   # padding 4 of 8


# --------------------------------------------------------------------------- bad input

@pytest.fixture
def writable_demo(small_demo_root, tmp_path):
    """A private copy of two demo tasks (shapes_clean, shapes_captions) that a test may damage."""
    for sub in ("images/train/shapes_clean", "images/test/shapes_clean",
                "text/train/shapes_captions", "text/test/shapes_captions"):
        shutil.copytree(small_demo_root / "demo" / sub, tmp_path / "demo" / sub)
    return get_config("demo", data_root_dir=tmp_path)


def test_missing_data_root_names_layout_and_command(tmp_path):
    cfg = get_config("demo", data_root_dir=tmp_path)
    with pytest.raises(UserError) as err:
        load_split(cfg, cfg.task(1), "train")
    message = str(err.value)
    assert "{train,test}/<task>/<class>/<file>" in message and "python -m tools.make_demo_data" in message
    cifar = get_config("cifar100", data_root_dir=tmp_path)
    with pytest.raises(UserError, match="-m tools.prepare_cifar100"):
        task_loaders(cifar, cifar.task(1))


def test_missing_task_folder_is_named(writable_demo):
    with pytest.raises(UserError, match="patterns_clean is missing"):
        load_split(writable_demo, writable_demo.task("patterns_clean"), "train")


def test_hidden_files_and_folders_are_no_classes_or_samples(writable_demo):
    """A macOS copy leaves ._<name> beside every file; Jupyter leaves .ipynb_checkpoints: neither is data."""
    task = writable_demo.task(1)
    before = load_split(writable_demo, task, "train")
    for split in ("train", "test"):
        folder = writable_demo.image_root / split / "shapes_clean"
        (folder / ".ipynb_checkpoints").mkdir()
        for image in sorted(folder.glob("*/*.png")):
            (image.parent / f"._{image.name}").write_bytes(b"\0\5\26\7 AppleDouble")
        (folder / "ring" / ".cache").mkdir()
        shutil.copy(sorted(folder.glob("ring/*.png"))[0], folder / "ring" / ".cache" / "copy.png")
    after = load_split(writable_demo, task, "train")
    assert len(after) == len(before) and torch.equal(after.labels, before.labels)


def test_empty_class_folder_is_named(writable_demo):
    folder = writable_demo.image_root / "train" / "shapes_clean" / "ring"
    for file in folder.iterdir():
        file.unlink()
    with pytest.raises(UserError, match=re.escape(f"Class folder {folder} has no image files (.jpg, .jpeg, .png")):
        load_split(writable_demo, writable_demo.task(1), "train")


@pytest.mark.parametrize("in_memory", [True, False])
def test_unreadable_image_is_named(writable_demo, in_memory):
    bad = writable_demo.image_root / "test" / "shapes_clean" / "cross" / "0001.png"
    bad.write_bytes(b"this is not a png")
    with pytest.raises(UserError, match=f"Cannot read image {bad}"):
        loaders = task_loaders(writable_demo, writable_demo.task(1), in_memory=in_memory)
        _collect(loaders[2])


def test_a_16_bit_image_reads_as_its_8_bit_equal(tmp_path):
    """Pillow converts a 16-bit grayscale image (mode I;16) to RGB by clipping: every pixel above 255 was white."""
    pixels = np.arange(32 * 32).reshape(32, 32) % 256
    Image.fromarray(pixels.astype(np.uint16) * 257).save(tmp_path / "deep.png")
    Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / "flat.png")
    deep = np.asarray(read_image(str(tmp_path / "deep.png"), 32))
    assert (deep == np.asarray(read_image(str(tmp_path / "flat.png"), 32))).all() and deep.max() == 255


def test_an_image_too_large_to_decode_is_named(tmp_path, monkeypatch):
    Image.new("L", (64, 64)).save(tmp_path / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)     # over twice this is Pillow's decompression bomb
    with pytest.raises(UserError, match=f"Cannot read image {tmp_path / 'huge.png'} \\(DecompressionBombError\\)"):
        read_image(str(tmp_path / "huge.png"), 32)


def test_a_task_without_a_validation_sample_is_refused(writable_demo):
    """One training sample per class: the split keeps it for training, and an empty validation split scored 0."""
    for split in ("train", "test"):
        for folder in (writable_demo.image_root / split / "shapes_clean").iterdir():
            for extra in sorted(folder.iterdir())[1:]:
                extra.unlink()
    with pytest.raises(UserError, match="Task shapes_clean has no validation sample"):
        task_loaders(writable_demo, writable_demo.task(1))
    task_loaders(writable_demo, writable_demo.task(1), val_fraction=0)     # the original's way: val is the test split


def test_non_utf8_caption_is_named(writable_demo):
    bad = writable_demo.text_root / "train" / "shapes_captions" / "square" / "0002.txt"
    bad.write_bytes("caf\u00e9 square".encode("latin-1"))
    with pytest.raises(UserError, match=f"Caption file {bad} is not valid UTF-8"):
        load_split(writable_demo, writable_demo.task("shapes_captions"), "train")


def test_task_info_cli(small_demo_root):
    run = lambda *args: python("-m", "tools.task_info", *args)  # noqa: E731
    assert run("demo", "7", "--field", "modality").stdout == "text\n"
    assert run("demo", "2").stdout == "shapes_noisy\n"
    assert run("cifar100", "--list").stdout.split() == [str(i) for i in range(1, 21)]
    for bad in (("demo", "13"), ("imagenet", "1")):
        result = run(*bad)
        assert result.returncode != 0 and result.stderr.startswith("error: ")
        assert "Traceback" not in result.stderr and "valid" in result.stderr


def test_task_info_gives_the_bash_steps_utils_paths_layout(tmp_path):
    """The bash steps build no output path themselves: every one comes from utils/paths.py through task_info."""
    env = {**os.environ, "MMPAB_OUTPUT_ROOT": str(tmp_path)}
    run = lambda *args: python("-m", "tools.task_info", "demo", *args, env=env)  # noqa: E731
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMPAB_OUTPUT_ROOT", str(tmp_path))
        expected = {("--path", "baseline_acc_file", "--seed", "3"): paths.baseline_acc_file("perceiver_io", "demo", 3),
                    ("2", "--path", "backbone_dir", "--arch", "lenet5"): paths.backbone_dir("lenet5", "demo", "shapes_noisy"),
                    ("7", "--path", "target_dir", "--backbone", "untrained"):
                        paths.target_dir("perceiver_io", "demo", "untrained", "shapes_captions"),
                    ("--path", "targets_root"): paths.targets_root("perceiver_io", "demo")}
    for args, path in expected.items():
        assert run(*args).stdout == f"{path}\n"
    missing = run("--selections")
    assert missing.returncode == 1 and "find_backbone.sh" in missing.stderr
    (tmp_path / "pickaback_demo_result.csv").write_text("target_id,task_id\n7,8\n1,2\n")
    assert run("--selections").stdout == "1 2\n7 8\n"
    unpicked = run("--selections", "1", "3")      # step 3-2's TASKS name target 3, step 3-1 has no pick of it
    assert unpicked.returncode == 1 and "No backbone for target 3 in" in unpicked.stderr, unpicked.stderr
    assert run("--path", "target_dir").returncode == 1


# --------------------------------------------------------------------------- class folders: one numbering per task

def test_a_class_folder_in_one_split_only_is_named(writable_demo):
    """Labels are positions in the sorted class folders: a class missing from one split would shift the others'."""
    test_folder = writable_demo.image_root / "test" / "shapes_clean"
    shutil.rmtree(test_folder / "ring")
    with pytest.raises(UserError, match=r"only in train: 'ring'; only in test: none\); give both splits the same"):
        load_split(writable_demo, writable_demo.task(1), "train")
    shutil.copytree(test_folder / "cross", test_folder / "ring")
    shutil.copytree(test_folder / "cross", test_folder / "star")
    with pytest.raises(UserError, match=f"{writable_demo.image_root / 'train' / 'shapes_clean'} and {test_folder} "
                                        r"differ \(only in train: none; only in test: 'star'\)"):
        task_loaders(writable_demo, writable_demo.task(1))
    shutil.rmtree(test_folder / "star")
    (test_folder / "ring").rename(test_folder / "ring ")    # a trailing space, invisible unquoted
    with pytest.raises(UserError, match=r"only in train: 'ring'; only in test: 'ring '\)"):
        task_loaders(writable_demo, writable_demo.task(1))


@pytest.mark.parametrize("extra", [False, True])
def test_class_folders_must_be_as_many_as_num_classes(writable_demo, extra):
    for split in ("train", "test"):
        folder = writable_demo.text_root / split / "shapes_captions"
        if extra:
            shutil.copytree(folder / "ring", folder / "star")
        else:
            shutil.rmtree(folder / "ring")
    with pytest.raises(UserError, match=f"has {6 if extra else 4} class folders in .* but num_classes 5 in "
                                        "config 'demo'; make the two agree"):
        task_loaders(writable_demo, writable_demo.task("shapes_captions"))
