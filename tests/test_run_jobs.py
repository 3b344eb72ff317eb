"""run_pickaback/common.sh's run_jobs (the steps' tasks one after another or JOBS at a time, a log per job)
and its task locks."""
import re
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
JOB = """
job() {  # <name> <seconds> <exit status>
  echo "job $1 says hello."; sleep "$2"; touch "$MARKS/$1"; return "$3"
}
"""


def run_jobs(tmp_path, jobs, *items):
    marks = tmp_path / "marks"
    marks.mkdir(exist_ok=True)
    # cifar100: common.sh generates no demo data; JOBS is set explicitly
    script = f'source run_pickaback/common.sh cifar100\n{JOB}\nrun_jobs "{tmp_path}/logs" work job ' + \
        " ".join(f'"{item}"' for item in items)
    env = {"PATH": "/usr/bin:/bin", "JOBS": str(jobs), "MARKS": str(marks), "HOME": str(tmp_path)}
    proc = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    return proc, {p.name for p in marks.iterdir()}


def test_parallel_jobs_each_write_their_own_log_and_report_on_the_console(tmp_path):
    proc, done = run_jobs(tmp_path, 2, "a 0.3 0", "b 0.1 0", "c 0.1 0")
    assert proc.returncode == 0, proc.stderr
    assert done == {"a", "b", "c"}
    for name in "abc":
        assert (tmp_path / "logs" / f"work_{name}.log").read_text() == f"job {name} says hello.\n"
        assert f"work {name}: started" in proc.stdout and f"work_{name}: done" in proc.stdout
    assert "says hello" not in proc.stdout


def test_a_failed_job_stops_new_ones_and_the_step_names_its_log(tmp_path):
    proc, done = run_jobs(tmp_path, 2, "slow 1 0", "bad 0 3", "later 0 0", "last 0 0")
    assert proc.returncode == 1
    assert f"{tmp_path}/logs/work_bad.log (exit 3) says: job bad says hello." in proc.stderr   # its last line
    assert "hello.." not in proc.stderr     # the job's own full stop ends the sentence
    assert done == {"slow", "bad"}        # the running job finishes; none starts after the failure


def test_failed_jobs_say_their_error_sentence_not_the_line_after_it_however_fast_they_end(tmp_path):
    proc = subprocess.run(["bash", "-c", f'source run_pickaback/common.sh cifar100\njob() {{ echo "error: the '
                           f'reason."; echo "job $1 stopped (exit 1)."; return 1; }}\nrun_jobs "{tmp_path}/logs" work '
                           f'job a b'], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "JOBS": "2", "HOME": str(tmp_path)})
    # both jobs end at once, before the step waits for them: their failures still count
    assert proc.returncode == 1, proc.stderr
    assert re.search(r"work_[ab]\.log \(exit 1\) says: the reason\.\n", proc.stderr), proc.stderr


def test_one_job_at_a_time_runs_on_the_console_in_order(tmp_path):
    proc, done = run_jobs(tmp_path, 1, "a 0 0", "b 0 0")
    assert proc.returncode == 0 and done == {"a", "b"}
    assert proc.stdout.index("job a says hello") < proc.stdout.index("job b says hello")
    assert not (tmp_path / "logs").exists()


def sourced_stderr(tmp_path, cfg, **env):
    proc = subprocess.run(["bash", "-c", f"source run_pickaback/common.sh {cfg}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env})
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def test_the_paper_profile_on_a_cpu_is_said_before_any_work(tmp_path):
    said = sourced_stderr(tmp_path, "cifar100", DEVICE="cpu")
    assert "paper profile" in said and "PROFILE=demo" in said and len(said.strip().splitlines()) == 1
    assert sourced_stderr(tmp_path, "cifar100", DEVICE="cpu", PROFILE="demo", JOBS="1") == ""


@pytest.mark.parametrize("collected", [True, False])      # False: a zombie, its parent not having waited for it
def test_a_task_locked_by_the_jobs_of_a_killed_run_names_those_jobs_not_the_dead_run(tmp_path, collected):
    """After `kill -9` of a step script, its jobs go on holding every lock it took: the refusal named the killed
    script's pid, which no longer exists, and not the processes to wait for or stop."""
    step = tmp_path / "baseline.sh"          # a step script: common.sh locks its tasks
    step.write_text(f'source "{ROOT}/run_pickaback/common.sh" "$@"\necho "working on the tasks"\n')
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MMPAB_OUTPUT_ROOT": str(tmp_path / "out"), "TASKS": "1",
           "JOBS": "1", "PROFILE": "demo"}
    first = subprocess.run(["bash", str(step), "cifar100"], env=env, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0 and "working on the tasks" in first.stdout, first.stderr
    lock = tmp_path / "out" / "logs_perceiver_io" / "locks" / "cifar100_baseline_task1.lock"
    ended = subprocess.Popen(["sleep", "30"])
    ended.kill()
    if collected:
        ended.wait()
    lock.write_text(f"pid {ended.pid} (run_pickaback/baseline.sh cifar100, since today)\n")
    job = subprocess.Popen(["flock", "-x", str(lock), "sleep", "30"])     # a job of that run, holding its lock
    try:
        for _ in range(50):
            if subprocess.run(["flock", "-n", str(lock), "true"]).returncode != 0:
                break
            time.sleep(0.1)
        second = subprocess.run(["bash", str(step), "cifar100"], env=env, capture_output=True, text=True, timeout=60)
    finally:
        for process in (job, ended):
            process.kill()
            process.wait()
    assert second.returncode == 1 and "working" not in second.stdout
    assert f"pid {ended.pid} (run_pickaback/baseline.sh cifar100, since today), which has ended; processes it " \
           f"started still hold the lock: kill " in second.stderr and str(job.pid) in second.stderr, second.stderr


def test_step_3_1s_settings_are_checked_before_any_step_and_as_its_parser_allows(tmp_path):
    """SCORE=bogus ran steps 1 to 2-2 (hours at the paper profile) before step 3-1's parser refused it."""
    import pickaback_perceiverIO
    common = (ROOT / "run_pickaback" / "common.sh").read_text()
    flags = {"SCORE": "--score", "SELECT": "--select", "CANDIDATES": "--candidates",
             "CROSS_MODAL_PROBES": "--cross_modal_probes"}
    actions = {a.option_strings[0]: a for a in pickaback_perceiverIO.get_args_parser()._actions if a.option_strings}
    for name, flag in flags.items():
        (line,) = [line for line in common.splitlines() if line.startswith(f"check_choice {name} ")]
        assert line.split()[2:] == list(actions[flag].choices), name
    proc = subprocess.run(["bash", "-c", "source run_pickaback/common.sh cifar100"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SCORE": "bogus"})
    assert proc.returncode == 1 and "SCORE must be one of: modeldiff, modeldiff_cos" in proc.stderr, proc.stderr
