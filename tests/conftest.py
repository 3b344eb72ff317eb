"""Shared fixtures: a small copy of the generated demo data (made once per test session)."""
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
    import os
    env = dict(os.environ)
    env.update(MMPAB_OUTPUT_ROOT=str(output_root), MMPAB_DATA_ROOT=str(data_root),
               PYTHONUNBUFFERED="1", TQDM_DISABLE="1")
    return env


def run(env, *args):
    """Run a Python entry point of the repository (args: script, then its arguments) as a subprocess."""
    import subprocess
    import sys
    from utils.dataset_config import REPO_ROOT
    return subprocess.run([sys.executable, *map(str, args)], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


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
