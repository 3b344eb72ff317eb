"""User-facing errors and the exit-code protocol shared by the Python steps and the bash scripts."""
import errno
import os
import sys
from enum import IntEnum
from pathlib import Path


class ExitStatus(IntEnum):
    """Exit codes the bash loops react to (the original's protocol); run_pickaback/*.sh's `case` arms read them."""
    DONE = 0
    GROW = 2            # accuracy below baseline: widen the network and retry
    NO_BASELINE = 3     # the baseline accuracy file or entry is missing
    NO_CAPACITY = 5     # the task owns no free weights: skip pruning
    PRUNE_FAILED = 6    # a pruning stage missed its accuracy goal: stop the pruning loop

    def sentence(self, task):
        """What a training stage of `task` that ends with this status says on the console."""
        return {
            ExitStatus.DONE: f"{task} is done.",
            ExitStatus.GROW: f"Exit 2: {task} stayed under its baseline at this width; the script retries with a "
                             f"wider network.",
            ExitStatus.NO_BASELINE: f"Exit 3: {task} has no baseline accuracy; run run_pickaback/baseline.sh first.",
            ExitStatus.NO_CAPACITY: f"Exit 5: {task} owns no free weights (it reuses earlier tasks' weights only), so "
                                    f"there is nothing to prune; pruning is skipped.",
            ExitStatus.PRUNE_FAILED: f"Exit 6: this pruning stage of {task} missed its accuracy goal; the pruning "
                                     f"loop stops here and step 2-2 chooses among the stages that passed.",
        }[self]


class UserError(Exception):
    """Something the user can fix; reported as one sentence, without a traceback."""

    def __init__(self, message, exit_code=1):
        super().__init__(message)
        self.exit_code = exit_code


def run_main(main, get_args_parser=None):
    """Run an entry point, `main(args)` with the arguments `get_args_parser()` reads (`main()` without one): its
    int result is the exit status; a UserError, and an operating-system failure (full disk, read-only or
    unwritable output root, a file where a folder belongs), become one line on stderr."""
    try:
        status = main(get_args_parser().parse_args()) if get_args_parser else main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except BrokenPipeError:
        # the reader of stdout left (`| head`): nothing to tell it, and Python's flush at exit must not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except OSError as err:
        print(f"error: {os_error_sentence(err)}", file=sys.stderr)
        sys.exit(1)     # never one of the protocol's codes: the bash loops must not read it as a decision
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(int(status or 0))


UNTOUCHED = "the finished outputs are untouched"   # every output is written atomically (utils/records.atomic_file)
ELSEWHERE = "or set MMPAB_OUTPUT_ROOT to a folder you can write"


def os_error_sentence(err: OSError) -> str:
    """An operating-system failure as one sentence: what happened, where, and what to do."""
    path = err.filename if err.filename is not None else "an unnamed file"
    code = err.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        cause = "no space left on device" if code == errno.ENOSPC else "disk quota exceeded"
        return f"{cause} at {path}: free some space and re-run; {UNTOUCHED}."
    if code == errno.EROFS:
        return f"{path} is on a read-only file system: make it writable {ELSEWHERE}, and re-run; {UNTOUCHED}."
    if code in (errno.EACCES, errno.EPERM):
        return f"permission denied at {path}: make it writable (or readable) {ELSEWHERE}, and re-run; {UNTOUCHED}."
    if code in (errno.ENOTDIR, errno.EEXIST) and err.filename is not None:
        blocker = file_in_the_way(err.filename)
        if blocker is not None:
            return (f"{blocker} is a file where a folder belongs (on the way to {path}): move it away {ELSEWHERE}, "
                    f"and re-run.")
    if code == errno.EISDIR:
        return f"{path} is a folder where a file belongs: move it away and re-run."
    if code == errno.ENOENT:
        return f"{path} does not exist: check the path (or run the step that writes it) and re-run."
    reason = err.strerror or str(err) or type(err).__name__
    return f"{reason[0].lower() + reason[1:]} at {path}; {UNTOUCHED}."


def file_in_the_way(path):
    """The first existing non-folder on the way from the root to `path` (`path` itself included); None if none."""
    path = Path(os.fsdecode(path))
    for part in [*reversed(path.parents), path]:
        try:
            if part.exists() and not part.is_dir():
                return part
        except OSError:     # an unreadable folder on the way: nothing more to learn
            return None
    return None
