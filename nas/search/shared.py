"""A run's trials shared with `nas search --worker` processes: the driver opens them, workers wait and join.

The driver (`nas search SPEC`) runs every stage as before, holding the run folder's lock exclusively. Once the
latency table and the supernet are in the folder and the study holds its trial budget (nas.search.budget), it
writes RUN/trials.open and `share()`s the lock; a worker waits for that file, takes the lock shared (so the
driver's later `own()` waits for it) and claims trials of the study. After its own trials the driver removes the
file and takes the lock back, which waits until every worker has ended or died; RUNNING trials left then were cut
short in a dead worker, and the driver runs them again before it alone writes the front, the export and the summary.
"""
from __future__ import annotations

import os
import time

from nas.errors import UserError
from nas.io import atomic_write_json
from nas.runlock import RunLock, RunLocked, holder_pid
from nas.storage import masked

OPEN = "trials.open"
NO_DRIVER_GRACE_S = 10.0  # a driver starting beside its workers, or between its set-up and run, holds no lock


def close_trials(run_dir: str) -> None:
    """Remove the open-trials mark (a driver that died may have left it): no worker joins until it is written."""
    try:
        os.remove(os.path.join(run_dir, OPEN))
    except FileNotFoundError:
        pass


class OpenTrials:
    """`with OpenTrials(ctx, lock, url, budget):` the driver's trials open to workers; on a normal exit it waits
    for them (the lock owned again); on an exception (Ctrl-C) it only closes the trials."""

    def __init__(self, ctx, lock: RunLock, url: str, budget: int):
        self.ctx, self.lock, self.url, self.budget = ctx, lock, url, budget

    def __enter__(self) -> "OpenTrials":
        atomic_write_json(self.ctx.path(OPEN), {"pid": os.getpid(), "storage": masked(self.url),
                                                "trials": self.budget})
        self.lock.share()
        return self

    def __exit__(self, exc_type, *exc) -> None:
        close_trials(self.ctx.dir)
        if exc_type is None:
            self.lock.own()  # waits for the workers still running trials


def wait_for_driver(run_dir: str, wait_s: float, say, poll_s: float = 0.25) -> RunLock:
    """Wait (at most `wait_s`) until a driver has opened the run's trials; returns the folder's lock held shared.
    A folder without a live driver is one line, as is a driver that does not open its trials in time."""
    t0, said, alone_since = time.monotonic(), False, None
    while True:
        busy = False  # the driver holds the folder: measuring, training (or finishing)
        if os.path.isdir(run_dir):
            lock = RunLock(run_dir, "nas search --worker", shared=True)
            try:
                lock.acquire()
            except RunLocked:
                busy = True
            else:
                if os.path.exists(os.path.join(run_dir, OPEN)):
                    return lock
                lock.release()
        if busy:
            alone_since = None
            if not said:
                say(f"worker: waiting for the driver (process {holder_pid(run_dir)}) to measure the latency table "
                    f"and train the supernet in {run_dir} (at most {wait_s:g} s)")
                said = True
        elif alone_since is None:
            alone_since = time.monotonic()
        elif time.monotonic() - alone_since > NO_DRIVER_GRACE_S:
            done = os.path.exists(os.path.join(run_dir, "summary.json"))
            raise UserError(f"--worker: no driver runs the search in '{run_dir}'" + (
                " (its search has finished: summary.json)" if done else "") + "; start it there first with "
                "`nas search SPEC` (the same spec), then the workers")
        if time.monotonic() - t0 > wait_s:
            raise UserError(f"--worker: the driver of '{run_dir}' did not open its trials within {wait_s:g} s "
                            f"(--wait); raise --wait, or see {os.path.join(run_dir, 'search.log')}")
        time.sleep(poll_s)
