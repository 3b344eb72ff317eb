"""The settings run_pickaback/common.sh resolves for a run of the steps (their one definition), for the Python
programs that start steps themselves: the Ray launcher and the pipeline benchmark."""
import subprocess

from utils.paths import REPO_ROOT


def resolved_settings(config, *expressions, env=None):
    """The value of each shell expression (e.g. "$SEED", "$(task_ids)") once common.sh has read `config` and the
    environment `env` (default: this process's). common.sh's own messages (the demo data it generates on first use)
    go to stderr; a setting it refuses ends this process with exit 1, after common.sh's one sentence saying why."""
    script = ('exec 3>&1 1>&2\nsource run_pickaback/common.sh "$1"\nprintf "%s\\n" '
              + " ".join(f'"{expression}"' for expression in expressions) + " >&3\n")
    done = subprocess.run(["bash", "-c", script, "settings", str(config)], cwd=REPO_ROOT, env=env,
                          stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(1)
    return done.stdout.splitlines()
