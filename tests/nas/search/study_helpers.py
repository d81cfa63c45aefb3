"""Reading a run's study.db while another process may still be writing it."""
import os
import sqlite3


def complete_trials(run_dir) -> int:
    """COMPLETE trials in study.db, read-only, while another process may still be creating it."""
    path = os.path.join(run_dir, "study.db")
    if not os.path.exists(path):
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return db.execute("SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
    except sqlite3.OperationalError:  # no table yet, or locked
        return 0
