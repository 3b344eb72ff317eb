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
