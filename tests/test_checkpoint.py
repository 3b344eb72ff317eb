"""Checkpoint files: exact round trip, atomic write, and refusal of corrupt, unsafe or mismatched files."""
import dataclasses

import pytest
import torch

from models.cpg import CPGModel
from tests.test_cpg import text_batch, train_steps
from tests.test_models import CFG, images, spec
from utils.checkpoint import load_checkpoint, model_from_state, model_state, save_checkpoint
from utils.dataset_config import get_config
from utils.errors import UserError


def trained_model():
    torch.manual_seed(0)
    model = CPGModel.create("perceiver_io", "demo")
    model.add_task(spec(1, "img"), CFG)
    train_steps(model, images())
    model.prune_active_task(0.5)
    model = model.grown(1.5)
    model.add_task(spec(2, "txt", "text", 3), CFG)
    train_steps(model, text_batch())
    return model


def payload(model, **extra):
    return {"arch": model.arch, "profile": model.profile, "config": "demo", "model": model_state(model),
            "epoch": 3, "accuracy": 0.5, "test_accuracy": 0.4, "args": {"lr": 0.1}, **extra}


def assert_same(a, b):
    if torch.is_tensor(a):
        assert torch.is_tensor(b) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        assert a == b


def test_round_trip_is_exact(tmp_path):
    model = trained_model()
    path = tmp_path / "run" / "checkpoint-3.pth.tar"
    save_checkpoint(path, payload(model))
    assert [p.name for p in path.parent.iterdir()] == [path.name]   # no temp file left behind
    loaded = load_checkpoint(path, expect_arch="perceiver_io", expect_config=get_config("demo"))
    rebuilt = model_from_state(loaded["model"])
    assert_same(model_state(rebuilt), model_state(model))
    assert rebuilt.task_names == ["img", "txt"] and rebuilt.active_task == "txt"
    model.eval(), rebuilt.eval()
    with torch.no_grad():
        assert torch.equal(rebuilt(text_batch()), model(text_batch()))
        assert torch.equal(rebuilt.task_view("img")(images()), model.task_view("img")(images()))
    assert loaded["epoch"] == 3 and loaded["args"] == {"lr": 0.1}


def test_round_trip_of_lenet_with_batchnorm_state(tmp_path):
    torch.manual_seed(0)
    model = CPGModel.create("lenet5", "demo")
    model.add_task(spec(1, "a"), CFG)
    train_steps(model, images())
    model.add_task(spec(2, "b"), CFG)
    train_steps(model, images(seed=2))
    save_checkpoint(tmp_path / "c.pth.tar", payload(model))
    rebuilt = model_from_state(load_checkpoint(tmp_path / "c.pth.tar")["model"])
    rebuilt.set_active_task("a"), model.set_active_task("a")
    rebuilt.eval(), model.eval()
    with torch.no_grad():
        assert torch.equal(rebuilt(images()), model(images()))


class Trap:
    """Unpickling this object would create `marker` (any code a malicious checkpoint could run)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickled_objects_are_refused_without_running_them(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth.tar"
    torch.save({"format": "mmpab-checkpoint-1", "arch": "lenet5", "profile": "demo", "model": Trap(str(marker))}, path)
    with pytest.raises(UserError, match="evil.pth.tar"):
        load_checkpoint(path)
    assert not marker.exists()


def test_corrupt_missing_and_foreign_files_are_user_errors(tmp_path):
    corrupt = tmp_path / "corrupt.pth.tar"
    corrupt.write_bytes(b"not a checkpoint at all")
    with pytest.raises(UserError, match="corrupt.pth.tar"):
        load_checkpoint(corrupt)
    with pytest.raises(UserError, match="missing.pth.tar"):
        load_checkpoint(tmp_path / "missing.pth.tar")
    foreign = tmp_path / "foreign.pth.tar"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    with pytest.raises(UserError, match="foreign.pth.tar"):
        load_checkpoint(foreign)


def test_truncated_file_is_a_user_error(tmp_path):
    model = CPGModel.create("lenet5", "demo")
    model.add_task(spec(1, "a"), CFG)
    path = tmp_path / "cut.pth.tar"
    save_checkpoint(path, payload(model))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(UserError, match="cut.pth.tar") as refused:
        load_checkpoint(path)
    said = str(refused.value)      # what to do, and torch's reason whole or cut at a word
    assert said.endswith("; delete it and re-run the step that writes it (FORCE=1 redoes it over the file).")
    reason = said.split(" is corrupt or not a checkpoint (", 1)[1].rsplit(");", 1)[0]
    assert len(reason) <= 204 and (reason.endswith(" ...") or "\n" not in reason)


def test_arch_and_config_mismatch_are_user_errors(tmp_path):
    model = CPGModel.create("lenet5", "demo")
    model.add_task(spec(1, "a"), CFG)
    path = tmp_path / "c.pth.tar"
    save_checkpoint(path, payload(model))
    with pytest.raises(UserError, match="c.pth.tar"):
        load_checkpoint(path, expect_arch="perceiver_io")
    with pytest.raises(UserError, match="c.pth.tar"):
        load_checkpoint(path, expect_config=get_config("cifar100"))


def test_a_checkpoint_of_another_version_of_its_config_is_a_user_error(tmp_path):
    """Its config file edited since (e.g. its normalisation): a model of other inputs, refused in one sentence."""
    model = CPGModel.create("lenet5", "demo")
    model.add_task(spec(1, "a"), CFG)
    cfg = get_config("cifar100")
    made_with = {"settings": {"dataset_config": cfg.provenance_id}, "inputs": {}}
    path = tmp_path / "c.pth.tar"
    save_checkpoint(path, payload(model, config="cifar100", provenance=made_with))
    assert load_checkpoint(path, expect_config=cfg)["config"] == "cifar100"
    edited = dataclasses.replace(cfg, source_fingerprint="0" * 16)
    with pytest.raises(UserError, match=r"c.pth.tar was made with another version of dataset config 'cifar100'"):
        load_checkpoint(path, expect_config=edited)


def test_model_state_that_does_not_fit_is_a_user_error():
    model = CPGModel.create("lenet5", "demo")
    model.add_task(spec(1, "a"), CFG)
    state = model_state(model)
    state["width_mult"] = 2.0     # widths no longer match the saved tensors
    with pytest.raises(UserError):
        model_from_state(state)
    state = model_state(model)
    state["weights"]["fc1"] = torch.zeros(3, 3)
    with pytest.raises(UserError):
        model_from_state(state)
    state = model_state(model)
    del state["owners"]
    with pytest.raises(UserError):
        model_from_state(state)


def test_atomic_writes_get_the_permissions_open_gives(tmp_path):
    """A temporary file is owner-only; what the steps write must be readable like any file open() makes."""
    from utils.checkpoint import save_checkpoint
    from utils.records import write_csv_atomic, write_json_atomic
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    save_checkpoint(tmp_path / "c.pth.tar", {"arch": "lenet5", "profile": "demo", "model": {}})
    write_csv_atomic(tmp_path / "t.csv", ["a"], [[1]])
    write_json_atomic(tmp_path / "r.json", {"a": 1})
    for name in ("c.pth.tar", "t.csv", "r.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
    assert not list(tmp_path.glob(".*.tmp"))
