"""The demo generator: layout, determinism, resume marker and the designed relations."""
import subprocess
import sys
from pathlib import Path

from tools.make_demo_data import MARKER, generate_demo_data
from utils.dataset_config import DEMO_CLASSES, DEMO_TASKS, get_config

REPO = Path(__file__).resolve().parent.parent


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
    command = [sys.executable, "tools/make_demo_data.py", "--out", str(tmp_path / "d"),
               "--train-per-class", "2", "--test-per-class", "1"]
    first = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    second = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert first.returncode == 0 and "written" in first.stdout
    assert second.returncode == 0 and "already complete" in second.stdout
    bad = subprocess.run(command[:-1] + ["0"], cwd=REPO, capture_output=True, text=True)
    assert bad.returncode != 0 and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr
