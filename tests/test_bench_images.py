"""tools.bench.images: the Perceiver per patch size and the small CNN on the same samples, figures as JSON."""
import json

from conftest import ok, python, script_env


def test_the_images_benchmark_trains_each_patch_size_and_the_cnn_on_the_named_task(small_demo_root, tmp_path):
    env = {**script_env(tmp_path, small_demo_root), "EPOCHS": "1"}
    proc = ok(python("-m", "tools.bench.images", "demo", "--tasks", "shapes_clean", "--patches", "1", "4", env=env))
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["epochs"] == 1 and [row["task"] for row in result["tasks"]] == ["shapes_clean"]
    row = result["tasks"][0]
    assert row["samples"] > 0 and row["cnn_epochs"] >= 1
    for key in ("patch1", "patch4", "cnn"):
        assert 0.0 <= row[key] <= 1.0 and result["means"][key] == row[key]
    assert row["patch1_seconds"] > 0 and row["patch4_seconds"] > 0
    assert (row["patch1_tokens"], row["patch4_tokens"]) == (32 * 32, 8 * 8)   # the demo's 32x32 images


def test_the_images_benchmark_refuses_a_config_without_the_named_image_task(small_demo_root, tmp_path):
    proc = python("-m", "tools.bench.images", "demo", "--tasks", "shapes_captions",
                  env=script_env(tmp_path, small_demo_root))
    assert proc.returncode == 1 and "has no image task of those named" in proc.stderr


def test_the_images_benchmark_refuses_a_patch_larger_than_the_images(small_demo_root, tmp_path):
    proc = python("-m", "tools.bench.images", "demo", "--patches", "4", "33", env=script_env(tmp_path, small_demo_root))
    assert proc.returncode == 1 and "--patches 33 is larger than the config's image_size (32)" in proc.stderr
