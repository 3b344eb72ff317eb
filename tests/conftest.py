"""Shared fixtures (a small copy of the generated demo data, step 1's and the pipeline's outputs, each made once per
test session) and `python`, which runs an entry point as its own process without a new interpreter's start."""
import os
import warnings

os.environ.setdefault("TQDM_DISABLE", "1")   # before tqdm is imported: it reads its settings once, at import
import pytest

from tools.make_demo_data import generate_demo_data
from utils.dataset_config import get_config

SMALL_TRAIN_PER_CLASS = 10
SMALL_TEST_PER_CLASS = 4


@pytest.fixture(scope="session")
def small_demo_root(tmp_path_factory):
    """A data root holding demo/ with 10 train and 4 test samples per class; treat as read-only."""
    root = tmp_path_factory.mktemp("data_root")
    generate_demo_data(root / "demo", seed=0, train_per_class=SMALL_TRAIN_PER_CLASS,
                       test_per_class=SMALL_TEST_PER_CLASS)
    return root


@pytest.fixture
def demo_cfg(small_demo_root):
    return get_config("demo", data_root_dir=small_demo_root)


# ---------------------------------------------------------------- training entry points (step 1 outputs)
BASELINE_EPOCHS = 2
BASELINE_TASK_IDS = ("1", "2", "7")   # two image tasks, one text task of the demo config


def script_env(output_root, data_root):
    """Environment for running a pipeline script as a subprocess with redirected outputs and data."""
    env = dict(os.environ)
    env.update(MMPAB_OUTPUT_ROOT=str(output_root), MMPAB_DATA_ROOT=str(data_root),
               PYTHONUNBUFFERED="1", TQDM_DISABLE="1")
    return env


def python(*args, env=None, cwd=None, timeout=300):
    """`python <script or -m module> <arguments>` of the repository, as a CompletedProcess: the entry point runs in a
    process of its own (exit status, stdout, stderr, environment, working directory) forked from this one, so it
    starts with torch imported instead of spending seconds importing it. A command that must start a fresh
    interpreter (-c code, an import-time check, a process killed mid-way) uses subprocess instead."""
    import signal
    import subprocess
    import tempfile
    import time
    import torch._dynamo  # noqa: F401  (an optimiser's first use imports it: 2 s, paid here once, not per entry point)
    from utils.dataset_config import REPO_ROOT
    args = [str(a) for a in args]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        pid = os.fork()
        if pid == 0:
            run_forked_child(args, dict(os.environ if env is None else env), cwd or REPO_ROOT, out, err)
        deadline = time.monotonic() + timeout
        while (waited := os.waitpid(pid, os.WNOHANG))[0] == 0:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise subprocess.TimeoutExpired(args, timeout)
            time.sleep(0.02)
        out.seek(0), err.seek(0)
        return subprocess.CompletedProcess(args, os.waitstatus_to_exitcode(waited[1]),
                                           out.read().decode(errors="replace"), err.read().decode(errors="replace"))


def run_forked_child(args, env, cwd, out, err):
    """(python, in the forked child) Run `args` as `python` would, with stdout and stderr in the files `out` and
    `err`; never returns."""
    import gc
    import runpy
    import sys
    import traceback
    # The parent's garbage (say a DataLoader iterator whose workers belong to the parent) must not be collected
    # here: its finalisers would print tracebacks into this command's stderr. A new interpreter has none of it.
    gc.freeze()
    status = 1
    try:
        os.dup2(out.fileno(), 1), os.dup2(err.fileno(), 2)
        sys.stdout, sys.stderr = (open(fd, "w", buffering=1, encoding="utf-8", closefd=False) for fd in (1, 2))
        sys.stdin = open(os.devnull)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        if "torch" in sys.modules and env.get("OMP_NUM_THREADS", "").isdigit():   # as a new interpreter reads it
            sys.modules["torch"].set_num_threads(int(env["OMP_NUM_THREADS"]))
        print_warnings_as_a_new_interpreter()
        if args[0] == "-m":
            sys.argv = [args[1], *args[2:]]
            runpy.run_module(args[1], run_name="__main__", alter_sys=True)
        else:
            sys.argv = args
            runpy.run_path(args[0], run_name="__main__")
        status = 0
    except SystemExit as exit_:
        if isinstance(exit_.code, str):
            print(exit_.code, file=sys.stderr)
        status = 1 if isinstance(exit_.code, str) else exit_.code or 0
    except BaseException:       # as the interpreter does: the traceback on stderr, exit 1
        traceback.print_exc()
    finally:
        sys.stdout.flush(), sys.stderr.flush()
        os._exit(status)


def print_warnings_as_a_new_interpreter():
    """(forked child) Warnings on stderr under Python's default filters, instead of pytest's record of them."""
    import sys
    warnings.resetwarnings()
    for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
        warnings.simplefilter("ignore", category)
    # runpy's, as the tests imported the module before (a new interpreter would not have it)
    warnings.filterwarnings("ignore", "'.*' found in sys.modules", RuntimeWarning)
    warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: sys.stderr.write(
        warnings.formatwarning(message, category, filename, lineno, line))


def ok(proc):
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc


@pytest.fixture(scope="session")
def baseline_outputs(tmp_path_factory, small_demo_root):
    """An output root holding step 1's outputs for demo tasks 1, 2 (image) and 7 (text), 2 epochs each.

    Shared by the training-entry-point tests; treat as read-only (copy it before changing anything).
    """
    import subprocess
    import sys
    from utils.dataset_config import REPO_ROOT
    out = tmp_path_factory.mktemp("baseline_out")
    proc = subprocess.run([sys.executable, "packnet_cifar100_main_normal.py", "--dataset", *BASELINE_TASK_IDS,
                           "--epochs", str(BASELINE_EPOCHS), "--device", "cpu", "--profile", "demo"],
                          cwd=REPO_ROOT, env=script_env(out, small_demo_root), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


# ---------------------------------------------------------------- the bash steps end to end (one run per session)
PIPELINE_TASKS = {1: "shapes_clean", 2: "shapes_noisy", 7: "shapes_captions", 8: "shapes_notes"}


def steps_python():
    """The Python the bash steps run (their PYTHON): .venv's, else python3."""
    from utils.dataset_config import REPO_ROOT
    interpreter = REPO_ROOT / ".venv/bin/python"
    return str(interpreter) if interpreter.exists() else "python3"


def run_step(name, env, cfg="demo", cwd=None):
    """A bash step of run_pickaback/ on `cfg`, as a user runs it from `cwd` (default: the repository); its stdout
    (it must succeed)."""
    import subprocess
    from utils.dataset_config import REPO_ROOT
    result = subprocess.run(["bash", str(REPO_ROOT / "run_pickaback" / f"{name}.sh"), cfg], cwd=cwd or REPO_ROOT,
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def sha256(path):
    import hashlib
    from pathlib import Path
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def pipeline(small_demo_root, tmp_path_factory):
    """Steps 1 to 3-2 on PIPELINE_TASKS of the small demo data (2 epochs): {"out", "env", "logs", "chosen" (each
    backbone's chosen checkpoint), "hashes_before" (theirs before steps 4 and 3-2)}. Some tests run more steps
    on it (the transfer control); a test that must see it as the pipeline left it copies it first."""
    import json
    out = tmp_path_factory.mktemp("outputs")
    env = dict(os.environ, MMPAB_OUTPUT_ROOT=str(out), MMPAB_DATA_ROOT=str(small_demo_root),
               TASKS=" ".join(map(str, PIPELINE_TASKS)), EPOCHS="2", PRUNE_EPOCHS="1", PRUNE_STAGES="0.5",
               MODELDIFF_ITERATIONS="2", DEVICE="cpu", JOBS="2", PYTHON=steps_python())
    logs = {}
    for step in ("baseline", "wo_backbone", "select_pruning_ratio_of_backbone", "find_backbone"):
        logs[step] = run_step(step, env)
    backbones = out / "checkpoints_perceiver_io" / "CPG_single_scratch_woexp" / "perceiver_io" / "demo"
    chosen = {name: backbones / name / "gradual_prune" /
              json.loads((backbones / name / "gradual_prune" / "chosen.json").read_text())["checkpoint"]
              for name in PIPELINE_TASKS.values()}
    hashes_before = {name: sha256(path) for name, path in chosen.items()}
    for step in ("transfer_kv", "w_backbone"):
        logs[step] = run_step(step, env)
    return {"out": out, "env": env, "logs": logs, "chosen": chosen, "hashes_before": hashes_before}


# ---------------------------------------------------------------- the bash steps on a dataset described only by its
# config file (one run per session, read by test_dataset_config_file and compared with Ray's by test_ray_pipeline)
MYDATA_TOML = """\
image_size = 32
train_augment = "crop_flip"
vocab_size = 4096
max_text_length = 32
val_fraction = 0.2
mean = [0.5, 0.5, 0.5]
std = [0.25, 0.25, 0.25]

[[tasks]]
name = "shapes_clean"
modality = "image"
num_classes = 5
related = "shapes_noisy"
paired = "shapes_captions"

[[tasks]]
name = "shapes_noisy"
modality = "image"
num_classes = 5
related = "shapes_clean"

[[tasks]]
name = "shapes_captions"
modality = "text"
num_classes = 5
related = "shapes_notes"

[[tasks]]
name = "shapes_notes"
modality = "text"
num_classes = 5
related = "shapes_captions"
"""
MYDATA_TASKS = ("shapes_clean", "shapes_noisy", "shapes_captions", "shapes_notes")
STEPS = ("baseline", "wo_backbone", "select_pruning_ratio_of_backbone", "find_backbone", "transfer_kv", "w_backbone")
# the demo profile (a config not named demo gets the paper's), an image and a text task, one epoch, no ModelDiff
# search, no growing: what is under test is that every step reads the dataset from its file, not what it learns
MYDATA_SETTINGS = {"TASKS": "1 3", "PROFILE": "demo", "EPOCHS": "1", "PRUNE_EPOCHS": "1", "PRUNE_STAGES": "0.5",
                   "MODELDIFF_ITERATIONS": "0", "MAX_WIDTH": "1.0", "DEVICE": "cpu"}


@pytest.fixture(scope="session")
def mydata_root(small_demo_root, tmp_path_factory):
    """A data root holding mydata/: four tiny demo tasks copied into a dataset of their own, with its dataset.toml."""
    import shutil
    root = tmp_path_factory.mktemp("my_data_root")
    for folder, names in (("images", MYDATA_TASKS[:2]), ("text", MYDATA_TASKS[2:])):
        source, copy_to = small_demo_root / "demo" / folder, root / "mydata" / folder
        for split in ("train", "test"):
            for name in names:
                shutil.copytree(source / split / name, copy_to / split / name)
    (root / "mydata" / "dataset.toml").write_text(MYDATA_TOML)
    return root


@pytest.fixture(scope="session")
def config_file_pipeline(mydata_root, tmp_path_factory):
    """The six bash steps on mydata, its config given by a path relative to the caller's folder (not the
    repository), with MYDATA_SETTINGS: {"out", "env", "root"}; treat as read-only."""
    out = tmp_path_factory.mktemp("mydata_out")
    env = dict(script_env(out, mydata_root), **MYDATA_SETTINGS, JOBS="2", PYTHON=steps_python())
    for step in STEPS:
        run_step(step, env, "mydata/dataset.toml", cwd=mydata_root)
    return {"out": out, "env": env, "root": mydata_root}


# ---------------------------------------------------------------- workers (tools/run_tests.sh: pytest-xdist)
# the modules reading one session fixture run in one worker, so that it is made once
SHARED_FIXTURE_READERS = {"test_pipeline_e2e": "pipeline", "test_bad_inputs": "pipeline",
                          "test_ray_pipeline": "config_file_pipeline", "test_dataset_config_file": "config_file_pipeline"}
# the modules that take longest (as measured), longest first, so that none of them is the last one running
SLOWEST_FIRST = ("test_pipeline_e2e", "test_bad_inputs", "test_ray_pipeline", "test_dataset_config_file",
                 "test_continual", "test_stage_resume", "test_resume", "test_select_forwards", "test_cpg_main",
                 "test_transfer", "test_prepare_cub", "test_select_resume")


def module_of(nodeid):
    from pathlib import Path
    return Path(nodeid.split("::", 1)[0]).stem


def work_unit(nodeid):
    """The tests one worker runs together: a module's (its module fixtures are made once), or those of every
    module reading one of the session's pipelines (it runs once)."""
    module = module_of(nodeid)
    return SHARED_FIXTURE_READERS.get(module, module)


def pytest_collection_modifyitems(items):
    def rank(item):
        module = module_of(item.nodeid)
        return SLOWEST_FIRST.index(module) if module in SLOWEST_FIRST else len(SLOWEST_FIRST)
    items.sort(key=rank)    # stable: a module's tests keep their order


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Work units as `work_unit` says, handed out in collection order (run with --no-loadscope-reorder)."""
    from xdist.scheduler import LoadScopeScheduling

    class ByWorkUnit(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            return work_unit(nodeid)
    return ByWorkUnit(config, log)
