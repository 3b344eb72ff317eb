"""tools/prepare_oxford.py on fake 102flowers.tgz, imagelabels.mat and cvpr2016_flowers.tar.gz written by the
test itself in the real formats (tiny JPEGs, a MATLAB 1 x N labels array, ten caption lines per image)."""
import json
import random
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from fake_archives import listing, tiny_jpeg, write_tar
from tools.group_layout import MARKER
from tools.prepare_oxford import GROUPS, prepare
from utils.data import load_paired_split
from utils.dataset_config import get_config
from utils.errors import UserError

REPO = Path(__file__).resolve().parent.parent
GROUP_CLASSES = [label for group in GROUPS for label in group]
# 5 to 9 images per group class (so the rounded-up 20% varies), and three classes of no group
SIZES = {label: 5 + label % 5 for label in GROUP_CLASSES} | {1: 3, 2: 3, 102: 3}


def labels_in_image_order():
    """Each image's class, shuffled as in the real file (images are not sorted by class)."""
    labels = [label for label, n in SIZES.items() for _ in range(n)]
    random.Random(0).shuffle(labels)
    return labels


LABELS = labels_in_image_order()


def _jpeg(number):
    return tiny_jpeg((number % 256, number // 256, 99), size=(5, 4))


def first_caption(number):
    return f"this flower number {number} has wide petals"


def flower_members(count=len(LABELS)):
    return {f"jpg/image_{n:05d}.jpg": _jpeg(n) for n in range(1, count + 1)}


def caption_members():
    return {f"cvpr2016_flowers/text_c10/class_{label:05d}/image_{n:05d}.txt":
            "\n".join([first_caption(n)] + [f"petals of flower {n}, caption {k}" for k in range(2, 11)]).encode()
            + b"\n"
            for n, label in enumerate(LABELS, start=1)}



def write_labels(path, labels=LABELS, key="labels"):
    scipy.io.savemat(path, {key: np.array([labels], dtype=np.float64)})    # 1 x N doubles, as the real file
    return path


@pytest.fixture(scope="module")
def downloads(tmp_path_factory):
    folder = tmp_path_factory.mktemp("downloads")
    return (write_tar(folder / "102flowers.tgz", flower_members()), write_labels(folder / "imagelabels.mat"),
            write_tar(folder / "cvpr2016_flowers.tar.gz", caption_members()))


@pytest.fixture(scope="module")
def prepared(downloads, tmp_path_factory):
    """A data root holding oxford/ prepared from the fake downloads; treat as read-only."""
    root = tmp_path_factory.mktemp("data_root")
    assert prepare(*downloads, root / "oxford") is True
    return root



def test_groups_are_the_originals_and_every_class_is_split_80_20(prepared):
    oxford = prepared / "oxford"
    for split in ("train", "test"):
        assert sorted(p.name for p in (oxford / "images" / split).iterdir()) == sorted(f"group{k}" for k in range(1, 7))
        assert sorted(p.name for p in (oxford / "text" / split).iterdir()) == sorted(f"group{k}" for k in range(7, 13))
    for k, group in enumerate(GROUPS, start=1):
        train, test = (listing(oxford / "images" / split / f"group{k}") for split in ("train", "test"))
        assert list(train) == list(test) == sorted(f"class_{label:05d}" for label in group)
        for label in group:
            name, n = f"class_{label:05d}", SIZES[label]
            assert len(test[name]) == -(-n // 5) and len(train[name]) == n - len(test[name])  # test share rounded up
            own = sorted(f"image_{i:05d}" for i, own in enumerate(LABELS, start=1) if own == label)
            assert sorted(train[name] + test[name]) == own
    marker = json.loads((oxford / MARKER).read_text())
    assert marker["groups"]["group1"] == ["class_00051", "class_00072", "class_00082", "class_00060"]
    assert marker["sources"]["labels"]["file"] == "imagelabels.mat"


def test_every_image_has_its_first_caption_in_the_paired_group(prepared):
    oxford = prepared / "oxford"
    for split in ("train", "test"):
        for k in range(1, 7):
            images, captions = oxford / "images" / split / f"group{k}", oxford / "text" / split / f"group{k + 6}"
            assert listing(images) == listing(captions)
    image = next((oxford / "images" / "train" / "group6" / "class_00043").iterdir())
    number = int(image.stem.split("_")[1])
    assert image.read_bytes() == _jpeg(number)        # the archive's bytes, unchanged
    caption = oxford / "text" / "train" / "group12" / "class_00043" / f"{image.stem}.txt"
    assert caption.read_text(encoding="utf-8") == first_caption(number) + "\n"


def test_split_is_seeded_and_an_extracted_folder_gives_the_same_files(prepared, downloads, tmp_path):
    with tarfile.open(downloads[0]) as tar:
        tar.extractall(tmp_path / "102flowers", filter="data")
    out = tmp_path / "oxford"
    assert prepare(tmp_path / "102flowers", *downloads[1:], out) is True
    files = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != MARKER}
    before = {p.relative_to(prepared / "oxford"): p.read_bytes() for p in (prepared / "oxford").rglob("*")
              if p.is_file() and p.name != MARKER}
    assert files == before and len(files) == 2 * sum(SIZES[label] for label in GROUP_CLASSES)


def test_the_oxford_config_loads_a_prepared_image_group_with_its_captions(prepared):
    cfg = get_config("oxford", data_root_dir=prepared)
    images, captions = load_paired_split(cfg, cfg.task(2), "train")
    n = sum(SIZES[label] - -(-SIZES[label] // 5) for label in GROUPS[1])
    assert images.inputs.shape == (n, 3, 64, 64) and captions.inputs.shape == (n, 128)
    assert images.classes == captions.classes == sorted(f"class_{label:05d}" for label in GROUPS[1])
    assert images.labels.tolist() == captions.labels.tolist()


def test_a_complete_folder_is_skipped(prepared, downloads):
    assert prepare(*downloads, prepared / "oxford") is False


def _relabelled(path, old, new):
    return write_labels(path / "labels.mat", [new if label == old else label for label in LABELS])


# name: (the (archive, labels, captions) to prepare from the tmp folder and the good downloads, the refusal)
REFUSALS = {
    "missing archive": (lambda p, good: (p / "102flowers.tgz", *good[1:]), "--archive .* does not exist"),
    "no jpg folder": (lambda p, good: (write_tar(p / "f.tgz", {"image_00001.jpg": _jpeg(1)}), *good[1:]),
                      "has no jpg/ folder"),
    "fewer labels than images": (lambda p, good: (good[0], write_labels(p / "l.mat", LABELS[:-1]), good[2]),
                                 f"has {len(LABELS) - 1} labels but --archive .* holds {len(LABELS)} images"),
    "an image missing": (lambda p, good: (write_tar(p / "f.tgz", {**flower_members(len(LABELS) - 1),
                                                                  "jpg/image_99999.jpg": _jpeg(9)}), *good[1:]),
                         f"has no jpg/image_{len(LABELS):05d}.jpg, which --labels .* labels"),
    "not a mat file": (lambda p, good: (good[0], (p / "l.mat").write_bytes(b"labels") and p / "l.mat", good[2]),
                       "--labels .* is not a MATLAB .mat file"),
    "no labels array": (lambda p, good: (good[0], write_labels(p / "l.mat", key="setid"), good[2]),
                        "has no numeric 'labels' array"),
    "a label out of range": (lambda p, good: (good[0], _relabelled(p, 1, 103), good[2]),
                             "has labels outside the whole numbers 1-102"),
    "a group class without images": (lambda p, good: (good[0], _relabelled(p, 82, 1), good[2]),
                                     "gives class 82 0 images, but it needs 2 or more for group1"),
    "caption folder of a class missing": (
        lambda p, good: (*good[:2], write_tar(p / "t.tgz", caption_members(),
                                              drop=["cvpr2016_flowers/text_c10/class_00078/"])),
        "has no text_c10/class_00078/ folder"),
    "caption of an image missing": (
        lambda p, good: (*good[:2], write_tar(p / "t.tgz", caption_members(), drop=[
            f"cvpr2016_flowers/text_c10/class_00051/image_{LABELS.index(51) + 1:05d}.txt"])),
        f"has no caption .*class_00051/image_{LABELS.index(51) + 1:05d}.txt for the image jpg/image_"),
}


@pytest.mark.parametrize("name", REFUSALS)
def test_a_malformed_input_is_refused_in_one_sentence_and_writes_nothing(name, downloads, tmp_path):
    make, message = REFUSALS[name]
    with pytest.raises(UserError, match=message) as refusal:
        prepare(*make(tmp_path, downloads), tmp_path / "oxford")
    assert str(refusal.value).count(". ") == 0 and str(refusal.value).endswith((".", "?"))
    assert not (tmp_path / "oxford").exists()


def test_cli_refusal_is_one_error_line_without_traceback(downloads, tmp_path):
    labels = write_labels(tmp_path / "imagelabels.mat", LABELS + [5])
    result = subprocess.run([sys.executable, "-m", "tools.prepare_oxford", "--archive", str(downloads[0]),
                             "--labels", str(labels), "--captions", str(downloads[2]),
                             "--out", str(tmp_path / "oxford")], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and "are they from the same download?" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "oxford").exists()
