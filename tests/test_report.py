"""tools/report.py (and its --summary) on fake pipeline outputs: full results, step 1 only, nothing
at all, and several seeds."""
import csv
import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest

from conftest import python
from tools import report
from utils import paths, text_tables
from utils.dataset_config import get_config
from utils.results import RESULT_FIELDS
from utils_pickaback import ranking

ROOT = Path(__file__).resolve().parent.parent
ARCH = "perceiver_io"
CFG = get_config("demo")
# Six demo tasks ran: images 1-4 (shapes/patterns, clean/noisy) and texts 7-8 (shapes captions/notes).
TASK_IDS = (1, 2, 3, 4, 7, 8)
BASELINES = {1: "0.7200", 2: "0.6400", 3: "0.8100", 4: "0.5900", 7: "0.6600", 8: "0.6100"}   # validation
SCRATCH_TEST = {1: 0.7000, 3: 0.7900, 7: 0.6450, 8: 0.6000}
# target -> selected backbone: 1->2 and 7->8 are the designed related pairs, 3->1 and 8->2 are not.
SELECTIONS = {1: 2, 3: 1, 7: 8, 8: 2}
# target -> test accuracy on its backbone, final width, shared ratio, the backbone's test accuracy before its targets
TARGET_RESULTS = {1: (0.7813, 2.0, 0.778, 0.6300), 3: (0.7950, 1.0, 0.512, 0.7000),
                  7: (0.7025, 1.5, 0.634, 0.6200), 8: (0.6480, 1.0, 0.401, 0.6300)}
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


def write_step1(seed=paths.DEFAULT_SEED):
    write_json(paths.baseline_acc_file(ARCH, "demo", seed), {name(t): acc for t, acc in BASELINES.items()})


def write_step2():
    for t in TASK_IDS:
        prune_dir = paths.backbone_dir(ARCH, "demo", name(t)) / "gradual_prune"
        write_json(prune_dir / "record.txt", RECORDS[t])
        ratio = CHOSEN[t]
        write_json(prune_dir / "chosen.json", {"ratio": ratio, "accuracy": RECORDS[t][str(ratio)],
                                               "checkpoint": "checkpoint-4.pth.tar", "source": f"{ratio}/x"})


def write_step3_1(seed=paths.DEFAULT_SEED):
    paths.output_root(seed).mkdir(parents=True, exist_ok=True)
    with open(paths.pickaback_result_csv("demo", seed), "w", newline="") as f:
        csv.writer(f).writerows([["target_id", "task_id"], *[[t, c] for t, c in SELECTIONS.items()]])
    with open(paths.pickaback_table_csv("demo", seed), "w", newline="") as f:
        rows = [[t, c, round(distance(t, c) / 3, 4), distance(t, c), compared_as(t, c), 0.1, -1.0, 0.5]
                for t in SELECTIONS for c in TASK_IDS if c != t]
        csv.writer(f).writerows([["target_id", "task_id", "ddv_cos", "ddv_euc", "compared_as", "logme", "leep",
                                  "cka"], *rows])


def compared_as(target, candidate):
    """Same modality: own adapter; across modalities paired probes, but target 8 as if unpaired."""
    if CFG.task(target).modality == CFG.task(candidate).modality:
        return "own adapter"
    return "target adapter" if target == 8 else "paired probes"


def results_row(target, seed=paths.DEFAULT_SEED, on_backbone=None, after=None, regret=None, untrained=None):
    """A row of results_demo.csv as tools/results_table.py writes it; validation figures 0.01 above the test ones;
    `untrained`: the test accuracy on the backbone's untrained twin (None: not trained)."""
    acc, width, shared, before = TARGET_RESULTS[target]
    acc = acc if on_backbone is None else on_backbone
    after = before if after is None else after
    backbone = SELECTIONS[target]
    row = {"seed": seed, "arch": ARCH, "target_id": target, "target_name": name(target),
           "target_modality": CFG.task(target).modality, "backbone_id": backbone, "backbone_name": name(backbone),
           "backbone_modality": CFG.task(backbone).modality,
           "picked_related": CFG.related.get(name(target)) == name(backbone),
           "scratch_val_acc": BASELINES[target], "scratch_test_acc": SCRATCH_TEST[target],
           "on_backbone_val_acc": acc + 0.01, "on_backbone_test_acc": acc,
           "forward_transfer_val": round(acc + 0.01 - float(BASELINES[target]), 4),
           "forward_transfer_test": round(acc - SCRATCH_TEST[target], 4),
           "on_untrained_val_acc": "" if untrained is None else untrained + 0.01,
           "on_untrained_test_acc": "" if untrained is None else untrained,
           "knowledge_transfer_val": "" if untrained is None else round(acc - untrained, 4),
           "knowledge_transfer_test": "" if untrained is None else round(acc - untrained, 4),
           "backbone_before_val_acc": before + 0.01, "backbone_before_test_acc": before,
           "backbone_after_val_acc": after + 0.01, "backbone_after_test_acc": after,
           "backward_transfer_val": round(after - before, 4), "backward_transfer_test": round(after - before, 4),
           "backbone_outputs_identical": after == before, "final_width": width, "shared_ratio": shared,
           "regret_val": "" if regret is None else regret, "regret_test": "" if regret is None else regret}
    return [row[key] for key in RESULT_FIELDS]


def write_results(rows, seed=paths.DEFAULT_SEED):
    with open(paths.results_csv("demo", seed), "w", newline="") as f:
        csv.writer(f).writerows([RESULT_FIELDS, *rows])


def test_results_table_replaces_its_archs_rows_and_keeps_another_archs(out_root, monkeypatch):
    from tools import results_table
    paths.output_root().mkdir(parents=True, exist_ok=True)
    first, second = list(TARGET_RESULTS)[:2]
    lenet = results_row(first)
    lenet[RESULT_FIELDS.index("arch")] = "lenet5"
    write_results([results_row(first), results_row(second), lenet])
    monkeypatch.setattr(results_table, "result_rows", lambda cfg, arch, seed: ([], [first, second]))  # none trained
    results_table.write_results(CFG, ARCH)
    with open(paths.results_csv("demo", paths.DEFAULT_SEED), newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == RESULT_FIELDS and rows[1:] == [[str(cell) for cell in lenet]]


def write_step3_2():
    """Step 3-2's results file, and a train.log whose text contradicts it: the report must not read the log."""
    write_results([results_row(t) for t in TARGET_RESULTS])
    for target in TARGET_RESULTS:
        folder = paths.target_dir(ARCH, "demo", name(SELECTIONS[target]), name(target))
        folder.mkdir(parents=True)
        (folder / "train.log").write_text("x - root - INFO - In validate()-> Val Ep. #4 loss: 0.742, accuracy: 12.34, "
                                          "sparsity: 0.000, task2 ratio: 1.794, zero ratio: 0.000, mpl: 9.0, "
                                          "shared_ratio: 0.999\n")


def control_accuracy(target, candidate):
    """The fake transfer control: the designed related backbone helps most; deterministic."""
    return round(0.5 + 0.01 * ((target * 5 + candidate * 3) % 7) + (0.2 if CFG.related.get(name(target)) ==
                                                                      name(candidate) else 0.0), 4)


def write_control():
    rows = [[t, c, "1", "0.5", control_accuracy(t, c), 2] for t in SELECTIONS for c in TASK_IDS if c != t]
    rows += [[t, label, "1", "0.5", 0.45, 2] for t, b in SELECTIONS.items()
             for label in ("scratch@1", f"untrained@{b}")]
    with open(paths.transfer_csv("demo"), "w", newline="") as f:
        csv.writer(f).writerows([["target_id", "backbone", "width", "val_accuracy", "test_accuracy", "seed"], *rows])


@pytest.fixture
def out_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MMPAB_OUTPUT_ROOT", str(tmp_path))
    return tmp_path


def run_tool(out_root, *args):
    env = dict(os.environ, MMPAB_OUTPUT_ROOT=str(out_root))
    return python("-m", "tools.report", "demo", *args, env=env, timeout=120)


def report_dir(seed=paths.DEFAULT_SEED):
    return paths.logs_dir(ARCH, seed) / "report_demo"


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
    for heading in ("## Targets (steps 3-1, 3-2; test accuracy)", "## Selection quality (the transfer control, test "
                    "accuracy)", "## Backbone tasks (steps 1, 2-1, 2-2; validation accuracy)"):
        assert heading in md

    # test accuracies from results_demo.csv (not the train.log's 12.34 / mpl 9.0), mpl = sqrt(final width)
    row = table_row(md, f"7 {name(7)}", "Targets")
    assert row[1:] == ["text", "0.6450", f"8 {name(8)}", "text", "own adapter", "yes", "0.7025", "-", "+0.0575", "-",
                       "+0.0000", "1.225", "0.634"]
    row = table_row(md, f"8 {name(8)}", "Targets")
    assert row[3:7] == [f"2 {name(2)}", "image", "target adapter", "no"] and row[7] == "0.6480"
    crossed = [(t, c) for t in SELECTIONS for c in TASK_IDS if c != t and compared_as(t, c) != "own adapter"]
    unpaired = sum(t == 8 for t, _ in crossed)
    assert (f"Cross-modal candidates: {len(crossed) - unpaired} pairs compared on paired probes (each model reads "
            f"the same samples in its own modality), {unpaired} through the target's input adapter") in md
    row = table_row(md, f"3 {name(3)}", "Backbone")
    assert row[1:] == ["image", "0.8100", "0.8300", "0.7", "0.8111", "-"]          # validation accuracies
    assert table_row(md, f"2 {name(2)}", "Backbone")[-1] == "1 8"          # selected by targets 1 and 8
    assert table_row(md, f"4 {name(4)}", "Backbone")[4] == "0 (unpruned)"

    gains = [acc - SCRATCH_TEST[t] for t, (acc, *_) in TARGET_RESULTS.items()]
    assert (f"Mean forward transfer (test accuracy on the backbone - scratch): {sum(gains) / len(gains):+.4f} "
            f"(over 4 targets).") in md
    assert "Mean backward transfer (the backbone's test accuracy after - before its targets): +0.0000 (over 4 " \
           "targets; the backbone's outputs bit-identical for 4)." in md
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

    # the control's own console verdict shows the same cells and sentences as report.md
    console = python("-m", "tools.transfer_control", "quality", "demo", env=dict(os.environ, MMPAB_OUTPUT_ROOT=str(
        out_root))).stdout
    selection_md = md.split("## Selection quality")[1].split("\n## ")[0]
    cells = table_row(md, f"3 {name(3)}", "Selection quality")
    assert re.search(r"\s{2,}".join(map(re.escape, cells)), console)
    assert all(line in console for line in selection_md.splitlines() if line.startswith(("Mean regret", "Gain ")))


def test_report_is_deterministic(out_root):
    write_step1(), write_step2(), write_step3_1(), write_step3_2(), write_control()
    cfg = get_config("demo")
    report.write_report(cfg, ARCH)
    first = {f: (report_dir() / f).read_bytes() for f in (*report.FIGURES, "report.md")}
    report.write_report(cfg, ARCH)
    assert first == {f: (report_dir() / f).read_bytes() for f in first}


def test_a_results_row_of_an_earlier_selection_is_left_out(out_root):
    """Step 3-1 re-run since results_demo.csv was written: target 3's row describes another backbone."""
    write_step1(), write_step3_1()
    stale = results_row(3)
    stale[RESULT_FIELDS.index("backbone_id")] = 4
    write_results([results_row(1), stale])
    folder, run, rows, written, skipped = report.write_report(CFG, ARCH)
    assert sorted(run.results) == [1]
    assert table_row((folder / "report.md").read_text(), f"3 {name(3)}", "Targets")[7] == "-"


def test_picks_step_3_1_made_with_another_archs_models_are_left_out_and_named(out_root):
    """ARCH=lenet5 step 3-1 of target 1 ran after this arch's pipeline (its result and table files are one per
    config): the perceiver's report must not show lenet5's pick and distances as its own (before, it did)."""
    write_step1(), write_step3_1()
    write_results([results_row(t) for t in TARGET_RESULTS])
    ranking = {"score": "modeldiff", "select": "similar", "candidates": [c for c in TASK_IDS if c != 1]}
    write_json(paths.output_root() / "pickaback_demo_result.json", {"1": {**ranking, "arch": "lenet5"},
                                                                     "3": {**ranking, "arch": ARCH}})
    folder, run, rows, written, skipped = report.write_report(CFG, ARCH)
    assert sorted(run.selections) == [3, 7, 8] and sorted(run.results) == [3, 7, 8]
    assert not any(target == 1 for target, _ in run.scores) and any(target == 3 for target, _ in run.scores)
    md = (folder / "report.md").read_text()
    assert ("Left out: target 1, whose pick in pickaback_demo_result.csv step 3-1 made with another arch's models "
            "since; run step 3-1 (run_pickaback/find_backbone.sh) with ARCH=perceiver_io to pick again.") in md
    with pytest.raises(AssertionError):
        table_row(md, f"1 {name(1)}", "Targets")
    assert sorted(report.load_run(CFG, "lenet5").selections) == [1, 7, 8]    # 7, 8 recorded no arch: either's
    assert "ranked these targets by different rules" not in md


def test_targets_ranked_by_different_rules_are_said_to_be_pooled(out_root):
    """Target 1 was ranked again with SELECT=dissimilar: the report's pooled figures mix two rules, and say so."""
    write_step1(), write_step3_1()
    write_results([results_row(t) for t in TARGET_RESULTS])
    ranking = {"score": "modeldiff", "select": "dissimilar", "candidates": [c for c in TASK_IDS if c != 1]}
    write_json(paths.output_root() / "pickaback_demo_result.json", {"1": ranking})
    result = run_tool(out_root)
    sentence = ("Step 3-1 ranked these targets by different rules (modeldiff dissimilar for targets 1; modeldiff "
                "similar for targets 3, 7, 8): the figures below pool them.")
    assert result.returncode == 0 and sentence in result.stdout
    assert sentence in (report_dir() / "report.md").read_text()


def test_a_target_is_reported_among_the_candidates_step_3_1_ranked_it_among(out_root):
    """A narrower re-run of step 3-1 keeps the table's rows against the other candidates; its record says which
    were ranked."""
    write_step1(), write_step3_1()
    write_json(paths.pickaback_result_csv("demo").with_suffix(".json"),
               {"1": {"score": "modeldiff", "select": "similar", "candidates": [2, 3]}})
    run = report.load_run(CFG, ARCH)
    assert sorted(c for t, c in run.scores if t == 1) == [2, 3]
    assert sorted(c for t, c in run.scores if t == 3) == [1, 2, 4, 7, 8]      # no record: every pair
    assert report.target_rows(run)[0]["candidates"] == 2


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


def test_the_heat_map_holds_the_score_each_target_was_ranked_by(out_root):
    """A target ranked by LEEP is shown by -LEEP (smaller ranks first), one without a record by ddv_euc."""
    write_step1(), write_step3_1()
    write_json(paths.pickaback_result_csv("demo").with_suffix(".json"),
               {"1": {"score": "leep", "select": "similar", "candidates": [2, 3]}})
    run = report.load_run(CFG, ARCH)
    assert run.score is None                                                    # target 3 has no record
    assert {c: v for (t, c), v in run.scores.items() if t == 1} == {2: 1.0, 3: 1.0}
    assert {c: v for (t, c), v in run.scores.items() if t == 3} == {c: distance(3, c) for c in (1, 2, 4, 7, 8)}
    write_json(paths.pickaback_result_csv("demo").with_suffix(".json"),
               {str(t): {"score": "leep", "select": "similar", "candidates": None} for t in SELECTIONS})
    assert report.load_run(CFG, ARCH).score == "leep"


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


# ------------------------------------------------------------------------ tools/report.py --summary
def test_summary_reads_the_results_file_and_names_its_split(out_root):
    write_results([results_row(t) for t in TARGET_RESULTS])
    result = run_tool(out_root, "--summary")
    assert result.returncode == 0, result.stderr
    assert ("Targets (test accuracy; scratch = the target trained alone from scratch, on untrained = on the "
            "backbone's untrained twin; forward transfer = on backbone - scratch, knowledge transfer = on backbone - "
            "on untrained)") in result.stdout
    assert ("Backbones before and after their targets trained on them (test accuracy; backward transfer = after - "
            "before)") in result.stdout
    targets, backbones = result.stdout.split("\nBackbones before and after")
    rows = {line.split()[0]: line.split() for line in targets.splitlines() if line[:1].isdigit()}
    assert rows["7"] == ["7", name(7), "text", "0.6450", "8", name(8), "text", "yes", "0.7025", "-", "+0.0575", "-",
                         "1.5", "0.634"]
    rows = [line.split() for line in backbones.splitlines() if line[:1].isdigit()]
    assert rows[:2] == [["1", name(1), "3", "0.7000", "0.7000", "+0.0000", "bit-identical"],
                        ["2", name(2), "1", "0.6300", "0.6300", "+0.0000", "bit-identical"]]
    assert "Selected the designed related task for 2 of 4 targets." in result.stdout
    assert "was picked for" not in result.stdout          # no backbone serves most of a modality's targets


def test_rows_that_no_longer_describe_the_runs_are_left_out_and_named(out_root):
    """Since results_demo.csv was written, step 1 trained target 3 again (its baseline now 0.8300), step 3-2 trained
    target 7 again (another accuracy), and target 8's row names another task than id 8 does now (a task inserted in
    the config): each row is left out, and said so, in the summary and the report (before: shown with exit 0).
    Target 1's step 3-2 run is the one its row describes."""
    write_step1(), write_step3_1()
    write_json(paths.baseline_acc_file(ARCH, "demo"), {**{name(t): a for t, a in BASELINES.items()}, name(3): "0.8300"})
    rows = [results_row(t) for t in TARGET_RESULTS]
    rows[list(TARGET_RESULTS).index(8)][RESULT_FIELDS.index("target_name")] = "an_earlier_task"
    write_results(rows)
    for target, (val, test) in ((1, (0.7913, 0.7813)), (7, (0.5, 0.49))):
        write_json(paths.target_dir(ARCH, "demo", name(SELECTIONS[target]), name(target)) / "scratch" / "outcome.json",
                   {"width": 1.0, "val_accuracy": val, "test_accuracy": test})
    summary = run_tool(out_root, "--summary")
    assert "Left out of the results: the row of target 3 of" in summary.stdout
    assert "step 4's file, changed" not in summary.stdout
    targets = summary.stdout.split("\nBackbones before and after")[0]
    assert [line.split()[0] for line in targets.splitlines() if line[:1].isdigit()] == ["1"]
    # target 1's run started from step 4's file of its backbone, since trained again (the file is gone)
    write_json(paths.target_dir(ARCH, "demo", name(SELECTIONS[1]), name(1)) / "scratch" / "outcome.json",
               {"width": 1.0, "val_accuracy": 0.7913, "test_accuracy": 0.7813,
                "start": {"path": "gone.pth.tar", "fingerprint": "0" * 16}})
    sentences = ["Left out of the results: the row of target 3 of results_demo.csv, written before step 1 trained "
                 "the target again; run bash run_pickaback/transfer_kv.sh demo, then w_backbone.sh demo, to write it "
                 "again (they redo only what changed, and put back a damaged outcome.json from its checkpoint).",
                 "the row of target 7 of results_demo.csv, written before step 3-2 trained the target again;",
                 "the row of target 8 of results_demo.csv, written for another list of the config's tasks;",
                 "the row of target 1 of results_demo.csv, of a run whose start, step 4's file, changed or is gone "
                 "since;"]
    summary = run_tool(out_root, "--summary")     # no row left: each named, then one error sentence
    assert all(sentence in summary.stdout for sentence in sentences), summary.stderr
    assert summary.returncode == 1 and "has no rows that describe the runs there now" in summary.stderr
    report = run_tool(out_root)
    assert report.returncode == 0 and all(sentence in report.stdout for sentence in sentences), report.stderr
    md = (report_dir() / "report.md").read_text()
    assert "step 3-2 has not run: no target results" in md and all(sentence in md for sentence in sentences)


def test_a_row_of_another_scratch_test_accuracy_than_step_1s_record_is_left_out(out_root):
    """baseline_demo_test_acc.txt edited, results_table run, the file put back: the row kept the edited figure (before:
    shown with exit 0, while `quality` and the CL table read the file's)."""
    write_step1(), write_step3_1()
    write_json(paths.baseline_test_acc_file(ARCH, "demo"), {name(t): f"{a:.4f}" for t, a in SCRATCH_TEST.items()})
    rows = [results_row(t) for t in TARGET_RESULTS]
    rows[list(TARGET_RESULTS).index(3)][RESULT_FIELDS.index("scratch_test_acc")] = 0.9267
    write_results(rows)
    summary = run_tool(out_root, "--summary")
    assert ("the row of target 3 of results_demo.csv, written with another scratch test accuracy than "
            "baseline_demo_test_acc.txt holds now" in summary.stdout), summary.stdout


def test_the_summary_leaves_out_a_row_of_an_earlier_pick(out_root):
    """TARGETS=3 SELECT=dissimilar step 3-1 since results_demo.csv was written: target 3's row is of backbone 1, its
    pick now 4 (before, the summary showed it, and the report did not)."""
    write_step1(), write_step3_1()
    write_results([results_row(t) for t in TARGET_RESULTS])
    with open(paths.pickaback_result_csv("demo"), "w", newline="") as f:
        csv.writer(f).writerows([["target_id", "task_id"], *[[t, 4 if t == 3 else c] for t, c in SELECTIONS.items()]])
    summary = run_tool(out_root, "--summary")
    assert summary.returncode == 0 and ("Left out of the results: the row of target 3 of results_demo.csv, written "
                                        "for another pick of step 3-1 than its pick now;") in summary.stdout
    targets = summary.stdout.split("\nBackbones before and after")[0]
    assert [line.split()[0] for line in targets.splitlines() if line[:1].isdigit()] == ["1", "7", "8"]


def test_summary_has_one_aligned_row_per_backbone_and_target(out_root, capsys):
    """Every target picked backbone 2: one row per (backbone, target) pair, each cell one value under its header."""
    shared = []
    for target in TARGET_RESULTS:
        row = dict(zip(RESULT_FIELDS, results_row(target, after=0.3800 if target == 7 else 0.3900)))
        row.update(backbone_id=2, backbone_name=name(2), backbone_modality="image", backbone_before_test_acc=0.3900,
                   backward_transfer_test=-0.01 if target == 7 else 0.0, backbone_outputs_identical=target != 7)
        shared.append([row[key] for key in RESULT_FIELDS])
    write_results(shared)
    assert report.print_summary(CFG, ARCH, paths.DEFAULT_SEED) == 1            # target 7 changed the backbone
    out = capsys.readouterr().out
    assert "was picked for" not in out      # two targets of a modality sharing a pick are no sign of a hub
    table = out.split("(test accuracy; backward transfer = after - before)\n", 1)[1]
    header, *lines = table.splitlines()
    starts = [m.start() for m in re.finditer(r"(?<!\S)\S+(?: \S+)*", header)]       # where each column begins
    cells = [[line[a:b].strip() for a, b in zip(starts, starts[1:] + [None])] for line in lines]
    assert [c[:3] for c in cells] == [[f"2 {name(2)}", str(t), "0.3900"] for t in sorted(TARGET_RESULTS)]
    for line, row in zip(lines, cells):
        assert all(line[a - 2:a] == "  " and line[a] != " " for a in starts[1:])   # every cell under its header
        assert len(row) == len(starts) and " " not in "".join(row[1:-1])          # one value per cell
    assert cells[2][3:] == ["0.3800", "-0.0100", "CHANGED"] and cells[0][3:] == ["0.3900", "+0.0000", "bit-identical"]


def test_a_backbone_picked_for_most_of_three_or_more_targets_of_a_modality_is_named():
    sentences = report.shared_pick_sentences(CFG, {1: 7, 2: 7, 3: 7, 4: 5, 8: 7}, {})
    assert sentences == [f"Backbone 7 ({name(7)}) was picked for 3 of 4 image targets (1, 2, 3): one backbone close to "
                         f"most targets may be a hub rather than the best for each; the transfer control tells (bash "
                         f"run_pickaback/transfer_matrix.sh). Like the hubs measured on real data "
                         f"(docs/transfer-control.md), it is a text model, compared through the targets' own adapters; "
                         f"there, such candidates looked close to targets they helped no more than the others did."]
    assert report.shared_pick_sentences(CFG, {1: 7, 2: 7, 8: 7}, {}) == []     # 2 of 2: too few to tell


def test_knowledge_transfer_of_one_target_says_it_has_no_interval():
    """It read '(95% interval over 1 targets)' with no interval."""
    line = report.knowledge_sentences([0.02], [0.05])[0]
    assert line.startswith("Mean knowledge transfer (test accuracy on the backbone - on its untrained twin): "
                           "+0.0200 (one target: no interval); of the mean forward transfer +0.0500"), line


@pytest.mark.parametrize("gains, says", [((0.02, -0.01, 0.0, -0.005), "nothing"),     # the recipe's gain
                                         ((0.05, 0.06, 0.04, 0.05), None),          # the backbones' knowledge
                                         ((-0.05, -0.06, -0.04, -0.05), "worse")])  # the backbones hurt
def test_summary_says_when_the_backbones_add_nothing_beyond_the_recipe(out_root, gains, says):
    write_results([results_row(t, untrained=TARGET_RESULTS[t][0] - gain) for t, gain in zip(TARGET_RESULTS, gains)])
    result = run_tool(out_root, "--summary")
    assert result.returncode == 0, result.stderr
    forward = [round(TARGET_RESULTS[t][0] - SCRATCH_TEST[t], 4) for t in TARGET_RESULTS]     # as the CSV holds them
    knowledge = [round(TARGET_RESULTS[t][0] - (TARGET_RESULTS[t][0] - g), 4) for t, g in zip(TARGET_RESULTS, gains)]
    assert f"Mean knowledge transfer (test accuracy on the backbone - on its untrained twin): {sum(gains) / 4:+.4f}" \
           in result.stdout
    assert (f"of the mean forward transfer {sum(forward) / 4:+.4f}, the recipe alone (on the untrained twin - "
            f"scratch) gives {sum(f - k for f, k in zip(forward, knowledge)) / 4:+.4f}.") in result.stdout
    assert ("does not show the selection adding anything beyond the training recipe" in result.stdout) == \
        (says == "nothing")
    assert ("(the interval lies below 0): in this run the selection did worse than the training recipe alone." in
            result.stdout) == (says == "worse")
    targets = result.stdout.split("\nBackbones before and after")[0]
    rows = {line.split()[0]: line.split() for line in targets.splitlines() if line[:1].isdigit()}
    on_backbone, forward = "0.7813", f"{0.7813 - SCRATCH_TEST[1]:+.4f}"
    assert rows["1"][8:12] == [on_backbone, f"{0.7813 - gains[0]:.4f}", forward, f"{gains[0]:+.4f}"]


def test_a_figure_that_rounds_to_zero_reads_as_zero():
    """A mean of -0.00001 is no loss: '+0.0000', not '-0.0000' (the summary printed that)."""
    cases = ((-0.00001, "+.4f"), (-0.00004, ".3f"), (-0.5, "+.4f"), (None, ".4f"))
    assert [text_tables.figure(v, spec) for v, spec in cases] == ["+0.0000", "0.000", "-0.5000", "-"]
    assert report.mean_interval([-0.00002, 0.00001], "+.4f", "gain").startswith("+0.0000 ± ")


def test_an_interval_over_few_seeds_is_held_to_the_range_its_figure_can_take():
    """Two seeds' shares 0.25 and 0.75 gave '0.500 ± 3.1766': a share interval far outside 0 to 1."""
    assert report.mean_interval([0.25, 0.75], ".3f", "related") == "0.500 (0.000 to 1.000)"
    assert report.mean_interval([0.9, 0.99], ".4f", "accuracy") == "0.9450 (0.3732 to 1.0000)"
    assert report.mean_interval([-0.5, 0.9], "+.4f", "gain") == "+0.2000 (-1.0000 to +1.0000)"
    assert report.mean_interval([0.5, 0.6, 0.7], ".4f", "accuracy") == "0.6000 ± 0.2484"     # inside: as before


def test_summary_fails_when_a_backbone_changed(out_root):
    write_results([results_row(t, after=0.6100 if t == 8 else None) for t in TARGET_RESULTS])
    result = run_tool(out_root, "--summary")
    assert result.returncode == 1
    assert "CHANGED" in result.stdout and "-0.0200" in result.stdout and "guarantee is broken" in result.stderr


def test_summary_without_results_names_the_tool_that_writes_them(out_root):
    result = run_tool(out_root, "--summary")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and "-m tools.results_table demo" in result.stderr


def test_a_config_deciding_on_its_test_split_is_not_reported_as_held_out(out_root):
    """val_fraction 0 (the original's way) makes the test split the validation split too."""
    write_step1()
    held_out = report.build_markdown(report.load_run(CFG, ARCH), [], [], [], [])
    assert "test accuracies (the test split took no part in any decision)" in held_out
    original = report.build_markdown(report.load_run(dataclasses.replace(CFG, val_fraction=0.0), ARCH), [], [], [], [])
    assert "took no part" not in original
    assert "the test split is also the validation split every decision read" in original


# ---------------------------------------------------------------------------------------- several seeds
def test_seeds_report_gives_each_figure_as_mean_and_t_interval_over_seeds(out_root):
    on_backbone = {1: 0.5, 2: 0.6, 3: 0.7}           # every target of seed s at on_backbone[s]
    for seed, acc in on_backbone.items():
        write_step1(seed), write_step3_1(seed)
        write_results([results_row(t, seed, on_backbone=acc, regret=0.05 if seed == 1 else None)
                       for t in TARGET_RESULTS], seed)
    result = run_tool(out_root, "--seeds", "1", "2", "3")
    assert result.returncode == 0, result.stderr
    assert all((report_dir(seed) / "report.md").exists() for seed in on_backbone)    # each seed's own report
    md = (paths.seeds_report_dir(ARCH, "demo") / "report.md").read_text()
    assert "## Headline figures (test accuracy" in md and "## Targets across seeds (test accuracy)" in md

    half = "0.2484"                                   # t(0.975, 2) * s / sqrt(3) with s = 0.1: 4.3027 * 0.0577
    assert table_row(md, "accuracy on the selected backbone", "Headline")[1:] == [
        f"0.6000 ± {half}", "3", "0.5000 / 0.6000 / 0.7000"]
    gains = [round(0.6 - scratch, 4) for scratch in SCRATCH_TEST.values()]      # seed 2's, as the file holds them
    assert table_row(md, "forward transfer (accuracy on the backbone - scratch)", "Headline")[1] == \
        f"{sum(gains) / len(gains):+.4f} ± {half}"
    assert table_row(md, "regret against the transfer control", "Headline")[1:] == [
        "0.0500 (one seed: no interval)", "1", "0.0500 / - / -"]
    assert table_row(md, "designed related task picked (share of targets)", "Headline")[1:3] == ["0.500 ± 0.0000", "3"]
    assert table_row(md, f"1 {name(1)}", "Targets across seeds")[1:] == [
        "2 / 2 / 2", f"{SCRATCH_TEST[1]:.4f} ± 0.0000", f"0.6000 ± {half}", f"{0.6 - SCRATCH_TEST[1]:+.4f} ± {half}",
        "-", "+0.0000 ± 0.0000", "0.0500 (one seed: no interval)", "3"]
    assert "[seed 1](../../seed1/logs_perceiver_io/report_demo/report.md)" in md
    assert f"accuracy on the selected backbone: 0.6000 ± {half}" in result.stdout


def test_seeds_whose_runs_reached_other_targets_are_compared_on_the_targets_they_share(out_root):
    """Seed 2 has no step 3-2 result for target 8: every seed's figure is over targets 1, 3 and 7 (before, seed 1's
    forward transfer was over four targets and seed 2's over three, and their mean mixed the two)."""
    for seed, targets in ((1, TARGET_RESULTS), (2, [1, 3, 7])):
        write_step1(seed), write_step3_1(seed)
        write_results([results_row(t, seed, on_backbone=0.6) for t in targets], seed)
    result = run_tool(out_root, "--seeds", "1", "2")
    assert result.returncode == 0, result.stderr
    md = (paths.seeds_report_dir(ARCH, "demo") / "report.md").read_text()
    gain = sum(round(0.6 - SCRATCH_TEST[t], 4) for t in (1, 3, 7)) / 3
    assert table_row(md, "forward transfer (accuracy on the backbone - scratch)", "Headline")[1:] == [
        f"{gain:+.4f} ± 0.0000", "2", f"{gain:+.4f} / {gain:+.4f}"]
    assert ("The seeds' runs reached different targets: forward transfer (accuracy on the backbone - scratch); "
            in md)
    assert "over the targets every seed with it has (1, 3, 7), leaving out 8." in result.stdout


def test_seeds_naming_one_seed_twice_say_there_is_no_report_over_seeds(out_root):
    """`--seeds 2 2` wrote seed 2's report alone without a word; `--seeds 2` (the quickstart's call for one seed)
    is that seed's report and says nothing of seeds."""
    write_step1(2), write_step3_1(2)
    write_results([results_row(t, 2, on_backbone=0.6) for t in TARGET_RESULTS], 2)
    sentence = ("No report over seeds: --seeds named one seed (2); a report over seeds takes two or more different "
                "seeds.")
    for seeds, said in ((["2", "2"], True), (["2"], False)):
        result = run_tool(out_root, "--seeds", *seeds)
        assert result.returncode == 0 and (sentence in result.stdout) == said, result.stdout + result.stderr
    assert not paths.seeds_report_dir(ARCH, "demo").exists()


def write_outcome(target, run_seed, **settings):
    """Step 3-2's outcome.json of `target` in `run_seed`, recording `settings` (none: an older version's file)."""
    folder = paths.target_dir(ARCH, "demo", name(SELECTIONS[target]), name(target), run_seed) / "scratch"
    outcome = {"width": 1.0, "val_accuracy": 0.6, "test_accuracy": 0.6}
    write_json(folder / "outcome.json", {**outcome, "settings": settings} if settings else outcome)


def test_seeds_trained_with_other_settings_are_named_with_the_settings(out_root):
    """Seed 3's runs had another lr: the mean over seeds mixes two recipes, and the report says so; settings each
    seed has its own of (the seed, its baseline, the width it grew to) and an older file without settings are no
    difference."""
    for seed in (1, 2, 3):
        write_step1(seed), write_step3_1(seed)
        write_results([results_row(t, seed, on_backbone=0.6) for t in TARGET_RESULTS], seed)
        for target in TARGET_RESULTS:
            write_outcome(target, seed, seed=seed, baseline_accuracy=0.5 + seed / 100, network_width_multiplier=seed,
                          dataset=name(target), lr=0.05 if seed == 3 else 0.01, profile="demo")
    write_outcome(1, 2)
    result = run_tool(out_root, "--seeds", "1", "2")
    assert result.returncode == 0, result.stderr
    assert "different settings" not in result.stdout
    assert "different settings" not in (paths.seeds_report_dir(ARCH, "demo") / "report.md").read_text()
    result = run_tool(out_root, "--seeds", "1", "2", "3")
    sentence = ("The seeds' runs were trained with different settings, so each mean mixes runs of other recipes: "
                "lr (seed 1: 0.01, seed 2: 0.01, seed 3: 0.05).")
    assert result.returncode == 0 and sentence in result.stdout
    assert sentence in (paths.seeds_report_dir(ARCH, "demo") / "report.md").read_text()


def test_targets_step_3_1_corrected_for_a_hub_are_shown_by_the_values_they_were_ranked_by(out_root):
    write_step1(), write_step3_1()
    write_json(paths.pickaback_result_csv("demo").with_suffix(".json"),
               {"1": {"score": "modeldiff", "select": "similar", "candidates": None, "hubs": [1, 3]},
                "3": {"score": "modeldiff", "select": "similar", "candidates": None, "hubs": [1, 3]}})
    run = report.load_run(CFG, ARCH)
    assert run.hub_corrected == [1, 3]
    corrected = ranking.hub_corrected({(t, c): distance(t, c) for t in (1, 3) for c in TASK_IDS if c != t})
    assert {pair: v for pair, v in run.scores.items() if pair[0] in (1, 3)} == pytest.approx(corrected)
    assert {c: v for (t, c), v in run.scores.items() if t == 7} == {c: distance(7, c) for c in TASK_IDS if c != 7}
    assert run_tool(out_root).returncode == 0
    assert ("ranked targets 1, 3 again with each candidate's closeness to targets in general subtracted"
            in (report_dir() / "report.md").read_text())


def test_report_md_names_the_score_and_rule_step_3_1_ranked_by():
    """After SCORE=leep SELECT=dissimilar, report.md said "distances are ddv_euc (smaller = more similar)"."""
    from types import SimpleNamespace
    from tools.report import ranking_words
    run = SimpleNamespace(score="leep", rules={1: ("leep", "dissimilar"), 3: ("leep", "dissimilar")})
    assert ranking_words(run) == "by leep (leep), dissimilar: the smallest value first"
    run = SimpleNamespace(score="modeldiff", rules={1: ("modeldiff", "similar")})
    assert ranking_words(run) == "by modeldiff (ddv_euc), similar: the smallest value first"
    run = SimpleNamespace(score="modeldiff", rules={1: ("modeldiff", "dissimilar")})    # the original's rule
    assert ranking_words(run) == "by modeldiff (ddv_euc), dissimilar: the largest value first"
    run = SimpleNamespace(score="modeldiff", rules={1: ("modeldiff", "dissimilar"), 3: ("modeldiff", "similar")})
    assert ranking_words(run) == "by scores or rules that differ between targets (below)"
    assert ranking_words(SimpleNamespace(score=None, rules={})) == "no target yet"
