"""An OS lock on a run folder (`RUN/.lock`), so two processes never write one run at once.

`fcntl.flock` on the lock file: the kernel releases it when the holder's process ends, however it ends
(SIGKILL, OOM, a crash), so a stale lock never needs cleaning up. The holder writes its PID (and what it
runs) into the file, which a refused process names in its one-line error. The file itself is kept.

`nas search --worker` processes joining a run's study take it shared (`shared=True`, LOCK_SH; many at once) and
only append trials through Optuna's storage; the driver holds it exclusively for the stages that write the folder
(latency table, supernet, front, export), `share()`s it while workers may join its trials, and `own()`s it again
afterwards, which waits until every worker has ended (or died: the kernel releases a dead one's lock). flock on
NFS is emulated with POSIX locks by Linux clients, so workers on other machines sharing the folder count too.
"""
from __future__ import annotations

import fcntl
import os
import sys
import time

from nas.errors import UserError

LOCK_FILE = ".lock"


class RunLocked(UserError):
    """Another live process holds the run folder's lock."""


class RunLock:
    """`with RunLock(folder):` holds `folder/.lock` (exclusive by default); a held lock is one line with the PID."""

    def __init__(self, folder: str, what: str = "", shared: bool = False, wait_s: float = 0.0):
        self.folder, self.what, self.shared = folder, what or " ".join(sys.argv[:2]), shared
        self.wait_s = wait_s  # retry this long: a worker probing the folder holds it shared for an instant
        self.path = os.path.join(folder, LOCK_FILE)
        self._file = None

    def acquire(self) -> "RunLock":
        os.makedirs(self.folder, exist_ok=True)
        f = open(self.path, "a+")
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                fcntl.flock(f, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                f.seek(0)
                holder = f.read().strip() or "another process"
                f.close()
                raise RunLocked(f"run folder '{self.folder}' is in use by {holder} (lock {self.path}); wait for it "
                                f"to end, or use another folder with --set run_dir=PATH") from None
        if not self.shared:
            f.seek(0)
            f.truncate()
            f.write(f"process {os.getpid()} ({self.what})\n")
            f.flush()
        self._file = f
        return self

    def share(self) -> None:
        """Exclusive -> shared: workers may join (flock converts by releasing first, so the holder line stays)."""
        fcntl.flock(self._file, fcntl.LOCK_SH)
        self.shared = True

    def own(self) -> None:
        """Shared -> exclusive, waiting until every other holder (a worker) has released the folder."""
        fcntl.flock(self._file, fcntl.LOCK_EX)
        self.shared = False

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def holder_pid(folder: str) -> int | None:
    """The PID written by the last holder of `folder`'s lock (it may have ended); None when there is none."""
    try:
        with open(os.path.join(folder, LOCK_FILE)) as f:
            words = f.read().split()
        return int(words[1]) if len(words) > 1 and words[0] == "process" else None
    except (OSError, ValueError):
        return None
