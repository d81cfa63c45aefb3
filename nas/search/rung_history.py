"""Where multi-trial successive halving keeps what candidates recorded at each rung: a JSON file, or the study.

A rule (nas.search.multi_trial) asks its history to `record(key, epoch, value)` and gets back the other
candidates' entries at that rung, `[[key, value], ...]` in recording order, a candidate recorded again (rerun)
appearing once, at its latest place.

`JsonHistory` keeps them in one process's JSON file (Ray's `ParetoScheduler`, which decides in the driver alone).
`StudyHistory` keeps them in the study, as Optuna's own pruners read intermediate values there: the trial being
run records its value at rung `epoch` as its user attr `rung:<epoch>` (`Trial.report` is single-objective only),
and the history of a rung is derived from every trial of the study, whatever process ran it (`nas search
--worker`), so all of them decide on the same records; a resumed search sees the same history. What the trial was
compared with goes into `rung_seen:<epoch>` (trial numbers). The JSON file of a run begun before is imported
(its entries first, a trial's record replacing its candidate's entry), and is rewritten after each record as a
readable copy of the history.
"""
from __future__ import annotations

import json
import math
import os
from typing import Any

from nas.io import atomic_write_json
from nas.search.budget import running_trial

ATTR, SEEN = "rung:", "rung_seen:"


class JsonHistory:
    """Rung entries `{"epoch": [[key, value], ...]}` kept in a JSON file (`path` None: in memory only)."""

    def __init__(self, path: str | None):
        self.path = path
        self.scores: dict[str, list[list]] = read_scores(path)

    def record(self, key: str, epoch: int, value) -> list[list]:
        """Record `key`'s `value` at rung `epoch`; returns the other candidates' entries there."""
        seen = [kv for kv in self.scores.get(str(epoch), []) if kv[0] != key]
        self.scores[str(epoch)] = seen + [[key, value]]
        if self.path:
            atomic_write_json(self.path, self.scores)
        return seen


class StudyHistory:
    """Rung entries kept on the trials of the running trial's study (`budget.running_trial`); `path`: the JSON
    of an older run imported, and rewritten as a copy. A value recorded outside a running trial goes to the JSON."""

    def __init__(self, path: str | None):
        self.path = path
        self.imported = read_scores(path)
        self.file = JsonHistory(path)
        self.scores: dict[str, list[list]] = self.file.scores

    def record(self, key: str, epoch: int, value) -> list[list]:
        """Record `key`'s `value` on the running trial; returns the other candidates' entries at the rung, every
        process's trials included."""
        trial = running_trial()
        if trial is None:
            return self.file.record(key, epoch, value)
        trial.set_user_attr(f"{ATTR}{epoch}", to_attr(value))  # before reading: a concurrent decision sees it
        entries = study_entries(trial.study.get_trials(deepcopy=False), self.imported)
        rung = entries.get(str(epoch), {})
        seen = [[k, v] for k, (v, _) in rung.items() if k != key]
        trial.set_user_attr(f"{SEEN}{epoch}", sorted(n for k, (_, n) in rung.items() if k != key and n is not None))
        self.scores = {e: [[k, v] for k, (v, _) in r.items()] for e, r in entries.items()}
        if self.path:
            atomic_write_json(self.path, self.scores)
        return seen


def study_entries(trials, imported: dict[str, list[list]] | None = None) -> dict[str, dict[str, tuple[Any, Any]]]:
    """Each rung's entries, `{epoch: {key: (value, trial number or None)}}` in recording order: the imported JSON's
    entries first (no trial number), then the trials' `rung:<epoch>` records by trial number, a candidate's
    latest record replacing its earlier entry (and taking its place at the end)."""
    out: dict[str, dict[str, tuple[Any, Any]]] = {}
    for epoch, rung in (imported or {}).items():
        out[epoch] = {k: (v, None) for k, v in rung}
    for t in sorted(trials, key=lambda t: t.number):
        key = t.user_attrs.get("arch")
        for name, value in t.user_attrs.items():
            if key is not None and name.startswith(ATTR):
                rung = out.setdefault(name[len(ATTR):], {})
                rung.pop(key, None)
                rung[key] = (from_attr(value), t.number)
    return {e: out[e] for e in sorted(out, key=int)}


def read_scores(path: str | None) -> dict[str, list[list]]:
    """The rung entries of a JSON history (empty when there is none)."""
    if not path or not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def to_attr(value):
    """A rung value as a user attr: NaN as None (JSON without NaN)."""
    if isinstance(value, (list, tuple)):
        return [to_attr(v) for v in value]
    return float(value) if math.isfinite(value) else None


def from_attr(value):
    if isinstance(value, list):
        return [from_attr(v) for v in value]
    return float("nan") if value is None else float(value)
