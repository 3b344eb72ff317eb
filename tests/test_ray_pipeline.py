"""run_pickaback/ray_pipeline.py: the pipeline as a DAG of per-task jobs on Ray, against the bash steps (the session's
run on a dataset described by its config file, conftest.config_file_pipeline).

One local Ray (2 CPUs) serves the module: the launcher connects to it with --address, so its jobs get their
settings from the launcher, not from the Ray workers' environment."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import ray

from conftest import MYDATA_SETTINGS
from utils.ray_jobs import Job, failure_sentence, run_dag

ROOT = Path(__file__).resolve().parent.parent
TASKS = {1: "shapes_clean", 3: "shapes_captions"}   # MYDATA_SETTINGS' tasks: each the other's only candidate


def launch(env, *args):
    return subprocess.run([sys.executable, ROOT / "run_pickaback/ray_pipeline.py", "mydata/dataset.toml", *args],
                          cwd=env["MMPAB_DATA_ROOT"], env=env, capture_output=True, text=True, timeout=600)


def launcher_env(out, data_root, **changes):
    return {**os.environ, **MYDATA_SETTINGS, "MMPAB_OUTPUT_ROOT": str(out), "MMPAB_DATA_ROOT": str(data_root),
            "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", **changes}


@pytest.fixture(scope="module")
def ray_address():
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def runs(config_file_pipeline, ray_address, tmp_path_factory):
    """The launcher on the session's config-file dataset, with the settings and seed its bash steps ran with."""
    ray_out, data = tmp_path_factory.mktemp("ray_out"), config_file_pipeline["root"]
    launcher = launch(launcher_env(ray_out, data), "--address", ray_address)
    assert launcher.returncode == 0, launcher.stdout[-3000:] + launcher.stderr[-3000:]
    return {"bash": config_file_pipeline["out"], "ray": ray_out, "launcher": launcher, "data": data}


def jobs_record(out):
    return json.loads((out / "logs_perceiver_io" / "ray_mydata" / "jobs.json").read_text())


def backbone_folder(out, task):
    return out / "checkpoints_perceiver_io" / "CPG_single_scratch_woexp" / "perceiver_io" / "mydata" / TASKS[task]


def test_every_job_starts_after_the_jobs_it_needs_and_its_inputs_exist(runs):
    out, jobs = runs["ray"], jobs_record(runs["ray"])
    assert len(jobs) == 6 * len(TASKS) + 2 and all(job["status"] == "done" for job in jobs.values())
    # the picks are made together, once every target's distances are saved: a hub is a property of many picks
    assert set(jobs["step 3-1 picks"]["needs"]) == {f"step 3-1 target {t}" for t in TASKS}
    for name, job in jobs.items():
        assert all(job["start"] >= jobs[need]["end"] for need in job["needs"]), name
    for t in TASKS:
        peers = [p for p in TASKS if p != t]
        needs = {f"step 1 task {t}"} | {f"step 2-2 task {p}" for p in peers}
        assert set(jobs[f"step 3-1 target {t}"]["needs"]) == needs
        assert jobs[f"step 4 task {t}"]["needs"] == ["step 3-1 picks"]
        baseline = next((out / "checkpoints_perceiver_io" / "baseline_scratch" / "perceiver_io" / "mydata" / TASKS[t])
                        .glob("checkpoint-*.pth.tar"))
        assert baseline.stat().st_mtime <= jobs[f"step 2-1 task {t}"]["start"]
        for p in peers:
            chosen = backbone_folder(out, p) / "gradual_prune" / "chosen.json"
            assert chosen.stat().st_mtime <= jobs[f"step 3-1 target {t}"]["start"]
        transfer = next(out.rglob(f"checkpoint-*_kv_transfer_{t}.pth.tar"))
        assert transfer.stat().st_mtime <= jobs[f"step 3-2 target {t}"]["start"]
    # a DAG, not a sequence: independent jobs ran side by side
    spans = sorted((job["start"], job["end"]) for job in jobs.values())
    assert any(later_start < end for (_, end), (later_start, _) in zip(spans, spans[1:]))


def test_same_selection_and_accuracies_as_the_bash_steps(runs):
    bash, ray_out = runs["bash"], runs["ray"]
    for name in ("pickaback_mydata_result.csv", "pickaback_mydata_table.csv", "results_mydata.csv"):
        assert (ray_out / name).read_text() == (bash / name).read_text(), name
    for name in ("baseline_mydata_acc.txt", "baseline_mydata_test_acc.txt"):   # keys in the order the tasks ended
        assert json.loads((ray_out / "logs_perceiver_io" / name).read_text()) == \
            json.loads((bash / "logs_perceiver_io" / name).read_text())
    for t in TASKS:
        for name in ("record.txt", "chosen.json"):
            assert ((backbone_folder(ray_out, t) / "gradual_prune" / name).read_text()
                    == (backbone_folder(bash, t) / "gradual_prune" / name).read_text())
    assert len((ray_out / "results_mydata.csv").read_text().splitlines()) == len(TASKS) + 1


def test_a_failed_task_stops_its_dependants_and_the_launcher_names_it(runs, ray_address, tmp_path):
    """Task 2's images are gone: its step 1 fails; task 1's steps 1-2-2 still finish (resumed from the copy), and
    every step 3 needs task 2 as a candidate or a target."""
    out, data = tmp_path / "out", tmp_path / "data"
    shutil.copytree(runs["ray"], out)
    shutil.copytree(runs["data"], data)
    shutil.rmtree(data / "mydata" / "images" / "train" / "shapes_noisy")
    proc = launch(launcher_env(out, data, TASKS="1 2"), "--address", ray_address)
    assert proc.returncode == 1
    [sentence] = proc.stderr.strip().splitlines()
    assert sentence.startswith("Failed: step 1 task 2 (exit 1, log ")
    assert sentence.endswith("; 10 jobs that needed it did not run, every other job finished.")
    jobs = jobs_record(out)
    assert {name for name, job in jobs.items() if job["status"] == "done"} == \
        {"step 1 task 1", "step 2-1 task 1", "step 2-2 task 1"}
    assert jobs["step 3-1 target 1"]["status"] == jobs["results table"]["status"] == "not run"


def test_a_failed_job_stops_only_the_jobs_that_need_it(ray_address, tmp_path):
    def job(name, script, *needs):
        return Job(name, lambda: ["bash", "-c", script], tmp_path / f"{name}.log", needs)
    jobs = [job("a", "sleep 0.2"), job("b", "echo broken; exit 3", "a"), job("c", "true", "b"), job("d", "true", "c"),
            job("e", "sleep 0.5", "a"), job("f", "true", "e", "a"), job("g", "true")]
    outcomes = run_dag(jobs, ROOT, tmp_path / "jobs.json")
    assert {name: o.status for name, o in outcomes.items()} == \
        {"a": "done", "b": "failed", "c": "not run", "d": "not run", "e": "done", "f": "done", "g": "done"}
    assert outcomes["b"].exit_code == 3 and (tmp_path / "b.log").read_text() == "broken\n"
    assert failure_sentence(outcomes) == (f"Failed: b (exit 3, log {tmp_path / 'b.log'}); 2 jobs that needed it "
                                          f"did not run, every other job finished.")
    assert json.loads((tmp_path / "jobs.json").read_text())["c"]["status"] == "not run"


def test_user_errors_are_one_sentence_and_exit_1(tmp_path):
    proc = subprocess.run([sys.executable, "run_pickaback/ray_pipeline.py", "no_such_config"], cwd=ROOT,
                          env={**os.environ, "MMPAB_OUTPUT_ROOT": str(tmp_path)}, capture_output=True, text=True)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    proc = launch(launcher_env(tmp_path, tmp_path), "--address", "127.0.0.1:1", "--num_cpus", "2")
    assert (proc.returncode, proc.stderr) == (1, "error: --num_cpus sizes a local Ray; with --address the cluster "
                                                 "has its own CPUs.\n")


# ---------------------------------------------------------------- concurrent writers of the shared files
# Two processes write at once, each its own keys, many times; a writer that read the file before the other
# replaced it would drop the other's keys. Each waits for the other to be ready, so their loops overlap.

WRITER = """
import sys, time
from pathlib import Path
me, folder = int(sys.argv[1]), Path(sys.argv[2])
{setup}
(folder / f"ready{{me}}").touch()
while not all((folder / f"ready{{k}}").exists() for k in (0, 1)):
    time.sleep(0.01)
for i in range({rounds}):
    key = 2 * i + me
{write}
"""


def run_two_writers(tmp_path, setup, write, rounds):
    code = WRITER.format(setup=setup, write=write, rounds=rounds)
    env = {**os.environ, "MMPAB_OUTPUT_ROOT": str(tmp_path)}
    writers = [subprocess.Popen([sys.executable, "-c", code, str(me), str(tmp_path)], cwd=ROOT, env=env,
                                stderr=subprocess.PIPE, text=True) for me in (0, 1)]
    for writer in writers:
        assert writer.wait(timeout=120) == 0, writer.stderr.read()


def test_concurrent_baseline_writers_keep_every_task(tmp_path):
    """Step 1's jobs add their task to one baseline JSON (utils.records.update_json_record)."""
    record = tmp_path / "baseline_demo_acc.txt"
    run_two_writers(tmp_path, "from utils.records import update_json_record",
                    f"    update_json_record({str(record)!r}, f'task{{key}}', '0.5000')", rounds=100)
    assert set(json.loads(record.read_text())) == {f"task{k}" for k in range(200)}


def test_concurrent_step_3_1_targets_keep_every_row(tmp_path):
    """Step 3-1's jobs, one per target, each replace their target's rows of the shared table CSV, of the table's
    provenance JSON and of the ranking records (pickaback_perceiverIO.save_target), then save every pick
    (save_selections)."""
    setup = ("from types import SimpleNamespace\nfrom pickaback_perceiverIO import save_selections, save_target\n"
             "row = dict(ddv_cos=0.1, ddv_euc=0.2, compared_as='own adapter', logme=0.0, leep=0.0, cka=0.0)\n"
             "ranking = dict(score='modeldiff', select='similar', candidates=[999])")
    write = ("    save_target(SimpleNamespace(name='demo'), 2, key + 1, {999: row}, {999: {'key': key}}, ranking)\n"
             "    save_selections(SimpleNamespace(name='demo'), 2, correct_hubs=False)")
    run_two_writers(tmp_path, setup, write, rounds=40)
    targets = set(range(1, 81))
    result = (tmp_path / "pickaback_demo_result.csv").read_text().splitlines()
    assert {int(line.split(",")[0]) for line in result[1:]} == targets
    assert set(json.loads((tmp_path / "pickaback_demo_result.json").read_text())) == {str(t) for t in targets}
    table = (tmp_path / "pickaback_demo_table.csv").read_text().splitlines()
    assert {int(line.split(",")[0]) for line in table[1:]} == targets
    assert set(json.loads((tmp_path / "pickaback_demo_table.json").read_text())) == {f"{t},999" for t in targets}
