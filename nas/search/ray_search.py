"""Ray Tune executor: the same Optuna sampler inside OptunaSearch, trials as Ray tasks, ASHA in multi-trial."""
from __future__ import annotations

import os
from typing import Any

import optuna

from .optuna_search import make_sampler, set_constraints, suggest_arch

_WORKER_CACHE: dict[str, Any] = {}  # per Ray worker process: the supernet, loaded once


def _one_shot_trial(config: dict, space, spec_dict: dict, run_dir: str) -> None:
    """A Tune function trainable: score one path of the trained supernet and report every metric."""
    from ray import tune

    from nas.config import load_spec
    from nas.data import load_dataset, make_loaders
    from nas.evaluate import score_arch

    from .stages import load_trained_supernet

    spec = load_spec(spec_dict)
    if "supernet" not in _WORKER_CACHE:
        splits = load_dataset(spec.data.name, root=spec.data.root, input_size=spec.data.input_size, seed=spec.seed)
        _WORKER_CACHE["loaders"] = make_loaders(splits, spec.data.batch_size, seed=spec.seed)
        _WORKER_CACHE["supernet"] = load_trained_supernet(space, run_dir)
    train_loader, val_loader, _ = _WORKER_CACHE["loaders"]
    arch = space.decode({d.key: config[d.key] for d in space.decisions()})
    acc = score_arch(_WORKER_CACHE["supernet"], arch, train_loader, val_loader, spec.search.bn_batches)
    tune.report({"accuracy": float(acc), **{k: v for k, v in config.items() if k.startswith("cost/")}})


def _multi_trial_trial(config: dict, space, spec_dict: dict, run_dir: str) -> None:
    """A Tune function trainable: train one candidate from scratch, reporting accuracy after each epoch (ASHA)."""
    from ray import tune

    from nas.config import load_spec
    from nas.data import load_dataset

    from .multi_trial import train_candidate

    spec = load_spec(spec_dict)
    splits = load_dataset(spec.data.name, root=spec.data.root, input_size=spec.data.input_size, seed=spec.seed)
    arch = space.decode({d.key: config[d.key] for d in space.decisions()})
    costs = {k: v for k, v in config.items() if k.startswith("cost/")}

    def report(epoch: int, acc: float) -> bool:
        tune.report({"accuracy": acc, "epoch": epoch, **costs})  # ASHA stops the trial here when it is weak
        return True

    train_candidate(spec, splits, arch, spec.search.trial_epochs, on_epoch=report)


def run_ray_search(run, evaluator) -> optuna.Study:
    """Run the trials on Ray Tune (local runtime, or `search.ray.address`); resumes with Tuner.restore."""
    import ray
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    from nas.schema import to_dict

    spec = run.spec
    rs = spec.search.ray
    if not ray.is_initialized():
        if rs.address:
            ray.init(address=rs.address, log_to_driver=False)
        else:
            ray.init(num_cpus=max(1, int(rs.max_concurrent * rs.cpus_per_trial)), include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
    quality = [o for o in run.objectives if o in ("accuracy", "miou", "pixel_accuracy")]
    metric_names = [("accuracy" if o in quality else f"cost/{o}") for o in run.objectives]
    modes = ["max" if d == "maximize" else "min" for d in run.directions]

    def define_by_run(trial):
        arch = suggest_arch(trial, run.space)
        cost = evaluator.cost(arch)
        trial.set_user_attr("arch", arch.to_string())
        trial.set_user_attr("metrics", cost)
        set_constraints(trial, evaluator, cost)
        return {f"cost/{k}": v for k, v in cost.items()}

    sampler = make_sampler(spec.search.sampler, spec.seed, spec.search.population)
    storage = optuna.storages.RDBStorage(f"sqlite:///{os.path.abspath(run.path('study.db'))}")
    searcher = ConcurrencyLimiter(OptunaSearch(space=define_by_run, metric=metric_names, mode=modes,
                                               sampler=sampler, study_name=spec.name, storage=storage),
                                  max_concurrent=rs.max_concurrent)
    fn = _one_shot_trial if spec.search.mode == "one_shot" else _multi_trial_trial
    trainable = tune.with_resources(
        tune.with_parameters(fn, space=run.space, spec_dict=to_dict(spec), run_dir=os.path.abspath(run.dir)),
        {"cpu": rs.cpus_per_trial, "gpu": rs.gpus_per_trial})
    scheduler = None
    if spec.search.mode == "multi_trial":
        from ray.tune.schedulers import ASHAScheduler

        scheduler = ASHAScheduler(metric="accuracy", mode="max", time_attr="epoch",
                                  max_t=spec.search.trial_epochs, grace_period=1, reduction_factor=2)
    storage_path = os.path.abspath(run.path("ray"))
    exp = os.path.join(storage_path, spec.name)
    if run.resume and tune.Tuner.can_restore(exp):
        tuner = tune.Tuner.restore(exp, trainable=trainable, resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=spec.search.trials,
                                        time_budget_s=spec.search.timeout_s),
            run_config=tune.RunConfig(name=spec.name, storage_path=storage_path, verbose=0,
                                      failure_config=tune.FailureConfig(max_failures=rs.max_failures)))
    tuner.fit()
    study = optuna.load_study(study_name=spec.name, storage=storage)
    return study
