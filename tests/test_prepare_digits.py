"""tools/prepare_digits.py on a tiny digits.csv.gz (rows of 64 ink counts and the digit, as scikit-learn ships it),
given as the file, inside a fake wheel and inside a fake installed sklearn folder."""
import gzip
import zipfile

import numpy as np
import pytest
from PIL import Image

from fake_archives import listing
from tools.prepare_digits import MEMBER, TASKS, prepare
from utils.data import load_split
from utils.dataset_config import get_config
from utils.errors import UserError

PER_DIGIT = 12


def digits_csv_gz(rows=None) -> bytes:
    rng = np.random.default_rng(0)
    if rows is None:
        rows = [list(rng.integers(0, 17, 64)) + [digit] for digit in range(10) for _ in range(PER_DIGIT)]
    return gzip.compress("\n".join(",".join(str(v) for v in row) for row in rows).encode())


@pytest.fixture
def csv_file(tmp_path):
    path = tmp_path / "digits.csv.gz"
    path.write_bytes(digits_csv_gz())
    return path


def test_four_tasks_share_digits_but_no_image_and_load_as_8x8(csv_file, tmp_path):
    assert prepare(csv_file, tmp_path / "digits") is True
    cfg = get_config("digits", data_root_dir=tmp_path)
    assert [t.name for t in cfg.tasks] == list(TASKS) and cfg.train_augment == "none"
    stems = {}
    for task in TASKS:
        train, test = (listing(cfg.image_root / split / task) for split in ("train", "test"))
        assert sorted(train) == sorted(test) == sorted(str(d) for d in TASKS[task])
        for digit in train:     # half of the digit's 12 images, 20% of them rounded up to test
            assert len(train[digit]) == 4 and len(test[digit]) == 2
            stems[task, digit] = set(train[digit]) | set(test[digit])
    for digit in ("0", "2", "4"):
        assert not stems["low", digit] & stems["even", digit]
        assert len(stems["low", digit] | stems["even", digit]) == PER_DIGIT
    task = cfg.task("odd")
    data = load_split(cfg, task, "train")
    assert tuple(data.inputs.shape) == (20, 3, 8, 8) and data.classes == ["1", "3", "5", "7", "9"]


def test_ink_is_dark_on_white(tmp_path):
    ink = [0] * 63 + [16]
    path = tmp_path / "digits.csv.gz"
    path.write_bytes(digits_csv_gz([ink + [digit] for digit in range(10) for _ in range(4)]))
    prepare(path, tmp_path / "out")
    pixels = np.asarray(Image.open(next((tmp_path / "out" / "images" / "train" / "low" / "3").iterdir())))
    assert pixels.shape == (8, 8) and pixels[7, 7] == 0 and (pixels.flatten()[:63] == 255).all()


def test_wheel_folder_and_file_give_the_same_images(csv_file, tmp_path):
    wheel = tmp_path / "scikit_learn-1.9.1-cp311-cp311-linux_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(MEMBER, csv_file.read_bytes())
    installed = tmp_path / "site-packages" / MEMBER
    installed.parent.mkdir(parents=True)
    installed.write_bytes(csv_file.read_bytes())
    for source, out in ((csv_file, "a"), (wheel, "b"), (tmp_path / "site-packages" / "sklearn", "c")):
        assert prepare(source, tmp_path / out) is True
    files = [sorted((p.relative_to(tmp_path / out), p.read_bytes()) for p in (tmp_path / out).rglob("*.png"))
             for out in "abc"]
    assert files[0] and files[0] == files[1] == files[2]
    assert prepare(wheel, tmp_path / "b") is False


@pytest.mark.parametrize("content, message", [
    (lambda: b"not gzip", "is not a gzipped CSV of numbers"),
    (lambda: digits_csv_gz([[1] * 64 + [3]] * 40 + [[1] * 63 + [3]]), "is not a gzipped CSV of numbers"),
    (lambda: digits_csv_gz([[17] * 64 + [3]] * 40), "does not hold rows of 64 ink counts"),
    (lambda: digits_csv_gz([[1] * 64 + [d % 9] for d in range(90)]), "has 0 images of the digit 9"),
])
def test_a_damaged_file_is_one_sentence_and_writes_nothing(tmp_path, content, message):
    path = tmp_path / "digits.csv.gz"
    path.write_bytes(content())
    with pytest.raises(UserError, match=message) as err:
        prepare(path, tmp_path / "out")
    assert "\n" not in str(err.value) and "pip download" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_a_wheel_without_the_digits_is_named(tmp_path):
    wheel = tmp_path / "other-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("other/__init__.py", "")
    with pytest.raises(UserError, match="holds no sklearn/datasets/data/digits.csv.gz"):
        prepare(wheel, tmp_path / "out")
