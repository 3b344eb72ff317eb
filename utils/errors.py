"""User-facing errors and the exit-code protocol shared by the Python steps and the bash scripts."""
import sys
from enum import IntEnum


class ExitStatus(IntEnum):
    """Exit codes the bash loops react to (the original's protocol)."""
    DONE = 0
    GROW = 2            # accuracy below baseline: widen the network and retry
    NO_BASELINE = 3     # the baseline accuracy file or entry is missing
    NO_CAPACITY = 5     # the task owns no free weights: skip pruning
    PRUNE_FAILED = 6    # a pruning stage missed its accuracy goal: stop the pruning loop


class UserError(Exception):
    """Something the user can fix; reported as one sentence, without a traceback."""

    def __init__(self, message, exit_code=1):
        super().__init__(message)
        self.exit_code = exit_code


def run_main(main, get_args_parser=None):
    """Run an entry point, `main(args)` with the arguments `get_args_parser()` reads (`main()` without one): its
    int result is the exit status; a UserError becomes one line on stderr."""
    try:
        status = main(get_args_parser().parse_args()) if get_args_parser else main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(int(status or 0))
