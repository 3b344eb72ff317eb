"""Every output the pipeline writes inside the repository is git-ignored: a run leaves `git status` clean."""
import subprocess

import pytest

from utils import paths
from utils_pickaback.ranking import rankings_json


def root_outputs(cfg_name, seed):
    """The files a run writes at the output root (the rest live in the ignored checkpoints_* and logs_* folders)."""
    files = [paths.pickaback_result_csv(cfg_name, seed), rankings_json(paths.pickaback_result_csv(cfg_name, seed)),
             paths.pickaback_table_csv(cfg_name, seed),
             paths.pickaback_table_csv(cfg_name, seed).with_suffix(".json"), paths.transfer_csv(cfg_name, seed),
             paths.results_csv(cfg_name, seed)]
    return files + [f.with_name(f.name + ".lock") for f in files]


@pytest.mark.parametrize("seed", [paths.DEFAULT_SEED, 3])
def test_every_output_at_the_root_is_ignored(monkeypatch, seed):
    monkeypatch.delenv("MMPAB_OUTPUT_ROOT", raising=False)
    files = [str(f.relative_to(paths.REPO_ROOT)) for f in root_outputs("demo", seed)]
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *files], cwd=paths.REPO_ROOT,
                             capture_output=True, text=True).stdout.split()
    assert sorted(set(files) - set(ignored)) == []
