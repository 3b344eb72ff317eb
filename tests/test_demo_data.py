"""The demo generator: layout, determinism, resume marker, the designed relations and the image-caption pairing."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import python
from tools.make_demo_data import MARKER, generate_demo_data, render_caption, render_image
from utils.data import load_paired_split, load_split, sample_keys
from utils.dataset_config import DEMO_CLASSES, DEMO_TASKS, get_config
from utils.errors import UserError


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_matches_the_demo_config(small_demo_root):
    cfg = get_config("demo", data_root_dir=small_demo_root)
    for (name, modality, family, _), task in zip(DEMO_TASKS, cfg.tasks):
        assert task.name == name and task.modality == modality
        for split, count in (("train", 10), ("test", 4)):
            folder = cfg.root_of(task) / split / name
            assert sorted(p.name for p in folder.iterdir()) == list(DEMO_CLASSES[family])
            suffix = ".png" if modality == "image" else ".txt"
            files = list(folder.rglob(f"*{suffix}"))
            assert len(files) == 5 * count and len(list(folder.rglob("*.*"))) == len(files)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    small = dict(train_per_class=2, test_per_class=1)
    generate_demo_data(tmp_path / "a", seed=7, **small)
    generate_demo_data(tmp_path / "b", seed=7, **small)
    generate_demo_data(tmp_path / "c", seed=8, **small)
    a, b, c = (_files(tmp_path / k) for k in "abc")
    assert a == b and len(a) == 12 * 5 * 3 + 1
    assert a.keys() == c.keys() and sum(a[k] != c[k] for k in a) > 100


def test_related_tasks_share_classes_but_not_pictures(small_demo_root):
    cfg = get_config("demo", data_root_dir=small_demo_root)
    image_a = cfg.image_root / "train" / "shapes_clean" / "circle" / "0000.png"
    image_b = cfg.image_root / "train" / "shapes_noisy" / "circle" / "0000.png"
    assert image_a.read_bytes() != image_b.read_bytes()
    caption = (cfg.text_root / "train" / "shapes_captions" / "circle" / "0000.txt").read_text("utf-8")
    note = (cfg.text_root / "train" / "shapes_notes" / "circle" / "0000.txt").read_text("utf-8")
    assert caption != note and caption.endswith("\n")


def _standardised_shapes(domain, per_class, seed):
    """Grey shape images of `domain` as rows, each standardised (zero mean, unit variance), and their labels."""
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for label, name in enumerate(DEMO_CLASSES["shapes"]):
        for _ in range(per_class):
            grey = render_image("shapes", domain, name, rng)[0].astype(np.float32).mean(axis=2)
            rows.append(((grey - grey.mean()) / grey.std()).ravel())
            labels.append(label)
    return np.stack(rows), np.array(labels)


@pytest.mark.parametrize("fitted, read", [("clean", "noisy"), ("noisy", "clean")])
def test_a_shape_looks_alike_in_both_image_domains(fitted, read):
    """The designed relation is in the pixels: class means fitted on one domain's shapes classify the other
    domain's shapes (0.715 and 0.83 measured, chance 0.20). An inverted domain (a dark object on a bright
    background) puts nearly every shape in the wrong class (0.03 and 0.00)."""
    x_fit, y_fit = _standardised_shapes(fitted, 40, seed=0)
    x_read, y_read = _standardised_shapes(read, 40, seed=1)
    means = np.stack([x_fit[y_fit == k].mean(axis=0) for k in range(len(DEMO_CLASSES["shapes"]))])
    predicted = (x_read @ (means / np.linalg.norm(means, axis=1, keepdims=True)).T).argmax(axis=1)
    assert (predicted == y_read).mean() > 0.6


def _texts_with_labels(family, style, per_class, seed):
    """(words of a text as (place in the text, word) pairs, label) for `per_class` texts of each class."""
    rng = np.random.default_rng(seed)
    looks = [dict(size=size, place=place) for size in ("small", "medium", "large")
             for place in ("centre", "top left", "all over")]
    texts = []
    for label, name in enumerate(DEMO_CLASSES[family]):
        for n in range(per_class):
            words = render_caption(family, style, name, looks[n % len(looks)], rng).lower().replace(".", " ").split()
            texts.append((list(enumerate(words)), label))
    return texts


@pytest.mark.parametrize("family", sorted(DEMO_CLASSES))
@pytest.mark.parametrize("fitted, read", [("captions", "notes"), ("notes", "captions")])
def test_related_text_styles_name_a_class_with_the_same_words_in_the_same_places(family, fitted, read):
    """The designed relation is in the words: counts of (place, word) fitted on one style's texts classify
    the other style's (0.51-0.62 measured, chance 0.20). Styles with words and sentence shapes of their
    own read each other at chance (0.22-0.30)."""
    counts = [{} for _ in DEMO_CLASSES[family]]
    for words, label in _texts_with_labels(family, fitted, 60, seed=0):
        for word in words:
            counts[label][word] = counts[label].get(word, 0) + 1
    texts = _texts_with_labels(family, read, 60, seed=1)
    right = sum(np.argmax([sum(np.log1p(c.get(w, 0)) for w in words) for c in counts]) == label
                for words, label in texts)
    assert right / len(texts) > 0.45


def test_complete_folder_is_skipped_and_half_written_one_regenerated(tmp_path):
    out, small = tmp_path / "demo", dict(train_per_class=2, test_per_class=1)
    assert generate_demo_data(out, **small) is True
    assert generate_demo_data(out, **small) is False
    stray = out / "images" / "train" / "shapes_clean" / "circle" / "stray.png"
    stray.write_bytes(b"left over")
    assert generate_demo_data(out, **small, force=True) is True and not stray.exists()
    (out / MARKER).unlink()                       # as if a previous run was interrupted
    stray.write_bytes(b"left over")
    assert generate_demo_data(out, **small) is True and not stray.exists()
    assert generate_demo_data(out, seed=1, **small) is True     # other settings: not complete


def test_cli_writes_and_reports(tmp_path):
    command = ["-m", "tools.make_demo_data", "--out", tmp_path / "d", "--train-per-class", "2", "--test-per-class", "1"]
    first, second = python(*command), python(*command)
    assert first.returncode == 0 and "written" in first.stdout
    assert second.returncode == 0 and "already complete" in second.stdout
    bad = python(*command[:-1], "0")
    assert bad.returncode != 0 and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr


def test_the_config_pairs_image_task_k_with_text_task_k_plus_6_both_ways(small_demo_root):
    cfg = get_config("demo", data_root_dir=small_demo_root)
    for k in range(1, 7):
        image, text = cfg.task(k), cfg.task(k + 6)
        assert cfg.paired[image.name] == text.name and cfg.paired[text.name] == image.name


def test_load_paired_split_lines_each_caption_up_with_its_image(small_demo_root):
    cfg = get_config("demo", data_root_dir=small_demo_root)
    captions, images = load_paired_split(cfg, cfg.task("colours_captions"), "train")
    assert captions.modality == "text" and images.modality == "image"
    assert len(captions) == len(images) == 50 and captions.labels.tolist() == images.labels.tolist()


def object_area(path):
    """Pixels of a colours_clean image that are coloured (its background is grey)."""
    rgb = np.asarray(Image.open(path), dtype=np.int16)
    return int((rgb.max(axis=2) - rgb.min(axis=2) > 60).sum())


def test_a_caption_describes_the_size_of_the_image_it_is_paired_with(small_demo_root):
    """Caption n of colours_captions says how large object n of colours_clean is: the areas of the objects
    called small, medium sized and large are ordered (they would not be, paired with other images)."""
    cfg = get_config("demo", data_root_dir=small_demo_root)
    areas = {"small": [], "medium sized": [], "large": []}
    for caption in sorted((cfg.text_root / "train" / "colours_captions").rglob("*.txt")):
        image = cfg.image_root / "train" / "colours_clean" / caption.parent.name / f"{caption.stem}.png"
        for word in areas:
            if f" {word} " in caption.read_text("utf-8"):
                areas[word].append(object_area(image))
    means = [np.mean(areas[w]) for w in areas if areas[w]]
    assert len(means) == 3 and means[0] < means[1] < means[2]


def test_an_image_without_its_caption_is_left_out_and_the_rest_stay_paired(tmp_path):
    generate_demo_data(tmp_path / "demo", train_per_class=3, test_per_class=1)
    cfg = get_config("demo", data_root_dir=tmp_path)
    captions_task, images_task = cfg.task("shapes_captions"), cfg.task("shapes_clean")
    (cfg.text_root / "train" / "shapes_captions" / "circle" / "0001.txt").unlink()
    captions, images = load_paired_split(cfg, captions_task, "train")
    every_image = load_split(cfg, images_task, "train")
    position = {key: i for i, key in enumerate(sample_keys(cfg, images_task, "train"))}
    expected = [position[key] for key in sample_keys(cfg, captions_task, "train")]
    assert len(captions) == len(images) == 14 and ("circle", "0001") not in sample_keys(cfg, captions_task, "train")
    assert torch.equal(images.inputs, every_image.inputs[expected])


def test_two_files_of_one_paired_sample_are_one_clear_error(tmp_path):
    """0001.png and 0001.jpg in one class folder: either could be the caption's image (before, one was taken)."""
    generate_demo_data(tmp_path / "demo", train_per_class=2, test_per_class=1)
    cfg = get_config("demo", data_root_dir=tmp_path)
    image = cfg.image_root / "train" / "shapes_clean" / "ring" / "0001.png"
    Image.open(image).save(image.with_suffix(".jpg"))
    with pytest.raises(UserError, match="Task shapes_clean \\(train\\) holds 2 files of the sample ring/0001; paired"):
        load_paired_split(cfg, cfg.task("shapes_captions"), "train")


def test_a_caption_without_its_image_is_one_clear_error(tmp_path):
    generate_demo_data(tmp_path / "demo", train_per_class=2, test_per_class=1)
    cfg = get_config("demo", data_root_dir=tmp_path)
    (cfg.image_root / "train" / "shapes_clean" / "ring" / "0001.png").unlink()
    with pytest.raises(UserError, match="ring/0001 of task shapes_captions .* no partner in its paired task shapes_clean"):
        load_paired_split(cfg, cfg.task("shapes_captions"), "train")
