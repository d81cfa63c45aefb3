"""`nas search`: one run folder from spec to Pareto front to exported winner, resumable at every stage."""
from __future__ import annotations

import importlib.util
import os
import time
from typing import Any

import torch

from nas.errors import MissingFile, UserError
from nas.io import atomic_write_text
from nas.latency import stage as latency_stage
from nas.runlock import RunLock
from nas.search.constraints import Constraint, check_achievable
from nas.search.context import RunContext
from nas.search.devices import adopt_single_device_run, check_devices, search_devices
from nas.search.shared import close_trials
from nas.search.stages import search_and_report, trained_supernet
from nas.search.worker import check_worker, run_worker
from nas.spec.resolve import load_space, load_splits
from nas.spec.schema import SpecError
from nas.spec.sections import COST_METRICS, Spec, devices, split_metric
from nas.storage import local_file, open_storage, resolve
from nas.tasks import task_for
from search_spaces.loader import parse_yaml

# what a resumed run may change: budgets, later stages, and where the work runs (a run started on a laptop goes on
# on a Ray cluster; the global batch keeps supernet training the same at any process count)
RESUMABLE_CHANGES = {"search.trials", "search.timeout_s", "search.spread_trials", "search.ray.address", "distributed",
                     "retrain", "tracking", "export", "run_dir"}
# what a worker's spec may change from the driver's: where it runs and how long (trials and sampler are the study's)
WORKER_CHANGES = {"search.timeout_s", "search.ray.address", "distributed", "retrain", "tracking", "export", "run_dir"}
LOCK_WAIT_S = 1.0  # a worker waiting for the driver probes the lock (shared) for an instant
# what makes a folder hold a run: results a changed spec would contradict (latency/ is not among them: its table
# is keyed by device profile and unit, its calibrations by space, so it serves any spec that measures the same)
RESULTS = ("study.db", os.path.join("supernet", "checkpoint.pt"), "summary.json", "ray", "retrain", "best")


class SearchRun:
    """The stages of one search, each cached in the run folder so a killed run resumes where it stopped.

    Check, then write: everything that can be checked before work starts (spec values, data, space, task,
    objectives, hardware, constraints a space cannot meet by params/MACs) is checked before the run folder is
    written. A folder whose spec.yaml has no results beside it (`RESULTS`: the run failed before its first) does
    not hold a run: a corrected spec starts there again without --resume, and its spec.yaml is replaced.

    Lock: `run()` holds an exclusive OS lock on RUN/.lock (nas.runlock) for its whole life, as does `nas train`;
    a second process on the folder gets one line with the holder's PID, and the kernel releases the lock when
    the holder dies, so a killed run resumes at once. A `worker=True` run (`nas search --worker`) writes nothing
    in the folder: it waits for the driver's trials, holding the lock shared, and only appends trials through
    Optuna's storage (nas.search.shared, nas.search.worker).
    """

    def __init__(self, spec: Spec, resume: bool = False, progress: bool | None = None, worker: bool = False):
        self.spec = spec
        self.dir = spec.out_dir
        self.resume = resume
        self.progress, self.worker = progress, worker
        splits = load_splits(spec)
        space = load_space(spec, splits)
        task = task_for(spec.task, space)
        check_data(task, splits, spec)
        check_objectives(task, spec)
        check_hardware(spec)
        if devices(spec):
            check_devices(spec)
        check_constraints_before_latency(space, spec, task)
        url = resolve(spec.search.storage, self.dir)
        if local_file(url) is None or os.path.isfile(local_file(url)):
            # an unreachable database server, or a corrupt study file, is one line before any work (not after the
            # supernet has trained)
            open_storage(url)
        if worker:
            if devices(spec):
                raise UserError("--worker: a search of several devices (hardware: a list) runs in one process; "
                                "drop --worker, or give hardware: one device")
            check_worker(spec)
        elif resume and not os.path.isfile(os.path.join(self.dir, "spec.yaml")):
            raise MissingFile(f"--resume: '{self.dir}' holds no run to resume (no spec.yaml); drop --resume to start "
                              f"one, or name a moved run folder: `nas search RUN_DIR --resume`")
        if not worker:
            with RunLock(self.dir, "nas search", wait_s=LOCK_WAIT_S):
                self._prepare_dir()
        self.ctx = RunContext(spec, self.dir, splits, space, task, progress, log=not worker)

    @property
    def space(self):
        return self.ctx.space

    @property
    def task(self):
        return self.ctx.task

    # --- run folder ---
    def _prepare_dir(self) -> None:
        spec_path = os.path.join(self.dir, "spec.yaml")
        text = self.spec.to_yaml()
        if holds_run(self.dir) or self._study_file_exists():
            if not self.resume:
                raise SpecError(f"run folder '{self.dir}' already holds a run; pass --resume to continue it, or "
                                f"choose another with --set run_dir=PATH")
            with open(spec_path) as f:
                old = parse_yaml(f, spec_path, SpecError)
            new = parse_yaml(text, "spec", SpecError)
            changed = hardware_change(old.get("hardware"), new.get("hardware")) or _first_difference(
                old, new, ignore=RESUMABLE_CHANGES | {"hardware"})
            if changed:
                raise SpecError(f"--resume: the spec differs from the run's spec.yaml at '{changed}'; "
                                f"only {', '.join(sorted(RESUMABLE_CHANGES))} may change on resume, and devices "
                                f"may be added to hardware:")
            adopted = single_device_entry(old.get("hardware"), new.get("hardware"))
            if adopted is not None:
                d = self.spec.hardware[adopted]
                adopt_single_device_run(self.dir, self.spec.name, d.name, latency_stage.profile_of(d).key())
        os.makedirs(self.dir, exist_ok=True)
        atomic_write_text(spec_path, text)

    def _study_file_exists(self) -> bool:
        """A `search.storage` file inside the run folder (a journal) holds results as study.db does."""
        f = local_file(resolve(self.spec.search.storage, self.dir))
        inside = f is not None and os.path.abspath(f).startswith(os.path.abspath(self.dir) + os.sep)
        return inside and os.path.exists(os.path.join(self.dir, "spec.yaml")) and os.path.exists(f)

    def path(self, *parts: str) -> str:
        return os.path.join(self.dir, *parts)

    # --- stages ---
    def latency_model(self):
        """The run's latency table (built incrementally) and its calibration."""
        return latency_stage.prepare(self.space, self.spec.hardware, self.path("latency"), progress=self.progress,
                                     seed=self.spec.seed)

    def constraints(self, latency_model) -> list[Constraint]:
        """Constraints from the spec, checked against the space's reachable minimum before any training (an exact
        minimum above a limit refuses the run; an estimated one only warns)."""
        out = [Constraint(metric, float(limit)) for metric, limit in self.spec.constraints.items()]
        for warning in check_achievable(self.space, out, self.task, latency_model):
            self.ctx.say(f"warning: {warning}")
        return out

    def supernet(self):
        """Train the supernet (or load it from the run folder; a partial training resumes)."""
        return trained_supernet(self.ctx)

    def run(self) -> dict[str, Any]:
        """Every stage, holding the run folder's lock (a second process on the folder is refused); `--worker`
        processes may join the trials meanwhile."""
        with RunLock(self.dir, "nas search", wait_s=LOCK_WAIT_S) as lock:
            close_trials(self.dir)
            t0 = time.time()
            if devices(self.spec):
                return search_devices(self.ctx, t0)
            latency_model = self.latency_model()
            constraints = self.constraints(latency_model)
            return search_and_report(self.ctx, latency_model, constraints, t0, lock=lock)

    def work(self, wait_s: float) -> dict[str, Any]:
        """`nas search --worker`: wait for the driver, then run trials of its study until none is left."""
        return run_worker(self, wait_s, check=self._same_spec_as_driver)

    def _same_spec_as_driver(self) -> None:
        """A worker's spec is the driver's (RUN/spec.yaml) but for where and how long it runs."""
        spec_path = os.path.join(self.dir, "spec.yaml")
        with open(spec_path) as f:
            driver = parse_yaml(f, spec_path, SpecError)
        changed = _first_difference(driver, parse_yaml(self.spec.to_yaml(), "spec", SpecError), ignore=WORKER_CHANGES)
        if changed:
            raise SpecError(f"--worker: the spec differs from the driver's {spec_path} at '{changed}'; a worker runs "
                            f"the driver's search (only {', '.join(sorted(WORKER_CHANGES))} may differ)")


def holds_run(folder: str) -> bool:
    """A spec.yaml with results beside it (`RESULTS`); a folder that failed before its first result does not."""
    return (os.path.exists(os.path.join(folder, "spec.yaml"))
            and any(os.path.exists(os.path.join(folder, r)) for r in RESULTS))


def check_hardware(spec: Spec) -> None:
    """The devices the spec asks for are here: CUDA for `hardware.kind: cuda` and `supernet.sync_bn`,
    onnxruntime for `onnxruntime-cpu`, a global batch that splits over the DDP processes."""
    entries = [("hardware", spec.hardware)] if not isinstance(spec.hardware, list) else [
        (f"hardware[{i}]", hw) for i, hw in enumerate(spec.hardware)]
    for key, hw in entries:
        if hw.kind == "cuda" and not torch.cuda.is_available():
            raise UserError(f"{key}.kind: 'cuda' but this machine has no CUDA GPU (torch.cuda.is_available() is "
                            f"False); valid here: cpu, onnxruntime-cpu")
        if hw.kind == "onnxruntime-cpu" and importlib.util.find_spec("onnxruntime") is None:
            raise UserError(f"{key}.kind: 'onnxruntime-cpu' needs the onnxruntime package (pip install "
                            f"onnxruntime); or use kind: cpu")
        if hw.table and not os.path.isfile(hw.table):
            raise MissingFile(f"{key}.table: '{hw.table}' does not exist; build it with `nas latency build`, or "
                              f"remove the key to build the table in the run folder")
    if spec.supernet.sync_bn and not torch.cuda.is_available():
        raise UserError("supernet.sync_bn: SyncBatchNorm runs on CUDA only and this machine has none; "
                        "set sync_bn: false")
    d = spec.distributed
    n = d.nproc if d.backend == "ddp" else d.num_workers if d.backend == "ray" else 1
    if spec.data.batch_size % n:
        key = "nproc" if d.backend == "ddp" else "num_workers"
        raise UserError(f"data.batch_size: {spec.data.batch_size} does not split evenly over distributed.{key}="
                        f"{n} processes; use a multiple of {n}")


def check_constraints_before_latency(space, spec: Spec, task) -> None:
    """Constraints on params, MACs, memory that no architecture of the space meets refuse the run before the
    folder is written; latency ones are checked once the table is measured (`SearchRun.constraints`)."""
    early = [Constraint(m, float(v)) for m, v in spec.constraints.items() if split_metric(m)[0] != "latency_ms"]
    check_achievable(space, early, task)


def check_data(task, splits, spec: Spec) -> None:
    """The spec's dataset must be one the task learns from."""
    if not task.accepts(splits):
        raise SpecError(f"data.name: dataset '{spec.data.name}' holds {getattr(splits, 'task', 'classification')} "
                        f"data, but task '{task.name}' learns {task.kind}; choose a {task.kind} dataset")


def check_objectives(task, spec: Spec) -> None:
    """Every objective is a cost or one of the task's quality metrics; at least one is a quality metric."""
    valid = [*task.quality, *COST_METRICS]
    for i, o in enumerate(spec.objectives):
        if o.metric not in valid:
            raise SpecError(f"objectives[{i}].metric: '{o.metric}' is not measured by task '{task.name}'; valid: "
                            f"{', '.join(valid)}")
    if all(o.metric in COST_METRICS for o in spec.objectives):
        raise SpecError(f"objectives: at least one quality metric is needed; task '{task.name}' measures "
                        f"{', '.join(task.quality)}")


def _entries(hardware: Any) -> list[dict]:
    return hardware if isinstance(hardware, list) else [hardware] if isinstance(hardware, dict) else []


def _same_device(old: dict, new: dict) -> bool:
    """`new` is the device `old` describes (an unnamed `hardware:` mapping matches whatever name it has now)."""
    return isinstance(old, dict) and isinstance(new, dict) and (
        old == new or (not isinstance(old.get("name"), str) and {**old, "name": None} == {**new, "name": None}))


def hardware_change(old: Any, new: Any) -> str | None:
    """None when `new` keeps every device of `old` as it was (devices may be added on resume, a `hardware:`
    mapping may become a list that holds it); else the key path of the first device changed or removed."""
    if old == new:
        return None
    if isinstance(old, dict) and isinstance(new, dict):
        return _first_difference(old, new, set(), "hardware.")
    if isinstance(old, list) and not isinstance(new, list):
        return "hardware"
    for i, d in enumerate(_entries(old)):
        if not any(_same_device(d, n) for n in _entries(new)):
            return f"hardware[{i}]" if isinstance(old, list) else "hardware"
    return None


def single_device_entry(old: Any, new: Any) -> int | None:
    """Where a run's one `hardware:` mapping went in the list it is resumed with (None: no such change)."""
    if isinstance(old, dict) and isinstance(new, list):
        return next((i for i, n in enumerate(new) if _same_device(old, n)), None)
    return None


def _first_difference(old: Any, new: Any, ignore: set[str], prefix: str = "") -> str | None:
    if prefix.rstrip(".") in ignore:
        return None
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new)):
            d = _first_difference(old.get(k), new.get(k), ignore, f"{prefix}{k}.")
            if d:
                return d
        return None
    return None if old == new else prefix.rstrip(".")


__all__ = ["SearchRun"]
