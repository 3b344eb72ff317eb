"""tools/prepare_cifar100.py on a tiny fake archive written by the test itself."""
import io
import os
import pickle
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tools.prepare_cifar100 import prepare
from utils.data import load_split
from utils.dataset_config import get_config
from utils.errors import UserError
from utils.records import COMPLETE_MARKER

REPO = Path(__file__).resolve().parent.parent
COARSE = [task.name for task in get_config("cifar100").tasks]
FINE = [f"fine{i:02d}" for i in range(100)]


def _split(num, seed):
    rng = np.random.default_rng(seed)
    fine = rng.integers(0, 100, num)
    fine[:5] = [0, 1, 2, 3, 4]       # coarse 0 gets all five of its fine classes
    return {b"data": rng.integers(0, 256, (num, 3072), dtype=np.uint8),
            b"fine_labels": fine.tolist(), b"coarse_labels": (fine // 5).tolist()}


def _pickles(drop=None):
    meta = {b"fine_label_names": [n.encode() for n in FINE],
            b"coarse_label_names": [n.encode() for n in COARSE]}
    members = {"train": _split(30, 0), "test": _split(12, 1), "meta": meta}
    return {name: pickle.dumps(obj) for name, obj in members.items() if name != drop}


def _write_archive(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, raw in members.items():
            info = tarfile.TarInfo(f"cifar-100-python/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return path


def test_archive_becomes_the_folder_layout(tmp_path):
    members = _pickles()
    archive = _write_archive(tmp_path / "cifar-100-python.tar.gz", members)
    out = tmp_path / "cifar100_org"
    assert prepare(archive, out) is True
    train = pickle.loads(members["train"])
    for index in (0, 7, 29):
        fine = train[b"fine_labels"][index]
        png = out / "train" / COARSE[fine // 5] / FINE[fine] / f"{index}.png"
        expected = train[b"data"][index].reshape(3, 32, 32).transpose(1, 2, 0)
        assert np.array_equal(np.asarray(Image.open(png)), expected)
    assert len(list((out / "train").rglob("*.png"))) == 30 and len(list((out / "test").rglob("*.png"))) == 12
    assert prepare(archive, out) is False          # complete: skipped
    (out / COMPLETE_MARKER).write_text("{cut short")
    assert prepare(archive, out) is True           # a marker that is not its record: incomplete, redone
    cfg = get_config("cifar100", data_root_dir=tmp_path)
    data = load_split(cfg, cfg.task(1), "train")
    assert data.classes == FINE[:5] and data.inputs.shape[1:] == (3, 32, 32)


def test_extracted_folder_works(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name, raw in _pickles().items():
        (folder / name).write_bytes(raw)
    assert prepare(tmp_path, tmp_path / "out") is True
    assert len(list((tmp_path / "out" / "test").rglob("*.png"))) == 12


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing.tar.gz", "does not exist"),
    (lambda p: _write_archive(p / "a.tar.gz", _pickles(drop="meta")), "has no meta file"),
    (lambda p: (p / "a.tar.gz").write_bytes(b"not gzip") and p / "a.tar.gz", "not a readable .tar.gz"),
    (lambda p: _write_archive(p / "a.tar.gz", {**_pickles(), "train": pickle.dumps(
        {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]})}), "lacks fine_labels, coarse_labels"),
    (lambda p: _write_archive(p / "a.tar.gz", {**_pickles(), "meta": pickle.dumps(
        {b"label_names": [b"cat"]})}), "no 100 fine_label_names"),
    (lambda p: _write_archive(p / "a.tar.gz", {**_pickles(), "test": pickle.dumps(os.getcwd)}),
     "not a CIFAR-100 python pickle"),
])
def test_wrong_archive_is_a_user_error(tmp_path, make, message):
    with pytest.raises(UserError, match=message):
        prepare(make(tmp_path), tmp_path / "out")
    assert not (tmp_path / "out" / "train").exists()


def test_cli_wrong_archive_exits_without_traceback(tmp_path):
    archive = _write_archive(tmp_path / "a.tar.gz", _pickles(drop="train"))
    result = subprocess.run([sys.executable, "-m", "tools.prepare_cifar100", "--archive", str(archive),
                             "--out", str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 1 and result.stderr.startswith("error: ") and "has no train file" in result.stderr
    assert "Traceback" not in result.stderr
