"""Ray Tune executor: the run's Optuna study and sampler inside Tune's OptunaSearch, trials as Ray actors.

The study lives at `search.storage` (default: the run's study.db), as for the in-process executor; the trials
get what they need (the supernet's weights) through Ray's object store, not the driver's run folder, so nodes of
a cluster need no shared disk (Tune's own `storage_path`, RUN/ray, aside). `ArchSpace` (OptunaSearch's
define-by-run space) asks the study for an architecture and stores its arch string, cost metrics and
constraint violations on the trial; the trial (an actor holding `cpus_per_trial` and a fraction
`gpus_per_trial` of a GPU) scores it and reports accuracy and costs; `StudySearch.on_trial_complete`
stores the metrics and tells the study the values: PRUNED when the early-stopping rule (search.early_stopping:
`ParetoScheduler`, the in-process MO-ASHA rule, or Ray's ASHAScheduler) stopped a multi-trial candidate before
its last epoch, FAIL after an error (once `max_failures` retries are spent) or on a NaN value. A repeated
architecture reuses the study's earlier result instead of being scored again.

Resume: an interrupted Tune experiment is continued with `Tuner.restore` (its trials and its searcher).
Tune cannot raise the sample count of a restored experiment (the search generator restores its
`total_samples` from the checkpoint), so trials still missing afterwards, e.g. after `search.trials` was
raised, run in a new Tune experiment (a "segment" in ray/) over the same study; finished trials never rerun.
"""
from __future__ import annotations

import copy
import glob
import math
import os
import pickle
import threading
import warnings
from typing import Any, Callable

import optuna
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search.optuna import OptunaSearch

from nas.data import make_loaders
from nas.io import atomic_write_bytes, atomic_write_text
from nas.search.multi_trial import ParetoHalving, rung_point, stopping_rule, train_candidate
from nas.search.objectives import ArchEvaluator, objective_values
from nas.search.study import completed_cache, finished_count, make_sampler, open_study, set_constraints, suggest_arch
from nas.spec.resolve import load_splits
from nas.spec.schema import SpecError, to_dict
from nas.spec.sections import early_stopping, load_spec
from nas.storage import open_storage, resolve
from nas.tasks import get_task
from nas.training.checkpoint import read_checkpoint
from nas.training.loop import TrainingDiverged

DONE_MARK = "segment_done"  # written into a segment's folder once its Tuner.fit() has returned
_HOOKS: dict[str, Callable] = {}  # study storage URL -> the driver's on_trial(trial, arch, metrics); never pickled
_RUN_STUDY: dict[str, str] = {}  # "url": the study of the driver's run, where a restored StudySearch binds
_WORKER: dict[str, Any] = {}  # per Ray actor process: the run's loaders (and supernet), loaded once


class ArchSpace:
    """OptunaSearch's define-by-run space: suggest an arch, store its costs; picklable (Tune checkpoints it)."""

    def __init__(self, space, evaluator: ArchEvaluator, cache: dict[str, dict[str, Any]]):
        self.space, self.evaluator, self.cache = space, evaluator, cache

    def __call__(self, trial) -> dict[str, Any]:
        arch = suggest_arch(trial, self.space)
        key = arch.to_string()
        cost = self.evaluator.cost(arch)
        trial.set_user_attr("arch", key)
        trial.set_user_attr("cost", cost)
        set_constraints(trial, self.evaluator, cost)
        hit = self.cache.get(key)
        return {"cost": cost, "cached": {q: hit[q] for q in self.evaluator.quality if q in hit} if hit else None}


def _unbound(trial: optuna.Trial) -> optuna.Trial:
    """A copy of a live trial without its study and storage (StudySearch binds them again when restored)."""
    out = copy.copy(trial)
    out.study = out.storage = None
    return out


class PicklableSampler:
    """An Optuna sampler's state without its thread locks (Optuna 5.1's NSGA-II sampler holds one, which Tune cannot
    pickle); `restore` gives the sampler back with fresh locks."""

    def __init__(self, sampler):
        lock_type = type(threading.Lock())
        self.cls = type(sampler)
        self.locks = [k for k, v in vars(sampler).items() if isinstance(v, lock_type)]
        self.state = {k: v for k, v in vars(sampler).items() if k not in self.locks}

    def restore(self):
        sampler = self.cls.__new__(self.cls)
        sampler.__dict__.update(self.state)
        sampler.__dict__.update({k: threading.Lock() for k in self.locks})
        return sampler


class StudySearch(OptunaSearch):
    """OptunaSearch that records what the in-process executor records, and tells ASHA-stopped trials PRUNED."""

    def __init__(self, arch_space: ArchSpace, objectives, directions, sampler, study_name: str, storage,
                 hook_key: str, trial_epochs: int | None = None):
        super().__init__(space=arch_space, metric=list(objectives),
                         mode=["max" if d == "maximize" else "min" for d in directions],
                         sampler=sampler, study_name=study_name, storage=storage)
        self._objectives, self._trial_epochs, self._hook_key = list(objectives), trial_epochs, hook_key

    # Tune pickles the searcher (tuner.pkl, searcher-state-*.pkl) and restores it from there: the study is kept by
    # URL, its trials without their live storage, so a run folder moved since (`mv`) restores against the study
    # where it lies now (`_RUN_STUDY`, set by the driver), not the absolute path it had
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_storage"] = state["_ot_study"] = None
        state["_ot_trials"] = {k: _unbound(t) for k, t in self._ot_trials.items()}
        state["_sampler"] = PicklableSampler(self._sampler)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if isinstance(self._sampler, PicklableSampler):
            self._sampler = self._sampler.restore()
        self._bind()

    def save(self, checkpoint_path: str) -> None:
        atomic_write_bytes(checkpoint_path, pickle.dumps(self.__getstate__()))

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__setstate__(pickle.load(f))

    def _bind(self) -> None:
        self._hook_key = url = _RUN_STUDY.get("url", self._hook_key)
        self._storage = open_storage(url)
        self._ot_study = optuna.load_study(study_name=self._study_name, storage=self._storage, sampler=self._sampler)
        for t in self._ot_trials.values():
            t.study, t.storage = self._ot_study, self._ot_study._storage

    def suggest(self, trial_id: str) -> dict | None:
        with warnings.catch_warnings():  # "Define-by-run function ... took 1.4 seconds": it prices the arch
            warnings.filterwarnings("ignore", message="Define-by-run function", category=UserWarning)
            return super().suggest(trial_id)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        self._completed_trials.add(trial_id)
        ot_trial, State = self._ot_trials[trial_id], optuna.trial.TrialState
        cost = dict(ot_trial.user_attrs.get("cost", {}))
        quality = {q: float(result[q]) for q in self._space.evaluator.quality if result and q in result}
        metrics: dict[str, Any] = {**cost, **quality}
        if error or not quality:
            state = State.FAIL  # errored after its retries, or stopped before it reported: runs again on resume
        elif self._trial_epochs and int(result.get("epoch", self._trial_epochs)) < self._trial_epochs:
            state = State.PRUNED  # stopped by ASHA at a rung; its accuracy there is kept for the table
            metrics["pruned_at_epoch"] = int(result["epoch"])
        else:
            state = None  # COMPLETE, or FAIL when a value is NaN (what study.optimize does)
            metrics["feasible"] = all(v <= 0 for v in self._space.evaluator.violations(cost))
            if result.get("cached"):
                metrics["cached"] = True
        try:
            if state != State.FAIL:
                ot_trial.set_user_attr("metrics", {k: v for k, v in metrics.items()
                                                   if not (isinstance(v, float) and not math.isfinite(v))})
            if state is None:
                with warnings.catch_warnings():  # "The value nan is not acceptable": FAIL, as in study.optimize
                    warnings.simplefilter("ignore", UserWarning)
                    told = self._ot_study.tell(ot_trial, objective_values(metrics, self._objectives))
            else:
                told = self._ot_study.tell(ot_trial, state=state)
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError):
            return  # told before an interruption, then run again by Tuner.restore: the first result stands
        arch = ot_trial.user_attrs.get("arch", "")
        if told.state == State.COMPLETE:
            self._space.cache[arch] = metrics
        hook = _HOOKS.get(self._hook_key)
        if hook is not None and state is None:
            hook(ot_trial, arch, metrics)


class ParetoScheduler(FIFOScheduler):
    """MO-ASHA on Ray Tune: at the rule's rungs (the reported `epoch`), the trial's objective vector (the quality
    it reports, the costs reported with it) goes through the same `ParetoHalving.keep` as in-process trials;
    STOP when it falls outside the rung's top 1/eta. Trials are keyed by Ray trial id; the rule's JSON keeps the
    rungs across restored and new Tune experiments of the run."""

    def __init__(self, rule: ParetoHalving, objectives, directions, time_attr: str = "epoch"):
        super().__init__()
        self.rule, self.time_attr = rule, time_attr
        self.objectives, self.directions = list(objectives), list(directions)
        self.num_stopped = 0

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if self.time_attr not in result or result.get("cached"):
            return TrialScheduler.CONTINUE
        epoch = int(result[self.time_attr])
        if self.rule.keep(str(trial.trial_id), epoch, rung_point(result, self.objectives, self.directions)):
            return TrialScheduler.CONTINUE
        self.num_stopped += 1
        return TrialScheduler.STOP

    def debug_string(self) -> str:
        return f"Using MO-ASHA (pareto early stopping): num_stopped={self.num_stopped}, rungs={self.rule.rungs}"


def make_scheduler(ctx):
    """Tune's trial scheduler for the run: ParetoScheduler, ASHAScheduler (scalar) or None (none, or one-shot)."""
    from ray.tune.schedulers import ASHAScheduler

    spec = ctx.spec
    rule = early_stopping(spec)
    if spec.search.mode != "multi_trial" or rule == "none":
        return None
    if rule == "pareto":
        return ParetoScheduler(stopping_rule(spec, ctx.path("multi_trial_rungs.json")), ctx.objectives,
                               ctx.directions)
    return ASHAScheduler(metric=ctx.task.primary, mode="max", time_attr="epoch", max_t=spec.search.trial_epochs,
                         grace_period=1, reduction_factor=2)


def _trial_setup(config: dict, space, spec_dict: dict, task_name: str, run_key: str, supernet_state=None):
    """The worker's spec, task, loaders (and the supernet, its weights shipped by Ray's object store) for this run,
    loaded once per actor; the config's arch. Nothing here reads the driver's run folder: a node of a cluster does
    not share the driver's disk."""
    import torch

    state = _WORKER.get(run_key)
    if state is None:
        spec = load_spec(spec_dict)  # imports the spec's `imports:` in this worker first
        torch.set_num_threads(max(1, int(spec.search.ray.cpus_per_trial)))
        splits = load_splits(spec, download=False)
        state = {"spec": spec, "splits": splits, "task": get_task(task_name),
                 "loaders": make_loaders(splits, spec.data.batch_size, seed=spec.seed)}
        _WORKER.clear()
        _WORKER[run_key] = state
    if supernet_state is not None and "supernet" not in state:
        net = state["task"].build_supernet(space)
        net.load_state_dict(supernet_state)
        state["supernet"] = (net.cuda() if torch.cuda.is_available() else net).eval()
    arch = space.decode({d.key: config[d.key] for d in space.decisions()})
    return state, arch


def one_shot_trial(config: dict, space, spec_dict: dict, task_name: str, run_key: str, supernet_state) -> None:
    """Tune function trainable: score one path of the trained supernet; report the task's metrics and costs."""
    from ray import tune

    if config.get("cached"):
        tune.report({**config["cached"], **config["cost"], "cached": True})
        return
    state, arch = _trial_setup(config, space, spec_dict, task_name, run_key, supernet_state)
    train_loader, val_loader, _ = state["loaders"]
    scores = state["task"].score(state["supernet"], arch, train_loader, val_loader, state["spec"].search.bn_batches)
    tune.report({**scores, **config["cost"]})


def multi_trial_trial(config: dict, space, spec_dict: dict, task_name: str, run_key: str) -> None:
    """Tune function trainable: train one candidate from scratch, reporting after each epoch (ASHA stops it)."""
    from ray import tune

    epochs = int(spec_dict["search"]["trial_epochs"])
    if config.get("cached"):
        tune.report({**config["cached"], **config["cost"], "epoch": epochs, "cached": True})
        return
    state, arch = _trial_setup(config, space, spec_dict, task_name, run_key)
    task = state["task"]

    def report(epoch: int, metrics: dict[str, float]) -> bool:
        tune.report({**metrics, "epoch": epoch, **config["cost"]})
        return True

    try:
        train_candidate(task, state["spec"], state["splits"], arch, epochs, on_epoch=report)
    except TrainingDiverged:  # a NaN objective: the trial is marked FAIL, the search goes on
        tune.report({**{q: float("nan") for q in task.quality}, "epoch": epochs, **config["cost"]})


def _trial_dirname(trial) -> str:
    return f"trial_{trial.trial_id}"


def connect(ray_section) -> None:
    """Join `search.ray.address`, or start a local runtime sized for the concurrent trials (once per process);
    a local runtime that cannot hold one trial's resources is an error here, before any training."""
    import ray

    if not ray.is_initialized():
        if ray_section.address:
            ray.init(address=ray_section.address, log_to_driver=False)
        else:
            cpus = max(1, math.ceil(ray_section.max_concurrent * ray_section.cpus_per_trial))
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    if ray_section.address:
        return  # a cluster may autoscale: Tune waits for the resources
    have = ray.cluster_resources()
    for key, name in (("CPU", "cpus_per_trial"), ("GPU", "gpus_per_trial")):
        need = float(getattr(ray_section, name))
        if need > have.get(key, 0.0):
            raise SpecError(f"search.ray.{name}: {need:g} per trial, but the local Ray runtime has "
                            f"{have.get(key, 0.0):g} {key}s; lower it, or join a cluster with search.ray.address")


def segments(root: str) -> list[str]:
    """The run's Tune experiments in the order they ran (ray/tune-0, ray/tune-1, ...)."""
    if not os.path.isdir(root):
        return []
    names = [n for n in os.listdir(root) if n.startswith("tune-") and n[5:].isdigit()]
    return [os.path.join(root, n) for n in sorted(names, key=lambda n: int(n[5:]))]


def restorable(path: str) -> bool:
    """An interrupted Tune experiment that saved its state at least once (a finished one is marked done)."""
    from ray import tune

    return (not os.path.exists(os.path.join(path, DONE_MARK)) and tune.Tuner.can_restore(path)
            and bool(glob.glob(os.path.join(path, "experiment_state-*.json"))))


def _close_segment(path: str, grid, num_samples: int | None, timed: bool, study: optuna.Study) -> None:
    """Mark a Tune experiment done when all its trials ended; trials the study still holds as RUNNING then
    belong to no Ray trial (stopped by the time budget): FAIL. An interrupted one (Ctrl-C, which Tune turns
    into an early return) raises KeyboardInterrupt, as the in-process search does, and is restored on resume."""
    ended = grid.num_terminated + grid.num_errors == len(grid)
    if not ended or (num_samples is not None and len(grid) < num_samples and not timed):
        raise KeyboardInterrupt(f"Ray Tune experiment {path} interrupted")
    atomic_write_text(os.path.join(path, DONE_MARK), "")
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)


def run_ray_search(ctx, evaluator: ArchEvaluator, on_trial: Callable | None = None) -> optuna.Study:
    """Run the search's trials on Ray Tune until the study holds `search.trials` finished ones; resumable."""
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    spec, rs = ctx.spec, ctx.spec.search.ray
    multi = spec.search.mode == "multi_trial"
    connect(rs)
    storage_url = resolve(spec.search.storage, ctx.dir)
    study = open_study(ctx.dir, spec.name, ctx.directions, make_sampler(spec.search.sampler, spec.seed,
                                                                        spec.search.population), storage=storage_url)
    # what the trials need travels through Ray's object store (with_parameters puts each once), never the run folder
    shipped = {} if multi else {"supernet_state": read_checkpoint(ctx.path("supernet"))["model"]}
    trainable = tune.with_resources(
        tune.with_parameters(multi_trial_trial if multi else one_shot_trial, space=ctx.space,
                             spec_dict=to_dict(spec), task_name=ctx.task.name,
                             run_key=f"{os.path.abspath(ctx.dir)}@{os.getpid()}", **shipped),
        {"cpu": rs.cpus_per_trial, "gpu": rs.gpus_per_trial})
    root = os.path.abspath(ctx.path("ray"))
    past = segments(root)
    timed = spec.search.timeout_s is not None
    _HOOKS[storage_url] = on_trial
    _RUN_STUDY["url"] = storage_url
    try:
        if past and restorable(past[-1]):
            ctx.say(f"search: continuing the interrupted Ray Tune experiment {past[-1]}")
            grid = tune.Tuner.restore(past[-1], trainable=trainable, resume_unfinished=True,
                                      resume_errored=False).fit()
            _close_segment(past[-1], grid, None, timed, study)
        todo = spec.search.trials - finished_count(study)
        if todo > 0:
            cost_only = ArchEvaluator(None, evaluator.latency_model, evaluator.constraints, quality=evaluator.quality)
            cost_only.cost_cache.update(evaluator.cost_cache)
            sampler = make_sampler(spec.search.sampler, spec.seed + len(past), spec.search.population)
            searcher = StudySearch(ArchSpace(ctx.space, cost_only, completed_cache(study)), ctx.objectives,
                                   ctx.directions, sampler, spec.name, open_storage(storage_url),
                                   hook_key=storage_url, trial_epochs=spec.search.trial_epochs if multi else None)
            scheduler = make_scheduler(ctx)
            name = f"tune-{len(past)}"
            tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(search_alg=ConcurrencyLimiter(searcher, max_concurrent=rs.max_concurrent),
                                            scheduler=scheduler, num_samples=todo, reuse_actors=True,
                                            time_budget_s=spec.search.timeout_s, trial_dirname_creator=_trial_dirname),
                run_config=tune.RunConfig(name=name, storage_path=root, verbose=0,
                                          failure_config=tune.FailureConfig(max_failures=rs.max_failures)))
            _close_segment(os.path.join(root, name), tuner.fit(), todo, timed, study)
    finally:
        _HOOKS.pop(storage_url, None)
        _RUN_STUDY.clear()
    return optuna.load_study(study_name=spec.name, storage=open_storage(storage_url))
