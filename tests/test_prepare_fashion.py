"""tools/prepare_fashion.py on a tiny Fashion-MNIST written in its own IDX format (gzipped, big-endian header)."""
import gzip

import numpy as np
import pytest
from PIL import Image

from fake_archives import listing
from tools import prepare_fashion
from utils.data import load_split
from utils.dataset_config import get_config
from utils.errors import UserError

SHRUNK = {"TRAIN_PER_KIND": 4, "FEW_PER_KIND": 2, "TEST_PER_KIND": 3}
PER_KIND = {"train": 15, "test": 9}     # each third holds 5 train or 3 test images of a kind


def idx_gz(array: np.ndarray, magic: int) -> bytes:
    header = np.array([magic, *array.shape], dtype=">u4").tobytes()
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def write_fashion(folder, per_kind=PER_KIND, side=28):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, (images_file, labels_file) in prepare_fashion.FILES.items():
        labels = np.repeat(np.arange(10), per_kind[split])
        images = rng.integers(0, 256, (len(labels), side, side))
        images[:, 0, 0] = np.arange(len(labels)) % 256      # tells every image apart in the test below
        (folder / images_file).write_bytes(idx_gz(images, prepare_fashion.IMAGES_MAGIC))
        (folder / labels_file).write_bytes(idx_gz(labels, prepare_fashion.LABELS_MAGIC))
    return folder


@pytest.fixture
def shrunk(monkeypatch):
    for name, value in SHRUNK.items():
        monkeypatch.setattr(prepare_fashion, name, value)


def test_six_tasks_share_kinds_but_no_image_and_the_few_shot_ones_are_few(shrunk, tmp_path):
    assert prepare_fashion.prepare(write_fashion(tmp_path / "src"), tmp_path / "fashion") is True
    cfg = get_config("fashion", data_root_dir=tmp_path)
    tasks = {name: kinds for way in prepare_fashion.WAYS for name, kinds in way.items()}
    assert [t.name for t in cfg.tasks] == list(tasks)
    stems = {}
    for task, kinds in tasks.items():
        train, test = (listing(cfg.image_root / split / task) for split in ("train", "test"))
        assert sorted(train) == sorted(test) == sorted(prepare_fashion.KINDS[k] for k in kinds)
        few = task in prepare_fashion.FEW_SHOT
        assert all(len(train[kind]) == (2 if few else 4) and len(test[kind]) == 3 for kind in train)
        stems[task] = {(split, kind, stem) for split, files in (("train", train), ("test", test))
                       for kind, names in files.items() for stem in names}
    assert not stems["tops"] & stems["even"] and not stems["even"] & stems["low"]
    shared = {k for _, k, _ in stems["tops"]} & {k for _, k, _ in stems["even"]}
    assert shared == {"tshirt", "pullover", "coat", "shirt"}
    data = load_split(cfg, cfg.task("odd"), "train")
    assert tuple(data.inputs.shape) == (10, 3, 28, 28)


def test_images_are_saved_as_read(shrunk, tmp_path):
    source = write_fashion(tmp_path / "src")
    prepare_fashion.prepare(source, tmp_path / "out")
    images, labels = prepare_fashion.read_split(source, "test")
    for path in (tmp_path / "out" / "images" / "test" / "low" / "coat").iterdir():
        row = int(path.stem)
        assert labels[row] == prepare_fashion.KINDS.index("coat")
        assert np.array_equal(np.asarray(Image.open(path)), images[row])


def test_a_complete_folder_is_kept_and_the_same_source_gives_the_same_files(shrunk, tmp_path):
    source = write_fashion(tmp_path / "src")
    for out in ("a", "b"):
        assert prepare_fashion.prepare(source, tmp_path / out) is True
    files = [sorted((p.relative_to(tmp_path / out), p.read_bytes()) for p in (tmp_path / out).rglob("*.png"))
             for out in "ab"]
    assert files[0] and files[0] == files[1]
    assert prepare_fashion.prepare(source, tmp_path / "a") is False


@pytest.mark.parametrize("damage, message", [
    (lambda f: (f / "t10k-labels-idx1-ubyte.gz").unlink(), "cannot be read as a gzipped IDX file"),
    (lambda f: (f / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip"), "cannot be read as a gzipped IDX"),
    (lambda f: (f / "train-images-idx3-ubyte.gz").write_bytes(
        idx_gz(np.zeros((150, 28, 28)), prepare_fashion.LABELS_MAGIC)), "is not an IDX file of 3-dimensional"),
    (lambda f: (f / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(
        gzip.decompress(idx_gz(np.zeros((150, 28, 28)), prepare_fashion.IMAGES_MAGIC))[:-9])), "is not an IDX file"),
    (lambda f: (f / "t10k-images-idx3-ubyte.gz").write_bytes(
        idx_gz(np.zeros((90, 8, 8)), prepare_fashion.IMAGES_MAGIC)), "do not hold 28x28 images"),
    (lambda f: write_fashion(f, per_kind={"train": 15, "test": 6}), "has 2 images of tshirt for the task tops"),
])
def test_a_bad_source_is_one_sentence_and_leaves_nothing(shrunk, tmp_path, damage, message):
    source = write_fashion(tmp_path / "src")
    damage(source)
    with pytest.raises(UserError, match=message):
        prepare_fashion.prepare(source, tmp_path / "out")
    assert not (tmp_path / "out").exists()
