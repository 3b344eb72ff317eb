"""A stage whose training loss stops being finite ends with one sentence and records nothing: no baseline
accuracy (the chance level of its NaN weights) and no checkpoint."""

from conftest import python, script_env


def test_a_non_finite_loss_stops_the_stage_without_a_result(small_demo_root, tmp_path):
    out = tmp_path / "out"
    proc = python("packnet_cifar100_main_normal.py", "--dataset", "1", "--epochs", "1", "--device", "cpu",
                  "--lr", "1e30", env=script_env(out, small_demo_root))
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: Stage baseline of task shapes_clean stopped in epoch 1")
    assert "--lr" in lines[0] and "(mean, std)" in lines[0]
    assert not (out / "logs_perceiver_io" / "baseline_demo_acc.txt").exists()
    assert not list(out.rglob("*.pth.tar"))
