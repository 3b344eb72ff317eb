"""tools/prepare_wordnet.py on a tiny WordNet database (data.noun, data.verb in WordNet's format, a licence header
and all) written by the test itself."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fake_archives import listing, write_tar
from tools import prepare_wordnet
from tools.prepare_wordnet import LEX_FILES, TASKS, class_folder, prepare
from utils.data import load_split
from utils.dataset_config import get_config
from utils.errors import UserError

REPO = Path(__file__).resolve().parent.parent
LICENCE = "  1 This software and database is being provided to you, the LICENSEE, by\n  2 Princeton University\n"
SYNSETS = 7     # per class; the test keeps PER_CLASS = 5 of them


def data_line(offset: int, lexname: str, k: int) -> str:
    pos = lexname[0]
    return (f"{offset:08d} {LEX_FILES[lexname]:02d} {pos} 01 word_{offset} 0 001 @ 00000001 {pos} 0000 | "
            f"definition {k} of {lexname}; \"an example naming word_{offset}\"")


def database_files() -> dict[str, bytes]:
    lines = {"noun": [], "verb": []}
    offset = 100
    for lexname in LEX_FILES:
        for k in range(SYNSETS):
            lines[lexname.split(".")[0]].append(data_line(offset, lexname, k))
            offset += 1
    # a class no task uses is read and dropped
    lines["noun"].append(f"{offset:08d} 03 n 01 entity 0 000 | that which is perceived")
    return {f"data.{pos}": (LICENCE + "\n".join(rows) + "\n").encode() for pos, rows in lines.items()}


@pytest.fixture
def dictionary(tmp_path):
    folder = tmp_path / "wordnet"
    folder.mkdir()
    for name, raw in database_files().items():
        (folder / name).write_bytes(raw)
    return folder


@pytest.fixture(autouse=True)
def few_per_class(monkeypatch):
    monkeypatch.setattr(prepare_wordnet, "PER_CLASS", 5)


def test_layout_has_six_tasks_of_five_classes_and_definitions_without_examples(dictionary, tmp_path):
    assert prepare(dictionary, tmp_path / "wordnet") is True
    cfg = get_config("wordnet", data_root_dir=tmp_path)
    assert [t.name for t in cfg.tasks] == list(TASKS) and all(t.modality == "text" for t in cfg.tasks)
    for task in cfg.tasks:
        train, test = (listing(cfg.text_root / split / task.name) for split in ("train", "test"))
        assert sorted(train) == sorted(test) == sorted(class_folder(lexname) for lexname in TASKS[task.name])
        for label in train:
            assert len(train[label]) == 4 and len(test[label]) == 1 and not set(train[label]) & set(test[label])
    text = next((cfg.text_root / "train" / "living" / "noun_animal").iterdir()).read_text()
    assert text.startswith("definition ") and text.endswith("of noun.animal\n") and "word_" not in text
    train = load_split(cfg, cfg.task("doing"), "train")
    assert len(train) == 20 and train.classes == sorted(class_folder(n) for n in TASKS["doing"])


def test_archive_and_folder_give_the_same_data_and_a_complete_folder_is_kept(dictionary, tmp_path):
    archive = write_tar(tmp_path / "WordNet-3.0.tar.gz",
                        {f"WordNet-3.0/dict/{name}": raw for name, raw in database_files().items()})
    assert prepare(archive, tmp_path / "a") and prepare(dictionary, tmp_path / "b")
    for split in ("train", "test"):
        for task in TASKS:
            assert listing(tmp_path / "a" / "text" / split / task) == listing(tmp_path / "b" / "text" / split / task)
    assert prepare(dictionary, tmp_path / "a") is False
    assert prepare(dictionary, tmp_path / "a", force=True) is True


@pytest.mark.parametrize("damage, message", [
    (lambda folder: (folder / "data.verb").unlink(), "holds no data.noun and data.verb"),
    (lambda folder: (folder / "data.noun").write_text(LICENCE + "00000100 05 n | a line without words\n"),
     "data.noun line 3 is not a WordNet data line"),
    (lambda folder: (folder / "data.noun").write_text(LICENCE), "noun.animal has 0 synsets with a definition"),
])
def test_a_damaged_database_is_one_sentence_and_writes_nothing(dictionary, tmp_path, damage, message):
    damage(dictionary)
    with pytest.raises(UserError, match=message) as err:
        prepare(dictionary, tmp_path / "out")
    assert "\n" not in str(err.value) and "wordnet-base" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_cli_prepares_and_reports_errors_without_traceback(dictionary, tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "tools.prepare_wordnet", *map(str, args)], cwd=REPO,
                              capture_output=True, text=True, env=dict(os.environ, TQDM_DISABLE="1"))
    done = cli("--dict", dictionary, "--out", tmp_path / "out")
    assert done.returncode == 0 and "train/living 25" in done.stdout, done.stderr    # all 7 synsets: 2 test, 5 train
    failed = cli("--dict", tmp_path / "nowhere", "--out", tmp_path / "x")
    assert failed.returncode == 1 and failed.stderr.startswith("error: --dict ") and "does not exist" in failed.stderr
    assert "Traceback" not in failed.stderr and not (tmp_path / "x").exists()
