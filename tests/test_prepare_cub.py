"""tools/prepare_cub.py on fake CUB_200_2011.tgz and cvpr2016_cub.tar.gz archives written by the test itself:
the real formats, tiny JPEGs, and CUB's shortfall of one 60-image class."""
import json
import subprocess
import sys
import tarfile
from functools import cache
from pathlib import Path

import pytest

from fake_archives import listing, tiny_jpeg, write_tar
from tools.group_layout import MARKER
from tools.prepare_cub import CLASSES_PER_GROUP, NUM_IMAGE_GROUPS, choose_classes, prepare
from utils.data import load_paired_split
from utils.dataset_config import get_config
from utils.errors import UserError

REPO = Path(__file__).resolve().parent.parent
# As CUB-200-2011: 139 classes of exactly 60 images, so one class with fewer completes group 28.
SIZES = {c: 60 for c in range(1, 143)} | {3: 59, 5: 30, 8: 1}
FULL = [f"{c:03d}.Bird_{c}" for c, n in SIZES.items() if n == 60]
FILLER = "003.Bird_3"


def class_name(c):
    return f"{c:03d}.Bird_{c}"


def stem(c, j):
    return f"Bird_{c}_{j:04d}_{c * 1000 + j}"


def _jpeg(c, j):
    return tiny_jpeg((c, j * 4, 7))


def first_caption(c, j):
    return f"a bird of kind {c} in picture {j}"


@cache
def cub_members(sizes=tuple(SIZES.items())) -> dict[str, bytes]:
    """CUB_200_2011.tgz's files: the metadata tables and images/<class>/<file>.jpg."""
    images, labels, split, files = [], [], [], {}
    for c, n in sizes:
        for j in range(1, n + 1):
            image_id = len(images) + 1
            images.append(f"{image_id} {class_name(c)}/{stem(c, j)}.jpg")
            labels.append(f"{image_id} {c}")
            split.append(f"{image_id} {j % 2}")
            files[f"CUB_200_2011/images/{class_name(c)}/{stem(c, j)}.jpg"] = _jpeg(c, j)
    tables = {"images.txt": images, "image_class_labels.txt": labels, "train_test_split.txt": split,
              "classes.txt": [f"{c} {class_name(c)}" for c, _ in sizes]}
    return {**{f"CUB_200_2011/{name}": ("\n".join(lines) + "\n").encode() for name, lines in tables.items()},
            "attributes.txt": b"1 has_bill_shape::curved\n", **files}


@cache
def caption_members(sizes=tuple(SIZES.items())) -> dict[str, bytes]:
    """cvpr2016_cub.tar.gz's text_c10/<class>/<file>.txt: ten caption lines per image."""
    return {f"cvpr2016_cub/text_c10/{class_name(c)}/{stem(c, j)}.txt":
            "\n".join([first_caption(c, j)] + [f"caption {k} of bird {c}" for k in range(2, 11)]).encode() + b"\n"
            for c, n in sizes for j in range(1, n + 1)}



@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    folder = tmp_path_factory.mktemp("downloads")
    return (write_tar(folder / "CUB_200_2011.tgz", cub_members()),
            write_tar(folder / "cvpr2016_cub.tar.gz", caption_members()))


@pytest.fixture(scope="module")
def prepared(archives, tmp_path_factory):
    """A data root holding cub/ prepared from the fake archives; treat as read-only."""
    root = tmp_path_factory.mktemp("data_root")
    assert prepare(*archives, root / "cub") is True
    return root



def test_groups_are_the_60_image_classes_in_id_order_completed_by_the_largest_other(prepared):
    cub = prepared / "cub"
    marker = json.loads((cub / MARKER).read_text())
    assert marker["groups"]["group1"] == FULL[:5]
    assert marker["groups"]["group27"] == FULL[130:135]
    assert marker["groups"]["group28"] == FULL[135:] + [FILLER]
    assert marker["fillers"] == {FILLER: 59}
    for split in ("train", "test"):
        assert sorted((cub / "images" / split).iterdir()) == sorted(
            cub / "images" / split / f"group{k}" for k in range(1, NUM_IMAGE_GROUPS + 1))
        assert sorted((cub / "text" / split).iterdir()) == sorted(
            cub / "text" / split / f"group{k}" for k in range(NUM_IMAGE_GROUPS + 1, 2 * NUM_IMAGE_GROUPS + 1))
    for k in range(1, NUM_IMAGE_GROUPS + 1):
        train, test = (listing(cub / "images" / split / f"group{k}") for split in ("train", "test"))
        assert list(train) == list(test) == sorted(marker["groups"][f"group{k}"])
        for name in train:
            # 80/20 of every class: 48/12 of a 60-image class, 47/12 of the 59-image filler
            assert (len(train[name]), len(test[name])) == ((47, 12) if name == FILLER else (48, 12))
            assert not set(train[name]) & set(test[name])
    assert marker["samples"]["train/group1"] == marker["samples"]["train/group29"] == 5 * 48


def test_every_image_has_its_first_caption_in_the_paired_group(prepared):
    cub = prepared / "cub"
    for split in ("train", "test"):
        for k in range(1, NUM_IMAGE_GROUPS + 1):
            images = cub / "images" / split / f"group{k}"
            captions = cub / "text" / split / f"group{k + NUM_IMAGE_GROUPS}"
            assert listing(images) == listing(captions)
    image = next((cub / "images" / "test" / "group28" / FILLER).iterdir())
    c, j = 3, int(image.stem.split("_")[2])
    assert image.read_bytes() == _jpeg(c, j)      # CUB's bytes, unchanged
    caption = cub / "text" / "test" / "group56" / FILLER / f"{image.stem}.txt"
    assert caption.read_text(encoding="utf-8") == first_caption(c, j) + "\n"


def test_split_is_seeded_and_an_extracted_folder_gives_the_same_files(prepared, archives, tmp_path):
    with tarfile.open(archives[1]) as tar:
        tar.extractall(tmp_path / "cvpr2016_cub", filter="data")
    out = tmp_path / "cub"
    assert prepare(archives[0], tmp_path / "cvpr2016_cub", out) is True
    ours = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file() and p.name != MARKER)
    theirs = sorted(p.relative_to(prepared / "cub") for p in (prepared / "cub").rglob("*")
                    if p.is_file() and p.name != MARKER)
    assert ours == theirs and len(ours) == 2 * (139 * 60 + 59)
    assert json.loads((out / MARKER).read_text())["sources"]["captions"] == {"folder": "cvpr2016_cub"}


def test_the_cub_config_loads_a_prepared_image_group_with_its_captions(prepared):
    cfg = get_config("cub", data_root_dir=prepared)
    images, captions = load_paired_split(cfg, cfg.task(1), "test")
    assert images.inputs.shape == (5 * 12, 3, 224, 224) and captions.inputs.shape == (5 * 12, 128)
    assert images.classes == captions.classes == FULL[:5]
    assert images.labels.tolist() == captions.labels.tolist()


def test_a_complete_folder_is_kept_until_a_forced_rewrite_succeeds(prepared, archives, tmp_path):
    assert prepare(*archives, prepared / "cub") is False
    broken = write_tar(tmp_path / "CUB_200_2011.tgz", cub_members(),
                       replace={f"CUB_200_2011/images/{FULL[0]}/{stem(1, 1)}.jpg": b"not a jpeg"})
    before = sorted((prepared / "cub").rglob("*"))
    with pytest.raises(UserError, match="is not a readable image"):
        prepare(broken, archives[1], prepared / "cub", force=True)
    assert sorted((prepared / "cub").rglob("*")) == before


def test_choose_classes_keeps_the_first_140_full_classes_in_id_order():
    sizes = {f"{c:03d}": 60 for c in range(1, 146)} | {"002": 59}
    chosen, fillers = choose_classes(sizes)
    assert chosen == [name for name, n in sizes.items() if n == 60][:NUM_IMAGE_GROUPS * CLASSES_PER_GROUP]
    assert fillers == []


def test_choose_classes_completes_with_the_largest_classes_ties_in_id_order():
    sizes = {f"{c:03d}": 60 for c in range(1, 138)} | {"138": 41, "139": 58, "140": 59, "141": 58, "142": 1}
    chosen, fillers = choose_classes(sizes)
    assert fillers == ["139", "140", "141"]
    assert chosen[-4:] == ["137", "139", "140", "141"]


SMALL = tuple({c: 60 for c in range(1, 11)}.items())


def _small_cub(path, **edit):
    """Enough for the refusals found before the classes are counted."""
    return write_tar(path / "CUB_200_2011.tgz", cub_members(SMALL), **edit)


# name: (the (archive, captions) to prepare from the tmp folder and the good archives, the refusal)
REFUSALS = {
    "missing archive": (lambda p, good: (p / "nothing.tgz", good[1]), "--archive .* does not exist"),
    "not an archive": (lambda p, good: ((p / "x.tgz").write_bytes(b"<html>") and p / "x.tgz", good[1]),
                       "is not a readable .tgz / .tar.gz archive"),
    "no class labels": (lambda p, good: (_small_cub(p, drop=["CUB_200_2011/image_class_labels.txt"]), good[1]),
                        "has no CUB_200_2011/image_class_labels.txt"),
    "labels of fewer images": (
        lambda p, good: (_small_cub(p, replace={"CUB_200_2011/image_class_labels.txt": b"1 1\n2 1\n"}), good[1]),
        "image_class_labels.txt labels 2 images but images.txt lists 600"),
    "a label of no class": (
        lambda p, good: (_small_cub(p, replace={"CUB_200_2011/classes.txt": b"1 001.Bird_1\n"}), good[1]),
        "gives image 61 the class 2, which classes.txt does not list"),
    "too few classes": (lambda p, good: (_small_cub(p), good[1]), "10 classes with 60 images .* need 140"),
    "listed image missing": (
        lambda p, good: (write_tar(p / "c.tgz", cub_members(),
                                   drop=[f"CUB_200_2011/images/{FULL[0]}/{stem(1, 7)}.jpg"]), good[1]),
        f"has no CUB_200_2011/images/{FULL[0]}/{stem(1, 7)}.jpg, which images.txt lists"),
    "caption folder of a class missing": (
        lambda p, good: (good[0], write_tar(p / "t.tgz", caption_members(),
                                            drop=[f"cvpr2016_cub/text_c10/{FULL[3]}/"])),
        f"has no text_c10/{FULL[3]}/ folder"),
    "caption of an image missing": (
        lambda p, good: (good[0], write_tar(p / "t.tgz", caption_members(),
                                            drop=[f"cvpr2016_cub/text_c10/{FILLER}/{stem(3, 59)}.txt"])),
        f"has no caption cvpr2016_cub/text_c10/{FILLER}/{stem(3, 59)}.txt for the image"),
    "an empty caption file": (
        lambda p, good: (good[0], write_tar(p / "t.tgz", caption_members(),
                                            replace={f"cvpr2016_cub/text_c10/{FULL[0]}/{stem(1, 1)}.txt": b"\n \n"})),
        f"text_c10/{FULL[0]}/{stem(1, 1)}.txt holds no caption"),
    "not the caption archive": (lambda p, good: (good[0], write_tar(p / "t.tgz", {"word_c10/a.txt": b"a"})),
                                "--captions .* has no text_c10/ folder"),
}


@pytest.mark.parametrize("name", REFUSALS)
def test_a_malformed_input_is_refused_in_one_sentence_and_writes_nothing(name, archives, tmp_path):
    make, message = REFUSALS[name]
    with pytest.raises(UserError, match=message) as refusal:
        prepare(*make(tmp_path, archives), tmp_path / "cub")
    assert str(refusal.value).count(". ") == 0 and str(refusal.value).endswith((".", "?"))
    assert not (tmp_path / "cub").exists()


def test_cli_refusal_is_one_error_line_without_traceback(tmp_path):
    archive = write_tar(tmp_path / "CUB_200_2011.tgz", cub_members(SMALL), drop=["CUB_200_2011/classes.txt"])
    result = subprocess.run([sys.executable, "-m", "tools.prepare_cub", "--archive", str(archive),
                             "--captions", str(tmp_path), "--out", str(tmp_path / "cub")],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and "has no CUB_200_2011/classes.txt" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
