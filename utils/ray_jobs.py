"""A DAG of shell jobs on Ray: each job is a subprocess on some node, started once every job it needs has
succeeded. A failed job stops the jobs that need it, directly or not; every other branch runs to its end.

The driver schedules (rather than chaining Ray object refs) so that it knows which jobs failed and which never
ran because of them, and so that a job's command can be built when it starts, from what its inputs wrote.
"""
import os
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import ray

from utils.errors import UserError
from utils.records import write_json_atomic

CANCEL_SECONDS = 10   # how long an interrupted launcher waits for its running jobs to stop


@dataclass(frozen=True)
class Job:
    name: str                           # what the console and the closing line call it, e.g. "step 2-1 task 3"
    command: Callable[[], list[str]]    # called when the job starts
    log: Path                           # the job's stdout and stderr
    needs: tuple[str, ...] = ()         # names of earlier jobs
    env: dict = field(default_factory=dict)   # on top of the node's environment


@dataclass
class Outcome:
    status: str                 # "done", "failed" or "not run" (a job it needs did not succeed)
    needs: tuple[str, ...] = ()
    log: str = ""
    exit_code: int | None = None
    reason: str = ""            # why a job failed without an exit status of its own
    start: float | None = None  # seconds since the epoch, on the node that ran it
    end: float | None = None
    host: str = ""


@ray.remote
def run_command(argv, env, cwd, log):
    """Run one job's command on this node, its output into `log`: (exit status, start, end, host name)."""
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    start = time.time()
    with open(log, "w") as out:
        # a session of its own, so that cancelling the job ends the step's whole process tree (bash and its Python)
        process = subprocess.Popen(argv, cwd=cwd, env={**os.environ, **env}, stdin=subprocess.DEVNULL,
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            status = process.wait()
        except BaseException:
            os.killpg(process.pid, signal.SIGTERM)
            raise
    return status, start, time.time(), socket.gethostname()


def run_dag(jobs, cwd, record, num_cpus=1, num_gpus=0):
    """Run `jobs` (each listed after the jobs it needs), each with `num_cpus`/`num_gpus` reserved on its node and
    `cwd` as its working folder; print a line per job started and ended, keep every job's Outcome in the JSON
    file `record` as it ends, and return {job name: Outcome}."""
    check_order(jobs)
    task = run_command.options(num_cpus=num_cpus, num_gpus=num_gpus)
    outcomes, running = {}, {}
    try:
        while len(outcomes) < len(jobs):
            for job in jobs:
                if job.name not in outcomes and job not in running.values():
                    start_or_skip(job, task, cwd, outcomes, running)
            if running:
                [ref], _ = ray.wait(list(running), num_returns=1)
                job = running.pop(ref)
                outcomes[job.name] = ended(job, ref)
                print(f"{job.name}: {describe(outcomes[job.name])}", flush=True)
            write_json_atomic(record, {name: asdict(o) for name, o in outcomes.items()})
    except KeyboardInterrupt:
        cancel(running)
        raise
    return outcomes


def cancel(running):
    """Cancel the submitted jobs before the interrupted driver takes Ray down: a queued one never starts, a running
    one ends its command's process tree (run_command)."""
    for ref in running:
        ray.cancel(ref)
    ray.wait(list(running), num_returns=len(running), timeout=CANCEL_SECONDS)


def start_or_skip(job, task, cwd, outcomes, running):
    """Start `job` on Ray when every job it needs is done; mark it "not run" when one of them did not succeed."""
    states = [outcomes[need].status if need in outcomes else "pending" for need in job.needs]
    if "failed" in states or "not run" in states:
        outcomes[job.name] = Outcome("not run", job.needs, str(job.log))
    elif all(state == "done" for state in states):
        try:
            running[task.remote(job.command(), job.env, str(cwd), str(job.log))] = job
            print(f"{job.name}: queued (log: {job.log})", flush=True)
        except UserError as err:     # its command could not be built from what its inputs wrote
            outcomes[job.name] = Outcome("failed", job.needs, str(job.log), reason=str(err))
            print(f"{job.name}: failed: {err}", flush=True)


def check_order(jobs):
    seen = set()
    for job in jobs:
        if job.name in seen:
            raise ValueError(f"Two jobs are called {job.name!r}.")
        unknown = [need for need in job.needs if need not in seen]
        if unknown:
            raise ValueError(f"Job {job.name!r} needs {unknown}, which are not listed before it.")
        seen.add(job.name)


def ended(job, ref):
    """The Outcome of a job Ray reports finished (a lost node or worker is the job's failure too)."""
    try:
        status, start, end, host = ray.get(ref)
    except ray.exceptions.RayError as err:
        return Outcome("failed", job.needs, str(job.log), reason=f"Ray reported {type(err).__name__}")
    return Outcome("done" if status == 0 else "failed", job.needs, str(job.log), status, "", start, end, host)


def describe(outcome):
    if outcome.status == "done":
        return f"done in {outcome.end - outcome.start:.0f} s"
    if outcome.exit_code is not None:
        return f"failed (exit {outcome.exit_code}); the end of {outcome.log} says why"
    return f"failed: {outcome.reason}"


def failure_sentence(outcomes):
    """One sentence naming every failed job and counting the jobs that did not run for it; "" when none failed."""
    failed = [f"{name} ({'exit %d' % o.exit_code if o.exit_code is not None else o.reason}, log {o.log})"
              for name, o in outcomes.items() if o.status == "failed"]
    if not failed:
        return ""
    skipped = sum(o.status == "not run" for o in outcomes.values())
    return (f"Failed: {'; '.join(failed)}; {skipped} job{'s' if skipped != 1 else ''} that needed "
            f"{'them' if len(failed) > 1 else 'it'} did not run, every other job finished.")
