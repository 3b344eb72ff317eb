"""run_pickaback/common.sh checks the steps' environment variables once, before any work: a bad value is one
sentence on stderr and exit 1 (2, 3, 5 and 6 are the steps' protocol), nothing written; and two runs of one
step on the same outputs do not run at once (the second is refused, naming the first). And .venv holds the
locked versions."""
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def source_common(tmp_path, script="", cwd=ROOT, **env):
    """Source common.sh with the cifar100 config (no demo data is generated), outputs under tmp_path/out."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MMPAB_OUTPUT_ROOT": str(tmp_path / "out"), **env}
    return subprocess.run(["bash", "-c", f'source "{ROOT}/run_pickaback/common.sh" cifar100\n{script}'], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=60)


BAD = [
    ("JOBS", "0"), ("JOBS", "abc"), ("JOBS", "1.5"), ("JOBS", "2 3"),
    ("FORCE", "yes"), ("VERBOSE", "2"), ("TENSORBOARD", "true"),
    ("PRUNE_STAGES", "0.9 0.3"), ("PRUNE_STAGES", "0.3 0.3"), ("PRUNE_STAGES", "0 0.5"), ("PRUNE_STAGES", "0.5 1"),
    ("PRUNE_STAGES", "0.3 x"),
    ("ALLOW_ACC_LOSS", "5"), ("ALLOW_ACC_LOSS", "1"), ("ALLOW_ACC_LOSS", "-0.1"), ("ALLOW_ACC_LOSS", "abc"),
    ("EPOCHS", "0"), ("PRUNE_EPOCHS", "two"), ("SEED", "-1"), ("SEED", "4294967296"), ("MAX_WIDTH", "0.5"),
    ("MAX_WIDTH", "wide"), ("MODELDIFF_ITERATIONS", "-1"), ("DEVICE", "gpu"), ("ARCH", "resnet"), ("PROFILE", "big"),
    ("LR", "0"), ("PRUNE_LR", "nan"), ("PRUNING_INTERVAL", "0"), ("PRUNING_FREQUENCY", "x"), ("OPTIMIZER", "rmsprop"),
    ("CONTROL_SEEDS", "abc"), ("CONTROL_SEEDS", "3 x"), ("CONTROL_SEEDS", "-1"),
]


@pytest.mark.parametrize("name,value", BAD)
def test_a_bad_setting_is_one_sentence_and_exit_1_before_any_work(tmp_path, name, value):
    proc = source_common(tmp_path, "echo sourced", **{name: value})
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    said = proc.stderr.strip()
    assert len(said.splitlines()) == 1 and said.startswith(f"{name} must be ") and f'"{value}"' in said, said
    assert "sourced" not in proc.stdout and not (tmp_path / "out").exists()


def test_good_settings_pass_and_empty_ones_take_the_default(tmp_path):
    proc = source_common(tmp_path, 'echo "$JOBS $SEED $FORCE_FLAG|$VERBOSE_FLAG|${TRAIN_ARGS[*]}|${ACC_ARGS[*]}|'
                                   '$CONTROL_SEEDS|$(task_ids)|$TARGETS|$CONTROL_TARGETS"',
                         JOBS="02", SEED="007", FORCE="1", VERBOSE="", TENSORBOARD="0", PRUNE_STAGES="0.1 0.5 .95",
                         ALLOW_ACC_LOSS="0", LR="1e-3", MAX_WIDTH="1", DEVICE="cpu", PROFILE="demo", EPOCHS="",
                         CONTROL_SEEDS="03 4", TASKS="2 aquatic_mammals 02 1", TARGETS="01", CONTROL_TARGETS="2 2")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "2 7 --force||--optimizer adam --weight_decay 4e-5|--allow_acc_loss 0|3 4|2 1|1|2"


def test_jobs_0_ends_step_1_before_any_work(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MMPAB_OUTPUT_ROOT": str(tmp_path / "out"), "JOBS": "0"}
    proc = subprocess.run(["bash", "run_pickaback/baseline.sh", "cifar100"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1 and proc.stderr.startswith("JOBS must be a whole number of at least 1")
    assert "Baseline accuracies" not in proc.stdout and not (tmp_path / "out").exists()


def test_relative_roots_are_the_callers(tmp_path):
    proc = source_common(tmp_path, 'echo "$BASELINE_FILE"; echo "$MMPAB_DATA_ROOT"', cwd=tmp_path,
                         MMPAB_OUTPUT_ROOT="out", MMPAB_DATA_ROOT="data")
    assert proc.returncode == 0, proc.stderr
    baseline_file, data_root = proc.stdout.split()
    assert Path(baseline_file).is_relative_to(tmp_path / "out") and data_root == str(tmp_path / "data")


def test_an_output_root_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "out").write_text("not a folder")
    proc = source_common(tmp_path, "echo sourced")
    assert proc.returncode == 1 and "sourced" not in proc.stdout
    assert proc.stderr.startswith("MMPAB_OUTPUT_ROOT") and len(proc.stderr.strip().splitlines()) == 1
    assert (tmp_path / "out").read_text() == "not a folder"


# A step script (named as step 2-1's, anywhere) whose jobs wait for the file $MARKS/go.
FAKE_STEP = """source "{root}/run_pickaback/common.sh" cifar100
job() {{ until [ -e "$MARKS/go" ] || [ "$SECONDS" -gt 60 ]; do sleep 0.1; done; touch "$MARKS/$1"; }}
echo ready
run_jobs "$MARKS/logs" work job a b
"""


def test_a_second_run_of_a_step_on_the_same_outputs_is_refused_naming_the_first(tmp_path):
    step = tmp_path / "steps" / "wo_backbone.sh"
    step.parent.mkdir()
    step.write_text(FAKE_STEP.format(root=ROOT))
    marks = tmp_path / "marks"
    marks.mkdir()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MMPAB_OUTPUT_ROOT": str(tmp_path / "out"),
           "MMPAB_DATA_ROOT": str(tmp_path / "data"), "MARKS": str(marks), "JOBS": "2", "TASKS": "1 2"}

    def start(**more):
        proc = subprocess.Popen(["bash", str(step)], env={**env, **more}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        assert proc.stdout.readline() == "ready\n", proc.communicate()
        return proc

    first = start()
    try:
        for command in (["bash", str(step)], ["bash", "run_pickaback/wo_backbone.sh", "cifar100"]):
            second = subprocess.run(command, cwd=ROOT, env={**env, "TASKS": "2 3"}, capture_output=True, text=True,
                                    timeout=60)
            assert second.returncode == 1, (second.stdout, second.stderr)
            said = second.stderr.strip()
            assert len(said.splitlines()) == 1 and "wo_backbone" in said and f"pid {first.pid}" in said, said
            assert "ready" not in second.stdout
        other_tasks = start(TASKS="3")   # other tasks of the same step: no conflict
        (marks / "go").touch()
        for proc in (first, other_tasks):
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
        assert {p.name for p in marks.iterdir()} >= {"a", "b"}   # both parallel jobs of the locked run ran
        assert subprocess.run(["bash", str(step)], env=env, capture_output=True, timeout=60).returncode == 0
    finally:
        (marks / "go").touch()   # the jobs end, also when the test failed
        first.kill()


def pinned(requirements_file):
    """{package (normalised name): version} of a pip requirements file of `name==version` lines."""
    lines = (ROOT / requirements_file).read_text().splitlines()
    return {name.lower().replace("_", "-"): version
            for name, version in (line.split("==") for line in lines if line and not line.startswith("#"))}


def test_the_environment_has_the_locked_version_of_every_package():
    """tools/setup_venv.sh installs requirements.txt with requirements-lock.txt as pip's constraints: the lock pins
    every package of requirements.txt at its version, and every locked package installed here has its version."""
    from importlib import metadata
    locked = pinned("requirements-lock.txt")
    assert pinned("requirements.txt").items() <= locked.items()
    for name, version in locked.items():
        try:
            assert metadata.version(name) == version, name
        except metadata.PackageNotFoundError:
            continue                # another platform's package (the lock was made on Linux x86-64)
