"""tools/report.py on fake pipeline outputs: full results, step 1 only, and nothing at all."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest

from tools import report
from utils import paths
from utils.dataset_config import get_config

ROOT = Path(__file__).resolve().parent.parent
ARCH = "perceiver_io"
CFG = get_config("demo")
# Six demo tasks ran: images 1-4 (shapes/patterns, clean/noisy) and texts 7-8 (shapes captions/notes).
TASK_IDS = (1, 2, 3, 4, 7, 8)
BASELINES = {1: "0.7200", 2: "0.6400", 3: "0.8100", 4: "0.5900", 7: "0.6600", 8: "0.6100"}
# target -> selected backbone: 1->2 and 7->8 are the designed related pairs, 3->1 and 8->2 are not.
SELECTIONS = {1: 2, 3: 1, 7: 8, 8: 2}
TARGET_RESULTS = {1: (0.7813, 1.4142135623730951, 0.778), 3: (0.7950, 1.0, 0.512),
                  7: (0.7025, 1.224744871391589, 0.634), 8: (0.6480, 1.0, 0.401)}
RECORDS = {1: {"0.0": 0.74, "0.3": 0.735, "0.5": 0.7213, "0.7": 0.70}, 2: {"0.0": 0.66, "0.3": 0.65, "0.5": 0.62},
           3: {"0.0": 0.83, "0.3": 0.83, "0.5": 0.82, "0.7": 0.8111, "0.9": 0.75}, 4: {"0.0": 0.58, "0.3": 0.55},
           7: {"0.0": 0.68, "0.3": 0.672, "0.5": 0.661}, 8: {"0.0": 0.63, "0.3": 0.615}}
CHOSEN = {1: 0.5, 2: 0.3, 3: 0.7, 4: 0.0, 7: 0.5, 8: 0.3}


def name(task_id):
    return CFG.task(task_id).name


def distance(target, candidate):
    """Related pairs are close, same-modality pairs closer than cross-modality ones; deterministic."""
    d = 1.0 + 0.07 * ((target * 7 + candidate * 3) % 5)
    if CFG.related.get(name(target)) == name(candidate):
        d -= 0.6
    if CFG.task(target).modality != CFG.task(candidate).modality:
        d += 0.8
    return round(d, 4)


def write_json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def write_step1():
    write_json(paths.baseline_acc_file(ARCH, "demo"), {name(t): acc for t, acc in BASELINES.items()})


def write_step2():
    for t in TASK_IDS:
        prune_dir = paths.backbone_dir(ARCH, "demo", name(t)) / "gradual_prune"
        write_json(prune_dir / "record.txt", RECORDS[t])
        ratio = CHOSEN[t]
        write_json(prune_dir / "chosen.json", {"ratio": ratio, "accuracy": RECORDS[t][str(ratio)],
                                               "checkpoint": "checkpoint-4.pth.tar", "source": f"{ratio}/x"})


def write_step3_1():
    with open(paths.pickaback_result_csv("demo"), "w", newline="") as f:
        csv.writer(f).writerows([["target_id", "task_id"], *[[t, c] for t, c in SELECTIONS.items()]])
    with open(paths.pickaback_table_csv("demo"), "w", newline="") as f:
        rows = [[t, c, round(distance(t, c) / 3, 4), distance(t, c), compared_as(t, c), 0.1, -1.0, 0.5]
                for t in SELECTIONS for c in TASK_IDS if c != t]
        csv.writer(f).writerows([["target_id", "task_id", "ddv_cos", "ddv_euc", "compared_as", "logme", "leep",
                                  "cka"], *rows])


def compared_as(target, candidate):
    """Same modality: own adapter; across modalities paired probes, but target 8 as if unpaired."""
    if CFG.task(target).modality == CFG.task(candidate).modality:
        return "own adapter"
    return "target adapter" if target == 8 else "paired probes"


def write_step3_2():
    for target, (acc, mpl, shared) in TARGET_RESULTS.items():
        folder = paths.target_dir(ARCH, "demo", name(SELECTIONS[target]), name(target))
        folder.mkdir(parents=True)
        line = "2026-01-01 10:00:00,000 - root - INFO - In validate()-> Val Ep. #{} loss: 0.742, accuracy: {:.2f}, " \
               "sparsity: 0.000, task2 ratio: 1.794, zero ratio: 0.000, mpl: {}, shared_ratio: {:.3f}"
        # an earlier, narrower run first: only the last validation line counts
        (folder / "train.log").write_text("\n".join([line.format(3, 40.0, 1.0, 0.9),
                                                     "... - root - INFO - In train()-> Train Ep. #4 loss: 0.5",
                                                     line.format(4, acc * 100, mpl, shared)]) + "\n")
        write_json(folder / "gradual_prune" / "record.txt", {"0.0": acc})


def control_accuracy(target, candidate):
    """The fake transfer control: the designed related backbone helps most; deterministic."""
    return round(0.5 + 0.01 * ((target * 5 + candidate * 3) % 7) + (0.2 if CFG.related.get(name(target)) ==
                                                                      name(candidate) else 0.0), 4)


def write_control():
    rows = [[t, c, "1", "0.5", control_accuracy(t, c), 2] for t in SELECTIONS for c in TASK_IDS if c != t]
    rows += [[t, label, "1", "0.5", 0.45, 2] for t in SELECTIONS for label in ("scratch@1", "untrained")]
    with open(paths.transfer_csv("demo"), "w", newline="") as f:
        csv.writer(f).writerows([["target_id", "backbone", "width", "val_accuracy", "test_accuracy", "seed"], *rows])


@pytest.fixture
def out_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MMPAB_OUTPUT_ROOT", str(tmp_path))
    return tmp_path


def run_tool(out_root, *args):
    env = dict(os.environ, MMPAB_OUTPUT_ROOT=str(out_root))
    return subprocess.run([sys.executable, "tools/report.py", "demo", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def report_dir():
    return paths.logs_dir(ARCH) / "report_demo"


def table_row(md, first_cell, section):
    """The cells of the row that starts with `first_cell` in the table under the heading `## <section>...`."""
    part = md.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    for line in part.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r} in\n{md}")


def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 200 and image.shape[1] > 300
    assert image[..., :3].std() > 0.05  # not a blank canvas


def test_full_results_give_four_figures_and_tables_of_the_source_numbers(out_root):
    write_step1(), write_step2(), write_step3_1(), write_step3_2(), write_control()
    result = run_tool(out_root)
    assert result.returncode == 0, result.stderr
    assert str(report_dir()) in result.stdout
    for figure in report.FIGURES:
        assert_png(report_dir() / figure)
    md = (report_dir() / "report.md").read_text()

    row = table_row(md, f"7 {name(7)}", "Targets")
    assert row[1:] == ["text", "0.6600", f"8 {name(8)}", "text", "own adapter", "yes", "0.7025", "+0.0425", "1.225",
                       "0.634"]
    row = table_row(md, f"8 {name(8)}", "Targets")
    assert row[3:7] == [f"2 {name(2)}", "image", "target adapter", "no"] and row[7] == "0.6480"
    crossed = [(t, c) for t in SELECTIONS for c in TASK_IDS if c != t and compared_as(t, c) != "own adapter"]
    unpaired = sum(t == 8 for t, _ in crossed)
    assert (f"Cross-modal candidates: {len(crossed) - unpaired} pairs compared on paired probes (each model reads "
            f"the same samples in its own modality), {unpaired} through the target's input adapter") in md
    row = table_row(md, f"3 {name(3)}", "Backbone")
    assert row[1:] == ["image", "0.8100", "0.8300", "0.7", "0.8111", "-"]
    assert table_row(md, f"2 {name(2)}", "Backbone")[-1] == "1 8"          # selected by targets 1 and 8
    assert table_row(md, f"4 {name(4)}", "Backbone")[4] == "0 (unpruned)"

    gains = [acc - float(BASELINES[t]) for t, (acc, _, _) in TARGET_RESULTS.items()]
    assert f"Mean gain over scratch: {sum(gains) / len(gains):+.4f} (over 4 targets)." in md
    assert "designed related task for 2 of 4 targets (chance: 1/5 = 0.200 per target)" in md
    assert "has not run" not in md
    assert "Selected the designed related task for 2 of 4" in result.stdout

    # target 3 picked 1 (not its related task 4, which the fake control makes best): regret by hand
    row = table_row(md, f"3 {name(3)}", "Selection quality")
    regret = control_accuracy(3, 4) - control_accuracy(3, 1)
    assert row[4:11] == [f"1 {name(1)}", f"{control_accuracy(3, 1):.4f}", f"4 {name(4)}",
                         f"{control_accuracy(3, 4):.4f}", row[8], f"{regret:.4f}", row[10]]
    assert table_row(md, f"7 {name(7)}", "Selection quality")[9] == "0.0000"      # picked its best
    regrets = [max(control_accuracy(t, c) for c in TASK_IDS if c != t) - control_accuracy(t, s)
               for t, s in SELECTIONS.items()]
    assert f"Mean regret {sum(regrets) / len(regrets):.4f}" in md and "Mean regret" in result.stdout


def test_report_is_deterministic(out_root):
    write_step1(), write_step2(), write_step3_1(), write_step3_2(), write_control()
    cfg = get_config("demo")
    report.write_report(cfg, ARCH)
    first = {f: (report_dir() / f).read_bytes() for f in (*report.FIGURES, "report.md")}
    report.write_report(cfg, ARCH)
    assert first == {f: (report_dir() / f).read_bytes() for f in first}


def test_validate_line_numbers():
    line = ("x - root - INFO - In validate()-> Val Ep. #100 loss: 0.742, accuracy: 75.60, sparsity: 0.000, "
            "task2 ratio: 1.794, zero ratio: 0.000, mpl: 1.4142135623730951, shared_ratio: 0.778")
    assert report.parse_validate_line(line) == {"accuracy": pytest.approx(0.756), "mpl": 1.4142135623730951,
                                                "shared_ratio": 0.778}
    first_task = line.split(", shared_ratio")[0]  # task 1 logs no shared ratio
    assert report.parse_validate_line(first_task)["shared_ratio"] is None


def test_step1_only_says_what_is_missing_and_skips_the_figures(out_root):
    write_step1()
    (report_dir()).mkdir(parents=True)
    (report_dir() / "accuracy.png").write_bytes(b"stale")  # from an earlier run: must not survive
    result = run_tool(out_root)
    assert result.returncode == 0, result.stderr
    md = (report_dir() / "report.md").read_text()
    for sentence in ("step 2-1 has not run: no pruning records", "step 3-1 has not run: no backbone selection",
                     "step 3-2 has not run: no target results"):
        assert sentence in md
    assert "baselines of 6 of 12 tasks" in md
    assert table_row(md, f"4 {name(4)}", "Backbone")[1:4] == ["image", "0.5900", "-"]
    assert not any((report_dir() / f).exists() for f in report.FIGURES)


def test_targets_without_step_3_2_keep_their_selection(out_root):
    write_step1(), write_step2(), write_step3_1()
    result = run_tool(out_root)
    assert result.returncode == 0, result.stderr
    md = (report_dir() / "report.md").read_text()
    assert "step 3-2 has not run: no target results" in md
    assert table_row(md, f"1 {name(1)}", "Targets")[3:8] == [f"2 {name(2)}", "image", "own adapter", "yes", "-"]
    assert (report_dir() / "similarity.png").exists() and (report_dir() / "pruning.png").exists()
    assert not (report_dir() / "accuracy.png").exists()


def test_config_without_related_tasks_says_n_a(out_root):
    with open(paths.pickaback_result_csv("cifar100"), "w") as f:
        f.write("target_id,task_id\n3,5\n")
    folder, run, rows, written, skipped = report.write_report(get_config("cifar100"), ARCH)
    md = (folder / "report.md").read_text()
    assert table_row(md, "3 flowers", "Targets")[5:7] == ["-", "n/a"]     # no table: how compared is unknown
    assert "designed related task: n/a (the config documents no related tasks)" in md
    assert written == [] and [name for name, _ in skipped] == list(report.FIGURES)


def test_no_results_is_one_sentence_without_traceback(out_root):
    result = run_tool(out_root)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and "run the pipeline" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_report_imports_no_torch():
    check = "import sys, tools.report; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", check], cwd=ROOT, timeout=60).returncode == 0
