"""Usage errors and out-of-range numbers: one `error:` sentence and exit 1, never 2, and nothing written.

Exit 2 means "grow the network and retry" to the bash grow loop (utils.errors.ExitStatus), so argparse's
own exit 2 on a mistyped flag would send the loop round again. Every entry point parses with
utils.cli.ArgumentParser, whose error() exits 1; the numbers are range-checked by utils.cli's `type=`
functions while parsing, and CPG_MM_main_normal.check_args checks flags against each other.
"""
import argparse
import gc
import importlib
import os
import subprocess
import sys

import pytest

from conftest import python, script_env
from utils import cli
from utils.dataset_config import REPO_ROOT
from utils.errors import UserError

MISTYPED = "--definitely_not_a_flag"

# Every entry point (a file building an argparse parser), with the arguments it requires, so that a
# mistyped flag, not a missing argument, is what argparse reports.
REQUIRED_ARGS = {
    "packnet_cifar100_main_normal.py": ["--dataset", "1"],
    "CPG_MM_main_normal.py": ["--dataset", "1", "--mode", "finetune", "--save_folder", "SAVE"],
    "pickaback_perceiverIO.py": [],
    "transfer_kv_perceiver_io.py": [],
    "tools/bench/images.py": ["demo"],
    "tools/bench/model.py": [],
    "tools/bench/pipeline.py": [],
    "tools/bench/relations.py": [],
    "tools/bench/variants.py": [],
    "tools/continual.py": ["table", "demo"],
    "tools/choose_appropriate_pruning_ratio_for_next_task_notrmfiles.py":
        ["--pruning_ratio_to_acc_record_file", "RECORD", "--baseline_acc_file", "BASELINE", "--dataset", "x"],
    "tools/make_demo_data.py": [],
    "tools/prepare_cifar100.py": ["--archive", "ARCHIVE"],
    "tools/prepare_cub.py": ["--archive", "ARCHIVE", "--captions", "CAPTIONS"],
    "tools/prepare_digits.py": ["--digits", "DIGITS"],
    "tools/prepare_fashion.py": ["--fashion", "FASHION"],
    "tools/prepare_emoji.py": ["--twitter", "T", "--google", "G", "--emojibase", "E"],
    "tools/prepare_oxford.py": ["--archive", "ARCHIVE", "--labels", "LABELS", "--captions", "CAPTIONS"],
    "tools/prepare_wordnet.py": ["--dict", "DICT"],
    "tools/report.py": [],
    "tools/results_table.py": [],
    "tools/task_info.py": ["demo"],
    "tools/transfer_control.py": ["plan", "demo", "--targets", "1"],
}


def entry_points_in_tree():
    files = [*REPO_ROOT.glob("*.py"), *(REPO_ROOT / "tools").glob("*.py"), *(REPO_ROOT / "tools" / "bench").glob("*.py")]
    return sorted(str(f.relative_to(REPO_ROOT)) for f in files if "ArgumentParser(" in f.read_text())


def entry_command(script):
    """`python`'s arguments for an entry point: a top-level script as a file, a tool as a module (`-m tools.x`)."""
    return ["-m", script.removesuffix(".py").replace("/", ".")] if script.startswith("tools/") else [script]


def run(script, *args, env):
    """Run an entry point in a new interpreter, as a user does."""
    return subprocess.run([sys.executable, *entry_command(script), *map(str, args)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def run_forked(script, *args, env):
    """The same run without a new interpreter's start (conftest.python)."""
    return python(*entry_command(script), *args, env=env)


def error_lines(stderr):
    return [line for line in stderr.splitlines() if "error:" in line]


@pytest.fixture
def empty_out(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    return out


def assert_nothing_written(out):
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    assert written == [], f"a rejected command wrote {written}"


# ---------------------------------------------------------------- (a) mistyped flags, every entry point

def test_every_entry_point_is_listed():
    assert entry_points_in_tree() == sorted(REQUIRED_ARGS)


@pytest.mark.parametrize("script", sorted(REQUIRED_ARGS))
def test_entry_point_builds_the_exit_1_parser(script):
    source = (REPO_ROOT / script).read_text()
    assert "argparse.ArgumentParser(" not in source, f"{script} builds a plain argparse parser (exits 2)"


@pytest.mark.parametrize("script", sorted(REQUIRED_ARGS))
def test_mistyped_flag_exits_1_with_one_error_line(script, tmp_path, empty_out):
    args = [str(tmp_path / a) if a.isupper() else a for a in REQUIRED_ARGS[script]]
    proc = run_forked(script, *args, MISTYPED, "3", env=script_env(empty_out, tmp_path / "no_data"))
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-2000:])
    lines = error_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:") and MISTYPED in lines[0], lines[0]
    assert "Traceback" not in proc.stderr
    assert_nothing_written(empty_out)


def test_a_mistyped_flag_in_a_new_process_exits_1_with_one_error_line(tmp_path, empty_out):
    """The forked runs above, once in a new interpreter, as the user's shell runs it."""
    proc = run("CPG_MM_main_normal.py", *REQUIRED_ARGS["CPG_MM_main_normal.py"], MISTYPED, "3",
               env=script_env(empty_out, tmp_path / "no_data"))
    assert proc.returncode == 1 and error_lines(proc.stderr) == [line for line in proc.stderr.splitlines() if line]
    assert MISTYPED in proc.stderr and "Traceback" not in proc.stderr
    assert_nothing_written(empty_out)


def test_a_reader_that_leaves_early_is_no_error(tmp_path):
    """`python -m tools.report demo --summary | head`: the report's lines stop being read; before, the tool ended with
    "error: broken pipe at an unnamed file"."""
    script = tmp_path / "lines.py"
    script.write_text("from utils.errors import run_main\n\ndef main():\n    for n in range(100000):\n"
                      "        print(f'line {n}')\n\nrun_main(main)\n")
    proc = subprocess.run(f"{sys.executable} {script} | head -1", shell=True, cwd=REPO_ROOT, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, timeout=60)
    assert proc.stdout == "line 0\n" and proc.stderr == ""


class _FinalisedLoudly:
    def __del__(self):
        print("finalised", file=sys.stderr)


def test_a_forked_run_does_not_finalise_the_tests_garbage(tmp_path):
    """The forked runs' stderr is the command's alone, as in a new interpreter: garbage the tests left behind (say a
    DataLoader iterator whose workers are this process's children) is not collected in the fork."""
    script = tmp_path / "collect.py"
    script.write_text("import gc\ngc.collect()\n")
    gc.disable()        # keep the garbage uncollected here until the fork
    try:
        garbage = _FinalisedLoudly()
        garbage.cycle = garbage
        del garbage
        proc = python(script)
    finally:
        gc.enable()
        gc.collect()
    assert proc.returncode == 0 and proc.stderr == ""


# ---------------------------------------------------------------- (b) out-of-range numbers, as a user runs them

BASELINE = ["packnet_cifar100_main_normal.py", "--dataset", "1", "--device", "cpu"]
CPG = ["CPG_MM_main_normal.py", "--dataset", "1", "--device", "cpu", "--save_folder", "OUT/t1/scratch",
       "--jsonfile", "OUT/base.json", "--log_path", "OUT/t1/train.log"]

SUBPROCESS_CASES = [
    # (command, bad arguments, words the error line must contain)
    (BASELINE, ["--epochs", "-3"], ["argument --epochs:", "at least 1", "-3"]),
    (BASELINE, ["--epochs", "0"], ["argument --epochs:", "at least 1"]),
    (BASELINE, ["--batch_size", "0"], ["argument --batch_size:", "at least 1", "0"]),
    (BASELINE, ["--val_fraction", "1"], ["argument --val_fraction:", "from 0 up to"]),
    (BASELINE, ["--lr", "-0.1"], ["argument --lr:", "greater than 0"]),
    (BASELINE, ["--one_shot_prune_perc", "0.3"], ["--one_shot_prune_perc", "--mode prune", "prunes nothing"]),
    (CPG + ["--mode", "prune"], ["--target_sparsity", "1.5"], ["argument --target_sparsity:", "1.5"]),
    (CPG + ["--mode", "finetune"], ["--network_width_multiplier", "0"],
     ["argument --network_width_multiplier:", "greater than 0"]),
    (CPG + ["--mode", "finetune"], ["--network_width_multiplier", "2.0", "--max_allowed_network_width_multiplier", "1.5"],
     ["--network_width_multiplier 2.0", "--max_allowed_network_width_multiplier 1.5"]),
    (CPG + ["--mode", "prune"], ["--initial_sparsity", "0.5", "--target_sparsity", "0.3"],
     ["--target_sparsity 0.3", "--initial_sparsity 0.5"]),
    (["pickaback_perceiverIO.py", "--device", "cpu"], ["--n_inputs", "3"], ["argument --n_inputs:", "even", "3"]),
    (["tools/choose_appropriate_pruning_ratio_for_next_task_notrmfiles.py", "--pruning_ratio_to_acc_record_file",
      "OUT/record.txt", "--baseline_acc_file", "OUT/base.json", "--dataset", "x", "--log_path", "OUT/train.log"],
     ["--allow_acc_loss", "-0.1"], ["argument --allow_acc_loss:", "-0.1"]),
]


@pytest.mark.parametrize("command, bad, words", SUBPROCESS_CASES,
                         ids=[f"{c[0].split('/')[-1][:12]}:{' '.join(b)}" for c, b, _ in SUBPROCESS_CASES])
def test_out_of_range_number_exits_1_and_writes_nothing(command, bad, words, small_demo_root, empty_out):
    args = [a.replace("OUT", str(empty_out)) for a in command[1:]]
    proc = run_forked(command[0], *args, *bad, env=script_env(empty_out, small_demo_root))
    assert proc.returncode == 1, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    lines = error_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert "Traceback" not in proc.stderr
    assert_nothing_written(empty_out)


# ---------------------------------------------------------------- every checked flag, parsed in-process

def parser_of(module_name):
    return importlib.import_module(module_name).get_args_parser()


PARSERS = {
    "packnet_cifar100_main_normal": ["--dataset", "1"],
    "CPG_MM_main_normal": ["--dataset", "1", "--mode", "prune", "--save_folder", "s"],
    "pickaback_perceiverIO": [],
    "transfer_kv_perceiver_io": [],
    "tools.choose_appropriate_pruning_ratio_for_next_task_notrmfiles":
        ["--pruning_ratio_to_acc_record_file", "r", "--baseline_acc_file", "b", "--dataset", "x"],
    "tools.bench.model": [],
    "tools.make_demo_data": [],
    "tools.report": [],
}

COMMON_BAD = [("--epochs", "-3"), ("--epochs", "0"), ("--epochs", "2.5"), ("--batch_size", "0"),
              ("--val_batch_size", "-1"), ("--lr", "0"), ("--lr", "nan"), ("--weight_decay", "-0.0001"),
              ("--val_fraction", "1"), ("--val_fraction", "-0.1"), ("--seed", "-1")]
BAD_VALUES = [
    *[("packnet_cifar100_main_normal", flag, value) for flag, value in COMMON_BAD],
    *[("CPG_MM_main_normal", flag, value) for flag, value in COMMON_BAD],
    ("CPG_MM_main_normal", "--lr_mask", "-0.0001"),
    ("CPG_MM_main_normal", "--network_width_multiplier", "0"),
    ("CPG_MM_main_normal", "--network_width_multiplier", "inf"),
    ("CPG_MM_main_normal", "--max_allowed_network_width_multiplier", "-1"),
    ("CPG_MM_main_normal", "--total_num_tasks", "0"),
    ("CPG_MM_main_normal", "--initial_sparsity", "-0.1"),
    ("CPG_MM_main_normal", "--initial_sparsity", "1"),
    ("CPG_MM_main_normal", "--target_sparsity", "1.5"),
    ("CPG_MM_main_normal", "--target_sparsity", "1"),
    ("CPG_MM_main_normal", "--pruning_interval", "-1"),   # 0 is one-shot pruning (PackNet)
    ("CPG_MM_main_normal", "--pruning_frequency", "0"),
    ("pickaback_perceiverIO", "--n_inputs", "0"),
    ("pickaback_perceiverIO", "--n_inputs", "3"),
    ("pickaback_perceiverIO", "--epsilon", "0"),
    ("pickaback_perceiverIO", "--max_iterations", "-1"),
    ("pickaback_perceiverIO", "--val_fraction", "1"),
    ("pickaback_perceiverIO", "--seed", "-1"),
    ("transfer_kv_perceiver_io", "--seed", "-1"),
    ("tools.choose_appropriate_pruning_ratio_for_next_task_notrmfiles", "--allow_acc_loss", "-0.1"),
    ("tools.choose_appropriate_pruning_ratio_for_next_task_notrmfiles", "--allow_acc_loss", "1"),
    ("CPG_MM_main_normal", "--allow_acc_loss", "5"),      # the same rule as step 2-2's
    ("tools.bench.model", "--steps-demo", "0"),
    ("tools.bench.model", "--steps-paper", "-1"),
    ("tools.make_demo_data", "--train-per-class", "0"),
    ("tools.make_demo_data", "--test-per-class", "-1"),
    ("tools.make_demo_data", "--seed", "-1"),
    ("tools.report", "--seed", "-1"),
]


@pytest.mark.parametrize("module, flag, value", BAD_VALUES)
def test_out_of_range_flag_is_a_usage_error(module, flag, value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parser_of(module).parse_args([*PARSERS[module], flag, value])
    assert exit_info.value.code == 1
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and lines[0].startswith(f"error: argument {flag}:"), lines
    assert value in lines[0]


def test_negative_exponent_value_is_checked_when_attached(capsys):
    # argparse reads a separate "-1e-4" as an option ("expected one argument", also exit 1); "=" attaches it
    with pytest.raises(SystemExit) as exit_info:
        parser_of("CPG_MM_main_normal").parse_args([*PARSERS["CPG_MM_main_normal"], "--weight_decay=-1e-4"])
    assert exit_info.value.code == 1
    (line,) = error_lines(capsys.readouterr().err)
    assert line.startswith("error: argument --weight_decay: must be a number of at least 0, got -1e-4 (see ")


@pytest.mark.parametrize("module", sorted(PARSERS))
def test_defaults_parse(module):
    parser_of(module).parse_args(PARSERS[module])


@pytest.mark.parametrize("module, flag, value", [
    ("CPG_MM_main_normal", "--lr_mask", "0.0"),       # wo_backbone.sh's prune stages freeze the mask
    ("CPG_MM_main_normal", "--initial_sparsity", "0.0"),
    ("CPG_MM_main_normal", "--target_sparsity", "0.95"),
    ("pickaback_perceiverIO", "--max_iterations", "0"),
    ("pickaback_perceiverIO", "--n_inputs", "2"),
    ("packnet_cifar100_main_normal", "--val_fraction", "0"),   # 0 = validate on test (the original)
    ("packnet_cifar100_main_normal", "--weight_decay", "0"),
    ("tools.choose_appropriate_pruning_ratio_for_next_task_notrmfiles", "--allow_acc_loss", "0.001"),
])
def test_edge_values_are_accepted(module, flag, value):
    args = parser_of(module).parse_args([*PARSERS[module], flag, value])
    assert getattr(args, flag.lstrip("-").replace("-", "_")) == float(value)


def test_check_args_compares_widths_and_sparsities():
    from CPG_MM_main_normal import check_args, get_args_parser
    base = ["--dataset", "1", "--save_folder", "s"]

    def parsed(*extra):
        return get_args_parser().parse_args([*base, *extra])

    check_args(parsed("--mode", "finetune", "--network_width_multiplier", "1.5",
                      "--max_allowed_network_width_multiplier", "1.5"))
    check_args(parsed("--mode", "prune", "--initial_sparsity", "0.3", "--target_sparsity", "0.6"))
    check_args(parsed("--mode", "finetune", "--initial_sparsity", "0.5", "--target_sparsity", "0.1"))
    with pytest.raises(UserError, match="exceeds --max_allowed_network_width_multiplier") as err:
        check_args(parsed("--mode", "finetune", "--network_width_multiplier", "2.0",
                          "--max_allowed_network_width_multiplier", "1.5"))
    assert err.value.exit_code == 1
    with pytest.raises(UserError, match="must be greater than --initial_sparsity") as err:
        check_args(parsed("--mode", "prune", "--initial_sparsity", "0.6", "--target_sparsity", "0.6"))
    assert err.value.exit_code == 1


# ---------------------------------------------------------------- (c) the parser class and the type functions

def test_parser_error_exits_1_with_one_error_line(capsys):
    parser = cli.ArgumentParser(prog="prog")
    parser.add_argument("--epochs", type=cli.positive_int, default=1)
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["--epochz", "3"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.splitlines() == ["error: unrecognized arguments: --epochz 3 (see prog --help)."]


def test_parser_help_still_exits_0(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.ArgumentParser(prog="prog").parse_args(["--help"])
    assert exit_info.value.code == 0
    assert "usage: prog" in capsys.readouterr().out


def test_type_error_message_names_the_flag(capsys):
    parser = cli.ArgumentParser(prog="prog")
    parser.add_argument("--epochs", type=cli.positive_int, default=1)
    with pytest.raises(SystemExit):
        parser.parse_args(["--epochs", "-3"])
    assert error_lines(capsys.readouterr().err) == [
        "error: argument --epochs: must be a whole number of at least 1, got -3 (see prog --help)."]


@pytest.mark.parametrize("function, text, expected", [
    (cli.positive_int, "1", 1), (cli.positive_int, "100", 100),
    (cli.non_negative_int, "0", 0), (cli.non_negative_int, "7", 7),
    (cli.seed_int, "0", 0), (cli.seed_int, str(2 ** 32 - 1), 2 ** 32 - 1),
    (cli.positive_even_int, "2", 2), (cli.positive_even_int, "100", 100),
    (cli.positive_float, "1e-4", 1e-4), (cli.positive_float, "1.5", 1.5),
    (cli.non_negative_float, "0", 0.0), (cli.non_negative_float, "4e-5", 4e-5),
    (cli.fraction, "0", 0.0), (cli.fraction, "0.95", 0.95), (cli.fraction, "0.999", 0.999),
])
def test_type_function_accepts(function, text, expected):
    value = function(text)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("function, text, words", [
    (cli.positive_int, "-3", "whole number of at least 1, got -3"),
    (cli.positive_int, "0", "at least 1, got 0"),
    (cli.positive_int, "2.5", "whole number, got '2.5'"),
    (cli.positive_int, "ten", "whole number, got 'ten'"),
    (cli.non_negative_int, "-1", "at least 0, got -1"),
    (cli.seed_int, "-1", "from 0 to 4294967295, got -1"),
    (cli.seed_int, str(2 ** 32), "got 4294967296"),
    (cli.positive_even_int, "0", "even whole number of at least 2"),
    (cli.positive_even_int, "3", "got 3"),
    (cli.positive_even_int, "-2", "got -2"),
    (cli.positive_float, "0", "greater than 0, got 0"),
    (cli.positive_float, "-1e-3", "got -1e-3"),
    (cli.positive_float, "inf", "finite number, got 'inf'"),
    (cli.positive_float, "nan", "finite number, got 'nan'"),
    (cli.positive_float, "fast", "number, got 'fast'"),
    (cli.non_negative_float, "-0.5", "at least 0, got -0.5"),
    (cli.fraction, "1", "from 0 up to (not including) 1, got 1"),
    (cli.fraction, "1.5", "got 1.5"),
    (cli.fraction, "-0.1", "got -0.1"),
    (cli.fraction, "nan", "finite number"),
])
def test_type_function_rejects_with_a_sentence(function, text, words):
    with pytest.raises(argparse.ArgumentTypeError) as err:
        function(text)
    assert words in str(err.value)


def test_cli_imports_no_torch():
    code = ("import sys, utils.cli, tools.task_info, tools.report, "
            "tools.choose_appropriate_pruning_ratio_for_next_task_notrmfiles; print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "False", proc.stderr
